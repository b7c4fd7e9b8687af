"""Where generated rows go: CSV exports, Parquet chunks and the operational SQL database.

Each sink takes all-text Arrow tables (null = empty) so one representation serves every format;
the SQL sink turns the amount columns into numbers. Output bytes depend only on the rows, so the
same seed gives byte-identical files.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import sqlalchemy as sa

_SQL_BATCH_ROWS = 100_000


def table_rows(table: pa.Table) -> list[tuple[Any, ...]]:
    columns = [table.column(i).to_pylist() for i in range(table.num_columns)]
    return list(zip(*columns, strict=True))


class CsvSink:
    """One CSV file written in pieces; `encoding` is utf-8, utf-8-sig (BOM) or gbk."""

    def __init__(self, path: Path, header: list[str], encoding: str) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.rows = 0
        self._file = path.open("w", encoding=encoding, newline="")
        self._writer = csv.writer(self._file)
        self._writer.writerow(header)

    def write_rows(self, rows: list[list[str]] | list[tuple[Any, ...]]) -> None:
        self._writer.writerows(["" if v is None else v for v in row] for row in rows)
        self.rows += len(rows)

    def write_table(self, table: pa.Table) -> None:
        self.write_rows(table_rows(table))

    def close(self) -> None:
        self._file.close()


class YearlyCsvSink:
    """One CSV per calendar year of a timestamp column (interactions_2025.csv, ...)."""

    def __init__(self, folder: Path, stem: str, header: list[str], time_column: str) -> None:
        self.folder, self.stem, self.header, self.time_column = folder, stem, header, time_column
        self.rows = 0
        self._sinks: dict[str, CsvSink] = {}

    def write_table(self, table: pa.Table) -> None:
        years = pc.utf8_slice_codeunits(table.column(self.time_column), 0, 4)
        for year in sorted(pc.unique(years).to_pylist()):
            part = table.filter(pc.equal(years, year))
            if year not in self._sinks:
                path = self.folder / f"{self.stem}_{year}.csv"
                self._sinks[year] = CsvSink(path, self.header, "utf-8")
            self._sinks[year].write_table(part)
            self.rows += part.num_rows

    def close(self) -> None:
        for sink in self._sinks.values():
            sink.close()


class ParquetChunkSink:
    """One Parquet file per generated block (<stem>_part_00000.parquet), all columns text."""

    def __init__(self, folder: Path, stem: str) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.folder, self.stem = folder, stem
        self.rows = 0
        self._parts = 0

    def write_table(self, table: pa.Table) -> None:
        path = self.folder / f"{self.stem}_part_{self._parts:05d}.parquet"
        pq.write_table(table, path, compression="zstd")
        self._parts += 1
        self.rows += table.num_rows

    def close(self) -> None:
        """Nothing stays open between chunks."""


def _placeholders(dialect: sa.Dialect, count: int) -> str:
    style = dialect.paramstyle
    if style == "qmark":
        return ", ".join("?" * count)
    if style == "numeric":
        return ", ".join(f":{i + 1}" for i in range(count))
    if style == "named":
        return ", ".join(f":p{i}" for i in range(count))
    return ", ".join(["%s"] * count)


def _sqlite_fast_writes(engine: sa.Engine) -> None:
    """No journal and no fsync: the demo database is rebuilt from scratch, never recovered."""

    @sa.event.listens_for(engine, "connect")
    def _pragmas(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=OFF")
        cursor.execute("PRAGMA synchronous=OFF")
        cursor.close()


def sqlite_path(db_url: str) -> Path | None:
    url = sa.engine.make_url(db_url)
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        return None
    return Path(url.database)


class SqlTableSink:
    """Rows of one table inserted in large batches inside the database transaction `conn`."""

    def __init__(
        self,
        conn: sa.Connection,
        table: str,
        ddl_columns: list[tuple[str, str]],
        amount_columns: frozenset[str],
    ) -> None:
        self.conn, self.table = conn, table
        self.columns = [name for name, _ in ddl_columns]
        self.amount_columns = amount_columns
        self.rows = 0
        conn.exec_driver_sql(f"DROP TABLE IF EXISTS {table}")
        body = ", ".join(f"{name} {type_}" for name, type_ in ddl_columns)
        conn.exec_driver_sql(f"CREATE TABLE {table} ({body})")
        marks = _placeholders(conn.dialect, len(self.columns))
        self._insert = f"INSERT INTO {table} ({', '.join(self.columns)}) VALUES ({marks})"
        self._named = conn.dialect.paramstyle == "named"

    def write_table(self, table: pa.Table) -> None:
        columns = []
        for name in self.columns:
            column = table.column(name)
            if name in self.amount_columns:
                column = pc.cast(column, pa.float64())
            columns.append(column.to_pylist())
        rows = list(zip(*columns, strict=True))
        if self._named:
            keys = [f"p{i}" for i in range(len(self.columns))]
            rows = [dict(zip(keys, row, strict=True)) for row in rows]
        for start in range(0, len(rows), _SQL_BATCH_ROWS):
            self.conn.exec_driver_sql(self._insert, rows[start : start + _SQL_BATCH_ROWS])
        self.rows += len(rows)

    def index(self, column: str) -> None:
        self.conn.exec_driver_sql(
            f"CREATE INDEX ix_{self.table}_{column} ON {self.table} ({column})"
        )

    def close(self) -> None:
        """The transaction is committed by the owner of `conn`."""


def open_database(db_url: str) -> sa.Engine:
    """Engine for the operational database; SQLite files get their folder and fast pragmas."""
    path = sqlite_path(db_url)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
    engine = sa.create_engine(db_url)
    if engine.dialect.name == "sqlite":
        _sqlite_fast_writes(engine)
    return engine
