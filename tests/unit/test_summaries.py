"""Segment summary (`marts.segment_summary`): counts and revenue per as_of × kind × segment."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pandas as pd

from crm.lifecycle import classify_stages
from crm.rules import default_rules
from crm.segments import compute_segments
from crm.summaries import segment_summary
from tests.unit.profile_factory import buyer, profile_frame, prospect

AS_OF = date(2025, 6, 30)


def _summary() -> pd.DataFrame:
    # b1 (0.10) and b2 (0.20): N = 2, high up to ceil(0.4) = 1 → b2 high, b1 low.
    # Key accounts: total 0.30, b2 has 0 before it (key), b1 has 0.20 ≥ 0.15 (not key), p1 no.
    frame = profile_frame(
        buyer("b1", revenue_365d=Decimal("0.10"), region="华东", orders_365d=2),
        buyer("b2", revenue_365d=0.2, region="华南", orders_365d=2),
        prospect("p1", region="华东"),
    )
    rules = default_rules()
    return segment_summary(
        compute_segments(frame, rules), frame, classify_stages(frame, rules), AS_OF
    )


def _rows(summary: pd.DataFrame, kind: str) -> list[tuple]:
    part = summary[summary["segment_kind"] == kind]
    return [(r.segment, r.customers, r.revenue_365d) for r in part.itertuples(index=False)]


def test_summary_has_the_contract_columns_and_as_of() -> None:
    summary = _summary()
    assert list(summary.columns) == [
        "as_of",
        "segment_kind",
        "segment",
        "customers",
        "revenue_365d",
    ]
    assert set(summary["as_of"]) == {AS_OF}


def test_every_kind_counts_every_customer_once() -> None:
    summary = _summary()
    kinds = summary.groupby("segment_kind")["customers"].sum()
    assert kinds.to_dict() == {
        kind: 3
        for kind in (
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
            "stage",
        )
    }


def test_value_tier_rows_with_exact_revenue() -> None:
    assert _rows(_summary(), "value_tier") == [
        ("high", 1, Decimal("0.20")),
        ("low", 1, Decimal("0.10")),
        ("none", 1, Decimal("0.00")),
    ]


def test_booleans_are_true_false() -> None:
    assert _rows(_summary(), "is_key_account") == [
        ("false", 2, Decimal("0.10")),
        ("true", 1, Decimal("0.20")),
    ]


def test_null_classes_are_shown_as_none() -> None:
    # The prospect has no RFM segment, credit grade, loyalty or price sensitivity. Both buyers
    # have 2 orders and a discount share of 0 → not price sensitive.
    summary = _summary()
    assert ("none", 1, Decimal("0.00")) in _rows(summary, "rfm_segment")
    assert _rows(summary, "credit_grade") == [
        ("none", 1, Decimal("0.00")),
        ("unrated", 2, Decimal("0.30")),
    ]
    assert _rows(summary, "is_price_sensitive") == [
        ("false", 2, Decimal("0.30")),
        ("none", 1, Decimal("0.00")),
    ]


def test_region_and_stage_rows() -> None:
    summary = _summary()
    assert _rows(summary, "region") == [
        ("华东", 2, Decimal("0.10")),
        ("华南", 1, Decimal("0.20")),
    ]
    # Factory buyers are active (recency 30, tenure 200); p1 is a prospect.
    assert _rows(summary, "stage") == [
        ("active", 2, Decimal("0.30")),
        ("prospect", 1, Decimal("0.00")),
    ]


def test_revenue_is_each_customers_own_or_the_last_profile_row_of_a_repeated_id() -> None:
    """The shortcut (same ids, same order) holds only when no id repeats; a repeated id takes
    the revenue of its last profile row, in either path, and a lone null id keeps its own."""
    from crm.segments import text_array
    from crm.summaries import _revenue_of

    profile = pd.DataFrame(
        {
            "customer_id": ["a", "b", "a", None],
            "revenue_365d": [Decimal("1.00"), Decimal("2.00"), Decimal("3.00"), Decimal("4.00")],
        }
    )
    same_order = _revenue_of(text_array(profile["customer_id"]), profile)
    assert same_order.tolist() == [300, 200, 300, 400]
    unique_profile = profile.iloc[[1, 2, 3]].reset_index(drop=True)
    ids = text_array(unique_profile["customer_id"])
    assert _revenue_of(ids, unique_profile).tolist() == [200, 300, 400]
    other_order = text_array(pd.Series(["a", "zz", "b"]))
    assert _revenue_of(other_order, unique_profile).tolist() == [300, 0, 200]
