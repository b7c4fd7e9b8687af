"""The alert planner's cooldown and rerun rules as they were written per row before
`crm.alerts.plan_alerts` decided them for all candidates at once (kept verbatim as a test
oracle: tests/unit/test_alerts.py compares both on random outboxes)."""

from __future__ import annotations

from datetime import date

import pandas as pd

from crm.alerts import COOLDOWN_STATUSES, LEVEL_RANK, _candidates, alert_id_for
from crm.rules import Rules

History = dict[str, list[tuple[date, str]]]


def blocking_history(outbox: pd.DataFrame | None) -> History:
    """customer_id -> (as_of, risk_level) of its previous alerts that can start a cooldown."""
    history: History = {}
    if outbox is None or outbox.empty:
        return history
    blocking = outbox.loc[outbox["status"].isin(COOLDOWN_STATUSES)]
    dates = pd.to_datetime(blocking["as_of"]).dt.date
    for customer_id, as_of, level in zip(
        blocking["customer_id"].astype(str), dates, blocking["risk_level"], strict=True
    ):
        history.setdefault(customer_id, []).append((as_of, str(level)))
    return history


def in_cooldown(previous: list[tuple[date, str]], level: str, as_of: date, rules: Rules) -> bool:
    window = [
        prev_level
        for prev_as_of, prev_level in previous
        if 0 <= (as_of - prev_as_of).days < rules.alerts.cooldown_days
    ]
    if not window:
        return False
    return LEVEL_RANK.get(level, 0) <= max(LEVEL_RANK.get(lvl, 0) for lvl in window)


def alerted_customers(
    risk: pd.DataFrame, customers: pd.DataFrame, outbox: pd.DataFrame, as_of: date, rules: Rules
) -> list[str]:
    """Who gets a new alert on as_of, decided one candidate at a time on the whole outbox."""
    existing_ids = set(outbox["alert_id"]) if not outbox.empty else set()
    history = blocking_history(outbox)
    chosen = []
    for candidate in _candidates(risk, customers, rules).itertuples(index=False):
        customer_id = str(candidate.customer_id)
        if alert_id_for(customer_id, as_of) in existing_ids:
            continue
        if in_cooldown(history.get(customer_id, []), candidate.risk_level, as_of, rules):
            continue
        chosen.append(customer_id)
    return sorted(chosen)
