"""Check outcomes of a run, kept in `quality.check_results` so later steps can read them.

Why a table and not only Dagster events: the alert gate (and a user with a SQL client) must know
which checks failed in *this* run without talking to the Dagster instance. Grain: run × check ×
asset; a re-executed check replaces its own row. Consumers: the alert gate
(`blocking_failures`), BI (published with the other quality tables if the lead lists it).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import duckdb

CHECK_RESULTS_TABLE = "quality.check_results"

CHECK_RESULTS_DDL = f"""CREATE TABLE IF NOT EXISTS {CHECK_RESULTS_TABLE} (
    run_id VARCHAR, check_name VARCHAR, asset VARCHAR, passed BOOLEAN, blocking BOOLEAN,
    severity VARCHAR, message VARCHAR, checked_at TIMESTAMP
)"""

ERROR = "ERROR"
WARN = "WARN"


@dataclass(frozen=True)
class CheckOutcome:
    """What one check found: the verdict, one sentence for people, details for the UI."""

    passed: bool
    message: str
    metadata: dict[str, Any] = field(default_factory=dict)


def ensure_check_results(con: duckdb.DuckDBPyConnection) -> None:
    con.execute("CREATE SCHEMA IF NOT EXISTS quality")
    con.execute(CHECK_RESULTS_DDL)


def record_check(
    con: duckdb.DuckDBPyConnection,
    *,
    run_id: str,
    check_name: str,
    asset: str,
    passed: bool,
    blocking: bool,
    severity: str,
    message: str,
    checked_at: datetime | None = None,
) -> None:
    """Stores one outcome; re-running the same check in the same run replaces its row."""
    ensure_check_results(con)
    when = checked_at or datetime.now(UTC).replace(tzinfo=None)
    con.execute(
        f"DELETE FROM {CHECK_RESULTS_TABLE} WHERE run_id = ? AND check_name = ? AND asset = ?",
        [run_id, check_name, asset],
    )
    con.execute(
        f"INSERT INTO {CHECK_RESULTS_TABLE} VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        [run_id, check_name, asset, passed, blocking, severity, message, when],
    )


def _table_exists(con: duckdb.DuckDBPyConnection) -> bool:
    return bool(
        con.execute(
            "SELECT count(*) FROM information_schema.tables "
            "WHERE table_schema = 'quality' AND table_name = 'check_results'"
        ).fetchone()[0]
    )


def blocking_failures(con: duckdb.DuckDBPyConnection, run_id: str) -> list[str]:
    """`<asset> <check>: <message>` for every failed blocking ERROR check of the run."""
    return _failures(con, run_id, blocking_only=True)


def failed_checks(con: duckdb.DuckDBPyConnection, run_id: str) -> list[str]:
    """Every failed check of the run, warnings (e.g. stale feeds) included."""
    return _failures(con, run_id, blocking_only=False)


def _failures(con: duckdb.DuckDBPyConnection, run_id: str, *, blocking_only: bool) -> list[str]:
    if not _table_exists(con):
        return []
    condition = f"AND blocking AND severity = '{ERROR}'" if blocking_only else ""
    rows = con.execute(
        f"""SELECT asset, check_name, message FROM {CHECK_RESULTS_TABLE}
            WHERE run_id = ? AND NOT passed {condition}
            ORDER BY asset, check_name""",
        [run_id],
    ).fetchall()
    return [f"{asset} {check_name}: {message}" for asset, check_name, message in rows]
