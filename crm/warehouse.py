"""The working warehouse (a DuckDB file): connections and the tables ingest owns.

Schemas: `raw` (typed source rows with load metadata, full history), `quality` (rejected rows,
load audit), `meta` (load bookkeeping), `marts` (dbt and Python outputs). One writer at a time:
callers open a connection, do their work and close it before dbt or another asset runs.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb

from crm.schemas import DUCKDB_TYPES, ENTITIES, META_COLUMNS, Entity


def sql_literal(text: str) -> str:
    """`text` as a DuckDB string literal, for SQL built from names and values this code controls
    (ids of a run, file names, rule values); data values go in as parameters or Arrow tables."""
    return "'" + text.replace("'", "''") + "'"


# Memory and spill settings keep a 1M-customer run inside a few GiB on a 2-core machine.
DEFAULT_MEMORY_LIMIT = "2500MB"


@contextmanager
def connect(path: Path | str, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
    path = Path(path)
    if not read_only:
        path.parent.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(str(path), read_only=read_only)
    try:
        con.execute(f"SET memory_limit = '{DEFAULT_MEMORY_LIMIT}'")
        if not read_only:
            spill = path.parent / ".duckdb_tmp"
            con.execute(f"SET temp_directory = '{spill.as_posix()}'")
        yield con
    finally:
        con.close()


# Extra columns the loader adds to a raw table beyond the entity's own columns.
RAW_EXTRA_COLUMNS: dict[str, tuple[tuple[str, str], ...]] = {
    # Identity resolution happens at load time because an unmatched interaction must be
    # quarantined (and retried) in the same run: contract §1.
    "interactions": (("resolved_customer_id", "VARCHAR"), ("match_method", "VARCHAR")),
}


def raw_table_columns(entity: Entity) -> list[tuple[str, str]]:
    cols = [(c.name, DUCKDB_TYPES[c.type]) for c in entity.columns]
    cols += list(RAW_EXTRA_COLUMNS.get(entity.name, ()))
    cols += list(META_COLUMNS)
    return cols


def _create_table_sql(table: str, columns: list[tuple[str, str]]) -> str:
    body = ",\n  ".join(f'"{name}" {type_}' for name, type_ in columns)
    return f"CREATE TABLE IF NOT EXISTS {table} (\n  {body}\n)"


QUALITY_DDL = [
    """CREATE TABLE IF NOT EXISTS quality.rejected_rows (
        entity VARCHAR, source VARCHAR, row_number BIGINT, raw_record VARCHAR,
        reason VARCHAR, severity VARCHAR, run_id VARCHAR, rejected_at TIMESTAMP,
        record_id VARCHAR, rule VARCHAR, load_seq BIGINT
    )""",
    """CREATE TABLE IF NOT EXISTS quality.load_audit (
        run_id VARCHAR, entity VARCHAR, source VARCHAR, rows_read BIGINT, rows_loaded BIGINT,
        rows_rejected BIGINT, rows_duplicate BIGINT, loaded_at TIMESTAMP
    )""",
]

META_DDL = [
    # A landing file is identified by path, size and content hash: a changed file loads again.
    """CREATE TABLE IF NOT EXISTS meta.loaded_files (
        entity VARCHAR, source VARCHAR, size BIGINT, sha256 VARCHAR, rows_read BIGINT,
        run_id VARCHAR, loaded_at TIMESTAMP
    )""",
    # The content hash of a landing file as last seen with this size and mtime (a cache: the
    # hash alone decides whether a file is new).
    """CREATE TABLE IF NOT EXISTS meta.file_stamps (
        source VARCHAR PRIMARY KEY, size BIGINT, mtime_ns BIGINT, sha256 VARCHAR
    )""",
    # Incremental database reads: the newest change timestamp seen per table.
    """CREATE TABLE IF NOT EXISTS meta.db_watermarks (
        source VARCHAR PRIMARY KEY, watermark TIMESTAMP, run_id VARCHAR, updated_at TIMESTAMP
    )""",
    # Orphans moved into their raw table keep their original (older) _load_seq; the incremental
    # staging models read this list beside the rows above their watermark
    # (dbt_project/macros/incremental.sql), so they need not compare every id with the raw table.
    """CREATE TABLE IF NOT EXISTS meta.released_rows (
        entity VARCHAR, load_seq BIGINT, run_id VARCHAR, released_at TIMESTAMP
    )""",
    "CREATE SEQUENCE IF NOT EXISTS meta.load_seq START 1",
]


def ensure_schema(con: duckdb.DuckDBPyConnection) -> None:
    """Create every schema and table ingest needs; safe to call on every run."""
    for schema in ("raw", "quality", "meta", "marts"):
        con.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
    for entity in ENTITIES:
        con.execute(_create_table_sql(f"raw.{entity.name}", raw_table_columns(entity)))
        # Orphans wait here, fully validated, until their parent arrives (contract §1).
        if entity.parent:
            con.execute(_create_table_sql(f"raw.{entity.name}_orphans", raw_table_columns(entity)))
    for ddl in QUALITY_DDL + META_DDL:
        con.execute(ddl)
