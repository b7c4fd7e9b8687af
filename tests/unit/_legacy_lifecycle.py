"""FROZEN per-row implementation (before vectorisation), kept only as the oracle of
tests/unit/test_classification_equivalence.py and benchmarks/bench_classification.py.

Lifecycle stages (domain.md §2): the stage of each customer, its history and the flows.

Grain: one customer per row for stages and `marts.customer_lifecycle`; one customer × stage
period for `marts.customer_stage_history`; one as_of × from_stage × to_stage for
`marts.lifecycle_flow`. Consumers: the lifecycle asset (which writes those marts), churn scoring
(which scores only some stages) and the segment summary.

The history records only *changes*, so it is advanced run by run, oldest as_of first:

    history = advance_history(history, stages, as_of)
    lifecycle = lifecycle_table(history, stages, as_of)
    flow = lifecycle_flow(stages_before(history, as_of), stages, as_of)

`lifecycle_table` and `stages_before` give the same answer whether they are handed the history
before or after this as_of was added, so the caller never has to keep two copies.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime
from typing import Any

import pandas as pd

from crm.rules import LifecycleRules, Rules, default_rules

HISTORY_COLUMNS = ["customer_id", "stage", "previous_stage", "valid_from", "valid_to"]
STAGE_COLUMNS = ["customer_id", "stage"]
LIFECYCLE_COLUMNS = ["customer_id", "stage", "stage_zh", "stage_since", "previous_stage", "as_of"]
FLOW_COLUMNS = ["as_of", "from_stage", "to_stage", "customers"]


def _missing(value: Any) -> bool:
    """True for None, NaN, NaT and pd.NA, whatever container the profile came from."""
    return value is None or bool(pd.isna(value))


def _optional_float(value: Any) -> float | None:
    return None if _missing(value) else float(value)


def _nulls_as_none(column: pd.Series) -> pd.Series:
    """Date column as objects with None for nulls (DuckDB reads datetime.date as DATE)."""
    values = column.astype(object)
    return values.where(values.notna(), None)


def _as_text(column: pd.Series) -> pd.Series:
    """Nullable text as pandas' string dtype, so an all-null column is still VARCHAR in DuckDB."""
    return column.astype("str")


# --- §2 stage rules --------------------------------------------------------------------------


def _is_won_back(row: Mapping[str, Any], rules: LifecycleRules) -> bool:
    """Back recently after a silence longer than the churn threshold of the rhythm *before* it.

    The threshold comes from median_gap_before_last_days (null with fewer than 3 earlier purchase
    dates, then the default), because the last gap itself must not widen its own yardstick.
    """
    last_gap = _optional_float(row.get("last_gap_days"))
    if last_gap is None or float(row["recency_days"]) >= rules.won_back_recent_days:
        return False
    earlier_rhythm = _optional_float(row.get("median_gap_before_last_days"))
    return last_gap > rules.churn_threshold.days(earlier_rhythm)


def stage_of(row: Mapping[str, Any], rules: LifecycleRules) -> str:
    """The first stage of domain.md §2 whose rule matches one profile row (strict > on thresholds)."""
    orders_total = row.get("orders_total")
    if _missing(orders_total) or int(orders_total) == 0:
        return "prospect"
    recency = float(row["recency_days"])
    tenure = float(row["tenure_days"])
    rhythm = _optional_float(row.get("median_gap_days"))
    if recency > rules.churn_threshold.days(rhythm):
        return "churned"
    if _is_won_back(row, rules):
        return "won_back"
    if tenure < rules.new_customer_days:
        return "new"
    if recency > rules.at_risk_threshold.days(rhythm):
        return "at_risk"
    orders_365d = 0 if _missing(row.get("orders_365d")) else int(row["orders_365d"])
    if tenure >= rules.loyal_min_tenure_days and orders_365d >= rules.loyal_min_orders_365d:
        return "loyal"
    return "active"


def classify_stages(profile: pd.DataFrame, rules: Rules) -> pd.DataFrame:
    """One row per profile customer: customer_id and its §2 stage, in profile order."""
    records = profile.to_dict("records")
    return pd.DataFrame(
        {
            "customer_id": [str(r["customer_id"]) for r in records],
            "stage": [stage_of(r, rules.lifecycle) for r in records],
        },
        columns=STAGE_COLUMNS,
    )


# --- stage history ---------------------------------------------------------------------------


def _to_date(value: Any) -> date | None:
    """Dates come back from DuckDB as Timestamps; the history compares plain dates."""
    if _missing(value):
        return None
    if isinstance(value, datetime | pd.Timestamp):
        return value.date()
    if isinstance(value, date):
        return value
    return pd.Timestamp(value).date()


def _history_records(history: pd.DataFrame | None) -> list[dict[str, Any]]:
    if history is None or history.empty:
        return []
    return [
        {
            "customer_id": str(r["customer_id"]),
            "stage": str(r["stage"]),
            "previous_stage": None if _missing(r["previous_stage"]) else str(r["previous_stage"]),
            "valid_from": _to_date(r["valid_from"]),
            "valid_to": _to_date(r["valid_to"]),
        }
        for r in history[HISTORY_COLUMNS].to_dict("records")
    ]


def _rewound(periods: list[dict[str, Any]], as_of: date) -> list[dict[str, Any]]:
    """The history as it was before a run at as_of: its openings dropped, its closings undone.

    Makes a rerun of the newest as_of replace that run's decisions instead of stacking on them.
    """
    kept = [dict(p) for p in periods if p["valid_from"] != as_of]
    for period in kept:
        if period["valid_to"] == as_of:
            period["valid_to"] = None
    return kept


def _check_order(periods: list[dict[str, Any]], as_of: date) -> None:
    newest = max((p["valid_from"] for p in periods), default=None)
    if newest is not None and as_of < newest:
        raise ValueError(
            f"stage history already has a period starting {newest.isoformat()}, after as_of "
            f"{as_of.isoformat()}: backfills must run oldest as_of first (history records only "
            "changes, so an earlier date cannot be inserted afterwards)"
        )


def _history_frame(periods: list[dict[str, Any]]) -> pd.DataFrame:
    ordered = sorted(periods, key=lambda p: (p["customer_id"], p["valid_from"]))
    frame = pd.DataFrame(ordered, columns=HISTORY_COLUMNS)
    for column in ("customer_id", "stage", "previous_stage"):
        frame[column] = _as_text(frame[column])
    for column in ("valid_from", "valid_to"):
        frame[column] = _nulls_as_none(frame[column])
    return frame


def advance_history(
    history: pd.DataFrame | None, stages: pd.DataFrame, as_of: date
) -> pd.DataFrame:
    """The full stage history after the run at as_of (`marts.customer_stage_history`).

    A changed stage closes the open period (valid_to = as_of) and opens one from as_of with
    previous_stage = the old stage; a customer seen first gets a period from as_of with a null
    previous_stage; an unchanged stage, or a customer absent from `stages`, leaves the history
    as it is. Rerunning the newest as_of replaces that run's changes (same stages → same history,
    so reruns are idempotent). An as_of before the newest valid_from raises ValueError: the
    history keeps no run log, so an earlier date could only be inserted by rewriting later
    periods — backfills run oldest first. Periods are sorted by customer_id, valid_from.
    """
    as_of = _to_date(as_of)
    periods = _history_records(history)
    _check_order(periods, as_of)
    periods = _rewound(periods, as_of)
    open_period = {p["customer_id"]: p for p in periods if p["valid_to"] is None}
    for customer_id, stage in zip(stages["customer_id"].astype(str), stages["stage"], strict=True):
        current = open_period.get(customer_id)
        if current is not None and current["stage"] == stage:
            continue
        if current is not None:
            current["valid_to"] = as_of
        periods.append(
            {
                "customer_id": customer_id,
                "stage": str(stage),
                "previous_stage": None if current is None else current["stage"],
                "valid_from": as_of,
                "valid_to": None,
            }
        )
    return _history_frame(periods)


def lifecycle_table(
    history: pd.DataFrame | None, stages: pd.DataFrame, as_of: date, rules: Rules | None = None
) -> pd.DataFrame:
    """`marts.customer_lifecycle`: one row per customer of `stages` with its current period.

    stage_since = valid_from of the open period, previous_stage = the stage before it (null for a
    customer's first period). `history` may be the history before or after this as_of was added:
    it is advanced here, which changes nothing when it already was. stage_zh comes from the
    rules' labels (shipped defaults when `rules` is None).
    """
    as_of = _to_date(as_of)
    labels = (rules or default_rules()).lifecycle.labels
    advanced = advance_history(history, stages, as_of)
    current = advanced[advanced["valid_to"].isna()].set_index("customer_id")
    customer_ids = stages["customer_id"].astype(str).tolist()
    rows = [
        {
            "customer_id": customer_id,
            "stage": current.at[customer_id, "stage"],
            "stage_zh": labels[current.at[customer_id, "stage"]].zh,
            "stage_since": current.at[customer_id, "valid_from"],
            "previous_stage": current.at[customer_id, "previous_stage"],
            "as_of": as_of,
        }
        for customer_id in customer_ids
    ]
    frame = pd.DataFrame(rows, columns=LIFECYCLE_COLUMNS)
    for column in ("customer_id", "stage", "stage_zh", "previous_stage"):
        frame[column] = _as_text(frame[column])
    return frame


# --- flows -----------------------------------------------------------------------------------


def stages_before(history: pd.DataFrame | None, as_of: date) -> pd.DataFrame:
    """Each customer's stage at the run before as_of: the period that began before as_of and
    was still open on the eve of as_of. Customers whose first period starts at as_of are absent.

    Works on the history before or after as_of was added (a period closed at as_of still counts).
    """
    as_of = _to_date(as_of)
    rows = [
        {"customer_id": p["customer_id"], "stage": p["stage"]}
        for p in _history_records(history)
        if p["valid_from"] < as_of and (p["valid_to"] is None or p["valid_to"] >= as_of)
    ]
    return pd.DataFrame(rows, columns=STAGE_COLUMNS)


def lifecycle_flow(
    previous_stages: pd.DataFrame | None, stages: pd.DataFrame, as_of: date
) -> pd.DataFrame:
    """`marts.lifecycle_flow`: how many current customers moved from each stage to each stage.

    `previous_stages` (customer_id, stage) is the stage at the previous run — usually
    `stages_before(history, as_of)`; None on a first run. Unchanged stages count too (from =
    to); a customer without a previous stage has from_stage null. Customers no longer in
    `stages` are not counted. Sorted by from_stage (null first), to_stage.
    """
    as_of = _to_date(as_of)
    before: dict[str, str] = {}
    if previous_stages is not None and not previous_stages.empty:
        before = dict(
            zip(previous_stages["customer_id"].astype(str), previous_stages["stage"], strict=True)
        )
    counts: dict[tuple[str | None, str], int] = {}
    for customer_id, stage in zip(stages["customer_id"].astype(str), stages["stage"], strict=True):
        key = (before.get(customer_id), str(stage))
        counts[key] = counts.get(key, 0) + 1
    rows = [
        {"as_of": as_of, "from_stage": from_stage, "to_stage": to_stage, "customers": n}
        for (from_stage, to_stage), n in sorted(
            counts.items(), key=lambda item: (item[0][0] is not None, item[0][0] or "", item[0][1])
        )
    ]
    frame = pd.DataFrame(rows, columns=FLOW_COLUMNS)
    frame["from_stage"] = _as_text(frame["from_stage"])
    frame["to_stage"] = _as_text(frame["to_stage"])
    frame["customers"] = frame["customers"].astype("int64")
    return frame
