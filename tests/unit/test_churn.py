"""Churn risk scoring (domain.md §4): every signal at its boundary, score cap, level bands,
scored stages, signal order and reason text. Expected values are worked out from the table in
domain.md §4 with the shipped default weights (30/20/15/20/15/20/10) and levels (50 high, 30 medium).
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from pathlib import Path

import pandas as pd
import pytest

from crm.churn import CHURN_RISK_COLUMNS, score_churn
from crm.rules import default_rules, load_rules

AS_OF = date(2026, 5, 1)


def quiet_customer(**changes: object) -> dict[str, object]:
    """An active buyer for whom no signal fires; tests change one measure at a time."""
    row: dict[str, object] = {
        "customer_id": "C001",
        "stage": "active",
        "recency_days": 10,
        "median_gap_days": 30.0,
        "orders_prior_year": 0,
        "orders_90d": 3,
        "revenue_prior_year": Decimal("0.00"),
        "revenue_90d": Decimal("300.00"),
        "complaints_90d": 0,
        "avg_satisfaction_90d": 4.5,
        "purchase_days": 10,
        "last_outbound_days": 5,
        "is_key_account": False,
        "p_alive": 0.9,
        "expected_orders_90d": 2.0,
    }
    row.update(changes)
    return row


def score_one(rules=None, **changes: object) -> pd.Series:
    frame = pd.DataFrame([quiet_customer(**changes)])
    result = score_churn(frame, rules or default_rules(), AS_OF)
    assert len(result) == 1
    return result.iloc[0]


def test_quiet_customer_has_no_signal_and_low_risk() -> None:
    row = score_one()
    assert row["risk_score"] == 0
    assert row["risk_level"] == "low"
    assert row["signals"] == ""
    assert row["reasons"] == ""


@pytest.mark.parametrize(
    ("changes", "fires"),
    [
        # overdue with a rhythm: 1.5 x 30 = 45, strictly greater fires
        ({"recency_days": 45, "median_gap_days": 30.0}, False),
        ({"recency_days": 46, "median_gap_days": 30.0}, True),
        # 1.5 x 31 = 46.5
        ({"recency_days": 46, "median_gap_days": 31.0}, False),
        ({"recency_days": 47, "median_gap_days": 31.0}, True),
        # without a rhythm (median null): recency > 120
        ({"recency_days": 120, "median_gap_days": None}, False),
        ({"recency_days": 121, "median_gap_days": None}, True),
    ],
)
def test_overdue_boundary(changes: dict, fires: bool) -> None:
    row = score_one(**changes)
    assert (row["signals"] == "overdue") is fires
    assert row["risk_score"] == (30 if fires else 0)


def test_overdue_reason_states_days_and_rhythm() -> None:
    row = score_one(recency_days=94, median_gap_days=31.0)
    assert row["reasons"] == (
        "94 天未下单，通常每 31 天下单一次 / 94 days since last order, usually every 31 days"
    )


@pytest.mark.parametrize(
    ("orders_prior_year", "orders_90d", "fires"),
    [
        # 8 prior orders = 2 per quarter; half of it = 1; 1 < 1 is false, 0 < 1 fires
        (8, 1, False),
        (8, 0, True),
        # 4 prior orders (the minimum, inclusive): 1 per quarter, half = 0.5
        (4, 0, True),
        (4, 1, False),
        # 3 prior orders: below the minimum, never fires (0 < 0.375 would otherwise)
        (3, 0, False),
    ],
)
def test_frequency_drop_boundary(orders_prior_year: int, orders_90d: int, fires: bool) -> None:
    row = score_one(orders_prior_year=orders_prior_year, orders_90d=orders_90d)
    assert (row["signals"] == "frequency_drop") is fires
    assert row["risk_score"] == (20 if fires else 0)


@pytest.mark.parametrize(
    ("revenue_prior_year", "orders_prior_year", "revenue_90d", "fires"),
    [
        # 4000 a year = 1000 a quarter; half = 500; strictly less fires
        (Decimal("4000.00"), 4, Decimal("500.00"), False),
        (Decimal("4000.00"), 4, Decimal("499.99"), True),
        # fewer than 4 prior orders: no
        (Decimal("4000.00"), 3, Decimal("0.00"), False),
        # nothing spent the year before: no
        (Decimal("0.00"), 4, Decimal("0.00"), False),
    ],
)
def test_spend_drop_boundary(
    revenue_prior_year: Decimal, orders_prior_year: int, revenue_90d: Decimal, fires: bool
) -> None:
    # orders_90d = 1 keeps frequency_drop quiet: with 4 prior orders, 1 < 0.5 is false.
    row = score_one(
        revenue_prior_year=revenue_prior_year,
        orders_prior_year=orders_prior_year,
        revenue_90d=revenue_90d,
        orders_90d=1,
    )
    assert (row["signals"] == "spend_drop") is fires
    assert row["risk_score"] == (15 if fires else 0)


@pytest.mark.parametrize(("complaints", "fires"), [(1, False), (2, True), (5, True)])
def test_complaints_boundary(complaints: int, fires: bool) -> None:
    row = score_one(complaints_90d=complaints)
    assert (row["signals"] == "complaints") is fires
    assert row["risk_score"] == (20 if fires else 0)


@pytest.mark.parametrize(
    ("satisfaction", "fires"), [(2.5, True), (2.51, False), (1.0, True), (None, False)]
)
def test_low_satisfaction_boundary(satisfaction: float | None, fires: bool) -> None:
    row = score_one(avg_satisfaction_90d=satisfaction)
    assert (row["signals"] == "low_satisfaction") is fires
    assert row["risk_score"] == (15 if fires else 0)


@pytest.mark.parametrize(
    ("purchase_days", "p_alive", "fires"),
    [
        (2, 0.49, True),
        (2, 0.5, False),  # strictly below 0.5
        (1, 0.1, False),  # a single purchase date says nothing (p_alive = 1 by the model anyway)
    ],
)
def test_low_p_alive_boundary(purchase_days: int, p_alive: float, fires: bool) -> None:
    row = score_one(purchase_days=purchase_days, p_alive=p_alive)
    assert (row["signals"] == "low_p_alive") is fires
    assert row["risk_score"] == (20 if fires else 0)


@pytest.mark.parametrize(
    ("is_key_account", "last_outbound_days", "fires"),
    [
        (True, 59, False),  # contacted 59 days ago: within the last 60 days
        (True, 60, True),  # 60 days ago is not "in the last 60 days"
        (True, None, True),  # never contacted
        (False, None, False),  # not a key account
        (None, None, False),  # unknown flag counts as not a key account
    ],
)
def test_neglected_key_account_boundary(
    is_key_account: bool | None, last_outbound_days: int | None, fires: bool
) -> None:
    row = score_one(is_key_account=is_key_account, last_outbound_days=last_outbound_days)
    assert (row["signals"] == "neglected_key_account") is fires
    assert row["risk_score"] == (10 if fires else 0)


def everything_fires() -> dict[str, object]:
    return {
        "recency_days": 94,
        "median_gap_days": 31.0,
        "orders_prior_year": 8,
        "orders_90d": 0,
        "revenue_prior_year": Decimal("4000.00"),
        "revenue_90d": Decimal("0.00"),
        "complaints_90d": 3,
        "avg_satisfaction_90d": 2.0,
        "purchase_days": 10,
        "p_alive": 0.2,
        "is_key_account": True,
        "last_outbound_days": None,
    }


def test_score_is_capped_at_100_and_lists_signals_in_table_order() -> None:
    # 30 + 20 + 15 + 20 + 15 + 20 + 10 = 130 -> capped at 100
    row = score_one(**everything_fires())
    assert row["risk_score"] == 100
    assert row["risk_level"] == "high"
    assert row["signals"] == (
        "overdue,frequency_drop,spend_drop,complaints,low_satisfaction,low_p_alive,"
        "neglected_key_account"
    )
    lines = row["reasons"].split("\n")
    assert len(lines) == 7
    assert lines[0].startswith("94 天未下单")
    assert "3 complaints" in lines[3]
    assert all(" / " in line for line in lines)  # every reason is bilingual


@pytest.mark.parametrize(
    ("changes", "score", "level"),
    [
        ({"complaints_90d": 2, "avg_satisfaction_90d": 2.0}, 35, "medium"),  # 20 + 15
        ({"recency_days": 46}, 30, "medium"),  # overdue alone: exactly the medium edge
        ({"recency_days": 46, "complaints_90d": 2}, 50, "high"),  # 30 + 20: the high edge
        ({"recency_days": 46, "avg_satisfaction_90d": 2.0}, 45, "medium"),  # 30 + 15
        ({"complaints_90d": 2}, 20, "low"),
    ],
)
def test_levels_at_default_edges(changes: dict, score: int, level: str) -> None:
    row = score_one(**changes)
    assert row["risk_score"] == score
    assert row["risk_level"] == level


@pytest.fixture
def one_below_edges_rules(tmp_path: Path):
    """A user's rules file where overdue weighs 29 instead of 30: scores one below each edge."""
    rules_file = tmp_path / "rules.yaml"
    rules_file.write_text("churn:\n  signals:\n    overdue: {weight: 29}\n", encoding="utf-8")
    return load_rules(rules_file)


def test_levels_one_point_below_edges(one_below_edges_rules) -> None:
    # overdue weighs 29 here: 29 is low; 29 + 20 (complaints) = 49 is medium.
    rules = one_below_edges_rules
    assert score_one(rules, recency_days=46)["risk_level"] == "low"
    below_high = score_one(rules, recency_days=46, complaints_90d=2)
    assert below_high["risk_score"] == 49
    assert below_high["risk_level"] == "medium"


def test_only_scored_stages_are_scored() -> None:
    stages = ["prospect", "churned", "won_back", "new", "at_risk", "loyal", "active"]
    frame = pd.DataFrame(
        [quiet_customer(customer_id=f"C{i}", stage=stage) for i, stage in enumerate(stages)]
    )
    result = score_churn(frame, default_rules(), AS_OF)
    scored = dict(zip(frame["customer_id"], frame["stage"], strict=True))
    assert sorted(scored[c] for c in result["customer_id"]) == sorted(
        ["won_back", "new", "at_risk", "loyal", "active"]
    )


def test_output_columns_and_passthrough_of_model_values() -> None:
    frame = pd.DataFrame(
        [
            quiet_customer(customer_id="B", p_alive=0.42, expected_orders_90d=1.25),
            quiet_customer(customer_id="A"),
        ]
    )
    result = score_churn(frame, default_rules(), AS_OF)
    assert list(result.columns) == CHURN_RISK_COLUMNS
    assert list(result["customer_id"]) == ["A", "B"]
    row_b = result.iloc[1]
    assert row_b["as_of"] == AS_OF
    assert row_b["p_alive"] == pytest.approx(0.42)
    assert row_b["expected_orders_90d"] == pytest.approx(1.25)


@pytest.mark.parametrize("seed", range(3))
def test_signals_and_reasons_equal_the_per_row_sentences(seed: int) -> None:
    """The vectorised reasons against the frozen per-row sentences (tests/unit/_legacy_churn.py)
    on random customers: nulls, halves (x.5 rounds to even), large amounts, all signals."""
    import numpy as np

    from tests.unit._legacy_churn import REASONS

    rng = np.random.default_rng(seed)
    n = 4000

    def numbers(low: float, high: float, decimals: int, null_share: float = 0.1) -> list:
        values = np.round(rng.uniform(low, high, n), decimals)
        return [None if rng.random() < null_share else float(v) for v in values]

    rows = pd.DataFrame(
        {
            "customer_id": [f"C{i:05d}" for i in range(n)],
            "stage": rng.choice(["active", "at_risk", "loyal", "new", "won_back"], n),
            "recency_days": numbers(0, 400, 0),
            "median_gap_days": numbers(1, 120, 1, 0.3),
            "orders_prior_year": numbers(0, 30, 0),
            "orders_90d": numbers(0, 10, 0),
            "revenue_prior_year": numbers(0, 1e7, 2),
            "revenue_90d": numbers(0, 1e6, 2),
            "complaints_90d": numbers(0, 5, 0),
            "avg_satisfaction_90d": numbers(1, 5, 3),
            "purchase_days": numbers(0, 40, 0),
            "last_outbound_days": numbers(0, 200, 0, 0.3),
            "is_key_account": rng.random(n) < 0.3,
            "p_alive": [0.005 * k for k in rng.integers(0, 200, n)],  # k/2 % halves
            "expected_orders_90d": numbers(0, 5, 2),
        }
    )
    rules = default_rules()
    risk = score_churn(rows, rules, AS_OF).set_index("customer_id")
    fired = 0
    for row in rows.to_dict("records"):
        numeric = {k: (np.nan if v is None else v) for k, v in row.items()}
        names = risk.at[row["customer_id"], "signals"]
        expected = "\n".join(REASONS[s](numeric, rules) for s in names.split(",") if s)
        assert risk.at[row["customer_id"], "reasons"] == expected, row
        fired += bool(names)
    assert fired > n // 2  # most customers fire something, so the sentences were compared
    assert {s for names in risk["signals"] for s in names.split(",") if s} == set(REASONS)
    assert str(risk["reasons"].dtype) == str(pd.Series(["x"]).dtype)


@pytest.mark.parametrize(
    "values",
    [
        pd.Series([3, 0, -7, 2**53 + 1], dtype="int64"),
        pd.Series([3, None, 400, -2], dtype="Int64"),
        pd.Series([0.5, float("nan"), 1e16, -0.0], dtype="float64"),
        pd.Series([0.1, None], dtype="Float64"),
        pd.Series([Decimal("300.00"), None, Decimal("12345678.91")], dtype="object"),
        pd.Series(["12.5", None, "x"], dtype="object"),
    ],
    ids=["int64", "Int64", "float64", "Float64", "decimal-objects", "text"],
)
def test_measures_read_as_the_same_floats_whatever_their_dtype(values: pd.Series) -> None:
    """The direct cast for numeric dtypes gives what the general Python-object path gives
    (float64, NaN for null)."""
    import numpy as np

    from crm.churn import _number

    general = pd.to_numeric(values.astype("object"), errors="coerce").astype("float64")
    got = _number(values)
    assert got.dtype == np.float64
    assert np.array_equal(got.to_numpy(), general.to_numpy(), equal_nan=True)
