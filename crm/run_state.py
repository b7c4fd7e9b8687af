"""Has anything that decides a run's outputs changed since the last complete run?

Why: a rerun with nothing new — same as_of, rules, aliases, settings, code and source data —
would recompute exactly the tables it already published; at a million customers that is minutes
of work for nothing. The last step of a successful run records a fingerprint of everything its
outputs depend on (`record_completed`); the ingest step of the next run, once it has loaded
whatever is new, computes the same fingerprint and, when it is equal and no alert is still
waiting for delivery, ends the run there: the later steps show as skipped. The run tag
`crm/force=true` (or `python -m pipelines.run --force`) always runs everything.

What goes in (any change means "run everything"):
- as_of; the rules, aliases and settings (the SMTP password only as a hash);
- the code: contents of the Python, SQL and YAML files of the pipeline (crm, assets, quality,
  pipelines, dbt models and macros);
- the warehouse's source state: row count and highest `_load_seq` of every raw table and
  waiting-orphan table, and the number of rejected rows.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Collection, Sequence
from dataclasses import asdict
from datetime import date, datetime
from pathlib import Path
from typing import Any

import duckdb

from crm.ingest.aliases import Aliases
from crm.outbox import OUTBOX_TABLE, PENDING
from crm.rules import Rules
from crm.schemas import ENTITIES
from crm.settings import Settings

FORCE_TAG = "crm/force"
ROOT = Path(__file__).resolve().parents[1]
CODE_DIRS = ("crm", "assets", "quality", "pipelines", "dbt_project/models", "dbt_project/macros")
CODE_SUFFIXES = {".py", ".sql", ".yml", ".yaml"}

COMPLETED_RUNS_DDL = """CREATE TABLE IF NOT EXISTS meta.completed_runs (
    run_id VARCHAR, as_of DATE, fingerprint VARCHAR, completed_at TIMESTAMP
)"""


def is_forced(tags: dict[str, str]) -> bool:
    """The run is tagged to recompute everything (and to check whole tables again)."""
    return (tags.get(FORCE_TAG) or "").strip().lower() in ("1", "true", "yes")


def content_hash(
    root: Path, entries: Sequence[str], suffixes: Collection[str] | None = None
) -> str:
    """SHA-256 of the files under `entries` (folders or files, relative to `root`): each file's
    relative path and bytes, in a fixed order; `suffixes` keeps only those file types.

    Why one function: the run fingerprint (`code_hash`) and the staging tests' definitions
    (assets/dbt.py) must both change exactly when a file they cover changes, and skip the same
    things (`__pycache__`, folders that do not exist)."""
    digest = hashlib.sha256()
    for entry in entries:
        base = root / entry
        paths = [base] if base.is_file() else sorted(base.rglob("*")) if base.is_dir() else []
        for path in paths:
            if not path.is_file() or "__pycache__" in path.parts:
                continue
            if suffixes is not None and path.suffix not in suffixes:
                continue
            digest.update(path.relative_to(root).as_posix().encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()


def code_hash(root: Path = ROOT) -> str:
    """Content hash of the pipeline's own source files (not data, not the virtualenv)."""
    return content_hash(root, CODE_DIRS, CODE_SUFFIXES)


def _settings_view(settings: Settings) -> dict[str, Any]:
    view = asdict(settings)
    smtp = view.get("smtp") or {}
    if smtp.get("password"):
        smtp["password"] = hashlib.sha256(str(smtp["password"]).encode()).hexdigest()
    view.pop("as_of", None)  # the run's as_of is its own entry
    return view


def source_state(con: duckdb.DuckDBPyConnection) -> dict[str, list[int]]:
    """Row count and highest _load_seq per raw table, and the rejected-row count."""
    tables = [f"raw.{e.name}" for e in ENTITIES]
    tables += [f"raw.{e.name}_orphans" for e in ENTITIES if e.parent]
    state: dict[str, list[int]] = {}
    for table in tables:
        count, top = con.execute(
            f"SELECT count(*), coalesce(max(_load_seq), 0) FROM {table}"
        ).fetchone()
        state[table] = [int(count), int(top)]
    state["quality.rejected_rows"] = [
        int(con.execute("SELECT count(*) FROM quality.rejected_rows").fetchone()[0])
    ]
    return state


def fingerprint(
    con: duckdb.DuckDBPyConnection,
    *,
    settings: Settings,
    rules: Rules,
    aliases: Aliases,
    as_of: date,
) -> str:
    """One hash of everything a run's outputs depend on (see the module docstring)."""
    payload = {
        "as_of": as_of.isoformat(),
        "rules": json.loads(rules.model_dump_json()),
        "aliases": {"headers": aliases.headers, "values": aliases.values},
        "settings": _settings_view(settings),
        "code": code_hash(),
        "sources": source_state(con),
    }
    text = json.dumps(payload, sort_keys=True, default=str, ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def record_completed(con: duckdb.DuckDBPyConnection, run_id: str, as_of: date, value: str) -> None:
    con.execute(COMPLETED_RUNS_DDL)
    con.execute(
        "INSERT INTO meta.completed_runs VALUES (?, ?, ?, ?)",
        [run_id, as_of, value, datetime.now()],
    )


def last_completed(con: duckdb.DuckDBPyConnection) -> tuple[str, str] | None:
    """(run_id, fingerprint) of the latest complete run, if any."""
    con.execute(COMPLETED_RUNS_DDL)
    row = con.execute(
        "SELECT run_id, fingerprint FROM meta.completed_runs ORDER BY completed_at DESC LIMIT 1"
    ).fetchone()
    return (row[0], row[1]) if row else None


def undelivered_alerts(con: duckdb.DuckDBPyConnection) -> int:
    """Alerts still pending delivery: a rerun must try them again, so it cannot be skipped."""
    exists = con.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE schema_name = ? AND table_name = ?",
        OUTBOX_TABLE.split("."),
    ).fetchone()[0]
    if not exists:
        return 0
    return int(
        con.execute(f"SELECT count(*) FROM {OUTBOX_TABLE} WHERE status = ?", [PENDING]).fetchone()[
            0
        ]
    )


def unchanged_since(
    con: duckdb.DuckDBPyConnection,
    *,
    settings: Settings,
    rules: Rules,
    aliases: Aliases,
    as_of: date,
) -> str | None:
    """The run_id of the last complete run when nothing has changed since; else None."""
    last = last_completed(con)
    if last is None or undelivered_alerts(con):
        return None
    current = fingerprint(con, settings=settings, rules=rules, aliases=aliases, as_of=as_of)
    return last[0] if current == last[1] else None
