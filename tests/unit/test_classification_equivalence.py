"""The vectorised classification gives exactly the per-row results (segments, stages, history,
lifecycle table, flow, summary), on random profiles full of ties and rule boundaries.

The oracle is the per-row code as it was before vectorisation, frozen in
tests/unit/_legacy_*.py (itself pinned to domain.md by test_segments / test_lifecycle /
test_summaries). Frames must be equal including dtypes, null conventions and row order.
Profiles come in both shapes the code meets: as DuckDB hands them to pandas (float64 money,
Int64 nullable counts) and as hand-made rows (Decimal objects, None, object columns).
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import numpy as np
import pandas as pd
import pytest

from crm import lifecycle, segments, summaries
from crm.rules import Rules, default_rules, load_rules
from tests.unit import _legacy_lifecycle, _legacy_segments, _legacy_summaries

CUSTOMERS = 5000

# Values at and around every threshold of domain.md §2-§3 with the shipped rules.
RECENCY = [0, 10, 30, 59, 60, 61, 80, 81, 89, 90, 179, 180, 181, 200, 201, 364, 365, 366, 800]
TENURE = [0, 89, 90, 200, 364, 365, 366, 1000, 1500]
GAPS = [np.nan, 7.5, 20.0, 30.0, 40.0, 45.0, 50.0, 90.0, 100.0, 91.25]
LAST_GAPS = [np.nan, 1, 170, 180, 181, 365, 366, 400, 401, 1000]
REVENUE = ["0", "0", "0.01", "0.02", "0.03", "0.05", "0.09", "0.10", "0.20", "0.30", "50",
           "100", "100", "100.00", "1234.56", "1234.57", "999999.99"]  # fmt: skip
# (billed, collected): exact 90 % / 75 % / 60 % / 30 % ratios whose DOUBLE quotient is off,
# zero billed, and amounts missing (then collection_ratio decides).
AMOUNTS = [("300.30", "270.27"), ("100", "90"), ("100", "75"), ("10.10", "6.06"), ("100", "30"),
           ("100", "29.99"), ("0", "0"), ("250", "250"), (None, None), (None, "10")]  # fmt: skip
RATIOS = [np.nan, 0.9, 0.8999999999999999, 0.75, 0.74, 0.6, 0.59, 0.3, 0.29, 1.0, 0.0]
PAID_DAYS = [None, 0, 44, 45, 46, 75, 76, 105, 106, 255, 256, 700]
SHARES = [np.nan, 0.0, 0.25, 1 / 3, 0.49999999999999994, 0.5, 0.75, 1.0]
IDS = ["c{}", "C{}", "x{}", "客户{}", "a-{}", "Z{}0"]


def _random_profile(seed: int, customers: int = CUSTOMERS) -> pd.DataFrame:
    """DuckDB-shaped profile: float64 money and ratios, Int64 nullable counts, str text."""
    rng = np.random.default_rng(seed)

    def pick(values: list, size: int = customers) -> np.ndarray:
        return np.array(values, dtype=object)[rng.integers(0, len(values), size)]

    def nullable(values: np.ndarray, present: np.ndarray) -> pd.arrays.IntegerArray:
        return pd.arrays.IntegerArray(values.astype(np.int64), ~present)

    numbers = rng.permutation(customers * 3)[:customers]
    ids = [IDS[n % len(IDS)].format(n) for n in numbers]
    orders_total = rng.integers(0, 6, customers) * (rng.random(customers) > 0.15)
    buyer = orders_total > 0
    orders_365d = np.where(buyer, rng.integers(0, 7, customers), 0)
    amounts = pick(AMOUNTS)
    billed_orders = np.where(buyer, rng.integers(0, 3, customers), 0)
    has_billed = billed_orders > 0
    last_gap = pick(LAST_GAPS).astype(float)
    return pd.DataFrame(
        {
            "customer_id": pd.Series(ids, dtype="str"),
            "is_key_account_flag": rng.random(customers) < 0.05,
            "region": pd.Series(pick(["华东", "华南", "未知", None]), dtype="str"),
            "industry": pd.Series(pick(["制造业", "零售", "未知"]), dtype="str"),
            "orders_total": orders_total.astype(np.int64),
            "orders_365d": orders_365d.astype(np.int64),
            "revenue_365d": np.where(buyer, pick(REVENUE).astype(float), 0.0),
            "recency_days": nullable(pick(RECENCY).astype(np.int64), buyer),
            "tenure_days": nullable(pick(TENURE).astype(np.int64), buyer),
            "median_gap_days": np.where(buyer, pick(GAPS).astype(float), np.nan),
            "last_gap_days": nullable(np.nan_to_num(last_gap), buyer & ~np.isnan(last_gap)),
            "median_gap_before_last_days": np.where(buyer, pick(GAPS).astype(float), np.nan),
            "billed_orders": billed_orders.astype(np.int64),
            "billed_amount": [float(b) if h and b is not None else np.nan
                              for (b, _), h in zip(amounts, has_billed, strict=True)],
            "collected_amount": [float(c) if h and c is not None else np.nan
                                 for (_, c), h in zip(amounts, has_billed, strict=True)],
            "collection_ratio": np.where(has_billed, pick(RATIOS).astype(float), np.nan),
            "max_paid_days": pd.array(
                [p if h else None for p, h in zip(pick(PAID_DAYS), has_billed, strict=True)],
                dtype="Int64",
            ),
            "outbound_visits_365d": rng.integers(0, 6, customers),
            "outbound_quarters_365d": rng.integers(0, 5, customers),
            "followed_up_orders_365d": rng.integers(0, 2, customers) * (rng.random(customers) < 0.3),
            "inbound_365d": rng.integers(0, 2, customers),
            "latest_nps": pd.array(pick([None, *range(11)]), dtype="Int64"),
            "discount_order_share_365d": np.where(orders_365d > 0, pick(SHARES).astype(float), np.nan),
        }
    )  # fmt: skip


def _hand_made(profile: pd.DataFrame) -> pd.DataFrame:
    """The same customers as hand-made rows: money as Decimal, every null as None, key-account
    flags with None, columns of Python objects."""
    rows = profile.astype(object).where(profile.notna(), None).to_dict("records")
    for row in rows:
        for money in ("revenue_365d", "billed_amount", "collected_amount"):
            if row[money] is not None:
                row[money] = Decimal(str(row[money])).quantize(Decimal("0.01"))
        if not row["is_key_account_flag"]:
            row["is_key_account_flag"] = None if len(row["customer_id"]) % 2 else False
    return pd.DataFrame(rows, dtype=object)


def _custom_rules(tmp_path) -> Rules:
    path = tmp_path / "rules.yaml"
    path.write_text(
        "segments:\n"
        "  value_tier: {high_share: 0.1, medium_share: 0.3}\n"
        "  key_account_revenue_share: 0.35\n"
        "  rfm: {quantiles: [0.1, 0.25, 0.5, 0.9]}\n"
        "  price_sensitivity: {min_discount_share: 0.3333333333333333, min_orders_365d: 3}\n"
        "lifecycle:\n"
        "  churn_threshold: {min_days: 200, gap_multiplier: 4.5, default_days: 365}\n"
        "  new_customer_days: 200\n",
        encoding="utf-8",
    )
    return load_rules(path)


def _profiles() -> list[pd.DataFrame]:
    duckdb_shaped = _random_profile(seed=1)
    return [duckdb_shaped, _hand_made(duckdb_shaped), _random_profile(seed=2).iloc[::-1]]


@pytest.mark.parametrize("shape", [0, 1, 2], ids=["duckdb", "hand_made", "reversed_index"])
def test_segments_and_stages_equal_the_per_row_results(shape: int) -> None:
    profile = _profiles()[shape]
    rules = default_rules()
    pd.testing.assert_frame_equal(
        segments.compute_segments(profile, rules),
        _legacy_segments.compute_segments(profile, rules),
    )
    pd.testing.assert_frame_equal(
        lifecycle.classify_stages(profile, rules),
        _legacy_lifecycle.classify_stages(profile, rules),
    )


@pytest.mark.parametrize("shape", [0, 1, 2], ids=["duckdb", "hand_made", "reversed_index"])
def test_stages_and_summary_need_only_the_profile_columns_their_steps_read(shape: int) -> None:
    """The lifecycle, segments and summary steps read only STAGE_INPUTS / SEGMENT_INPUTS /
    SUMMARY_PROFILE_INPUTS of the profile; the results equal those from the whole profile, and
    leaving out any one stage or segment input changes them (so no list can silently miss
    one)."""
    profile = _profiles()[shape]
    rules = default_rules()
    stages = lifecycle.classify_stages(profile, rules)
    pruned = profile[list(lifecycle.STAGE_INPUTS)]
    pd.testing.assert_frame_equal(lifecycle.classify_stages(pruned, rules), stages)
    for column in lifecycle.STAGE_INPUTS[1:]:
        without = lifecycle.classify_stages(profile.drop(columns=column), rules)
        assert not without.equals(stages), column
    segs = segments.compute_segments(profile, rules)
    pruned = profile[list(segments.SEGMENT_INPUTS)]
    pd.testing.assert_frame_equal(segments.compute_segments(pruned, rules), segs)
    for column in segments.SEGMENT_INPUTS:
        try:  # a column every buyer needs (recency_days…) is refused when absent
            without = segments.compute_segments(profile.drop(columns=column), rules)
        except ValueError:
            continue
        assert not without.equals(segs), column
    table = lifecycle.lifecycle_table(None, stages, date(2025, 6, 30), rules)
    pd.testing.assert_frame_equal(
        summaries.segment_summary(
            segs, profile[list(summaries.SUMMARY_PROFILE_INPUTS)], table, date(2025, 6, 30)
        ),
        summaries.segment_summary(segs, profile, table, date(2025, 6, 30)),
    )


def test_custom_rules_give_the_per_row_results(tmp_path) -> None:
    rules = _custom_rules(tmp_path)
    for profile in _profiles()[:2]:
        pd.testing.assert_frame_equal(
            segments.compute_segments(profile, rules),
            _legacy_segments.compute_segments(profile, rules),
        )
        pd.testing.assert_frame_equal(
            lifecycle.classify_stages(profile, rules),
            _legacy_lifecycle.classify_stages(profile, rules),
        )


@pytest.mark.parametrize("customers", [0, 1, 2])
def test_tiny_profiles_give_the_per_row_results(customers: int) -> None:
    profile = _random_profile(seed=3, customers=customers)
    rules = default_rules()
    pd.testing.assert_frame_equal(
        segments.compute_segments(profile, rules),
        _legacy_segments.compute_segments(profile, rules),
    )
    pd.testing.assert_frame_equal(
        lifecycle.classify_stages(profile, rules),
        _legacy_lifecycle.classify_stages(profile, rules),
    )


def test_only_prospects_give_the_per_row_results() -> None:
    profile = _random_profile(seed=4, customers=50)
    profile["orders_total"] = 0
    rules = default_rules()
    pd.testing.assert_frame_equal(
        segments.compute_segments(profile, rules),
        _legacy_segments.compute_segments(profile, rules),
    )


# --- history, lifecycle table, flow, summary over a sequence of runs ---------------------------

STAGE_NAMES = ["prospect", "churned", "won_back", "new", "at_risk", "loyal", "active"]


def _as_read_from_duckdb(history: pd.DataFrame) -> pd.DataFrame:
    """DATE columns come back as datetime64, text as str."""
    read = history.copy()
    for column in ("valid_from", "valid_to"):
        read[column] = pd.to_datetime(read[column]).astype("datetime64[us]")
    return read


def _runs(seed: int) -> list[tuple[date, pd.DataFrame]]:
    """Monthly runs over a changing population; the third date is run twice (a corrected
    rerun), customers appear and disappear, stages change for some."""
    rng = np.random.default_rng(seed)
    population = np.array([f"k{i}" for i in range(400)], dtype=object)
    days = [date(2025, 1, 31), date(2025, 2, 28), date(2025, 3, 31), date(2025, 3, 31),
            date(2025, 4, 30)]  # fmt: skip
    stages = rng.choice(STAGE_NAMES, len(population))
    runs = []
    for day in days:
        changing = rng.random(len(population)) < 0.2
        stages = np.where(changing, rng.choice(STAGE_NAMES, len(population)), stages)
        present = rng.random(len(population)) < 0.85
        order = rng.permutation(int(present.sum()))
        frame = pd.DataFrame(
            {"customer_id": population[present][order], "stage": stages[present][order]}
        ).astype("str")
        runs.append((day, frame))
    return runs


@pytest.mark.parametrize("read_back", [False, True], ids=["in_memory", "from_duckdb"])
def test_history_lifecycle_and_flow_equal_the_per_row_results(read_back: bool) -> None:
    rules = default_rules()
    new_history = old_history = None
    for as_of, stages in _runs(seed=5):
        if read_back and new_history is not None:
            new_history = _as_read_from_duckdb(new_history)
            old_history = _as_read_from_duckdb(old_history)
        advanced = lifecycle.advance_history(new_history, stages, as_of)
        expected = _legacy_lifecycle.advance_history(old_history, stages, as_of)
        pd.testing.assert_frame_equal(advanced, expected)
        pd.testing.assert_frame_equal(  # the caller's advanced history is not advanced again
            lifecycle.lifecycle_table(advanced, stages, as_of, rules, advanced=True),
            _legacy_lifecycle.lifecycle_table(advanced, stages, as_of, rules),
        )
        for history_given in (new_history, advanced):  # before or after this as_of was added
            pd.testing.assert_frame_equal(
                lifecycle.lifecycle_table(history_given, stages, as_of, rules),
                _legacy_lifecycle.lifecycle_table(history_given, stages, as_of, rules),
            )
            before = lifecycle.stages_before(history_given, as_of)
            pd.testing.assert_frame_equal(
                before, _legacy_lifecycle.stages_before(history_given, as_of)
            )
            pd.testing.assert_frame_equal(
                lifecycle.lifecycle_flow(before, stages, as_of),
                _legacy_lifecycle.lifecycle_flow(before, stages, as_of),
            )
        new_history, old_history = advanced, expected


def test_first_run_and_empty_inputs_equal_the_per_row_results() -> None:
    as_of = date(2025, 1, 31)
    empty = pd.DataFrame([], columns=["customer_id", "stage"])
    for stages in (empty, _runs(seed=6)[0][1]):
        pd.testing.assert_frame_equal(
            lifecycle.advance_history(None, stages, as_of),
            _legacy_lifecycle.advance_history(None, stages, as_of),
        )
        pd.testing.assert_frame_equal(
            lifecycle.lifecycle_table(None, stages, as_of),
            _legacy_lifecycle.lifecycle_table(None, stages, as_of),
        )
        pd.testing.assert_frame_equal(
            lifecycle.lifecycle_flow(None, stages, as_of),
            _legacy_lifecycle.lifecycle_flow(None, stages, as_of),
        )
    pd.testing.assert_frame_equal(
        lifecycle.stages_before(None, as_of), _legacy_lifecycle.stages_before(None, as_of)
    )


def test_an_out_of_order_as_of_is_refused_with_the_same_message() -> None:
    runs = _runs(seed=7)
    history = lifecycle.advance_history(None, runs[1][1], runs[1][0])
    earlier = runs[0][0]
    with pytest.raises(ValueError) as new_error:
        lifecycle.advance_history(history, runs[0][1], earlier)
    with pytest.raises(ValueError) as old_error:
        _legacy_lifecycle.advance_history(history, runs[0][1], earlier)
    assert str(new_error.value) == str(old_error.value)


@pytest.mark.parametrize("shape", [0, 1], ids=["duckdb", "hand_made"])
def test_segment_summary_equals_the_per_row_result(shape: int) -> None:
    profile = _profiles()[shape]
    rules = default_rules()
    segs = _legacy_segments.compute_segments(profile, rules)
    stages = _legacy_lifecycle.classify_stages(profile, rules)
    as_of = date(2025, 6, 30)
    table = _legacy_lifecycle.lifecycle_table(None, stages, as_of, rules)
    for lifecycle_frame in (table, table.iloc[::-1].head(len(table) // 2)):
        pd.testing.assert_frame_equal(
            summaries.segment_summary(segs, profile, lifecycle_frame, as_of),
            _legacy_summaries.segment_summary(segs, profile, lifecycle_frame, as_of),
        )


# --- exact integer arithmetic where floats or int64 would go wrong -----------------------------


def test_float_money_to_cents_rounds_the_decimal_text_half_even() -> None:
    # Decimal text × 100, half to even: 1.005 → 100.5 → 100; 1.015 → 101.5 → 102;
    # 0.125 → 12.5 → 12; 2.675 → 267.5 → 268; 1234.56 → 123456; 0.1 + 0.2 = 0.30000000000000004
    # → 30.000000000000004 → 30; NaN → 0; 1e15 → 1e17 cents (beyond the fast float range).
    values = pd.Series([1.005, 1.015, 0.125, 2.675, 1234.56, 0.1 + 0.2, np.nan, 1e15, -0.125])
    assert segments.cents_values(values).tolist() == [
        100, 102, 12, 268, 123456, 30, 0, 10**17, -12,
    ]  # fmt: skip


def test_key_accounts_with_revenue_beyond_int64_cents_stay_exact() -> None:
    # Revenues 6e16, 3e16, 1e16 yuan (6e18 … cents: their sum 1e19 overflows int64).
    # Total 1e17 yuan, half 5e16: a (0 before) key; b (6e16 before) and c not key.
    profile = pd.DataFrame(
        {
            "customer_id": ["a", "b", "c"],
            "orders_total": [1, 1, 1],
            "orders_365d": [1, 1, 1],
            "revenue_365d": [60_000_000_000_000_000, 30_000_000_000_000_000, 10**16],
            "recency_days": [10, 20, 30],
            "tenure_days": [400, 400, 400],
        }
    )
    result = segments.compute_segments(profile, default_rules())
    assert result["is_key_account"].tolist() == [True, False, False]
    # N = 3: high up to ceil(0.6) = 1, medium up to ceil(1.5) = 2.
    assert result["value_tier"].tolist() == ["high", "medium", "low"]
    # M = 6e18, 3e18, 1e18 cents, mean 3.33e18: only a is above it (H); R mean 20: a high.
    assert result["rfm_class"].tolist()[0] == "重要发展客户"  # R high, F low (all equal), M high
