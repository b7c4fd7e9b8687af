"""Segment summary (`marts.segment_summary`): customers and revenue per segment, per run.

Grain: as_of × segment_kind × segment. Consumer: BI dashboards that chart how many customers
and how much of the year's revenue sit in each class, and how that moves run by run.

Reading of the segment values:
- A null class (a prospect's RFM segment, credit grade, relationship level, loyalty; price
  sensitivity with fewer than 2 orders) is shown as the segment `none`, so the key columns are
  never NULL and every customer is counted once per kind. `value_tier` already uses `none` for
  "no revenue", which means the same thing: no class.
- Booleans (is_key_account, is_price_sensitive) are shown as `true` / `false`.
- Only segments that hold at least one customer appear (no zero rows).
- revenue_365d is the exact Decimal sum (2 places) of the profile's revenue_365d.

Counts and cent sums are grouped column-wise (one pass per kind over a million customers);
only the handful of result rows are built in Python.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from crm.segments import cents_values, exact_integers, is_missing, text_array

SUMMARY_COLUMNS = ["as_of", "segment_kind", "segment", "customers", "revenue_365d"]
# The profile columns `segment_summary` reads (the summary step reads only these).
SUMMARY_PROFILE_INPUTS = ("customer_id", "revenue_365d")
SEGMENT_KINDS = (
    "value_tier",
    "is_key_account",
    "rfm_segment",
    "rfm_class",
    "credit_grade",
    "relationship_level",
    "loyalty",
    "is_price_sensitive",
    "region",
    "industry",
)
STAGE_KIND = "stage"
NO_SEGMENT = "none"


def segment_name(value: Any) -> str:
    """How one class value is shown: booleans as true/false, nulls as `none`."""
    if is_missing(value):
        return NO_SEGMENT
    if isinstance(value, bool | np.bool_):
        return "true" if value else "false"
    return str(value)


def segment_names(values: pd.Series) -> pd.Series:
    """`segment_name` of every value: boolean columns map True/False/null directly, text
    columns fill their nulls; anything else goes value by value."""
    values = values.reset_index(drop=True)
    if isinstance(values.dtype, pd.StringDtype):
        return values.fillna(NO_SEGMENT)
    inferred = pd.api.types.infer_dtype(values, skipna=True)
    if pd.api.types.is_bool_dtype(values.dtype) or inferred == "boolean":
        flags = values.to_numpy(dtype=object, na_value=None)
        names = np.where(flags == True, "true", np.where(flags == False, "false", NO_SEGMENT))  # noqa: E712
        return pd.Series(names.astype(object), dtype=object)
    if inferred in ("string", "empty"):
        return values.astype("str").fillna(NO_SEGMENT)
    return pd.Series([segment_name(v) for v in values.to_numpy(dtype=object)], dtype=object)


def _from_cents(cents: int) -> Decimal:
    return (Decimal(cents) / 100).quantize(Decimal("0.01"))


def _revenue_of(customer_ids: pa.Array, profile: pd.DataFrame) -> np.ndarray:
    """revenue_365d in cents per customer of `customer_ids`, from the profile row with that id
    (the last one if an id repeats); 0 for customers missing from the profile."""
    profile_ids = text_array(profile["customer_id"])
    cents = cents_values(profile["revenue_365d"].reset_index(drop=True))
    # Same ids in the same order, none repeated (a null counts as a value): each row's own
    # revenue. `unique` rather than `count_distinct`: the same answer here, 2-5x faster on 1M ids.
    if customer_ids.equals(profile_ids) and len(pc.unique(profile_ids)) == len(cents):
        return cents
    reversed_ids = profile_ids.take(pa.array(np.arange(len(cents) - 1, -1, -1)))
    from_end = pc.index_in(customer_ids, value_set=reversed_ids)
    from_end = from_end.fill_null(-1).to_numpy().astype(np.int64)
    found = from_end >= 0
    revenue = np.zeros(len(customer_ids), dtype=cents.dtype)
    revenue[found] = cents[len(cents) - 1 - from_end[found]]
    return revenue


def _kind_rows(kind: str, values: pd.Series, revenue_cents: np.ndarray) -> list[dict[str, Any]]:
    codes, segments = pd.factorize(segment_names(values))
    customers = np.bincount(codes, minlength=len(segments))
    cents = [0] * len(segments)
    if exact_integers(revenue_cents).dtype == object:
        for code, amount in zip(codes.tolist(), revenue_cents.tolist(), strict=True):
            cents[code] += amount
    else:
        sums = pd.Series(revenue_cents).groupby(codes).sum()
        for code, amount in sums.items():
            cents[int(code)] = int(amount)
    totals = sorted(zip(list(segments), customers.tolist(), cents, strict=True))
    return [
        {"segment_kind": kind, "segment": segment, "customers": n, "revenue_365d": _from_cents(c)}
        for segment, n, c in totals
    ]


def segment_summary(
    segments: pd.DataFrame, profile: pd.DataFrame, lifecycle: pd.DataFrame, as_of: date
) -> pd.DataFrame:
    """One row per as_of × segment kind × segment: customers and their revenue_365d.

    `segments` is `compute_segments` output, `profile` supplies revenue_365d by customer_id,
    `lifecycle` (customer_id, stage) supplies the `stage` kind. Kinds come in the order of
    SEGMENT_KINDS then `stage`; segments within a kind in plain string order.
    """
    segment_revenue = _revenue_of(text_array(segments["customer_id"]), profile)
    rows: list[dict[str, Any]] = []
    for kind in SEGMENT_KINDS:
        rows += _kind_rows(kind, segments[kind], segment_revenue)
    stage_revenue = _revenue_of(text_array(lifecycle["customer_id"]), profile)
    rows += _kind_rows(STAGE_KIND, lifecycle["stage"], stage_revenue)
    frame = pd.DataFrame(rows, columns=SUMMARY_COLUMNS[1:])
    frame.insert(0, "as_of", as_of)
    frame["customers"] = frame["customers"].astype("int64")
    frame["revenue_365d"] = frame["revenue_365d"].astype(object)
    return frame
