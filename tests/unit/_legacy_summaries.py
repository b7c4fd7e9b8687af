"""FROZEN per-row implementation (before vectorisation), kept only as the oracle of
tests/unit/test_classification_equivalence.py and benchmarks/bench_classification.py.

Segment summary (`marts.segment_summary`): customers and revenue per segment, per run.

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
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

import numpy as np
import pandas as pd

from tests.unit._legacy_segments import is_missing, to_cents

SUMMARY_COLUMNS = ["as_of", "segment_kind", "segment", "customers", "revenue_365d"]
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


def _from_cents(cents: int) -> Decimal:
    return (Decimal(cents) / 100).quantize(Decimal("0.01"))


def _kind_rows(
    kind: str, customer_ids: pd.Series, values: pd.Series, revenue_cents: dict[str, int]
) -> list[dict[str, Any]]:
    totals: dict[str, list[int]] = {}
    for customer_id, value in zip(customer_ids.astype(str), values, strict=True):
        count_and_cents = totals.setdefault(segment_name(value), [0, 0])
        count_and_cents[0] += 1
        count_and_cents[1] += revenue_cents.get(customer_id, 0)
    return [
        {"segment_kind": kind, "segment": segment, "customers": n, "revenue_365d": _from_cents(c)}
        for segment, (n, c) in sorted(totals.items())
    ]


def segment_summary(
    segments: pd.DataFrame, profile: pd.DataFrame, lifecycle: pd.DataFrame, as_of: date
) -> pd.DataFrame:
    """One row per as_of × segment kind × segment: customers and their revenue_365d.

    `segments` is `compute_segments` output, `profile` supplies revenue_365d by customer_id,
    `lifecycle` (customer_id, stage) supplies the `stage` kind. Kinds come in the order of
    SEGMENT_KINDS then `stage`; segments within a kind in plain string order.
    """
    revenue_cents = {
        str(cid): to_cents(revenue)
        for cid, revenue in zip(profile["customer_id"], profile["revenue_365d"], strict=True)
    }
    rows: list[dict[str, Any]] = []
    for kind in SEGMENT_KINDS:
        rows += _kind_rows(kind, segments["customer_id"], segments[kind], revenue_cents)
    rows += _kind_rows(STAGE_KIND, lifecycle["customer_id"], lifecycle["stage"], revenue_cents)
    frame = pd.DataFrame(rows, columns=SUMMARY_COLUMNS[1:])
    frame.insert(0, "as_of", as_of)
    frame["customers"] = frame["customers"].astype("int64")
    frame["revenue_365d"] = frame["revenue_365d"].astype(object)
    return frame
