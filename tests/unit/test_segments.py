"""Segments of domain.md §3 with hand-made profiles; expected values derived in the comments."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import duckdb
import pandas as pd
import pytest

from crm.rules import default_rules, load_rules
from crm.segments import compute_segments
from tests.unit.profile_factory import buyer, profile, profile_frame, prospect

CONTRACT_COLUMNS = [
    "customer_id",
    "value_tier",
    "is_key_account",
    "r_score",
    "f_score",
    "m_score",
    "rfm_segment",
    "rfm_class",
    "credit_grade",
    "collection_ratio",
    "max_paid_days",
    "relationship_level",
    "loyalty",
    "is_price_sensitive",
    "region",
    "industry",
]


def _column(frame: pd.DataFrame, column: str, rules=None) -> dict[str, Any]:
    """customer_id → value, with every kind of null turned into None."""
    segments = compute_segments(frame, rules or default_rules())
    return {
        cid: (None if pd.isna(value) else value)
        for cid, value in zip(segments["customer_id"], segments[column], strict=True)
    }


def _revenues(*yuan: int, prefix: str = "c") -> pd.DataFrame:
    """Customers c01, c02, ... with the given revenue_365d (already in descending order)."""
    return profile_frame(
        *(buyer(f"{prefix}{i:02d}", revenue_365d=Decimal(v)) for i, v in enumerate(yuan, 1))
    )


def test_one_row_per_customer_with_the_contract_and_label_columns() -> None:
    segments = compute_segments(profile_frame(buyer("b1"), prospect("p1")), default_rules())
    assert segments["customer_id"].tolist() == ["b1", "p1"]
    assert set(CONTRACT_COLUMNS) <= set(segments.columns)
    for label in ("value_tier_zh", "credit_grade_zh", "relationship_level_zh", "loyalty_zh"):
        assert label in segments.columns


# --- §3.1 value tier ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("n", "high", "medium"),
    [
        (1, 1, 0),  # ceil(0.2) = 1, ceil(0.5) = 1
        (5, 1, 2),  # ceil(1.0) = 1, ceil(2.5) = 3 → positions 2..3 medium
        (10, 2, 3),  # ceil(2.0) = 2, ceil(5.0) = 5
        (11, 3, 3),  # ceil(2.2) = 3, ceil(5.5) = 6
    ],
)
def test_value_tier_by_position_with_ceil_cutoffs(n: int, high: int, medium: int) -> None:
    frame = _revenues(*(1000 - 10 * i for i in range(n)))
    tiers = list(_column(frame, "value_tier").values())
    assert tiers == ["high"] * high + ["medium"] * medium + ["low"] * (n - high - medium)


def test_value_tier_none_without_revenue_and_for_prospects() -> None:
    frame = profile_frame(
        buyer("b1", revenue_365d=Decimal("10.00")),
        buyer("b0", revenue_365d=Decimal("0.00")),
        prospect("p1"),
    )
    assert _column(frame, "value_tier") == {"b1": "high", "b0": "none", "p1": "none"}
    assert _column(frame, "value_tier_zh") == {"b1": "高价值", "b0": "无消费", "p1": "无消费"}


def test_value_tier_ties_go_by_plain_string_order_of_customer_id() -> None:
    # N = 5: only position 1 is high. x10 and x2 tie at 300; "x10" < "x2" as plain strings.
    frame = profile_frame(
        buyer("x2", revenue_365d=Decimal("300")),
        buyer("x10", revenue_365d=Decimal("300")),
        *(buyer(f"y{i}", revenue_365d=Decimal(100 - i)) for i in range(3)),
    )
    tiers = _column(frame, "value_tier")
    assert (tiers["x10"], tiers["x2"]) == ("high", "medium")


def test_value_tier_reads_float_money_from_duckdb() -> None:
    # N = 2: high up to ceil(0.4) = 1, medium up to ceil(1.0) = 1, so the second is low.
    frame = profile(a={"revenue_365d": 1234.56}, b={"revenue_365d": 1234.57})
    assert _column(frame, "value_tier") == {"b": "high", "a": "low"}


def test_custom_high_share_is_applied_exactly(tmp_path) -> None:
    rules_file = tmp_path / "rules.yaml"
    rules_file.write_text("segments:\n  value_tier:\n    high_share: 0.1\n", encoding="utf-8")
    custom = load_rules(rules_file)
    # 30 customers: ceil(0.1 · 30) = 3 high (a float product 3.0000000000000004 would give 4);
    # the default 0.2 gives ceil(6) = 6.
    frame = _revenues(*(1000 - i for i in range(30)))
    assert list(_column(frame, "value_tier", custom).values()).count("high") == 3
    assert list(_column(frame, "value_tier").values()).count("high") == 6


# --- §3.2 key account --------------------------------------------------------------------------


def test_key_accounts_are_the_top_customers_up_to_the_one_crossing_half() -> None:
    # total 100, half 50: a (before 0) and b (before 40 < 50) are key; c (before 70) is not.
    frame = _revenues(40, 30, 20, 10)
    assert list(_column(frame, "is_key_account").values()) == [True, True, False, False]


def test_revenue_before_exactly_half_is_not_key() -> None:
    # total 100: b has 50 before it, which is not less than 50.
    frame = _revenues(50, 30, 20)
    assert list(_column(frame, "is_key_account").values()) == [True, False, False]


def test_key_account_ties_on_revenue_go_by_customer_id() -> None:
    # total 100, both 50: "a" comes first (0 before it, key); "b" has 50 before it (not < 50).
    frame = profile_frame(
        buyer("b", revenue_365d=Decimal("50")), buyer("a", revenue_365d=Decimal("50"))
    )
    assert _column(frame, "is_key_account") == {"a": True, "b": False}


def test_exactly_half_is_decided_in_cents_not_floats() -> None:
    # 0.03 + 0.02 + 0.01 = 0.06, half 0.03; c02 has 0.03 before it → not key.
    # (In floats half is 0.030000000000000002 and c02 would wrongly be key.)
    frame = profile_frame(
        buyer("c01", revenue_365d=0.03),
        buyer("c02", revenue_365d=0.02),
        buyer("c03", revenue_365d=0.01),
    )
    assert _column(frame, "is_key_account") == {"c01": True, "c02": False, "c03": False}


def test_the_source_flag_makes_a_key_account_even_without_revenue() -> None:
    frame = profile_frame(
        buyer("a", revenue_365d=Decimal("100")),
        buyer("b", revenue_365d=Decimal("0"), is_key_account_flag=True),
        buyer("c", revenue_365d=Decimal("0"), is_key_account_flag=None),
        prospect("p", is_key_account_flag=True),
    )
    assert _column(frame, "is_key_account") == {"a": True, "b": True, "c": False, "p": True}


# --- §3.3 RFM ---------------------------------------------------------------------------------


def _rfm_profile() -> pd.DataFrame:
    # R = [10, 20, 30, 40, 50]: quantiles at positions 0.8, 1.6, 2.4, 3.2 → 18, 26, 34, 42;
    # r_score = 5 − #{R > q}: 5, 4, 3, 2, 1. F = [5, 4, 3, 2, 1]: q = 1.8, 2.6, 3.4, 4.2 →
    # f_score 5, 4, 3, 2, 1. M = [100, 500, 300, 200, 400]: q = 180, 260, 340, 420 →
    # m_score 1, 5, 3, 2, 4.
    rows = [(10, 5, 100), (20, 4, 500), (30, 3, 300), (40, 2, 200), (50, 1, 400)]
    return profile_frame(
        *(
            buyer(f"c{i}", recency_days=r, orders_365d=f, revenue_365d=Decimal(m))
            for i, (r, f, m) in enumerate(rows, 1)
        ),
        prospect("p1"),
    )


def test_rfm_scores_from_linear_quantiles() -> None:
    frame = _rfm_profile()
    assert _column(frame, "r_score") == {"c1": 5, "c2": 4, "c3": 3, "c4": 2, "c5": 1, "p1": None}
    assert _column(frame, "f_score") == {"c1": 5, "c2": 4, "c3": 3, "c4": 2, "c5": 1, "p1": None}
    assert _column(frame, "m_score") == {"c1": 1, "c2": 5, "c3": 3, "c4": 2, "c5": 4, "p1": None}


def test_rfm_segment_from_the_grid() -> None:
    # (r, f) = (5,5) champions, (4,4) loyal_customers, (3,3) need_attention,
    # (2,2) hibernating, (1,1) lost.
    assert _column(_rfm_profile(), "rfm_segment") == {
        "c1": "champions",
        "c2": "loyal_customers",
        "c3": "need_attention",
        "c4": "hibernating",
        "c5": "lost",
        "p1": None,
    }


def test_rfm_class_against_the_mean_where_equal_is_low() -> None:
    # mean R = 30 (c1, c2 below → high; c3 equal → low), mean F = 3 (c1, c2 above; c3 equal),
    # mean M = 300 (c2, c5 above; c3 equal). c1 HHL, c2 HHH, c3 LLL, c4 LLL, c5 LLH.
    assert _column(_rfm_profile(), "rfm_class") == {
        "c1": "一般价值客户",
        "c2": "重要价值客户",
        "c3": "一般挽留客户",
        "c4": "一般挽留客户",
        "c5": "重要挽留客户",
        "p1": None,
    }


def test_equal_values_get_equal_scores() -> None:
    # F = [1, 2, 2, 2, 5]: q = 1.8, 2, 2, 2.6 → the three 2s all score 2 (only 2 > 1.8).
    frame = profile_frame(
        *(
            buyer(f"c{i}", orders_365d=f, recency_days=10, revenue_365d=Decimal(50))
            for i, f in enumerate([1, 2, 2, 2, 5], 1)
        )
    )
    assert list(_column(frame, "f_score").values()) == [1, 2, 2, 2, 5]
    # R and M all equal: every quantile equals the value, nothing is above it →
    # r_score 5 and m_score 1 for everyone.
    assert set(_column(frame, "r_score").values()) == {5}
    assert set(_column(frame, "m_score").values()) == {1}


def test_a_monetary_value_equal_to_the_mean_is_low_even_where_floats_disagree() -> None:
    # M = 0.01, 0.05, 0.09: mean exactly 0.05, so c2 is M-low (a float mean is 0.049999…).
    # R = 10, 20, 30 (mean 20: c1 high), F = 1, 1, 1 (all equal: low).
    frame = profile_frame(
        buyer("c1", revenue_365d=0.01, recency_days=10, orders_365d=1),
        buyer("c2", revenue_365d=0.05, recency_days=20, orders_365d=1),
        buyer("c3", revenue_365d=0.09, recency_days=30, orders_365d=1),
    )
    assert _column(frame, "rfm_class") == {
        "c1": "一般发展客户",  # H L L
        "c2": "一般挽留客户",  # L L L
        "c3": "重要挽留客户",  # L L H
    }


def test_buyers_without_orders_this_year_are_still_scored() -> None:
    # c2 churned: F = 0, M = 0. F = [3, 0]: q = 0.6, 1.2, 1.8, 2.4 → 5 and 1.
    frame = profile_frame(
        buyer("c1", orders_365d=3, recency_days=10),
        buyer("c2", orders_365d=0, revenue_365d=Decimal(0), recency_days=500),
    )
    assert _column(frame, "f_score") == {"c1": 5, "c2": 1}
    assert _column(frame, "r_score") == {"c1": 5, "c2": 1}


# --- §3.4 credit grade ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ratio", "paid_days", "grade"),
    [
        (0.90, 45, "A"),
        (0.90, 46, "B"),
        (0.89, 10, "B"),
        (1.00, 0, "A"),
        (0.75, 75, "B"),
        (0.75, 76, "C"),
        (0.74, 10, "C"),
        (0.60, 105, "C"),
        (0.60, 106, "D"),
        (0.59, 0, "D"),
        (0.30, 255, "D"),
        (0.30, 256, "E"),
        (0.29, 0, "E"),
        (0.0, 700, "E"),
    ],
)
def test_credit_grade_first_row_that_holds(ratio: float, paid_days: int, grade: str) -> None:
    frame = profile(c1={"billed_orders": 3, "collection_ratio": ratio, "max_paid_days": paid_days})
    assert _column(frame, "credit_grade") == {"c1": grade}


def test_credit_ratio_from_amounts_is_exact() -> None:
    # 270.27 / 300.30 is exactly 0.9 → A; the DOUBLE division gives 0.8999999999999999.
    frame = profile(
        c1={
            "billed_orders": 2,
            "billed_amount": Decimal("300.30"),
            "collected_amount": Decimal("270.27"),
            "collection_ratio": 270.27 / 300.30,
            "max_paid_days": 45,
        }
    )
    assert _column(frame, "credit_grade") == {"c1": "A"}


def test_credit_unrated_without_billed_orders_and_null_for_prospects() -> None:
    frame = profile_frame(
        buyer("b0", billed_orders=0),
        buyer("bn", billed_orders=None),
        buyer("ba", billed_orders=1, collection_ratio=0.95, max_paid_days=20),
        prospect("p1"),
    )
    assert _column(frame, "credit_grade") == {
        "b0": "unrated",
        "bn": "unrated",
        "ba": "A",
        "p1": None,
    }
    # the label of `unrated` comes from segments.credit.unrated_zh (未评级)
    assert _column(frame, "credit_grade_zh") == {
        "b0": "未评级",
        "bn": "未评级",
        "ba": "优秀",
        "p1": None,
    }


def test_credit_measures_are_passed_through() -> None:
    frame = profile(c1={"billed_orders": 1, "collection_ratio": 0.5, "max_paid_days": 60})
    assert _column(frame, "collection_ratio") == {"c1": 0.5}
    assert _column(frame, "max_paid_days") == {"c1": 60}


# --- §3.5 relationship level ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("visits", "quarters", "followed_up", "inbound", "level"),
    [
        (4, 4, 0, 0, "partner"),
        (3, 4, 0, 0, "proactive"),  # too few visits for partner, 4 ≥ 3 quarters
        (4, 3, 0, 0, "proactive"),  # partner needs all 4 quarters
        (0, 3, 0, 0, "proactive"),
        (2, 2, 1, 5, "accountable"),
        (0, 2, 0, 1, "reactive"),
        (0, 0, 0, 0, "basic"),
    ],
)
def test_relationship_level_first_rule_that_holds(
    visits: int, quarters: int, followed_up: int, inbound: int, level: str
) -> None:
    frame = profile(
        c1={
            "outbound_visits_365d": visits,
            "outbound_quarters_365d": quarters,
            "followed_up_orders_365d": followed_up,
            "inbound_365d": inbound,
        }
    )
    assert _column(frame, "relationship_level") == {"c1": level}


def test_relationship_level_is_null_for_prospects_and_labelled_for_buyers() -> None:
    frame = profile_frame(
        buyer("b1", outbound_quarters_365d=4, outbound_visits_365d=4), prospect("p1")
    )
    assert _column(frame, "relationship_level") == {"b1": "partner", "p1": None}
    assert _column(frame, "relationship_level_zh") == {"b1": "伙伴型", "p1": None}


# --- §3.6 loyalty -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("orders", "nps", "expected"),
    [
        (0, 10, "disloyal"),  # no order this year, whatever the NPS
        (0, None, "disloyal"),
        (5, 6, "disloyal"),  # NPS ≤ 6
        (4, None, "loyal"),  # 4 orders, no NPS
        (4, 7, "loyal"),
        (4, 8, "loyal"),
        (3, None, "neutral"),
        (3, 7, "neutral"),
        (2, 9, "loyal"),  # promoter
        (2, 8, "neutral"),
        (1, 9, "neutral"),  # promoter needs 2 orders
        (1, None, "neutral"),
    ],
)
def test_loyalty_with_and_without_nps(orders: int, nps: int | None, expected: str) -> None:
    frame = profile(c1={"orders_365d": orders, "latest_nps": nps})
    assert _column(frame, "loyalty") == {"c1": expected}


def test_loyalty_is_null_for_prospects() -> None:
    frame = profile_frame(buyer("b1", orders_365d=4), prospect("p1", latest_nps=10))
    assert _column(frame, "loyalty") == {"b1": "loyal", "p1": None}
    assert _column(frame, "loyalty_zh") == {"b1": "忠诚", "p1": None}


# --- §3.7 price sensitivity, §3.8 region and industry -----------------------------------------


@pytest.mark.parametrize(
    ("orders", "share", "expected"),
    [
        (1, 1.0, None),  # fewer than 2 orders
        (2, 0.5, True),
        (3, 1 / 3, False),
        (4, 0.75, True),
        (2, 0.0, False),
    ],
)
def test_price_sensitivity(orders: int, share: float, expected: bool | None) -> None:
    frame = profile(c1={"orders_365d": orders, "discount_order_share_365d": share})
    assert _column(frame, "is_price_sensitive") == {"c1": expected}


def test_price_sensitivity_is_null_for_prospects() -> None:
    assert _column(profile_frame(prospect("p1")), "is_price_sensitive") == {"p1": None}


def test_region_and_industry_pass_through() -> None:
    frame = profile_frame(
        buyer("b1", region="华南", industry="零售"), prospect("p1", region="未知")
    )
    assert _column(frame, "region") == {"b1": "华南", "p1": "未知"}
    assert _column(frame, "industry") == {"b1": "零售", "p1": "制造业"}


def test_class_columns_stay_text_in_duckdb_even_when_all_null() -> None:
    # Only prospects: every RFM / credit / loyalty value is null, yet BI must see VARCHAR.
    segments = compute_segments(profile_frame(prospect("p1"), prospect("p2")), default_rules())
    types = {name: kind for name, kind, *_ in _describe(segments)}
    assert types["rfm_segment"] == types["credit_grade"] == types["loyalty"] == "VARCHAR"
    assert types["r_score"] == "BIGINT"
    assert types["is_price_sensitive"] == "BOOLEAN"


def _describe(frame: pd.DataFrame) -> list[tuple]:
    """DuckDB's column types for the frame, as a writer asset would create them."""
    con = duckdb.connect()
    con.register("frame", frame)
    return con.sql("describe select * from frame").fetchall()
