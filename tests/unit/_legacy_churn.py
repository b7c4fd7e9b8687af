"""FROZEN per-row churn reasons (before vectorisation), kept only as the oracle of
tests/unit/test_churn.py: every fired customer's reason sentence, built from one row of floats.
"""

from __future__ import annotations

import pandas as pd

from crm.churn import QUARTERS_PER_YEAR, fmt
from crm.rules import Rules

Row = dict[str, float]


def _overdue_reason(row: Row, rules: Rules) -> str:
    recency, gap = fmt(row["recency_days"]), row["median_gap_days"]
    if pd.isna(gap):
        limit = fmt(rules.churn.signals.overdue.default_days)
        return (
            f"{recency} 天未下单（超过 {limit} 天） / "
            f"{recency} days since last order (more than {limit})"
        )
    return (
        f"{recency} 天未下单，通常每 {fmt(gap)} 天下单一次 / "
        f"{recency} days since last order, usually every {fmt(gap)} days"
    )


def _frequency_drop_reason(row: Row, rules: Rules) -> str:
    recent = fmt(row["orders_90d"])
    per_quarter = fmt(row["orders_prior_year"] / QUARTERS_PER_YEAR)
    return (
        f"近一季度 {recent} 单，前一年平均每季度 {per_quarter} 单 / "
        f"{recent} orders last quarter, {per_quarter} per quarter the year before"
    )


def _spend_drop_reason(row: Row, rules: Rules) -> str:
    recent = fmt(row["revenue_90d"])
    per_quarter = fmt(row["revenue_prior_year"] / QUARTERS_PER_YEAR)
    return (
        f"近一季度消费 {recent} 元，前一年平均每季度 {per_quarter} 元 / "
        f"spent {recent} last quarter, {per_quarter} per quarter the year before"
    )


def _complaints_reason(row: Row, rules: Rules) -> str:
    days, count = fmt(rules.profile.recent_days), fmt(row["complaints_90d"])
    return f"近 {days} 天投诉 {count} 次 / {count} complaints in the last {days} days"


def _low_satisfaction_reason(row: Row, rules: Rules) -> str:
    days, score = fmt(rules.profile.recent_days), fmt(row["avg_satisfaction_90d"])
    return (
        f"近 {days} 天平均满意度 {score} 分（满分 5） / "
        f"average satisfaction {score} of 5 in the last {days} days"
    )


def _low_p_alive_reason(row: Row, rules: Rules) -> str:
    percent = fmt(round(row["p_alive"] * 100))
    return (
        f"模型估计仍为活跃客户的概率仅 {percent}% / "
        f"model puts the chance the customer is still active at {percent}%"
    )


def _neglected_key_account_reason(row: Row, rules: Rules) -> str:
    days = row["last_outbound_days"]
    if pd.isna(days):
        return "大客户，从未主动联系 / key account, never contacted by us"
    return (
        f"大客户，已 {fmt(days)} 天未主动联系 / "
        f"key account, no outbound contact for {fmt(days)} days"
    )


REASONS = {
    "overdue": _overdue_reason,
    "frequency_drop": _frequency_drop_reason,
    "spend_drop": _spend_drop_reason,
    "complaints": _complaints_reason,
    "low_satisfaction": _low_satisfaction_reason,
    "low_p_alive": _low_p_alive_reason,
    "neglected_key_account": _neglected_key_account_reason,
}
