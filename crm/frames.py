"""DataFrame ⇄ warehouse table helpers for the per-customer Python stages.

Python stages work on per-customer marts only (a million rows fits easily), never on the large
fact tables: those stay in DuckDB/dbt.
"""

from __future__ import annotations

from collections.abc import Sequence

import duckdb
import pandas as pd
import pyarrow as pa

# Column types read through Arrow (below); anything else (lists, structs, HUGEINT, time zones…)
# falls back to DuckDB's own `.df()`.
_ARROW_TYPES = (
    "VARCHAR",
    "BOOLEAN",
    "TINYINT",
    "SMALLINT",
    "INTEGER",
    "BIGINT",
    "FLOAT",
    "DOUBLE",
    "DATE",
    "TIMESTAMP",
)
_NULLABLE_INT = {8: pd.Int8Dtype(), 16: pd.Int16Dtype(), 32: pd.Int32Dtype(), 64: pd.Int64Dtype()}


def read_query(con: duckdb.DuckDBPyConnection, sql: str) -> pd.DataFrame:
    """`read_table` of a query (no parameters): the same dtypes as DuckDB's `.df()`."""
    return read_table(con, f"({sql}) AS _query")


def read_table(
    con: duckdb.DuckDBPyConnection, table: str, columns: Sequence[str] | None = None
) -> pd.DataFrame:
    """The whole table (or only `columns`, in that order) as a DataFrame, with exactly the dtypes
    and values of DuckDB's `.df()`.

    Why not `.df()`: it builds Python objects for every string and takes ~4-6 s per 1M-row
    mart; through Arrow it is ~0.5-1 s. DECIMAL is cast to DOUBLE by DuckDB (the same rounding
    `.df()` uses), and the few places where Arrow's pandas conversion differs from `.df()` are
    mapped back: nullable integers and booleans, DATE as datetime64[us], all-NULL text as
    object. tests/unit/test_frames.py compares both ways column type by column type."""
    wanted = "*" if columns is None else ", ".join(_quoted(c) for c in columns)
    described = con.execute(f"DESCRIBE SELECT {wanted} FROM {table}").fetchall()
    select = []
    for name, type_, *_ in described:
        quoted = _quoted(name)
        if type_.startswith("DECIMAL"):
            select.append(f"CAST({quoted} AS DOUBLE) AS {quoted}")
        elif type_ in _ARROW_TYPES:
            select.append(quoted)
        else:
            return con.execute(f"SELECT {wanted} FROM {table}").df()
    arrow = con.execute(f"SELECT {', '.join(select)} FROM {table}").to_arrow_table()
    return _frame_from_arrow(arrow)


def records(frame: pd.DataFrame, columns: Sequence[str]) -> list[dict[str, object]]:
    """Each row as {column: value} for `columns` (those of them the frame has), in row order.

    Why not `iterrows`, `itertuples` or `to_dict("records")`: they box every value of every
    column one at a time, and pandas' Arrow-backed strings iterate slowly. On the 118k alerts
    of a first day at 1M customers that was 10–20 s for the digests; reading just the needed
    columns with `tolist` takes well under a second. Values are what `tolist` gives: Python
    scalars, NaN for a missing string."""
    names = [name for name in columns if name in frame.columns]
    values = [frame[name].tolist() for name in names]
    return [dict(zip(names, row, strict=True)) for row in zip(*values, strict=True)]


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _frame_from_arrow(table: pa.Table) -> pd.DataFrame:
    columns = {}
    for field, column in zip(table.schema, table.columns, strict=True):
        kind = field.type
        if pa.types.is_date32(kind):
            column = column.cast(pa.timestamp("us"))
        if pa.types.is_integer(kind) and column.null_count:
            nullable = _NULLABLE_INT[kind.bit_width]
            columns[field.name] = column.to_pandas(types_mapper={kind: nullable}.get)
        elif pa.types.is_boolean(kind) and column.null_count:
            columns[field.name] = column.to_pandas(types_mapper={kind: pd.BooleanDtype()}.get)
        elif pa.types.is_string(kind) and column.null_count == len(column):
            columns[field.name] = pd.Series([None] * len(column), dtype=object)
        else:
            columns[field.name] = column.to_pandas()
    return pd.DataFrame(columns, columns=table.column_names)


def table_exists(con: duckdb.DuckDBPyConnection, table: str) -> bool:
    schema, name = table.split(".", 1)
    return bool(
        con.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = ? AND table_name = ?",
            [schema, name],
        ).fetchone()[0]
    )


def cast_select(columns: Sequence[str], types: dict[str, str] | None = None) -> str:
    """The select list that writes `columns` as they are, cast where `types` names a type."""
    types = types or {}
    return ", ".join(
        f'CAST("{c}" AS {types[c]}) AS "{c}"' if c in types else f'"{c}"' for c in columns
    )


def replace_table(
    con: duckdb.DuckDBPyConnection,
    table: str,
    frame: pd.DataFrame,
    types: dict[str, str] | None = None,
) -> int:
    """Atomically replaces `table` with `frame`; `types` casts named columns (e.g. DATE)."""
    select = cast_select(frame.columns, types)
    con.register("_frame", scannable(frame))
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
    select = cast_select(frame.columns, types)
    con.execute(f"DELETE FROM {table} WHERE as_of = ?", [as_of])
    con.register("_slice", scannable(frame))
    try:
        con.execute(f"INSERT INTO {table} BY NAME SELECT {select} FROM _slice")
    finally:
        con.unregister("_slice")
    return len(frame)


# DuckDB scans a registered Arrow table in parallel by record batch; a table built from whole
# columns is one record batch, scanned by one thread. Zero-copy slices of this many rows (a
# multiple of DuckDB's 2,048-row vector) let every core work.
SCAN_SLICE_ROWS = 122_880


def sliced_for_scan(table: pa.Table) -> pa.Table:
    """`table` as record batches of at most SCAN_SLICE_ROWS rows (same rows, same order)."""
    return pa.Table.from_batches(table.to_batches(max_chunksize=SCAN_SLICE_ROWS), table.schema)


def scannable(frame: pd.DataFrame) -> pd.DataFrame | pa.Table:
    """What DuckDB should scan for `frame`: an Arrow table when every column has a plain dtype
    or holds only `datetime.date`s (the `as_of` of every mart), else the frame itself (other
    object columns: Decimals, mixed values… are left to DuckDB's own inference).

    DuckDB's pandas scanner takes ~10 s for a 1M-row, 20-column mart, its Arrow scanner ~2 s;
    both give the same column types and values (tests/unit/test_frames.py)."""
    arrays = []
    for name in frame.columns:
        column = frame[name]
        dtype = column.dtype
        # plain: numbers, booleans (also nullable Int64 / boolean), text, microsecond timestamps
        plain = dtype.kind in "biuf" or isinstance(dtype, pd.StringDtype)
        if plain or str(dtype) == "datetime64[us]":
            arrays.append(pa.array(column, from_pandas=True))
        elif pd.api.types.is_object_dtype(dtype) and _only_dates(column):
            arrays.append(pa.array(column, type=pa.date32(), from_pandas=True))
        else:
            return frame
    return sliced_for_scan(pa.Table.from_arrays(arrays, names=[str(c) for c in frame.columns]))


def _only_dates(column: pd.Series) -> bool:
    """Every value a `datetime.date` (not a datetime) or missing, and at least one date."""
    return bool(column.notna().any()) and pd.api.types.infer_dtype(column, skipna=True) == "date"
