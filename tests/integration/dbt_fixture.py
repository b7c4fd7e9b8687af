"""Helpers for tests that run the dbt project against a throw-away warehouse.

Why: each dbt invocation costs several seconds, so a test session builds one small hand-made
warehouse, runs `dbt build` once and lets every test read the marts it produced. Raw rows are
written the way ingest writes them (`crm.warehouse.ensure_schema` tables, naive UTC timestamps,
`_load_seq` in load order), so the dbt models see exactly what production hands them.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Mapping, Sequence
from datetime import date
from pathlib import Path
from typing import Any

import duckdb

from crm.rules import Rules
from crm.schemas import ENTITY_BY_NAME
from crm.warehouse import ensure_schema, raw_table_columns

REPO_ROOT = Path(__file__).resolve().parents[2]
DBT_PROJECT_DIR = REPO_ROOT / "dbt_project"
VENV_BIN = REPO_ROOT / ".venv" / "bin"
DBT_EXECUTABLE = VENV_BIN / "dbt"

RawRows = Mapping[str, Sequence[Mapping[str, Any]]]


def write_raw_rows(warehouse: Path, rows_by_entity: RawRows) -> None:
    """Create the ingest tables and append the given rows, entity by entity.

    Rows of one entity are loaded in the order given, with `_load_seq` rising across the whole
    call (like the loader's global sequence), so a later row of the same id is its current
    version. Columns a row leaves out are NULL.
    """
    con = duckdb.connect(str(warehouse))
    try:
        ensure_schema(con)
        load_seq = 0
        for entity_name, rows in rows_by_entity.items():
            table_columns = {name for name, _ in raw_table_columns(ENTITY_BY_NAME[entity_name])}
            for row in rows:
                load_seq += 1
                record = {**row, "_load_seq": load_seq}
                unknown = set(record) - table_columns
                if unknown:
                    raise KeyError(f"raw.{entity_name} has no columns {sorted(unknown)}")
                names = ", ".join(f'"{name}"' for name in record)
                placeholders = ", ".join("?" for _ in record)
                con.execute(
                    f"INSERT INTO raw.{entity_name} ({names}) VALUES ({placeholders})",
                    list(record.values()),
                )
    finally:
        con.close()


def dbt_vars(as_of: date, timezone: str, rules: Rules) -> str:
    """The `--vars` JSON of a run by hand: as_of, timezone and the rules subset dbt reads.
    (Dagster passes as_of through CRM_DBT_RUN_VARS instead: tests/integration/test_dbt_run_vars.py.)"""
    return json.dumps(
        {"as_of": as_of.isoformat(), "timezone": timezone, "crm": rules.dbt_vars()},
        ensure_ascii=False,
    )


def run_dbt(
    args: Sequence[str],
    warehouse: Path,
    target_dir: Path,
    extra_env: Mapping[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run the venv's dbt on the project with CRM_WAREHOUSE pointing at `warehouse`.

    Artefacts and logs go to `target_dir`, so tests never touch the project's own `target/`
    (which `dagster dev` or another session may be using). CRM_DBT_RUN_VARS is passed only when
    `extra_env` sets it, so a value left in the test process never reaches dbt unasked.
    """
    env = {
        **{k: v for k, v in os.environ.items() if k != "CRM_DBT_RUN_VARS"},
        "CRM_WAREHOUSE": str(warehouse),
        "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
        **(extra_env or {}),
    }
    command = [
        str(DBT_EXECUTABLE),
        *args,
        "--project-dir",
        str(DBT_PROJECT_DIR),
        "--profiles-dir",
        str(DBT_PROJECT_DIR),
        "--target-path",
        str(target_dir / "target"),
        "--log-path",
        str(target_dir / "logs"),
    ]
    return subprocess.run(command, env=env, capture_output=True, text=True, check=False)


def read_manifest(target_dir: Path) -> dict[str, Any]:
    return json.loads((target_dir / "target" / "manifest.json").read_text(encoding="utf-8"))


def fetch_rows(warehouse: Path, sql: str) -> list[dict[str, Any]]:
    """Rows of a query on the warehouse file (read-only), as dicts keyed by column name."""
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        cursor = con.execute(sql)
        names = [column[0] for column in cursor.description]
        return [dict(zip(names, values, strict=True)) for values in cursor.fetchall()]
    finally:
        con.close()
