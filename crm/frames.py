"""DataFrame ⇄ warehouse table helpers for the per-customer Python stages.

Python stages work on per-customer marts only (a million rows fits easily), never on the large
fact tables: those stay in DuckDB/dbt.
"""

from __future__ import annotations

import duckdb
import pandas as pd


def read_table(con: duckdb.DuckDBPyConnection, table: str) -> pd.DataFrame:
    return con.execute(f"SELECT * FROM {table}").df()


def table_exists(con: duckdb.DuckDBPyConnection, table: str) -> bool:
    schema, name = table.split(".", 1)
    return bool(
        con.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = ? AND table_name = ?",
            [schema, name],
        ).fetchone()[0]
    )


def replace_table(
    con: duckdb.DuckDBPyConnection,
    table: str,
    frame: pd.DataFrame,
    types: dict[str, str] | None = None,
) -> int:
    """Atomically replaces `table` with `frame`; `types` casts named columns (e.g. DATE)."""
    types = types or {}
    select = ", ".join(
        f'CAST("{c}" AS {types[c]}) AS "{c}"' if c in types else f'"{c}"' for c in frame.columns
    )
    con.register("_frame", frame)
    try:
        con.execute(f"CREATE OR REPLACE TABLE {table} AS SELECT {select} FROM _frame")
    finally:
        con.unregister("_frame")
    return len(frame)


def replace_as_of(
    con: duckdb.DuckDBPyConnection,
    table: str,
    frame: pd.DataFrame,
    as_of: object,
    types: dict[str, str] | None = None,
) -> int:
    """Time-series tables (one slice per as_of, kept for BI trends): this as_of's rows are
    replaced, every other as_of stays. Creates the table on first use."""
    if not table_exists(con, table):
        return replace_table(con, table, frame, types)
    types = types or {}
    select = ", ".join(
        f'CAST("{c}" AS {types[c]}) AS "{c}"' if c in types else f'"{c}"' for c in frame.columns
    )
    con.execute(f"DELETE FROM {table} WHERE as_of = ?", [as_of])
    con.register("_slice", frame)
    try:
        con.execute(f"INSERT INTO {table} BY NAME SELECT {select} FROM _slice")
    finally:
        con.unregister("_slice")
    return len(frame)
