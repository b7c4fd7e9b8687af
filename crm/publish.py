"""Publication: copy the audited output tables to what BI tools read (contract §4).

Why a copy and not the warehouse itself: DuckDB allows one writer per file, and BI must never see a
half-built table. Each file is written under a temporary name in the same folder and then renamed
over the old one (`os.replace` is atomic on one filesystem), so a reader opens either the old or
the new file, never a partial one; a run that fails before this step leaves the previous
publication untouched.
"""

from __future__ import annotations

import os
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path

import duckdb

from crm.warehouse import connect

STAGING_PREFIX = ".staging-"

# The tables of contract §4, in the order BI documentation lists them. A table that does not
# exist yet in the warehouse (a stage not built) is skipped and reported.
PUBLISHED_TABLES: tuple[str, ...] = (
    "marts.customer_profile",
    "marts.customer_segments",
    "marts.customer_lifecycle",
    "marts.customer_stage_history",
    "marts.churn_risk",
    "marts.churn_alerts",
    "marts.segment_summary",
    "marts.lifecycle_flow",
    "marts.sales_reps",
    "quality.rejected_rows",
    "quality.load_audit",
    "quality.check_results",
)


@dataclass
class PublishReport:
    tables: dict[str, int]  # table -> rows published
    missing: list[str]
    directory: Path


def _existing_tables(con: duckdb.DuckDBPyConnection, catalog: str) -> set[str]:
    rows = con.execute(
        "SELECT table_schema || '.' || table_name FROM information_schema.tables "
        "WHERE table_catalog = ?",
        [catalog],
    ).fetchall()
    return {r[0] for r in rows}


def remove_stale_staging(publish_dir: Path) -> list[Path]:
    """Deletes staging folders left by a run killed mid-publication, returns what it removed.

    Why: `kill -9` (or a crash) skips the `finally` below, so without this every such run would
    leave a folder the size of the publication behind. Runs publish one at a time (one DuckDB
    writer, in-process executor), so a staging folder present when a publication starts belongs
    to a dead run."""
    removed: list[Path] = []
    for leftover in sorted(publish_dir.glob(f"{STAGING_PREFIX}*")):
        if leftover.is_dir():
            shutil.rmtree(leftover, ignore_errors=True)
            removed.append(leftover)
    return removed


def publish(
    warehouse: Path, publish_dir: Path, tables: tuple[str, ...] = PUBLISHED_TABLES
) -> PublishReport:
    publish_dir.mkdir(parents=True, exist_ok=True)
    remove_stale_staging(publish_dir)
    staging = publish_dir / f"{STAGING_PREFIX}{uuid.uuid4().hex}"
    staging.mkdir()
    counts: dict[str, int] = {}
    try:
        db_file = staging / "analytics.duckdb"
        with connect(db_file) as con:
            # The warehouse is only read; the new file is the one written.
            con.execute(f"ATTACH '{Path(warehouse).as_posix()}' AS wh (READ_ONLY)")
            present = _existing_tables(con, "wh")
            wanted = [t for t in tables if t in present]
            missing = [t for t in tables if t not in present]
            for schema in sorted({t.split(".")[0] for t in wanted}):
                con.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
            for table in wanted:
                con.execute(f"CREATE TABLE {table} AS SELECT * FROM wh.{table}")
                counts[table] = con.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
                name = table.split(".", 1)[1]
                con.execute(
                    f"COPY {table} TO '{(staging / f'{name}.parquet').as_posix()}' "
                    "(FORMAT parquet, COMPRESSION zstd)"
                )
            con.execute("DETACH wh")
            con.execute("CHECKPOINT")
        # Swap in: Parquet files first, the database last, each by an atomic rename.
        for path in sorted(staging.glob("*.parquet")) + [staging / "analytics.duckdb"]:
            os.replace(path, publish_dir / path.name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return PublishReport(tables=counts, missing=missing, directory=publish_dir)
