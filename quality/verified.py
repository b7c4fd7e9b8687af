"""Whole-table properties of a raw table, checked once per row instead of once per run.

Why: the integrity properties (quality/suites.py: ids present, latest version unambiguous,
references to known parents) are aggregates over the whole table — 8 s a run over 30M
interactions although a new day adds 40k rows. Raw tables are append-only, so once every
property held for the whole table only the rows added since can break one:

- an id missing: only on an added row;
- an ambiguous latest version: only for an id with an added row (all rows of that id are read);
- an unknown parent: only on an added row, because parents never leave raw.

"Added since" is exact: `_load_seq` above the verified watermark, or without `_load_seq`, or
released from the orphan table (a released row keeps its original, older `_load_seq`; every
release is listed in `meta.released_rows`).

The watermark (`meta.verified_through`) advances only when every property passed, so a failing
row is read again by every later run until it is fixed. The whole table is read instead when
there is no watermark yet, when the property definitions changed, when the rows at or below the
watermark are no longer the ones verified (a row deleted, or inserted with an old `_load_seq`
other than by a release: noticed by their count, so a deletion matched exactly by such an
insertion is not) — in the table or in its parent table, e.g. a customer erased under their
orders — or when the run is forced (`crm/force=true`, what to do after editing raw by hand).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime

import duckdb

from crm.schemas import Entity

VERIFIED_DDL = """CREATE TABLE IF NOT EXISTS meta.verified_through (
    subject VARCHAR PRIMARY KEY, definition_hash VARCHAR,
    load_seq BIGINT, base_rows BIGINT, parent_load_seq BIGINT, parent_base_rows BIGINT,
    run_id VARCHAR, verified_at TIMESTAMP
)"""


@dataclass(frozen=True)
class Scope:
    """Which rows of `raw.<entity>` a check reads: all of them (`since` None) or those added
    after `since`. `top` and `parent_top` are the highest `_load_seq` when the scope was taken:
    the watermarks a passing check records."""

    subject: str  # what was verified: `raw.<entity>`, or a dbt model over it
    entity: str
    parent: str | None
    since: int | None
    top: int
    parent_top: int | None
    reason: str

    @property
    def whole_table(self) -> bool:
        return self.since is None

    def added_rows(self, table: str) -> str:
        """SQL relation: the rows of `table` this scope reads."""
        if self.since is None:
            return table
        return f"""(SELECT * FROM {table} WHERE _load_seq > {int(self.since)}
            OR _load_seq IS NULL OR _load_seq IN (
                SELECT load_seq FROM meta.released_rows WHERE entity = '{self.entity}'))"""


def definition_hash(sql_texts: list[str]) -> str:
    """Hash of the whole-table definitions: a changed property invalidates the watermark."""
    return hashlib.sha256("\n--\n".join(sql_texts).encode()).hexdigest()


def _top(con: duckdb.DuckDBPyConnection, entity: str) -> int:
    return int(con.execute(f"SELECT coalesce(max(_load_seq), 0) FROM raw.{entity}").fetchone()[0])


def base_rows(con: duckdb.DuckDBPyConnection, entity: str, watermark: int) -> int:
    """Rows at or below the watermark that were not released from the orphan table: the same
    number for as long as nobody deletes or back-dates rows (loads only add above it)."""
    stored, released = con.execute(
        f"""SELECT
            (SELECT count(*) FROM raw.{entity} WHERE _load_seq <= $w),
            (SELECT count(*) FROM meta.released_rows WHERE entity = $e AND load_seq <= $w)""",
        {"w": watermark, "e": entity},
    ).fetchone()
    return int(stored) - int(released)


def scope_for(
    con: duckdb.DuckDBPyConnection,
    entity: Entity,
    definitions: str,
    *,
    whole: bool = False,
    subject: str | None = None,
) -> Scope:
    """The rows the checks of `subject` (default `raw.<entity>`) must read this time.

    A subject other than the raw table is a model holding one row per id of `raw.<entity>` with
    the raw `_load_seq` of that version (the incremental staging models): the same rows are
    "added since" in both, so the same watermark rules apply (module docstring)."""
    subject = subject or f"raw.{entity.name}"
    con.execute(VERIFIED_DDL)
    parent = entity.parent[0] if entity.parent else None
    top = _top(con, entity.name)
    parent_top = _top(con, parent) if parent else None

    def whole_table(reason: str) -> Scope:
        return Scope(subject, entity.name, parent, None, top, parent_top, reason)

    if whole:
        return whole_table("forced run")
    row = con.execute(
        """SELECT definition_hash, load_seq, base_rows, parent_load_seq, parent_base_rows
           FROM meta.verified_through WHERE subject = ?""",
        [subject],
    ).fetchone()
    if row is None:
        return whole_table("not verified before")
    hashed, since, base, parent_since, parent_base = row
    if hashed != definitions:
        return whole_table("the checks changed since the last verification")
    if base_rows(con, entity.name, since) != base:
        return whole_table(f"rows at or below load_seq {since} changed since verified")
    if parent and base_rows(con, parent, parent_since) != parent_base:
        return whole_table(f"{parent} rows changed since {subject} was verified")
    return Scope(
        subject, entity.name, parent, since, top, parent_top, f"rows added after load_seq {since}"
    )


def record_verified(
    con: duckdb.DuckDBPyConnection, scope: Scope, definitions: str, run_id: str
) -> None:
    """Every property held for the scope: the table is verified up to `scope.top`."""
    parent_base = None
    if scope.parent is not None and scope.parent_top is not None:
        parent_base = base_rows(con, scope.parent, scope.parent_top)
    con.execute(
        "INSERT OR REPLACE INTO meta.verified_through VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        [
            scope.subject,
            definitions,
            scope.top,
            base_rows(con, scope.entity, scope.top),
            scope.parent_top,
            parent_base,
            run_id,
            datetime.now(),
        ],
    )
