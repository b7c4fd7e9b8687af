"""A rerun with nothing new ends after ingest; any change, or --force, runs everything
(crm/run_state.py). Runs the real `customer_daily` job on the hand-made world."""

from __future__ import annotations

import logging

import duckdb
import pytest

from pipelines.log_filters import DAGSTER_PLAN_LOGGER
from tests.integration.world import AS_OF, build_world

pytestmark = pytest.mark.integration


def _run(env: dict[str, str], *args: str) -> tuple[int, str]:
    """pipelines.run as a user calls it; returns the exit code and what it printed."""
    import contextlib
    import io

    from pipelines.run import main

    out = io.StringIO()
    with pytest.MonkeyPatch.context() as mp:
        for key, value in env.items():
            mp.setenv(key, value)
        mp.delenv("SMTP_HOST", raising=False)
        with contextlib.redirect_stdout(out):
            code = main(list(args))
    return code, out.getvalue()


def _completed_runs(env: dict[str, str]) -> int:
    with duckdb.connect(env["CRM_WAREHOUSE"], read_only=True) as con:
        return con.execute("SELECT count(*) FROM meta.completed_runs").fetchone()[0]


def _profile_built_at(env: dict[str, str]) -> float:
    """mtime of the published analytics file: it is rewritten by every publication."""
    from pathlib import Path

    return (Path(env["CRM_PUBLISH_DIR"]) / "analytics.duckdb").stat().st_mtime_ns


SKIPPED = "Nothing changed since the last complete run"


def _verified_behind(env: dict[str, str]) -> dict[str, int]:
    """Per checked subject: how many raw rows lie above its verified watermark (0 = all
    verified; quality/verified.py and dbt_project/macros/verified.sql)."""
    with duckdb.connect(env["CRM_WAREHOUSE"], read_only=True) as con:
        rows = con.execute(
            "SELECT subject, load_seq FROM meta.verified_through ORDER BY subject"
        ).fetchall()
        return {
            subject: con.execute(
                f"SELECT count(*) FROM raw.{entity} WHERE _load_seq > ?",
                [since],
            ).fetchone()[0]
            for subject, since in rows
            for entity in [_ENTITY_OF.get(subject.split(".")[1], subject.split(".")[1])]
        }


_ENTITY_OF = {
    "stg_shop__orders": "orders",
    "stg_shop__payments": "payments",
    "stg_crm__interactions": "interactions",
}
EVERY_SUBJECT = {
    *(f"raw.{e}" for e in ("customers", "sales_reps", "orders", "payments", "interactions")),
    *(f"staging.{m}" for m in _ENTITY_OF),
}


def test_rerun_without_changes_skips_then_changes_and_force_run_everything(tmp_path, caplog):
    env = build_world(tmp_path)
    code, out = _run(env, "--as-of", AS_OF)
    assert code == 0 and SKIPPED not in out
    assert _completed_runs(env) == 1
    published_at = _profile_built_at(env)
    # raw checks and staging tests passed: every subject verified up to its newest row
    assert _verified_behind(env) == dict.fromkeys(EVERY_SUBJECT, 0)

    # Same as_of, same data, same rules: later steps are skipped, the publication is untouched.
    caplog.clear()
    with caplog.at_level(logging.DEBUG, logger=DAGSTER_PLAN_LOGGER):
        code, out = _run(env, "--as-of", AS_OF)
    assert code == 0
    assert SKIPPED in out
    # Dagster's "blocking check emitted no result … will proceed without gating" for the skipped
    # check steps: kept for debugging, but no warning (pipelines/log_filters.py)
    notices = [r for r in caplog.records if "emitted no result" in r.getMessage()]
    assert notices, "Dagster no longer logs the notice: drop pipelines/log_filters.py"
    assert {r.levelno for r in notices} == {logging.DEBUG}
    assert _profile_built_at(env) == published_at
    assert _completed_runs(env) == 1

    # --force recomputes and publishes again.
    code, out = _run(env, "--as-of", AS_OF, "--force")
    assert code == 0 and SKIPPED not in out
    assert _profile_built_at(env) != published_at
    assert _completed_runs(env) == 2

    # Another as_of is another computation (recency moves even without new data).
    code, out = _run(env, "--as-of", "2026-07-01")
    assert code == 0 and SKIPPED not in out
    assert _completed_runs(env) == 3

    # A rules change (CRM_RULES) is a change too.
    rules = tmp_path / "rules.yaml"
    rules.write_text("lifecycle:\n  new_customer_days: 60\n", encoding="utf-8")
    code, out = _run({**env, "CRM_RULES": str(rules)}, "--as-of", "2026-07-01")
    assert code == 0 and SKIPPED not in out

    # New source data is a change: one more order for a known customer in the database.
    import sqlite3

    db = env["CRM_SOURCE_DB_URL"].removeprefix("sqlite:///")
    with sqlite3.connect(db) as conn:
        columns = [r[1] for r in conn.execute("PRAGMA table_info(orders)")]
        row = dict(
            zip(columns, conn.execute("SELECT * FROM orders LIMIT 1").fetchone(), strict=True)
        )
        row["order_id"] = "O-NEW-1"
        row["updated_at"] = "2026-07-06 09:00:00"  # after the newest change read (O11, 07-05)
        conn.execute(
            f"INSERT INTO orders ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})",
            list(row.values()),
        )
    code, out = _run({**env, "CRM_RULES": str(rules)}, "--as-of", "2026-07-01")
    assert code == 0 and SKIPPED not in out
    # the new order was checked (raw) and tested (staging), so the watermarks moved past it
    assert _verified_behind(env) == dict.fromkeys(EVERY_SUBJECT, 0)
    with duckdb.connect(env["CRM_WAREHOUSE"], read_only=True) as con:
        assert (
            con.execute("SELECT count(*) FROM raw.orders WHERE order_id = 'O-NEW-1'").fetchone()[0]
            == 1
        )


def test_pending_alerts_are_retried_not_skipped(tmp_path):
    """An alert left pending (mail server down at the last run) must be tried again."""
    env = build_world(tmp_path)
    assert _run(env, "--as-of", AS_OF)[0] == 0
    with duckdb.connect(env["CRM_WAREHOUSE"]) as con:
        changed = con.execute(
            "UPDATE marts.churn_alerts SET status = 'pending' WHERE alert_id IN "
            "(SELECT alert_id FROM marts.churn_alerts LIMIT 1)"
        ).fetchone()[0]
    assert changed == 1
    code, out = _run(env, "--as-of", AS_OF)
    assert code == 0 and SKIPPED not in out
    with duckdb.connect(env["CRM_WAREHOUSE"], read_only=True) as con:
        pending = con.execute(
            "SELECT count(*) FROM marts.churn_alerts WHERE status = 'pending'"
        ).fetchone()[0]
    assert pending == 0
