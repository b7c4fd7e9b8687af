"""The alert outbox `marts.churn_alerts` (domain.md §5, contract §4): one row per alert key.

Why an outbox table in the warehouse and not "send while scoring": delivery can fail (SMTP down,
4xx), a data-quality gate can stop it, and a run can crash half-way. The outbox keeps every alert
with its delivery state across runs, so a failed attempt is retried by the next run and nothing
is sent twice for one alert key (customer_id, as_of). Consumers: crm.alerts (plans new rows),
crm.mailer (delivers pending rows) and BI (the published table).

Statuses: `pending` -> `sent` | `failed` (after rules.alerts.max_attempts attempts) | `suppressed`
(a blocking quality gate failed; final, the reason is in status_reason and last_error).
Every state change is a single UPDATE, i.e. its own transaction, guarded by `status = 'pending'`.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime

import duckdb
import pandas as pd

OUTBOX_TABLE = "marts.churn_alerts"

PENDING, SENT, FAILED, SUPPRESSED = "pending", "sent", "failed", "suppressed"

# Column -> DuckDB type, in table order: the contract columns first, then our own.
OUTBOX_COLUMNS: dict[str, str] = {
    "alert_id": "VARCHAR PRIMARY KEY",
    "customer_id": "VARCHAR NOT NULL",
    "as_of": "DATE NOT NULL",
    "risk_level": "VARCHAR NOT NULL",
    "risk_score": "INTEGER NOT NULL",
    "reasons": "VARCHAR",
    "suggested_action": "VARCHAR NOT NULL",
    "suggested_action_label": "VARCHAR NOT NULL",
    "recipient": "VARCHAR NOT NULL",
    "cc": "VARCHAR",  # comma-separated addresses, null when none
    "status": "VARCHAR NOT NULL",
    "attempts": "INTEGER NOT NULL",
    "last_error": "VARCHAR",
    "sent_at": "TIMESTAMP",  # UTC
    "customer_name": "VARCHAR",
    "stage": "VARCHAR",
    "value_tier": "VARCHAR",
    "is_key_account": "BOOLEAN",
    "owner_rep_id": "VARCHAR",
    "signals": "VARCHAR",
    "status_reason": "VARCHAR",
    "digest_id": "VARCHAR",
    "message_id": "VARCHAR",
    "created_at": "TIMESTAMP",  # UTC
    "created_run_id": "VARCHAR",
    "last_attempt_at": "TIMESTAMP",  # UTC
    "last_run_id": "VARCHAR",
}


def ensure_outbox(con: duckdb.DuckDBPyConnection) -> None:
    """Create the outbox when missing; never drops it (it carries state between runs)."""
    con.execute("CREATE SCHEMA IF NOT EXISTS marts")
    body = ",\n  ".join(f"{name} {type_}" for name, type_ in OUTBOX_COLUMNS.items())
    con.execute(f"CREATE TABLE IF NOT EXISTS {OUTBOX_TABLE} (\n  {body}\n)")


def read_outbox(
    con: duckdb.DuckDBPyConnection,
    status: str | None = None,
    *,
    since: date | None = None,
    until: date | None = None,
) -> pd.DataFrame:
    """All alerts (or those in one status, or with as_of from `since` to `until`, both
    included), oldest first."""
    columns = ", ".join(OUTBOX_COLUMNS)
    conditions, params = [], []
    for condition, value in (("status = ?", status), ("as_of >= ?", since), ("as_of <= ?", until)):
        if value is not None:
            conditions.append(condition)
            params.append(value)
    where = f"WHERE {' AND '.join(conditions)}" if conditions else ""
    return con.execute(
        f"SELECT {columns} FROM {OUTBOX_TABLE} {where} ORDER BY as_of, customer_id", params
    ).df()


def insert_alerts(con: duckdb.DuckDBPyConnection, alerts: pd.DataFrame) -> int:
    """Add new alert rows; an alert_id already present is left untouched. Returns rows added."""
    if alerts.empty:
        return 0
    present = [c for c in OUTBOX_COLUMNS if c in alerts.columns]
    before = _count(con)
    con.register("_new_alerts", alerts[present])
    try:
        names = ", ".join(present)
        con.execute(
            f"INSERT INTO {OUTBOX_TABLE} ({names}) SELECT {names} FROM _new_alerts "
            "ON CONFLICT DO NOTHING"
        )
    finally:
        con.unregister("_new_alerts")
    return _count(con) - before


def _count(con: duckdb.DuckDBPyConnection) -> int:
    return int(con.execute(f"SELECT count(*) FROM {OUTBOX_TABLE}").fetchone()[0])


def _ids_clause(alert_ids: Sequence[str]) -> str:
    return ", ".join("?" for _ in alert_ids)


def mark_sent(
    con: duckdb.DuckDBPyConnection,
    alert_ids: Sequence[str],
    *,
    sent_at: datetime,
    digest_id: str,
    message_id: str,
    run_id: str,
    note: str | None = None,
) -> None:
    """Record a delivered digest at once (one statement = one commit) so a crash later in the
    run cannot make the next run send these alerts again."""
    if not alert_ids:
        return
    con.execute(
        f"""UPDATE {OUTBOX_TABLE}
            SET status = '{SENT}', sent_at = ?, attempts = attempts + 1, digest_id = ?,
                message_id = ?, last_attempt_at = ?, last_run_id = ?, status_reason = ?
            WHERE status = '{PENDING}' AND alert_id IN ({_ids_clause(alert_ids)})""",
        [sent_at, digest_id, message_id, sent_at, run_id, note, *alert_ids],
    )


def mark_attempt_failed(
    con: duckdb.DuckDBPyConnection,
    alert_ids: Sequence[str],
    *,
    error: str,
    max_attempts: int,
    attempted_at: datetime,
    digest_id: str,
    message_id: str,
    run_id: str,
) -> None:
    """Count one failed delivery attempt; at max_attempts the alert becomes `failed`."""
    if not alert_ids:
        return
    con.execute(
        f"""UPDATE {OUTBOX_TABLE}
            SET attempts = attempts + 1, last_error = ?, last_attempt_at = ?, last_run_id = ?,
                digest_id = ?, message_id = ?,
                status = CASE WHEN attempts + 1 >= ? THEN '{FAILED}' ELSE '{PENDING}' END,
                status_reason = CASE WHEN attempts + 1 >= ?
                    THEN 'gave up after ' || (attempts + 1) || ' attempts' END
            WHERE status = '{PENDING}' AND alert_id IN ({_ids_clause(alert_ids)})""",
        [
            error,
            attempted_at,
            run_id,
            digest_id,
            message_id,
            max_attempts,
            max_attempts,
            *alert_ids,
        ],
    )


def suppress_pending(con: duckdb.DuckDBPyConnection, reason: str, run_id: str) -> int:
    """Stop every pending alert (a blocking quality gate failed); returns how many."""
    count = int(
        con.execute(f"SELECT count(*) FROM {OUTBOX_TABLE} WHERE status = '{PENDING}'").fetchone()[0]
    )
    con.execute(
        f"""UPDATE {OUTBOX_TABLE}
            SET status = '{SUPPRESSED}', status_reason = ?, last_error = ?, last_run_id = ?
            WHERE status = '{PENDING}'""",
        [reason, reason, run_id],
    )
    return count


def status_counts(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    """Alerts per status over the whole outbox (for run metadata and reports)."""
    rows = con.execute(f"SELECT status, count(*) FROM {OUTBOX_TABLE} GROUP BY status").fetchall()
    return {status: int(n) for status, n in rows}


def statuses_of(con: duckdb.DuckDBPyConnection, alert_ids: Sequence[str]) -> dict[str, str]:
    """alert_id -> current status, for the given ids."""
    if not alert_ids:
        return {}
    rows = con.execute(
        f"SELECT alert_id, status FROM {OUTBOX_TABLE} WHERE alert_id IN ({_ids_clause(alert_ids)})",
        list(alert_ids),
    ).fetchall()
    return dict(rows)
