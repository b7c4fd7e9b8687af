"""Lifecycle stages, stage history, lifecycle table and flows (domain.md §2, contract §4).

Expected stages are derived by hand from the default thresholds:
churn = max(180, 4·median_gap) or 365; at_risk = max(60, 2·median_gap) or 180; strict ">".
"""

from __future__ import annotations

from datetime import date

import duckdb
import pandas as pd
import pytest

from crm.lifecycle import (
    advance_history,
    classify_stages,
    lifecycle_flow,
    lifecycle_table,
    stages_before,
)
from crm.rules import default_rules, load_rules
from tests.unit.profile_factory import profile, profile_frame, prospect


def _stages(frame: pd.DataFrame) -> dict[str, str]:
    result = classify_stages(frame, default_rules())
    assert list(result.columns) == ["customer_id", "stage"]
    return dict(zip(result["customer_id"], result["stage"], strict=True))


def test_prospect_has_no_completed_order() -> None:
    assert _stages(profile_frame(prospect("p1"))) == {"p1": "prospect"}


@pytest.mark.parametrize(
    ("median_gap", "recency", "expected"),
    [
        (None, 365, "at_risk"),  # default churn 365: 365 is not > 365; 365 > 180 at risk
        (None, 366, "churned"),
        (50.0, 200, "at_risk"),  # churn max(180, 200) = 200; at_risk max(60, 100) = 100
        (50.0, 201, "churned"),
        (30.0, 180, "at_risk"),  # churn max(180, 120) = 180 (the floor); at_risk 60
        (30.0, 181, "churned"),
    ],
)
def test_churned_when_recency_exceeds_the_churn_threshold(
    median_gap: float | None, recency: int, expected: str
) -> None:
    frame = profile(c1={"median_gap_days": median_gap, "recency_days": recency, "tenure_days": 900})
    assert _stages(frame) == {"c1": expected}


@pytest.mark.parametrize(
    ("median_gap", "recency", "expected"),
    [
        (None, 180, "active"),  # default at_risk 180, not exceeded
        (None, 181, "at_risk"),
        (40.0, 80, "active"),  # at_risk max(60, 80) = 80
        (40.0, 81, "at_risk"),
        (20.0, 60, "active"),  # at_risk max(60, 40) = 60 (the floor)
        (20.0, 61, "at_risk"),
    ],
)
def test_at_risk_when_recency_exceeds_the_at_risk_threshold(
    median_gap: float | None, recency: int, expected: str
) -> None:
    # tenure 300 < 365: never loyal, so "not at risk" shows as active.
    frame = profile(c1={"median_gap_days": median_gap, "recency_days": recency, "tenure_days": 300})
    assert _stages(frame) == {"c1": expected}


def test_a_nullable_float_median_gap_with_pd_na_uses_the_default_thresholds() -> None:
    frame = profile(
        c1={"recency_days": 366, "tenure_days": 900}, c2={"recency_days": 181, "tenure_days": 900}
    )
    frame["median_gap_days"] = pd.array([pd.NA, pd.NA], dtype="Float64")
    assert _stages(frame) == {"c1": "churned", "c2": "at_risk"}


@pytest.mark.parametrize(("tenure", "expected"), [(89, "new"), (90, "active")])
def test_new_below_90_days_of_tenure(tenure: int, expected: str) -> None:
    frame = profile(c1={"tenure_days": tenure, "recency_days": 10, "last_gap_days": None})
    assert _stages(frame) == {"c1": expected}


def test_new_comes_before_at_risk() -> None:
    # purchases 85, 80 and 70 days ago: median gap 7.5, at_risk threshold max(60, 15) = 60 and
    # recency 70 > 60, but rule 4 (tenure 85 < 90) matches first.
    frame = profile(
        c1={"tenure_days": 85, "recency_days": 70, "median_gap_days": 7.5, "last_gap_days": 10}
    )
    assert _stages(frame) == {"c1": "new"}


@pytest.mark.parametrize(
    ("recency", "last_gap", "median_before", "expected"),
    [
        (30, 366, None, "won_back"),  # default threshold 365 (fewer than 3 earlier dates)
        (30, 365, None, "active"),  # not strictly greater
        (30, 401, 100.0, "won_back"),  # earlier rhythm: max(180, 400) = 400
        (30, 400, 100.0, "active"),
        (30, 181, 20.0, "won_back"),  # max(180, 80) = 180, the floor
        (89, 1000, None, "won_back"),
        (90, 1000, None, "active"),  # recency must be < 90
        (30, None, None, "active"),  # a single purchase date has no last gap
    ],
)
def test_won_back_after_a_gap_longer_than_the_earlier_churn_threshold(
    recency: int, last_gap: int | None, median_before: float | None, expected: str
) -> None:
    frame = profile(
        c1={
            "recency_days": recency,
            "tenure_days": 1500,
            "orders_365d": 1,
            "last_gap_days": last_gap,
            "median_gap_before_last_days": median_before,
        }
    )
    assert _stages(frame) == {"c1": expected}


@pytest.mark.parametrize(
    ("tenure", "orders_365d", "expected"),
    [(365, 4, "loyal"), (364, 4, "active"), (365, 3, "active"), (1000, 9, "loyal")],
)
def test_loyal_after_a_year_with_four_orders(tenure: int, orders_365d: int, expected: str) -> None:
    frame = profile(c1={"tenure_days": tenure, "orders_365d": orders_365d, "recency_days": 20})
    assert _stages(frame) == {"c1": expected}


def test_a_custom_rules_file_changes_the_new_customer_window(tmp_path) -> None:
    rules_file = tmp_path / "rules.yaml"
    rules_file.write_text("lifecycle:\n  new_customer_days: 30\n", encoding="utf-8")
    custom = load_rules(rules_file)
    frame = profile(
        c29={"tenure_days": 29, "recency_days": 5, "last_gap_days": None},
        c30={"tenure_days": 30, "recency_days": 5, "last_gap_days": None},
    )
    by_custom = classify_stages(frame, custom)
    assert by_custom["stage"].tolist() == ["new", "active"]
    assert _stages(frame) == {"c29": "new", "c30": "new"}  # default window is 90 days


# --- stage history ----------------------------------------------------------------------------

JAN, FEB, MAR = date(2025, 1, 31), date(2025, 2, 28), date(2025, 3, 31)


def _stage_frame(**stages: str) -> pd.DataFrame:
    return pd.DataFrame({"customer_id": list(stages), "stage": list(stages.values())})


def _nulls_as_none(rows: pd.DataFrame) -> list[tuple]:
    """Rows as tuples with every kind of null (NaN in text columns, None in dates) as None."""
    return [
        tuple(None if pd.isna(value) else value for value in row)
        for row in rows.itertuples(index=False)
    ]


def _periods(history: pd.DataFrame) -> list[tuple]:
    return _nulls_as_none(
        history[["customer_id", "stage", "previous_stage", "valid_from", "valid_to"]]
    )


def _three_runs() -> pd.DataFrame:
    history = advance_history(None, _stage_frame(c1="new", c2="prospect"), JAN)
    history = advance_history(history, _stage_frame(c1="new", c2="new", c3="prospect"), FEB)
    return advance_history(history, _stage_frame(c1="active", c2="new"), MAR)


def test_history_over_three_runs_records_only_changes() -> None:
    # Jan: c1 and c2 enter. Feb: c1 stays, c2 changes, c3 enters. Mar: c1 changes, c2 stays,
    # c3 is absent and keeps its open period.
    assert _periods(_three_runs()) == [
        ("c1", "new", None, JAN, MAR),
        ("c1", "active", "new", MAR, None),
        ("c2", "prospect", None, JAN, FEB),
        ("c2", "new", "prospect", FEB, None),
        ("c3", "prospect", None, FEB, None),
    ]


def test_history_has_the_contract_columns() -> None:
    history = _three_runs()
    assert list(history.columns) == [
        "customer_id",
        "stage",
        "previous_stage",
        "valid_from",
        "valid_to",
    ]


def test_rerunning_the_newest_as_of_adds_nothing() -> None:
    history = _three_runs()
    again = advance_history(history, _stage_frame(c1="active", c2="new"), MAR)
    assert _periods(again) == _periods(history)


def test_rerunning_the_newest_as_of_with_corrected_stages_replaces_that_run() -> None:
    history = _three_runs()
    corrected = advance_history(history, _stage_frame(c1="at_risk", c2="new"), MAR)
    assert _periods(corrected)[:2] == [
        ("c1", "new", None, JAN, MAR),
        ("c1", "at_risk", "new", MAR, None),
    ]
    unchanged = advance_history(history, _stage_frame(c1="new", c2="new"), MAR)
    assert _periods(unchanged)[0] == ("c1", "new", None, JAN, None)
    assert len(unchanged) == 4


def test_an_as_of_before_the_newest_period_is_refused() -> None:
    with pytest.raises(ValueError, match="oldest as_of first"):
        advance_history(_three_runs(), _stage_frame(c1="loyal"), date(2025, 2, 15))


def test_history_read_back_from_duckdb_with_timestamps_is_understood() -> None:
    history = _three_runs()
    for column in ("valid_from", "valid_to"):
        history[column] = pd.to_datetime(history[column])
    again = advance_history(history, _stage_frame(c1="active", c2="new"), MAR)
    assert _periods(again) == _periods(_three_runs())


def test_lifecycle_table_shows_the_current_period() -> None:
    stages = _stage_frame(c1="active", c2="new")
    table = lifecycle_table(_three_runs(), stages, MAR)
    assert list(table.columns[:3]) == ["customer_id", "stage", "stage_zh"]
    rows = _nulls_as_none(
        table[["customer_id", "stage", "stage_zh", "stage_since", "previous_stage", "as_of"]]
    )
    assert rows == [
        ("c1", "active", "活跃客户", MAR, "new", MAR),
        ("c2", "new", "新客户", FEB, "prospect", MAR),
    ]


def test_lifecycle_table_accepts_the_history_before_this_run() -> None:
    before_march = advance_history(
        advance_history(None, _stage_frame(c1="new", c2="prospect"), JAN),
        _stage_frame(c1="new", c2="new", c3="prospect"),
        FEB,
    )
    stages = _stage_frame(c1="active", c2="new")
    expected = lifecycle_table(_three_runs(), stages, MAR)
    pd.testing.assert_frame_equal(lifecycle_table(before_march, stages, MAR), expected)


def test_first_period_has_no_previous_stage() -> None:
    table = lifecycle_table(None, _stage_frame(c9="prospect"), JAN)
    assert table.loc[0, "stage_since"] == JAN
    assert pd.isna(table.loc[0, "previous_stage"])


# --- flows ------------------------------------------------------------------------------------


def test_first_run_flows_come_from_no_stage() -> None:
    flow = lifecycle_flow(None, _stage_frame(a="new", b="new", c="prospect"), JAN)
    assert list(flow.columns) == ["as_of", "from_stage", "to_stage", "customers"]
    assert _nulls_as_none(flow) == [
        (JAN, None, "new", 2),
        (JAN, None, "prospect", 1),
    ]


def test_flows_count_changes_unchanged_stages_and_newcomers() -> None:
    jan = advance_history(None, _stage_frame(c1="new", c2="prospect"), JAN)
    feb_stages = _stage_frame(c1="new", c2="new", c3="prospect")
    feb = advance_history(jan, feb_stages, FEB)
    expected = [
        (FEB, None, "prospect", 1),  # c3 is new to the history
        (FEB, "new", "new", 1),  # c1 stayed
        (FEB, "prospect", "new", 1),  # c2 changed
    ]
    for history in (jan, feb):  # the history before or after February gives the same flow
        flow = lifecycle_flow(stages_before(history, FEB), feb_stages, FEB)
        assert _nulls_as_none(flow) == expected


def test_a_first_history_keeps_previous_stage_as_text_for_duckdb() -> None:
    history = advance_history(None, _stage_frame(c1="new"), JAN)
    types = {name: kind for name, kind, *_ in _describe(history)}
    assert (types["previous_stage"], types["valid_from"]) == ("VARCHAR", "DATE")


def _describe(frame: pd.DataFrame) -> list[tuple]:
    """DuckDB's column types for the frame, as a writer asset would create them."""
    con = duckdb.connect()
    con.register("frame", frame)
    return con.sql("describe select * from frame").fetchall()
