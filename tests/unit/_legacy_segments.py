"""FROZEN per-row implementation (before vectorisation), kept only as the oracle of
tests/unit/test_classification_equivalence.py and benchmarks/bench_classification.py.

Customer segments (domain.md §3): value tier, key account, RFM, credit, relationship, loyalty.

Grain: one row per customer of `marts.customer_profile`; consumer: `marts.customer_segments`
(written by the segments asset), churn scoring (key accounts, price sensitivity) and the segment
summary. Every threshold comes from `rules.segments`.

Exactness: money is compared in integer cents and shares as fractions of their decimal text
(0.1 is 1/10, not 0.1000000000000000055…), because ceil(0.1 · 30) must be 3 and a customer
exactly at 50% of revenue or at a mean must land on the documented side.

Prospects (no completed order): §0 makes the buyer-only classes of §3.3–§3.7 null for them, so a
prospect has null RFM scores, segment and class, null credit_grade (not `unrated`, which §3.4
keeps for buyers without a billed order), null relationship level, loyalty and price
sensitivity. Value tier (§3.1: `none`), key account (§3.2: the source flag still counts), region
and industry are defined for everyone.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from decimal import ROUND_HALF_EVEN, Decimal
from fractions import Fraction
from typing import Any

import numpy as np
import pandas as pd

from crm.rules import CreditRules, LoyaltyRules, RelationshipRules, Rules

SEGMENT_COLUMNS = [
    "customer_id",
    "value_tier",
    "value_tier_zh",
    "is_key_account",
    "r_score",
    "f_score",
    "m_score",
    "rfm_segment",
    "rfm_class",
    "credit_grade",
    "credit_grade_zh",
    "collection_ratio",
    "max_paid_days",
    "relationship_level",
    "relationship_level_zh",
    "loyalty",
    "loyalty_zh",
    "is_price_sensitive",
    "region",
    "industry",
]

TEXT_COLUMNS = [
    "customer_id",
    "value_tier",
    "value_tier_zh",
    "rfm_segment",
    "rfm_class",
    "credit_grade",
    "credit_grade_zh",
    "relationship_level",
    "relationship_level_zh",
    "loyalty",
    "loyalty_zh",
    "region",
    "industry",
]


# --- value conversion ------------------------------------------------------------------------


def is_missing(value: Any) -> bool:
    """True for None, NaN, NaT and pd.NA."""
    return value is None or bool(pd.isna(value))


def to_cents(value: Any) -> int:
    """Money (Decimal, float from DuckDB, int) as exact integer cents; missing counts as 0.

    A float goes through its shortest decimal text, so 1234.56 is 123456 cents, never 123455.
    """
    if is_missing(value):
        return 0
    amount = value if isinstance(value, Decimal) else Decimal(str(value))
    return int((amount * 100).to_integral_value(rounding=ROUND_HALF_EVEN))


def exact_share(value: Any) -> Fraction:
    """A share or ratio as the fraction its decimal text means (0.9 → 9/10)."""
    return Fraction(Decimal(str(value)))


def _count(value: Any) -> int:
    return 0 if is_missing(value) else int(value)


def is_buyer(row: Mapping[str, Any]) -> bool:
    """At least one completed order: the population of every buyer-only class."""
    return _count(row.get("orders_total")) > 0


# --- §3.1 value tier and §3.2 key account ----------------------------------------------------


def revenue_ranking(customer_ids: Sequence[str], cents: Sequence[int]) -> list[tuple[str, int]]:
    """Customers with revenue_365d > 0, by revenue descending then customer_id (plain string
    order) ascending: the order both the value tier and the key-account rule walk."""
    ranked = [(cid, c) for cid, c in zip(customer_ids, cents, strict=True) if c > 0]
    return sorted(ranked, key=lambda item: (-item[1], item[0]))


def rank_cutoff(share: float, ranked_customers: int) -> int:
    """ceil(share · N) computed exactly (ceil(0.1 · 30) = 3, where floats would give 4)."""
    return math.ceil(exact_share(share) * ranked_customers)


def value_tiers(ranking: list[tuple[str, int]], rules: Rules) -> dict[str, str]:
    """§3.1 tier of each ranked customer; customers missing from the result are `none`."""
    tier_rules = rules.segments.value_tier
    high_until = rank_cutoff(tier_rules.high_share, len(ranking))
    medium_until = rank_cutoff(tier_rules.medium_share, len(ranking))
    tiers: dict[str, str] = {}
    for position, (customer_id, _) in enumerate(ranking, start=1):
        if position <= high_until:
            tiers[customer_id] = "high"
        elif position <= medium_until:
            tiers[customer_id] = "medium"
        else:
            tiers[customer_id] = "low"
    return tiers


def revenue_key_accounts(ranking: list[tuple[str, int]], share: float) -> set[str]:
    """§3.2: customers whose predecessors in the ranking hold less than `share` of all revenue
    (the top customers that make half the revenue, including the one that crosses it)."""
    limit = exact_share(share) * sum(c for _, c in ranking)
    key_accounts: set[str] = set()
    revenue_before = 0
    for customer_id, cents in ranking:
        if revenue_before < limit:
            key_accounts.add(customer_id)
        revenue_before += cents
    return key_accounts


# --- §3.3 RFM ---------------------------------------------------------------------------------


def quantile_scores(
    values: Sequence[int], quantiles: Sequence[float], higher_is_better: bool
) -> list[int]:
    """1 + #{k: v > q_k} (or its mirror for recency), q_k by numpy's linear quantiles.

    The score is a function of the value alone, so equal values always get equal scores.
    """
    cuts = np.quantile(np.asarray(values, dtype=float), list(quantiles), method="linear")
    best = len(quantiles) + 1
    above = [int(np.sum(v > cuts)) for v in values]
    return [1 + a if higher_is_better else best - a for a in above]


def above_mean(values: Sequence[int]) -> list[bool]:
    """v > mean(values), decided exactly as n·v > Σ values on integers."""
    n, total = len(values), sum(values)
    return [n * v > total for v in values]


def below_mean(values: Sequence[int]) -> list[bool]:
    """v < mean(values), decided exactly as n·v < Σ values on integers."""
    n, total = len(values), sum(values)
    return [n * v < total for v in values]


def rfm_columns(buyers: list[Mapping[str, Any]], rules: Rules) -> dict[str, dict[str, Any]]:
    """Scores, segment and 8-class label per scored customer (≥ 1 completed order).

    M is taken in integer cents: its quantiles are the yuan quantiles × 100, and comparisons
    with them and with the mean carry no float noise from decimal amounts.
    """
    if not buyers:
        return {}
    rfm = rules.segments.rfm
    ids = [str(b["customer_id"]) for b in buyers]
    recency = [int(b["recency_days"]) for b in buyers]
    frequency = [_count(b.get("orders_365d")) for b in buyers]
    monetary = [to_cents(b.get("revenue_365d")) for b in buyers]
    r_scores = quantile_scores(recency, rfm.quantiles, higher_is_better=False)
    f_scores = quantile_scores(frequency, rfm.quantiles, higher_is_better=True)
    m_scores = quantile_scores(monetary, rfm.quantiles, higher_is_better=True)
    highs = zip(below_mean(recency), above_mean(frequency), above_mean(monetary), strict=True)
    class_keys = ["".join("H" if h else "L" for h in flags) for flags in highs]
    return {
        cid: {
            "r_score": r,
            "f_score": f,
            "m_score": m,
            "rfm_segment": rfm.segment(r, f),
            "rfm_class": rfm.classes[key],
        }
        for cid, r, f, m, key in zip(ids, r_scores, f_scores, m_scores, class_keys, strict=True)
    }


# --- §3.4 credit grade ------------------------------------------------------------------------


def collection_ratio_exact(row: Mapping[str, Any]) -> Fraction | None:
    """Σ collected / Σ billed as an exact fraction, from the amounts when the profile has them
    (a DOUBLE ratio may read 0.8999999999999999 for exactly 90%), else from collection_ratio.
    Billed orders that add up to 0 owe nothing, so they count as fully collected."""
    billed, collected = row.get("billed_amount"), row.get("collected_amount")
    if not is_missing(billed) and not is_missing(collected):
        billed_cents = to_cents(billed)
        return Fraction(1) if billed_cents == 0 else Fraction(to_cents(collected), billed_cents)
    ratio = row.get("collection_ratio")
    return None if is_missing(ratio) else exact_share(ratio)


def credit_grade(row: Mapping[str, Any], rules: CreditRules) -> str | None:
    """First grade whose ratio floor and paid-days ceiling both hold; the last grade otherwise;
    `unrated` for a buyer without billed orders; null for a prospect (see module docstring)."""
    if not is_buyer(row):
        return None
    if _count(row.get("billed_orders")) == 0:
        return rules.unrated
    ratio = collection_ratio_exact(row)
    paid_days = row.get("max_paid_days")
    for grade in rules.grades[:-1]:
        if (
            ratio is not None
            and not is_missing(paid_days)
            and ratio >= exact_share(grade.min_collection_ratio)
            and float(paid_days) <= grade.max_paid_days
        ):
            return grade.grade
    return rules.grades[-1].grade


# --- §3.5 relationship, §3.6 loyalty, §3.7 price sensitivity --------------------------------


def relationship_level(row: Mapping[str, Any], rules: RelationshipRules) -> str | None:
    """Kotler's level from the profile's 365-day interaction counts; null for prospects."""
    if not is_buyer(row):
        return None
    quarters = _count(row.get("outbound_quarters_365d"))
    if (
        _count(row.get("outbound_visits_365d")) >= rules.partner_min_visits
        and quarters >= rules.partner_min_quarters
    ):
        return "partner"
    if quarters >= rules.proactive_min_quarters:
        return "proactive"
    if _count(row.get("followed_up_orders_365d")) > 0:
        return "accountable"
    if _count(row.get("inbound_365d")) > 0:
        return "reactive"
    return "basic"


def loyalty(row: Mapping[str, Any], rules: LoyaltyRules) -> str | None:
    """disloyal / loyal / neutral, first rule that holds; a null NPS neither condemns nor
    promotes (it only allows `loyal` through the order count). Null for prospects."""
    if not is_buyer(row):
        return None
    orders = _count(row.get("orders_365d"))
    nps = None if is_missing(row.get("latest_nps")) else float(row["latest_nps"])
    if orders == 0 or (nps is not None and nps <= rules.disloyal_max_nps):
        return "disloyal"
    frequent = orders >= rules.loyal_min_orders_365d and (nps is None or nps >= rules.loyal_min_nps)
    promoter = (
        orders >= rules.promoter_min_orders_365d
        and nps is not None
        and nps >= rules.promoter_min_nps
    )
    return "loyal" if frequent or promoter else "neutral"


def is_price_sensitive(row: Mapping[str, Any], rules: Rules) -> bool | None:
    """Discount share of the year's orders at or above the floor; null below the order minimum
    (too few orders to tell) and for prospects."""
    sensitivity = rules.segments.price_sensitivity
    share = row.get("discount_order_share_365d")
    if (
        not is_buyer(row)
        or _count(row.get("orders_365d")) < sensitivity.min_orders_365d
        or is_missing(share)
    ):
        return None
    return exact_share(share) >= exact_share(sensitivity.min_discount_share)


# --- assembly ---------------------------------------------------------------------------------


def _flagged_key_account(row: Mapping[str, Any]) -> bool:
    """The source's own key-account flag; a missing flag means not flagged."""
    flag = row.get("is_key_account_flag")
    return not is_missing(flag) and bool(flag)


def _label(labels: Mapping[str, Any], code: str | None) -> str | None:
    return None if code is None else labels[code].zh


def _credit_label(rules: CreditRules, code: str | None) -> str | None:
    """Chinese grade name, `unrated` included (segments.credit.unrated_zh)."""
    names = {g.grade: g.zh for g in rules.grades} | {rules.unrated: rules.unrated_zh}
    return names.get(code) if code is not None else None


def _optional_float(value: Any) -> float | None:
    return None if is_missing(value) else float(value)


def _optional_int(value: Any) -> int | None:
    return None if is_missing(value) else int(value)


def _segment_row(
    row: Mapping[str, Any],
    rules: Rules,
    tier: str,
    key_account: bool,
    rfm: Mapping[str, Any],
) -> dict[str, Any]:
    seg = rules.segments
    grade = credit_grade(row, seg.credit)
    level = relationship_level(row, seg.relationship)
    loyal = loyalty(row, seg.loyalty)
    return {
        "customer_id": str(row["customer_id"]),
        "value_tier": tier,
        "value_tier_zh": seg.value_tier.labels[tier].zh,
        "is_key_account": key_account,
        "r_score": rfm.get("r_score"),
        "f_score": rfm.get("f_score"),
        "m_score": rfm.get("m_score"),
        "rfm_segment": rfm.get("rfm_segment"),
        "rfm_class": rfm.get("rfm_class"),
        "credit_grade": grade,
        "credit_grade_zh": _credit_label(seg.credit, grade),
        "collection_ratio": _optional_float(row.get("collection_ratio")),
        "max_paid_days": _optional_int(row.get("max_paid_days")),
        "relationship_level": level,
        "relationship_level_zh": _label(seg.relationship.labels, level),
        "loyalty": loyal,
        "loyalty_zh": _label(seg.loyalty.labels, loyal),
        "is_price_sensitive": is_price_sensitive(row, rules),
        "region": row.get("region"),
        "industry": row.get("industry"),
    }


def _typed(frame: pd.DataFrame) -> pd.DataFrame:
    """Nullable integer / boolean / string columns, so nulls are NULL in DuckDB (not NaN) and a
    column that happens to be all null still has its proper type."""
    for column in ("r_score", "f_score", "m_score", "max_paid_days"):
        frame[column] = pd.array(frame[column].tolist(), dtype="Int64")
    frame["is_key_account"] = frame["is_key_account"].astype(bool)
    frame["is_price_sensitive"] = pd.array(frame["is_price_sensitive"].tolist(), dtype="boolean")
    frame["collection_ratio"] = frame["collection_ratio"].astype("float64")
    for column in TEXT_COLUMNS:
        frame[column] = frame[column].astype("str")
    return frame


def compute_segments(profile: pd.DataFrame, rules: Rules) -> pd.DataFrame:
    """`marts.customer_segments`: one row per profile customer, in profile order, with the
    contract columns plus Chinese labels (value_tier_zh, credit_grade_zh, relationship_level_zh,
    loyalty_zh)."""
    records = profile.to_dict("records")
    ids = [str(r["customer_id"]) for r in records]
    ranking = revenue_ranking(ids, [to_cents(r.get("revenue_365d")) for r in records])
    tiers = value_tiers(ranking, rules)
    by_revenue = revenue_key_accounts(ranking, rules.segments.key_account_revenue_share)
    rfm = rfm_columns([r for r in records if is_buyer(r)], rules)
    rows = [
        _segment_row(
            row,
            rules,
            tier=tiers.get(cid, "none"),
            key_account=_flagged_key_account(row) or cid in by_revenue,
            rfm=rfm.get(cid, {}),
        )
        for cid, row in zip(ids, records, strict=True)
    ]
    return _typed(pd.DataFrame(rows, columns=SEGMENT_COLUMNS))
