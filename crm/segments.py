"""Customer segments (domain.md §3): value tier, key account, RFM, credit, relationship, loyalty.

Grain: one row per customer of `marts.customer_profile`; consumer: `marts.customer_segments`
(written by the segments asset), churn scoring (key accounts, price sensitivity) and the segment
summary. Every threshold comes from `rules.segments`.

Exactness: money is compared in integer cents and shares as fractions of their decimal text
(0.1 is 1/10, not 0.1000000000000000055…), because ceil(0.1 · 30) must be 3 and a customer
exactly at 50% of revenue or at a mean must land on the documented side.

Speed: every rule is evaluated column-wise (numpy masks over the whole profile), because the
profile has a million rows at the largest size and per-row Python cost ≈ 130 µs a customer.
The exactness above is kept without `Fraction`s per row: a mean is compared as n·v against Σ v
on integers, a share of revenue as an integer against ceil(share · total), a ratio of cents
against a threshold a/b as b·collected against a·billed, and a DOUBLE ratio or share against a
DOUBLE threshold by float comparison — which orders two doubles exactly as their shortest
decimal texts (what `exact_share` compares), because the text round-trips to the same double.
Integer columns fall back to Python integers where int64 could overflow; inputs that are neither
numbers nor nulls (Decimal objects, text) go through the scalar helpers one value at a time.

Prospects (no completed order): §0 makes the buyer-only classes of §3.3–§3.7 null for them, so a
prospect has null RFM scores, segment and class, null credit_grade (not `unrated`, which §3.4
keeps for buyers without a billed order), null relationship level, loyalty and price
sensitivity. Value tier (§3.1: `none`), key account (§3.2: the source flag still counts), region
and industry are defined for everyone.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from decimal import ROUND_HALF_EVEN, Decimal
from fractions import Fraction
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

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

# int64 products and sums are used only below this bound; beyond it Python integers take over.
_INT64_SAFE = 2**62
# A float amount is turned into cents by rounding value·100 only while |value·100| < 2**40
# (11 billion yuan) and value·100 is not within 1e-3 of a half cent: there the float product is
# within 2.5e-4 of the exact decimal product, so both round to the same integer.
_FAST_CENTS_LIMIT = 2.0**40
_HALF_CENT_MARGIN = 1e-3


# --- scalar value conversion (also the exact fallback of the column versions) ----------------


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


def _optional_float(value: Any) -> float:
    return math.nan if is_missing(value) else float(value)


# --- column conversion ------------------------------------------------------------------------


def _column(frame: pd.DataFrame, name: str) -> pd.Series:
    """The profile column with a fresh 0..n-1 index; an absent column reads as all null (like
    `row.get(name)` on a record)."""
    if name in frame.columns:
        return frame[name].reset_index(drop=True)
    return pd.Series([None] * len(frame), dtype=object)


def _numeric_kind(series: pd.Series) -> str:
    """'f' for float64 (numpy or nullable Float64), 'i' for integers, '' for anything else
    (objects, Decimals, text, float32 — those take the exact per-value path)."""
    dtype = series.dtype
    if dtype == np.float64 or str(dtype) == "Float64":
        return "f"
    if pd.api.types.is_integer_dtype(dtype):
        return "i"
    return ""


def _per_value(series: pd.Series, convert: Callable[[Any], Any], dtype: Any) -> np.ndarray:
    return np.array([convert(v) for v in series.to_numpy(dtype=object)], dtype=dtype)


def missing_mask(series: pd.Series) -> np.ndarray:
    """True where the value is None, NaN, NaT or pd.NA."""
    return series.isna().to_numpy(dtype=bool)


def float_values(series: pd.Series) -> np.ndarray:
    """float64 values (float(v) of each value), NaN for missing."""
    if _numeric_kind(series) or pd.api.types.is_bool_dtype(series.dtype):
        return series.to_numpy(dtype=np.float64, na_value=np.nan)
    return _per_value(series, _optional_float, np.float64)


def count_values(series: pd.Series) -> np.ndarray:
    """int64 counts: missing counts as 0, a float is truncated like int(v)."""
    kind = _numeric_kind(series)
    if kind == "i":
        return series.to_numpy(dtype=np.int64, na_value=0)
    if kind == "f":
        values = series.to_numpy(dtype=np.float64, na_value=0.0)
        values = np.where(np.isnan(values), 0.0, values)
        if np.isfinite(values).all() and (np.abs(values) < _INT64_SAFE).all():
            return np.trunc(values).astype(np.int64)
    return _per_value(series, _count, object).astype(np.int64)


def whole_values(series: pd.Series, column: str) -> np.ndarray:
    """int(v) of every value of a column that must not be null for these rows."""
    if missing_mask(series).any():
        raise ValueError(f"{column} is null for a customer with completed orders")
    return count_values(series)


def exact_integers(values: np.ndarray, factor: int = 1) -> np.ndarray:
    """`values` as int64 when every product with `factor` and their sum fit, else as Python
    integers (object array): exact either way, like the per-row code's ints."""
    if values.dtype != object and len(values):
        largest = int(np.abs(values).max())
        if largest * max(factor, len(values), 1) < _INT64_SAFE:
            return values
    return values.astype(object)


def cents_values(series: pd.Series) -> np.ndarray:
    """`to_cents` of every value, column-wise (int64, or Python ints where int64 overflows).

    Floats are rounded from value·100 where that is provably the same integer as the decimal
    text's (see _FAST_CENTS_LIMIT); the few others (sub-cent amounts, huge values, infinities)
    go through `to_cents` itself.
    """
    kind = _numeric_kind(series)
    if kind == "i":
        ints = series.to_numpy(dtype=np.int64, na_value=0)
        if len(ints) == 0 or int(np.abs(ints).max()) < _INT64_SAFE // 100:
            return ints * 100
        return np.array([v * 100 for v in ints.tolist()], dtype=object)
    if kind != "f":
        return exact_integers(_per_value(series, to_cents, object))
    values = series.to_numpy(dtype=np.float64, na_value=np.nan)
    scaled = np.where(np.isnan(values), 0.0, values) * 100.0
    rounded = np.rint(scaled)
    with np.errstate(invalid="ignore"):
        trusted = (np.abs(scaled) < _FAST_CENTS_LIMIT) & (
            np.abs(np.abs(scaled - rounded) - 0.5) > _HALF_CENT_MARGIN
        )
    cents = np.where(trusted, rounded, 0.0).astype(np.int64)
    untrusted = np.flatnonzero(~trusted)
    if len(untrusted) == 0:
        return cents
    exact = [to_cents(v) for v in values[untrusted].tolist()]
    if all(abs(c) < _INT64_SAFE for c in exact):
        cents[untrusted] = exact
        return cents
    result = cents.astype(object)
    result[untrusted] = exact
    return result


def share_at_least(series: pd.Series, floor: float) -> np.ndarray:
    """exact_share(v) >= exact_share(floor) per value (False where missing).

    For DOUBLE values this is the float comparison: distinct doubles have distinct shortest
    texts in the same order, and equal doubles have the same text (see module docstring).
    """
    kind = _numeric_kind(series)
    if kind:
        values = series.to_numpy(dtype=np.float64, na_value=np.nan)
        if kind == "f" or (np.abs(np.nan_to_num(values)) < 2.0**53).all():
            with np.errstate(invalid="ignore"):
                return values >= float(floor)
    limit = exact_share(floor)
    return np.array(
        [not is_missing(v) and exact_share(v) >= limit for v in series.to_numpy(dtype=object)],
        dtype=bool,
    )


def text_array(column: pd.Series) -> pa.Array:
    """str(v) of every value as an Arrow large_string array: zero-copy for pandas' own text
    columns, so ids and stages are matched, sorted and handed back without Python objects."""
    if pd.api.types.is_string_dtype(column.dtype) and not column.isna().any():
        if column.dtype != object:
            array = pa.array(column)
            if isinstance(array, pa.ChunkedArray):
                array = array.combine_chunks()
            return array.cast(pa.large_string())
        if all(isinstance(v, str) for v in column.to_numpy(dtype=object)):
            return pa.array(column.to_numpy(dtype=object), pa.large_string())
    return pa.array([str(v) for v in column.to_numpy(dtype=object)], pa.large_string())


def text_series(array: pa.Array) -> pd.Series:
    """An Arrow text array as pandas text (the `str` dtype, nulls missing), without copying."""
    return pd.Series(pd.array(array.cast(pa.large_string()), dtype="str"))


def _customer_ids(frame: pd.DataFrame) -> pd.Series:
    """str(customer_id) of every row as pandas text (`str` of a missing id is its repr text)."""
    ids = _column(frame, "customer_id")
    if pd.api.types.is_string_dtype(ids.dtype) and not ids.isna().any():
        return ids.astype("str")
    return pd.Series([str(v) for v in ids.to_numpy(dtype=object)], dtype="str")


def _text(codes: np.ndarray, names: Sequence[str | None]) -> pd.Series:
    """Text column from integer codes into `names` (code -1 or a None name is null)."""
    indices = pa.array(codes, mask=codes < 0)
    return text_series(pa.array(list(names), pa.large_string()).take(indices))


def is_buyer_mask(profile: pd.DataFrame) -> np.ndarray:
    """At least one completed order: the population of every buyer-only class."""
    return count_values(_column(profile, "orders_total")) > 0


# --- §3.1 value tier and §3.2 key account ----------------------------------------------------


def revenue_order(customer_ids: pd.Series, cents: np.ndarray) -> np.ndarray:
    """Row positions of the customers with revenue_365d > 0, by revenue descending then
    customer_id (plain string order) ascending: the order both the value tier and the
    key-account rule walk."""
    ranked = np.flatnonzero(cents > 0)
    if cents.dtype == object:
        return np.array(
            sorted(ranked.tolist(), key=lambda i: (-cents[i], customer_ids.iat[i])), dtype=np.int64
        )
    # Arrow orders text by UTF-8 bytes, which is code point order (Python's str order).
    table = pa.table(
        {
            "cents": pa.array(cents[ranked]),
            "customer_id": pa.array(customer_ids).take(pa.array(ranked)),
        }
    )
    order = pc.sort_indices(
        table, sort_keys=[("cents", "descending"), ("customer_id", "ascending")]
    )
    return ranked[order.to_numpy()]


def rank_cutoff(share: float, ranked_customers: int) -> int:
    """ceil(share · N) computed exactly (ceil(0.1 · 30) = 3, where floats would give 4)."""
    return math.ceil(exact_share(share) * ranked_customers)


TIERS = ("high", "medium", "low", "none")


def value_tier_codes(ranked: np.ndarray, rows: int, rules: Rules) -> np.ndarray:
    """§3.1 tier of every row as an index into TIERS (`none` for unranked rows)."""
    tier_rules = rules.segments.value_tier
    positions = np.arange(1, len(ranked) + 1)
    high_until = rank_cutoff(tier_rules.high_share, len(ranked))
    medium_until = rank_cutoff(tier_rules.medium_share, len(ranked))
    codes = np.full(rows, TIERS.index("none"), dtype=np.int64)
    codes[ranked] = np.select(
        [positions <= high_until, positions <= medium_until],
        [TIERS.index("high"), TIERS.index("medium")],
        TIERS.index("low"),
    )
    return codes


def revenue_key_accounts(ranked: np.ndarray, cents: np.ndarray, share: float) -> np.ndarray:
    """§3.2 per row: the customers whose predecessors in the ranking hold less than `share` of
    all revenue (the top customers that make half the revenue, including the one crossing it).

    For integer revenue_before and a rational limit L, revenue_before < L ⇔ revenue_before <
    ceil(L), so the comparison stays on integers."""
    ranked_cents = exact_integers(cents[ranked])
    total = int(ranked_cents.sum()) if len(ranked_cents) else 0
    limit = math.ceil(exact_share(share) * total)
    revenue_before = np.cumsum(ranked_cents) - ranked_cents
    key = np.zeros(len(cents), dtype=bool)
    key[ranked] = revenue_before < limit
    return key


def flagged_key_accounts(series: pd.Series) -> np.ndarray:
    """The source's own key-account flag; a missing flag means not flagged."""
    if pd.api.types.is_bool_dtype(series.dtype) or _numeric_kind(series):
        values = series.to_numpy(dtype=np.float64, na_value=np.nan)
        return ~np.isnan(values) & (values != 0)
    return np.array(
        [not is_missing(v) and bool(v) for v in series.to_numpy(dtype=object)], dtype=bool
    )


# --- §3.3 RFM ---------------------------------------------------------------------------------


def quantile_scores(
    values: np.ndarray, quantiles: Sequence[float], higher_is_better: bool
) -> np.ndarray:
    """1 + #{k: v > q_k} (or its mirror for recency), q_k by numpy's linear quantiles.

    The score is a function of the value alone, so equal values always get equal scores.
    """
    as_float = np.asarray(values, dtype=float)
    cuts = np.quantile(as_float, list(quantiles), method="linear")
    above = np.zeros(len(as_float), dtype=np.int64)
    for cut in cuts:
        above += as_float > cut
    return 1 + above if higher_is_better else len(quantiles) + 1 - above


def _mean_sides(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(v < mean, v > mean), decided exactly as n·v against Σ values on integers."""
    exact = exact_integers(values, factor=len(values))
    scaled, total = exact * len(values), exact.sum()
    return np.asarray(scaled < total, dtype=bool), np.asarray(scaled > total, dtype=bool)


def rfm_codes(
    recency: np.ndarray, frequency: np.ndarray, monetary_cents: np.ndarray, rules: Rules
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Scores and the 8-class index (R·4 + F·2 + M, 1 = high) of the scored customers.

    M is taken in integer cents: its quantiles are the yuan quantiles × 100, and comparisons
    with them and with the mean carry no float noise from decimal amounts.
    """
    quantiles = rules.segments.rfm.quantiles
    r_scores = quantile_scores(recency, quantiles, higher_is_better=False)
    f_scores = quantile_scores(frequency, quantiles, higher_is_better=True)
    m_scores = quantile_scores(monetary_cents, quantiles, higher_is_better=True)
    r_high = _mean_sides(recency)[0]
    f_high = _mean_sides(frequency)[1]
    m_high = _mean_sides(monetary_cents)[1]
    classes = r_high.astype(np.int64) * 4 + f_high * 2 + m_high
    return r_scores, f_scores, m_scores, classes


def _class_key(index: int) -> str:
    return "".join("H" if index & bit else "L" for bit in (4, 2, 1))


def _rfm_columns(profile: pd.DataFrame, buyers: np.ndarray, cents: np.ndarray, rules: Rules):
    """r/f/m scores (Int64, null for prospects), rfm_segment and rfm_class text columns."""
    rfm = rules.segments.rfm
    rows = len(profile)
    scores = [np.zeros(rows, dtype=np.int64) for _ in range(3)]
    segment_codes = np.full(rows, -1, dtype=np.int64)
    class_codes = np.full(rows, -1, dtype=np.int64)
    if buyers.any():
        recency = whole_values(_column(profile, "recency_days")[buyers], "recency_days")
        frequency = count_values(_column(profile, "orders_365d"))[buyers]
        r, f, m, classes = rfm_codes(recency, frequency, cents[buyers], rules)
        for target, values in zip(scores, (r, f, m), strict=True):
            target[buyers] = values
        segment_codes[buyers] = (r - 1) * 5 + (f - 1)
        class_codes[buyers] = classes
    segment_names = [rfm.segment(r, f) for r in range(1, 6) for f in range(1, 6)]
    class_names = [rfm.classes[_class_key(i)] for i in range(8)]
    nullable = [pd.arrays.IntegerArray(s, ~buyers) for s in scores]
    return nullable, _text(segment_codes, segment_names), _text(class_codes, class_names)


# --- §3.4 credit grade ------------------------------------------------------------------------


def _ratio_from_amounts_at_least(
    collected: np.ndarray, billed: np.ndarray, floor: Fraction
) -> np.ndarray:
    """Σ collected / Σ billed ≥ floor on integer cents (billed 0 owes nothing: ratio 1)."""
    sign = (billed > 0).astype(np.int64) - (billed < 0).astype(np.int64)
    numerator, denominator = collected * sign, billed * sign
    factor = max(floor.numerator, floor.denominator)
    numerator, denominator = exact_integers(numerator, factor), exact_integers(denominator, factor)
    at_least = np.asarray(
        numerator * floor.denominator >= denominator * floor.numerator, dtype=bool
    )
    return np.where(billed == 0, Fraction(1) >= floor, at_least)


def credit_grade_codes(profile: pd.DataFrame, buyers: np.ndarray, rules: CreditRules):
    """First grade whose ratio floor and paid-days ceiling both hold; the last grade otherwise;
    `unrated` for a buyer without billed orders; null for a prospect (see module docstring).

    The ratio is Σ collected / Σ billed from the amounts when the profile has both (a DOUBLE
    ratio may read 0.8999999999999999 for exactly 90%), else collection_ratio.
    Returns codes into [*grades, unrated] (-1 for null).
    """
    billed_amount = _column(profile, "billed_amount")
    collected_amount = _column(profile, "collected_amount")
    ratio = _column(profile, "collection_ratio")
    from_amounts = ~missing_mask(billed_amount) & ~missing_mask(collected_amount)
    has_ratio = from_amounts | ~missing_mask(ratio)
    billed_cents, collected_cents = cents_values(billed_amount), cents_values(collected_amount)
    paid_days = float_values(_column(profile, "max_paid_days"))
    conditions = []
    for grade in rules.grades[:-1]:
        floor = grade.min_collection_ratio
        ratio_ok = np.where(
            from_amounts,
            _ratio_from_amounts_at_least(collected_cents, billed_cents, exact_share(floor)),
            share_at_least(ratio, floor),
        )
        with np.errstate(invalid="ignore"):
            paid_ok = paid_days <= grade.max_paid_days
        conditions.append(has_ratio & ratio_ok & paid_ok)
    codes = np.select(conditions, list(range(len(conditions))), len(rules.grades) - 1)
    billed_orders = count_values(_column(profile, "billed_orders"))
    codes = np.where(billed_orders == 0, len(rules.grades), codes)
    return np.where(buyers, codes, -1)


# --- §3.5 relationship, §3.6 loyalty, §3.7 price sensitivity --------------------------------

LEVELS = ("partner", "proactive", "accountable", "reactive", "basic")
LOYALTIES = ("disloyal", "loyal", "neutral")


def relationship_codes(
    profile: pd.DataFrame, buyers: np.ndarray, rules: RelationshipRules
) -> np.ndarray:
    """Kotler's level (index into LEVELS) from the 365-day interaction counts; -1 for
    prospects."""

    def counts(name: str) -> np.ndarray:
        return count_values(_column(profile, name))

    quarters = counts("outbound_quarters_365d")
    codes = np.select(
        [
            (counts("outbound_visits_365d") >= rules.partner_min_visits)
            & (quarters >= rules.partner_min_quarters),
            quarters >= rules.proactive_min_quarters,
            counts("followed_up_orders_365d") > 0,
            counts("inbound_365d") > 0,
        ],
        [0, 1, 2, 3],
        LEVELS.index("basic"),
    )
    return np.where(buyers, codes, -1)


def loyalty_codes(profile: pd.DataFrame, buyers: np.ndarray, rules: LoyaltyRules) -> np.ndarray:
    """disloyal / loyal / neutral (index into LOYALTIES), first rule that holds; a null NPS
    neither condemns nor promotes (it only allows `loyal` through the order count). -1 for
    prospects."""
    orders = count_values(_column(profile, "orders_365d"))
    nps = float_values(_column(profile, "latest_nps"))
    has_nps = ~np.isnan(nps)
    with np.errstate(invalid="ignore"):
        disloyal = (orders == 0) | (has_nps & (nps <= rules.disloyal_max_nps))
        frequent = (orders >= rules.loyal_min_orders_365d) & (
            ~has_nps | (nps >= rules.loyal_min_nps)
        )
        promoter = (
            (orders >= rules.promoter_min_orders_365d) & has_nps & (nps >= rules.promoter_min_nps)
        )
    codes = np.select([disloyal, frequent | promoter], [0, 1], LOYALTIES.index("neutral"))
    return np.where(buyers, codes, -1)


def price_sensitivity(profile: pd.DataFrame, buyers: np.ndarray, rules: Rules) -> pd.Series:
    """Discount share of the year's orders at or above the floor; null below the order minimum
    (too few orders to tell) and for prospects."""
    sensitivity = rules.segments.price_sensitivity
    share = _column(profile, "discount_order_share_365d")
    known = (
        buyers
        & (count_values(_column(profile, "orders_365d")) >= sensitivity.min_orders_365d)
        & ~missing_mask(share)
    )
    sensitive = share_at_least(share, sensitivity.min_discount_share)
    return pd.Series(pd.arrays.BooleanArray(sensitive & known, ~known))


# --- assembly ---------------------------------------------------------------------------------


def _optional_ints(series: pd.Series) -> pd.Series:
    """int(v) per value as Int64, null where missing (max_paid_days)."""
    missing = missing_mask(series)
    if _numeric_kind(series) == "i":
        return pd.Series(pd.array(series, dtype="Int64"))
    values = count_values(series) if len(series) else np.zeros(0, dtype=np.int64)
    return pd.Series(pd.arrays.IntegerArray(values, missing))


def _label_names(labels: dict[str, Any], codes: Sequence[str]) -> list[str]:
    return [labels[code].zh for code in codes]


# The profile columns compute_segments reads (the step reads only these: the profile has 53,
# and its text columns cost ~1 s to load at 1M customers). An absent column reads as all null,
# so tests/unit/test_classification_equivalence.py checks that this list gives the results of
# the whole profile and that leaving out any one of them changes them.
SEGMENT_INPUTS = (
    "customer_id",
    "is_key_account_flag",
    "region",
    "industry",
    "orders_total",
    "orders_365d",
    "revenue_365d",
    "recency_days",
    "discount_order_share_365d",
    "latest_nps",
    "billed_orders",
    "billed_amount",
    "collected_amount",
    "collection_ratio",
    "max_paid_days",
    "outbound_visits_365d",
    "outbound_quarters_365d",
    "followed_up_orders_365d",
    "inbound_365d",
)


def compute_segments(profile: pd.DataFrame, rules: Rules) -> pd.DataFrame:
    """`marts.customer_segments`: one row per profile customer, in profile order, with the
    contract columns plus Chinese labels (value_tier_zh, credit_grade_zh, relationship_level_zh,
    loyalty_zh)."""
    seg = rules.segments
    rows = len(profile)
    customer_ids = _customer_ids(profile)
    buyers = is_buyer_mask(profile)
    cents = cents_values(_column(profile, "revenue_365d"))
    ranked = revenue_order(customer_ids, cents)
    tiers = value_tier_codes(ranked, rows, rules)
    key_accounts = flagged_key_accounts(_column(profile, "is_key_account_flag"))
    key_accounts |= revenue_key_accounts(ranked, cents, seg.key_account_revenue_share)
    (r_score, f_score, m_score), rfm_segment, rfm_class = _rfm_columns(
        profile, buyers, cents, rules
    )
    grades = credit_grade_codes(profile, buyers, seg.credit)
    grade_codes = [g.grade for g in seg.credit.grades] + [seg.credit.unrated]
    grade_zh = {g.grade: g.zh for g in seg.credit.grades} | {
        seg.credit.unrated: seg.credit.unrated_zh
    }
    levels = relationship_codes(profile, buyers, seg.relationship)
    loyalties = loyalty_codes(profile, buyers, seg.loyalty)
    columns = {
        "customer_id": customer_ids,
        "value_tier": _text(tiers, TIERS),
        "value_tier_zh": _text(tiers, _label_names(seg.value_tier.labels, TIERS)),
        "is_key_account": pd.Series(key_accounts, dtype=bool),
        "r_score": r_score,
        "f_score": f_score,
        "m_score": m_score,
        "rfm_segment": rfm_segment,
        "rfm_class": rfm_class,
        "credit_grade": _text(grades, grade_codes),
        "credit_grade_zh": _text(grades, [grade_zh.get(code) for code in grade_codes]),
        "collection_ratio": pd.Series(float_values(_column(profile, "collection_ratio"))),
        "max_paid_days": _optional_ints(_column(profile, "max_paid_days")),
        "relationship_level": _text(levels, LEVELS),
        "relationship_level_zh": _text(levels, _label_names(seg.relationship.labels, LEVELS)),
        "loyalty": _text(loyalties, LOYALTIES),
        "loyalty_zh": _text(loyalties, _label_names(seg.loyalty.labels, LOYALTIES)),
        "is_price_sensitive": price_sensitivity(profile, buyers, rules),
        "region": _column(profile, "region").astype("str"),
        "industry": _column(profile, "industry").astype("str"),
    }
    return pd.DataFrame(columns, columns=SEGMENT_COLUMNS)
