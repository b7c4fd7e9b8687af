"""Churn risk scoring (流失预警, domain.md §4): one row per scored customer -> `marts.churn_risk`.

Why signals and not a single model score: sales reps act on *reasons* ("94 days since last order,
usually every 31 days"), so every signal is a plain, explainable rule whose weight and threshold
come from the rules file. The BG/NBD model enters only through its `p_alive` and
`expected_orders_90d` columns, computed upstream (crm.bgnbd) and handed in with the profile.

Input grain: one row per customer with the profile measures of docs/interfaces.md (recency_days,
median_gap_days, orders_prior_year, orders_90d, revenue_prior_year, revenue_90d, complaints_90d,
avg_satisfaction_90d, purchase_days, last_outbound_days) plus `stage`, `is_key_account`, `p_alive`
and `expected_orders_90d`. Consumers: the churn asset (publishes the table) and crm.alerts.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from functools import lru_cache

import numpy as np
import pandas as pd

from crm.rules import Rules

CHURN_RISK_COLUMNS = [
    "customer_id",
    "as_of",
    "risk_score",
    "risk_level",
    "p_alive",
    "expected_orders_90d",
    "signals",
    "reasons",
]

# The prior year (between 90 and 455 days ago) is compared with the last quarter, so its totals
# are divided by the number of quarters in a year: a unit conversion, not a tunable threshold.
QUARTERS_PER_YEAR = 4


NUMERIC_INPUTS = (
    "recency_days",
    "median_gap_days",
    "orders_prior_year",
    "orders_90d",
    "revenue_prior_year",
    "revenue_90d",
    "complaints_90d",
    "avg_satisfaction_90d",
    "purchase_days",
    "p_alive",
    "last_outbound_days",
)

# The `marts.customer_profile` columns the churn step reads (of 53): the BG/NBD inputs, the
# buyer test and the profile's share of NUMERIC_INPUTS (p_alive is computed in the step). A
# missing one fails loudly (KeyError), it never reads as null.
PROFILE_INPUTS = (
    "customer_id",
    "orders_total",
    "bgnbd_x",
    "bgnbd_t_x",
    "bgnbd_T",
    *(name for name in NUMERIC_INPUTS if name != "p_alive"),
)


@dataclass(frozen=True)
class Signal:
    """A signal of domain.md §4: which customers it fires for, and the reason it gives."""

    name: str
    fires: Callable[[pd.DataFrame, Rules], pd.Series]  # numeric frame -> bool per customer
    # numeric rows of the customers it fired for -> one bilingual sentence each
    reasons: Callable[[pd.DataFrame, Rules], pd.Series]


def _number(values: pd.Series) -> pd.Series:
    """Numeric view of a column whatever it holds (Decimal, Int64, float), as float64 with NaN
    for null.

    Numeric dtypes, which is what `crm.frames.read_table` hands over (DECIMAL as DOUBLE), are
    cast directly; going through Python objects and `pd.to_numeric` gives the same floats, but
    took ~1 s for the ten measures of 1M customers. Anything else (Decimal or text objects, as
    a caller may pass) takes that general path."""
    if pd.api.types.is_numeric_dtype(values.dtype) and not pd.api.types.is_bool_dtype(values.dtype):
        return values.astype("float64")
    return pd.to_numeric(values.astype("object"), errors="coerce").astype("float64")


def _flag(values: pd.Series) -> pd.Series:
    """Boolean view where a null means 'no' (e.g. an unknown key-account flag)."""
    return values.astype("boolean").fillna(False).astype(bool)


def fmt(value: float) -> str:
    """Compact display for reasons: 31 not 31.0, 30.5 stays, 2.333 -> 2.33."""
    if pd.isna(value):
        return "-"
    return _fmt_number(float(value))


@lru_cache(maxsize=1 << 16)
def _fmt_number(value: float) -> str:
    # Cached: a million reasons repeat the same few thousand day counts and amounts.
    text = f"{value:.2f}".rstrip("0").rstrip(".")
    return "0" if text == "-0" else text


def _texts(values: pd.Series) -> pd.Series:
    """`fmt` of every value, each distinct value formatted once (a million reasons hold a few
    thousand distinct numbers)."""
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    formatted = np.array([fmt(v) for v in uniques] + ["-"], dtype=object)
    return pd.Series(formatted[codes], index=values.index)  # code -1 (null) takes "-"


def _overdue_fires(num: pd.DataFrame, rules: Rules) -> pd.Series:
    rule = rules.churn.signals.overdue
    recency, gap = num["recency_days"], num["median_gap_days"]
    with_rhythm = gap.notna() & (recency > rule.gap_multiplier * gap)
    without_rhythm = gap.isna() & (recency > rule.default_days)
    return with_rhythm | without_rhythm


def _overdue_reasons(num: pd.DataFrame, rules: Rules) -> pd.Series:
    recency, gap = _texts(num["recency_days"]), _texts(num["median_gap_days"])
    limit = fmt(rules.churn.signals.overdue.default_days)
    with_rhythm = (
        recency
        + " 天未下单，通常每 "
        + gap
        + " 天下单一次 / "
        + recency
        + " days since last order, usually every "
        + gap
        + " days"
    )
    without_rhythm = (
        recency
        + f" 天未下单（超过 {limit} 天） / "
        + recency
        + f" days since last order (more than {limit})"
    )
    return with_rhythm.where(num["median_gap_days"].notna(), without_rhythm)


def _frequency_drop_fires(num: pd.DataFrame, rules: Rules) -> pd.Series:
    rule = rules.churn.signals.frequency_drop
    prior = num["orders_prior_year"]
    per_quarter = prior / QUARTERS_PER_YEAR
    return (prior >= rule.min_prior_orders) & (num["orders_90d"] < rule.ratio * per_quarter)


def _frequency_drop_reasons(num: pd.DataFrame, rules: Rules) -> pd.Series:
    recent = _texts(num["orders_90d"])
    per_quarter = _texts(num["orders_prior_year"] / QUARTERS_PER_YEAR)
    return (
        "近一季度 "
        + recent
        + " 单，前一年平均每季度 "
        + per_quarter
        + " 单 / "
        + recent
        + " orders last quarter, "
        + per_quarter
        + " per quarter the year before"
    )


def _spend_drop_fires(num: pd.DataFrame, rules: Rules) -> pd.Series:
    rule = rules.churn.signals.spend_drop
    prior_revenue = num["revenue_prior_year"]
    per_quarter = prior_revenue / QUARTERS_PER_YEAR
    return (
        (prior_revenue > 0)
        & (num["orders_prior_year"] >= rule.min_prior_orders)
        & (num["revenue_90d"] < rule.ratio * per_quarter)
    )


def _spend_drop_reasons(num: pd.DataFrame, rules: Rules) -> pd.Series:
    recent = _texts(num["revenue_90d"])
    per_quarter = _texts(num["revenue_prior_year"] / QUARTERS_PER_YEAR)
    return (
        "近一季度消费 "
        + recent
        + " 元，前一年平均每季度 "
        + per_quarter
        + " 元 / "
        + "spent "
        + recent
        + " last quarter, "
        + per_quarter
        + " per quarter the year before"
    )


def _complaints_fires(num: pd.DataFrame, rules: Rules) -> pd.Series:
    return num["complaints_90d"] >= rules.churn.signals.complaints.min_complaints


def _complaints_reasons(num: pd.DataFrame, rules: Rules) -> pd.Series:
    days, count = fmt(rules.profile.recent_days), _texts(num["complaints_90d"])
    return f"近 {days} 天投诉 " + count + " 次 / " + count + f" complaints in the last {days} days"


def _low_satisfaction_fires(num: pd.DataFrame, rules: Rules) -> pd.Series:
    limit = rules.churn.signals.low_satisfaction.max_avg_satisfaction
    return num["avg_satisfaction_90d"] <= limit


def _low_satisfaction_reasons(num: pd.DataFrame, rules: Rules) -> pd.Series:
    days, score = fmt(rules.profile.recent_days), _texts(num["avg_satisfaction_90d"])
    return (
        f"近 {days} 天平均满意度 "
        + score
        + " 分（满分 5） / "
        + "average satisfaction "
        + score
        + f" of 5 in the last {days} days"
    )


def _low_p_alive_fires(num: pd.DataFrame, rules: Rules) -> pd.Series:
    rule = rules.churn.signals.low_p_alive
    return (num["purchase_days"] >= rule.min_purchase_days) & (num["p_alive"] < rule.max_p_alive)


def _low_p_alive_reasons(num: pd.DataFrame, rules: Rules) -> pd.Series:
    # np.round halves to even, as Python's round() does
    percent = _texts(np.round(num["p_alive"] * 100))
    return (
        "模型估计仍为活跃客户的概率仅 "
        + percent
        + "% / "
        + "model puts the chance the customer is still active at "
        + percent
        + "%"
    )


def _neglected_key_account_fires(num: pd.DataFrame, rules: Rules) -> pd.Series:
    limit = rules.churn.signals.neglected_key_account.no_outbound_days
    days = num["last_outbound_days"]
    # "No outbound interaction in the last N days": none at all, or the latest is >= N days ago.
    return num["is_key_account"] & (days.isna() | (days >= limit))


def _neglected_key_account_reasons(num: pd.DataFrame, rules: Rules) -> pd.Series:
    days = _texts(num["last_outbound_days"])
    contacted = (
        "大客户，已 "
        + days
        + " 天未主动联系 / "
        + "key account, no outbound contact for "
        + days
        + " days"
    )
    never = "大客户，从未主动联系 / key account, never contacted by us"
    return contacted.where(num["last_outbound_days"].notna(), never)


# In the order of domain.md §4's table: `signals` and `reasons` list them in this order.
SIGNALS: tuple[Signal, ...] = (
    Signal("overdue", _overdue_fires, _overdue_reasons),
    Signal("frequency_drop", _frequency_drop_fires, _frequency_drop_reasons),
    Signal("spend_drop", _spend_drop_fires, _spend_drop_reasons),
    Signal("complaints", _complaints_fires, _complaints_reasons),
    Signal("low_satisfaction", _low_satisfaction_fires, _low_satisfaction_reasons),
    Signal("low_p_alive", _low_p_alive_fires, _low_p_alive_reasons),
    Signal("neglected_key_account", _neglected_key_account_fires, _neglected_key_account_reasons),
)


def _numeric_inputs(scored: pd.DataFrame) -> pd.DataFrame:
    """The measures as floats (NaN = null) plus the key-account flag, one row per customer."""
    num = pd.DataFrame({name: _number(scored[name]) for name in NUMERIC_INPUTS})
    num["is_key_account"] = _flag(scored["is_key_account"])
    return num


def score_churn(frame: pd.DataFrame, rules: Rules, as_of: date) -> pd.DataFrame:
    """`marts.churn_risk` for one as_of: a row per customer whose stage is scored.

    risk_score = min(max_score, sum of the weights of the fired signals); risk_level from the
    rules' level bands; `signals` comma-separated and `reasons` one per line, both in table order.
    """
    scored = frame.loc[frame["stage"].isin(rules.churn.scored_stages)].reset_index(drop=True)
    num = _numeric_inputs(scored)
    fired_by_signal = [
        (signal, signal.fires(num, rules).fillna(False).to_numpy(dtype=bool)) for signal in SIGNALS
    ]
    score = np.zeros(len(scored), dtype="int64")
    signals = np.full(len(scored), "", dtype=object)
    reasons = np.full(len(scored), "", dtype=object)
    for signal, fired in fired_by_signal:
        score += np.where(fired, getattr(rules.churn.signals, signal.name).weight, 0)
        if not fired.any():
            continue
        index = np.flatnonzero(fired)
        texts = signal.reasons(num.iloc[index], rules).to_numpy(dtype=object)
        held, said = signals[index], reasons[index]
        signals[index] = np.where(held == "", signal.name, held + "," + signal.name)
        reasons[index] = np.where(said == "", texts, said + "\n" + texts)
    risk_score = np.minimum(score, rules.churn.max_score)
    levels = {int(s): rules.churn.level(int(s)) for s in np.unique(risk_score)}
    result = pd.DataFrame(
        {
            "customer_id": scored["customer_id"].astype(str),
            "as_of": pd.Series([as_of] * len(scored), dtype="object"),
            "risk_score": pd.Series(risk_score, dtype="int64"),
            "risk_level": [levels[s] for s in risk_score.tolist()],
            "p_alive": num["p_alive"],
            "expected_orders_90d": _number(scored["expected_orders_90d"]),
            "signals": list(signals),
            "reasons": list(reasons),
        }
    )
    return result.sort_values("customer_id", kind="stable").reset_index(drop=True)[
        CHURN_RISK_COLUMNS
    ]
