"""`marts.customer_stage_history` in the warehouse: the part of it a run reads and rewrites.

Why not the whole table: the history only grows (one period per stage change, kept for good),
and a run at as_of can touch or needs only its *working periods*: the open ones, those that
end on or after as_of (a rerun reopens the ones closed at as_of; a rerun of a past as_of reads
the one covering it) and those that start on or after as_of (a rerun drops its own openings; a
later start is refused by `advance_history`). Every other period closed before as_of and stays
as it is. After a year of daily runs that closed past is most of the table, so reading,
advancing and rewriting all of it every day would make each run slower than the one before.
A run reads the working periods and writes back only the rows that differ
(benchmarks/bench_stage_history.py: 6.1 → 1.6 s at 5M periods).

`crm.lifecycle` works on whatever periods it is given; for the working periods it returns the
same periods as it would inside the whole history (tests/unit/test_stage_history.py runs both
ways over many days, reruns and backfills and compares the tables).
"""

from __future__ import annotations

from datetime import date

import duckdb
import pandas as pd

from crm.frames import cast_select, read_query, replace_table, scannable, table_exists
from crm.lifecycle import HISTORY_COLUMNS

TABLE = "marts.customer_stage_history"
TYPES = {"valid_from": "DATE", "valid_to": "DATE"}


def _moved(as_of: date) -> str:
    """Periods that start or end on or after as_of. A period starting on or after as_of also
    ends after it or is open; the start is tested too for an inverted period (valid_to <
    valid_from, reported by the history check), so that `advance_history` still sees it and
    refuses an as_of before its start."""
    day = f"DATE '{as_of.isoformat()}'"
    return f"valid_from >= {day} OR valid_to >= {day}"


def _working(as_of: date) -> str:
    return f"valid_to IS NULL OR {_moved(as_of)}"


def read_working_periods(con: duckdb.DuckDBPyConnection, as_of: date) -> pd.DataFrame:
    """The periods a run at as_of may change or needs (see the module docstring), in table
    order; an empty history when the table does not exist yet.

    They are also all that `lifecycle_table`, `lifecycle_at` and `stages_before` read for
    as_of: the current periods, the period covering as_of and the one open on its eve all either
    are open or end on or after as_of."""
    if not table_exists(con, TABLE):
        return pd.DataFrame({c: pd.Series([], dtype=object) for c in HISTORY_COLUMNS})
    columns = ", ".join(HISTORY_COLUMNS)
    return read_query(con, f"SELECT {columns} FROM {TABLE} WHERE {_working(as_of)}")


def store_working_periods(
    con: duckdb.DuckDBPyConnection, as_of: date, periods: pd.DataFrame
) -> tuple[int, int]:
    """Makes `periods` (advance_history's result for the working periods of as_of) the
    working periods of the table: deletes the rows that are no longer among them and inserts
    the new ones, matching whole rows as multisets (nulls equal, a row held twice counts
    twice). Returns (deleted, inserted). Creates the table on a first run. Runs in the
    caller's transaction.

    Why a difference: on a normal day ~1 % of the customers change stage, so a few thousand rows
    change where the working periods are a million (one open per customer). Advancing touches
    only periods that start or end on or after as_of, and the open periods of the customers
    that have such a period before or after it (`touched` below); every other working period is
    the same row on both sides, so only the touched rows are compared."""
    if not table_exists(con, TABLE):
        replace_table(con, TABLE, periods[HISTORY_COLUMNS], TYPES)
        return 0, len(periods)
    typed = cast_select(HISTORY_COLUMNS, TYPES)
    columns = ", ".join(HISTORY_COLUMNS)
    moved = _moved(as_of)
    copy_no = f"row_number() OVER (PARTITION BY {columns}) AS _copy"
    same_row = " AND ".join(f"o.{c} IS NOT DISTINCT FROM n.{c}" for c in HISTORY_COLUMNS)
    con.register("_periods_frame", scannable(periods[HISTORY_COLUMNS]))
    try:
        con.execute(
            f"CREATE OR REPLACE TEMP TABLE _periods_new AS SELECT {typed} FROM _periods_frame"
        )
    finally:
        con.unregister("_periods_frame")
    con.execute(
        "CREATE OR REPLACE TEMP TABLE _periods_customers AS "
        f"SELECT customer_id FROM _periods_new WHERE {moved} "
        f"UNION SELECT customer_id FROM {TABLE} WHERE {moved}"
    )
    touched = (
        f"{moved} OR (valid_to IS NULL AND customer_id IN "
        "(SELECT customer_id FROM _periods_customers))"
    )
    con.execute(
        "CREATE OR REPLACE TEMP TABLE _periods_diff AS "
        f"SELECT o._rid, n.* EXCLUDE (_copy) FROM "
        f"(SELECT rowid AS _rid, {columns}, {copy_no} FROM {TABLE} WHERE {touched}) o "
        f"FULL OUTER JOIN (SELECT *, {copy_no} FROM _periods_new WHERE {touched}) n "
        f"ON {same_row} AND o._copy = n._copy "
        "WHERE o._rid IS NULL OR n._copy IS NULL"
    )
    deleted = con.execute(
        f"DELETE FROM {TABLE} WHERE rowid IN "
        "(SELECT _rid FROM _periods_diff WHERE _rid IS NOT NULL)"
    ).fetchone()[0]
    inserted = con.execute(
        f"INSERT INTO {TABLE} ({columns}) SELECT {columns} FROM _periods_diff WHERE _rid IS NULL"
    ).fetchone()[0]
    for temp in ("_periods_new", "_periods_customers", "_periods_diff"):
        con.execute(f"DROP TABLE {temp}")
    return deleted, inserted


def count_periods(con: duckdb.DuckDBPyConnection) -> int:
    return con.execute(f"SELECT count(*) FROM {TABLE}").fetchone()[0]
