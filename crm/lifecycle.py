"""Lifecycle stages (domain.md §2): the stage of each customer, its history and the flows.

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

Speed: stages are decided with numpy masks over the whole profile and the history is advanced
with column operations (Arrow for text lookups and the stable sort), because at a million
customers the per-row version cost ≈ 200 µs a customer on every run. Dates are handled as
numpy datetime64[D] inside and handed out as `datetime.date` objects, as before.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from crm.rules import Rules, Threshold, default_rules
from crm.segments import count_values, float_values, missing_mask, text_array, text_series

HISTORY_COLUMNS = ["customer_id", "stage", "previous_stage", "valid_from", "valid_to"]
STAGE_COLUMNS = ["customer_id", "stage"]
LIFECYCLE_COLUMNS = ["customer_id", "stage", "stage_zh", "stage_since", "previous_stage", "as_of"]
FLOW_COLUMNS = ["as_of", "from_stage", "to_stage", "customers"]

_NO_DAY = np.datetime64("NaT", "D")


def _missing(value: Any) -> bool:
    """True for None, NaN, NaT and pd.NA, whatever container the profile came from."""
    return value is None or bool(pd.isna(value))


def _nulls_as_none(column: pd.Series) -> pd.Series:
    """Date column as objects with None for nulls (DuckDB reads datetime.date as DATE)."""
    values = column.astype(object)
    return values.where(values.notna(), None)


def _as_text(column: pd.Series) -> pd.Series:
    """Nullable text as pandas' string dtype, so an all-null column is still VARCHAR in DuckDB."""
    return column.astype("str")


def _profile_column(frame: pd.DataFrame, name: str) -> pd.Series:
    """A profile column with a 0..n-1 index; an absent column reads as all null."""
    if name in frame.columns:
        return frame[name].reset_index(drop=True)
    return pd.Series([None] * len(frame), dtype=object)


# --- §2 stage rules --------------------------------------------------------------------------

STAGE_ORDER = ("prospect", "churned", "won_back", "new", "at_risk", "loyal", "active")


def threshold_days(threshold: Threshold, median_gap_days: np.ndarray) -> np.ndarray:
    """`Threshold.days` per customer: max(min_days, multiplier × rhythm), default without one."""
    rhythm = np.maximum(float(threshold.min_days), threshold.gap_multiplier * median_gap_days)
    return np.where(np.isnan(median_gap_days), float(threshold.default_days), rhythm)


# The profile columns `classify_stages` reads (an absent column reads as all null, so the
# lifecycle step, which reads only these from the 53-column profile, must list every one).
STAGE_INPUTS = (
    "customer_id",
    "orders_total",
    "orders_365d",
    "recency_days",
    "tenure_days",
    "median_gap_days",
    "last_gap_days",
    "median_gap_before_last_days",
)


def stage_codes(profile: pd.DataFrame, rules: Rules) -> np.ndarray:
    """The first stage of domain.md §2 whose rule matches, per profile row, as an index into
    STAGE_ORDER (strict > on thresholds).

    won_back: back recently after a silence longer than the churn threshold of the rhythm
    *before* it. That threshold comes from median_gap_before_last_days (null with fewer than 3
    earlier purchase dates, then the default), because the last gap itself must not widen its
    own yardstick. Comparisons with a null recency or tenure are false, as for a float NaN.
    """
    life = rules.lifecycle

    def floats(name: str) -> np.ndarray:
        return float_values(_profile_column(profile, name))

    orders_total = _profile_column(profile, "orders_total")
    prospect = missing_mask(orders_total) | (count_values(orders_total) == 0)
    recency, tenure, rhythm = (
        floats("recency_days"),
        floats("tenure_days"),
        floats("median_gap_days"),
    )
    last_gap = floats("last_gap_days")
    with np.errstate(invalid="ignore"):
        churned = recency > threshold_days(life.churn_threshold, rhythm)
        won_back = (
            ~np.isnan(last_gap)
            & ~(recency >= life.won_back_recent_days)
            & (
                last_gap
                > threshold_days(life.churn_threshold, floats("median_gap_before_last_days"))
            )
        )
        new = tenure < life.new_customer_days
        at_risk = recency > threshold_days(life.at_risk_threshold, rhythm)
        orders_365d = count_values(_profile_column(profile, "orders_365d"))
        loyal = (tenure >= life.loyal_min_tenure_days) & (orders_365d >= life.loyal_min_orders_365d)
    rules_in_order = [prospect, churned, won_back, new, at_risk, loyal]
    return np.select(rules_in_order, list(range(len(rules_in_order))), STAGE_ORDER.index("active"))


def classify_stages(profile: pd.DataFrame, rules: Rules) -> pd.DataFrame:
    """One row per profile customer: customer_id and its §2 stage, in profile order."""
    if profile.empty:  # as the per-row version built it from two empty lists
        return pd.DataFrame({"customer_id": [], "stage": []}, columns=STAGE_COLUMNS)
    customer_ids = text_array(_profile_column(profile, "customer_id"))
    codes = pa.array(stage_codes(profile, rules))
    stages = pa.array(STAGE_ORDER, pa.large_string()).take(codes)
    return _text_frame({"customer_id": customer_ids, "stage": stages}, STAGE_COLUMNS)


def _text_frame(columns: dict[str, pa.Array], names: list[str]) -> pd.DataFrame:
    """Text columns as pandas text; an empty frame keeps object columns (as the frames built
    from lists of rows always did)."""
    if not len(next(iter(columns.values()))):
        return pd.DataFrame([], columns=names)
    return pd.DataFrame({name: text_series(columns[name]) for name in names})


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


def _days(column: pd.Series) -> np.ndarray:
    """`_to_date` of every value as datetime64[D] (NaT for missing): DATE columns read from
    DuckDB as timestamps, and our own columns of `datetime.date`, convert column-wise."""
    if isinstance(column.dtype, pd.DatetimeTZDtype):
        column = column.dt.tz_localize(None)
    if pd.api.types.is_datetime64_dtype(column.dtype):
        return column.to_numpy().astype("datetime64[D]")
    if pd.api.types.infer_dtype(column, skipna=True) not in ("date", "empty"):
        column = pd.Series([_to_date(v) for v in column.to_numpy(dtype=object)], dtype=object)
    return pd.to_datetime(column.to_numpy(dtype=object)).to_numpy().astype("datetime64[D]")


@dataclass
class _Periods:
    """History periods as columns: text as Arrow arrays (previous_stage null when missing),
    dates as numpy datetime64[D] (NaT for an open valid_to). Arrow text goes to and from
    pandas' `str` columns without copying, where Python objects would cost seconds at 1M."""

    customer_id: pa.Array
    stage: pa.Array
    previous_stage: pa.Array
    valid_from: np.ndarray
    valid_to: np.ndarray

    def __len__(self) -> int:
        return len(self.customer_id)

    def take(self, rows: np.ndarray) -> _Periods:
        indices = pa.array(rows, pa.int64())
        return _Periods(
            self.customer_id.take(indices),
            self.stage.take(indices),
            self.previous_stage.take(indices),
            self.valid_from[rows],
            self.valid_to[rows],
        )

    def then(self, other: _Periods) -> _Periods:
        return _Periods(
            pa.concat_arrays([self.customer_id, other.customer_id]),
            pa.concat_arrays([self.stage, other.stage]),
            pa.concat_arrays([self.previous_stage, other.previous_stage]),
            np.concatenate([self.valid_from, other.valid_from]),
            np.concatenate([self.valid_to, other.valid_to]),
        )


def _optional_text(column: pd.Series) -> pa.Array:
    """str(v) per value, null where missing."""
    missing = missing_mask(column)
    if not missing.any():
        return text_array(column)
    present = text_array(column[~missing].reset_index(drop=True))
    positions = np.cumsum(~missing) - 1
    return present.take(pa.array(positions, mask=missing))


def _periods(history: pd.DataFrame | None) -> _Periods:
    """The history as given (same order), converted like one record at a time before."""
    if history is None or history.empty:
        text, days = pa.array([], pa.large_string()), np.array([], dtype="datetime64[D]")
        return _Periods(text, text, text, days, days)
    frame = history[HISTORY_COLUMNS].reset_index(drop=True)
    return _Periods(
        customer_id=text_array(frame["customer_id"]),
        stage=text_array(frame["stage"]),
        previous_stage=_optional_text(frame["previous_stage"]),
        valid_from=_days(frame["valid_from"]),
        valid_to=_days(frame["valid_to"]),
    )


def _last_positions(keys: pa.Array, values: pa.Array) -> np.ndarray:
    """For each key, the position of its last occurrence in `values` (-1 when absent) — what a
    dict built from `values` in order would hold."""
    if len(values) == 0:
        return np.full(len(keys), -1, dtype=np.int64)
    reversed_values = values.take(pa.array(np.arange(len(values) - 1, -1, -1)))
    found = pc.index_in(keys, value_set=reversed_values)
    from_end = found.fill_null(-1).to_numpy().astype(np.int64)
    return np.where(from_end < 0, -1, len(values) - 1 - from_end)


def _take(values: pa.Array, positions: np.ndarray) -> pa.Array:
    """values[positions], null where the position is -1."""
    return values.take(pa.array(positions, mask=positions < 0))


def _check_order(valid_from: np.ndarray, as_of: date) -> None:
    known = valid_from[~np.isnat(valid_from)]
    if not len(known):
        return
    newest = known.max().astype(object)
    if as_of < newest:
        raise ValueError(
            f"stage history already has a period starting {newest.isoformat()}, after as_of "
            f"{as_of.isoformat()}: backfills must run oldest as_of first (history records only "
            "changes, so an earlier date cannot be inserted afterwards)"
        )


def _rewound(periods: _Periods, as_of: np.datetime64) -> _Periods:
    """The history as it was before a run at as_of: its openings dropped, its closings undone.

    Makes a rerun of the newest as_of replace that run's decisions instead of stacking on them.
    """
    kept = periods.take(np.flatnonzero(periods.valid_from != as_of))
    kept.valid_to = np.where(kept.valid_to == as_of, _NO_DAY, kept.valid_to)
    return kept


def _advanced(history: pd.DataFrame | None, stages: pd.DataFrame, as_of: date) -> _Periods:
    """The periods after the run at as_of (see advance_history), unsorted."""
    periods = _periods(history)
    _check_order(periods.valid_from, as_of)
    day = np.datetime64(as_of, "D")
    periods = _rewound(periods, day)
    open_rows = np.flatnonzero(np.isnat(periods.valid_to))
    customer_ids = text_array(stages["customer_id"])
    new_stages = text_array(stages["stage"])
    found = _last_positions(customer_ids, periods.customer_id.take(pa.array(open_rows)))
    current_rows = np.full(len(found), -1, dtype=np.int64)
    current_rows[found >= 0] = open_rows[found[found >= 0]]
    current_stages = _take(periods.stage, current_rows)
    same = pc.equal(current_stages, new_stages).fill_null(False).to_numpy(zero_copy_only=False)
    changed = ~same
    periods.valid_to[current_rows[changed & (current_rows >= 0)]] = day
    opened = int(changed.sum())
    keep = pa.array(changed)
    return periods.then(
        _Periods(
            customer_id=customer_ids.filter(keep),
            stage=new_stages.filter(keep),
            previous_stage=current_stages.filter(keep),
            valid_from=np.full(opened, day),
            valid_to=np.full(opened, _NO_DAY),
        )
    )


def _sorted_by_customer_and_start(periods: _Periods) -> _Periods:
    """Stable sort by customer_id (plain string order: Arrow compares UTF-8 bytes, which is code
    point order) then valid_from; equal keys keep their order."""
    table = pa.table(
        {
            "customer_id": periods.customer_id,
            "valid_from": pa.array(periods.valid_from.view(np.int64)),
        }
    )
    order = pc.sort_indices(
        table, sort_keys=[("customer_id", "ascending"), ("valid_from", "ascending")]
    )
    return periods.take(order.to_numpy())


def _history_frame(periods: _Periods) -> pd.DataFrame:
    if not len(periods):
        return pd.DataFrame([], columns=HISTORY_COLUMNS).astype(
            {"customer_id": "str", "stage": "str", "previous_stage": "str"}
        )
    ordered = _sorted_by_customer_and_start(periods)
    return pd.DataFrame(
        {
            "customer_id": text_series(ordered.customer_id),
            "stage": text_series(ordered.stage),
            "previous_stage": text_series(ordered.previous_stage),
            "valid_from": _nulls_as_none(pd.Series(ordered.valid_from.astype(object))),
            "valid_to": _nulls_as_none(pd.Series(ordered.valid_to.astype(object))),
        }
    )


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
    return _history_frame(_advanced(history, stages, _to_date(as_of)))


def lifecycle_table(
    history: pd.DataFrame | None,
    stages: pd.DataFrame,
    as_of: date,
    rules: Rules | None = None,
    *,
    advanced: bool = False,
) -> pd.DataFrame:
    """`marts.customer_lifecycle`: one row per customer of `stages` with its current period.

    stage_since = valid_from of the open period, previous_stage = the stage before it (null for a
    customer's first period). `history` may be the history before or after this as_of was added:
    it is advanced here, which changes nothing when it already was. `advanced=True`
    says it is `advance_history(…, stages, as_of)`'s result and skips advancing it again (~1 s at
    1M customers; the same table). stage_zh comes from the rules' labels (shipped defaults when
    `rules` is None).
    """
    as_of = _to_date(as_of)
    labels = (rules or default_rules()).lifecycle.labels
    periods = _periods(history) if advanced else _advanced(history, stages, as_of)
    current = periods.take(np.flatnonzero(np.isnat(periods.valid_to)))
    customer_ids = text_array(stages["customer_id"])
    rows = _last_positions(customer_ids, current.customer_id)
    if (rows < 0).any():
        raise KeyError(customer_ids[int(np.flatnonzero(rows < 0)[0])].as_py())
    stage = current.stage.take(pa.array(rows))
    names = list(labels)
    stage_zh = pa.array([labels[name].zh for name in names], pa.large_string()).take(
        pc.index_in(stage, value_set=pa.array(names, pa.large_string()))
    )
    return pd.DataFrame(
        {
            "customer_id": text_series(customer_ids),
            "stage": text_series(stage),
            "stage_zh": text_series(stage_zh),
            "stage_since": pd.Series(current.valid_from[rows].astype(object), dtype=object),
            "previous_stage": text_series(current.previous_stage.take(pa.array(rows))),
            "as_of": pd.Series(np.full(len(rows), as_of, dtype=object), dtype=object),
        },
        columns=LIFECYCLE_COLUMNS,
    )


# --- flows -----------------------------------------------------------------------------------


def stages_before(history: pd.DataFrame | None, as_of: date) -> pd.DataFrame:
    """Each customer's stage at the run before as_of: the period that began before as_of and
    was still open on the eve of as_of. Customers whose first period starts at as_of are absent.

    Works on the history before or after as_of was added (a period closed at as_of still counts).
    """
    day = np.datetime64(_to_date(as_of), "D")
    periods = _periods(history)
    valid_to = periods.valid_to
    covering = (periods.valid_from < day) & (np.isnat(valid_to) | (valid_to >= day))
    keep = pa.array(covering)
    return _text_frame(
        {"customer_id": periods.customer_id.filter(keep), "stage": periods.stage.filter(keep)},
        STAGE_COLUMNS,
    )


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
    customer_ids = text_array(stages["customer_id"])
    from_stages = pa.nulls(len(customer_ids), pa.large_string())
    if previous_stages is not None and not previous_stages.empty:
        rows = _last_positions(customer_ids, text_array(previous_stages["customer_id"]))
        from_stages = _take(text_array(previous_stages["stage"]), rows)
    pairs = pa.table({"from": from_stages, "to": text_array(stages["stage"])})
    counts = pairs.group_by(["from", "to"]).aggregate([([], "count_all")]).to_pylist()
    ordered = sorted(
        ((row["from"], row["to"], row["count_all"]) for row in counts),
        key=lambda item: (item[0] is not None, item[0] or "", item[1]),
    )
    rows_out = [
        {"as_of": as_of, "from_stage": f, "to_stage": t, "customers": n} for f, t, n in ordered
    ]
    frame = pd.DataFrame(rows_out, columns=FLOW_COLUMNS)
    frame["from_stage"] = _as_text(frame["from_stage"])
    frame["to_stage"] = _as_text(frame["to_stage"])
    frame["customers"] = frame["customers"].astype("int64")
    return frame
