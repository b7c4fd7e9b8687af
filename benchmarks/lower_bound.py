"""The least work any pipeline producing `customer_profile` needs on this machine.

Why: issue #6 sets a wall-time target for the L full run. The floor (`floor.sql`) already says
what the profile's SQL costs over loaded raw tables; this adds the two things no design can
skip, measured on the same data in the same run:

- **read**: every source row read once, as Arrow, with nothing done to it (the SQLite tables
  through ADBC, the landing files by Arrow's own readers);
- **write**: the rows kept once, i.e. the raw tables' source columns (no load metadata, no row
  hash, no resolved ids) written into a new DuckDB file with the warehouse's memory budget;
- **floor**: `floor.sql` on the run's warehouse, as before.

Each part's wall time and CPU time (all threads of this process) are taken separately, so the
report can give both "one after the other" and "every core busy all the time" (CPU ÷ cores).
Nothing here validates, dedupes at load, checks, stages, classifies or publishes, so no real
pipeline can beat the second figure; the first is what these parts cost without overlap.

Runs as a child of `make bench` (`python -m benchmarks.lower_bound RUN_DIR LANDING DB AS_OF
OUT.json`), so that its CPU time is its own.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
FLOOR_SQL = BENCH_DIR / "floor.sql"
SQLITE_TABLES = ("orders", "payments")  # what the demo's source database holds
FLOOR_MEMORY_LIMIT = "4GB"


@dataclass(frozen=True)
class Part:
    """One measured part: wall seconds, CPU seconds of the process, rows it handled.

    rows: source rows read, rows written, or customers in the floor's profile."""

    wall: float
    cpu: float
    rows: int


@dataclass(frozen=True)
class LowerBound:
    read: Part
    write: Part
    floor: Part
    cores: int

    @property
    def in_a_row(self) -> float:
        return self.read.wall + self.write.wall + self.floor.wall

    @property
    def cpu(self) -> float:
        return self.read.cpu + self.write.cpu + self.floor.cpu

    @property
    def on_all_cores(self) -> float:
        """The wall time if every core were busy from start to end: no run can beat it."""
        return self.cpu / self.cores

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> LowerBound:
        return cls(
            read=Part(**data["read"]),
            write=Part(**data["write"]),
            floor=Part(**data["floor"]),
            cores=data["cores"],
        )


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def measure(work: Callable[[], int]) -> Part:
    """Times `work` (which returns the rows it handled) in wall and process CPU seconds."""
    wall, cpu = time.perf_counter(), _cpu_seconds()
    rows = work()
    return Part(time.perf_counter() - wall, _cpu_seconds() - cpu, rows)


def read_sources(landing: Path, source_db: Path) -> Part:
    """Reads every source row once as Arrow and drops it: the cheapest possible ingest read."""
    import pyarrow.csv as pa_csv
    import pyarrow.json as pa_json
    import pyarrow.parquet as pq

    readers = {".parquet": pq.read_table, ".csv": pa_csv.read_csv, ".jsonl": pa_json.read_json}

    def work() -> int:
        rows = 0
        if source_db.exists():
            rows += _read_sqlite(source_db)
        for path in sorted(landing.rglob("*")):
            reader = readers.get(path.suffix.lower())
            if reader is not None and path.is_file():
                rows += reader(path).num_rows
        return rows

    return measure(work)


def _read_sqlite(path: Path) -> int:
    import adbc_driver_sqlite.dbapi as adbc_sqlite

    rows = 0
    with adbc_sqlite.connect(path.resolve().as_uri() + "?mode=ro") as con, con.cursor() as cur:
        cur.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        present = {name for (name,) in cur.fetchall()}
        for table in SQLITE_TABLES:
            if table in present:
                cur.execute(f'SELECT * FROM "{table}"')
                rows += cur.fetch_arrow_table().num_rows
    return rows


def write_rows_once(warehouse: Path, out: Path) -> Part:
    """Writes the raw tables' source columns into a new DuckDB file; only the writes are timed.

    The rows come from the run's warehouse, already typed as the pipeline stores them (dates as
    timestamps, money as decimals), so the write is the one a pipeline keeping them must do.
    Each table is held in memory as Arrow first, then written with one CREATE TABLE AS and a
    checkpoint (DuckDB compresses while checkpointing). The file is left for the caller."""
    import duckdb

    from crm.schemas import ENTITIES
    from crm.warehouse import DEFAULT_MEMORY_LIMIT  # the loader's own budget

    for stale in (out, out.with_name(out.name + ".wal")):
        stale.unlink(missing_ok=True)
    temp_dir = _spill_dir(out)
    con = duckdb.connect(
        str(out), config={"memory_limit": DEFAULT_MEMORY_LIMIT, "temp_directory": str(temp_dir)}
    )
    wall = cpu = 0.0
    rows = 0
    try:
        con.execute(f"ATTACH '{warehouse}' AS run (READ_ONLY)")
        for entity in ENTITIES:
            columns = ", ".join(f'"{c.name}"' for c in entity.columns)
            table = con.execute(f"SELECT {columns} FROM run.raw.{entity.name}").to_arrow_table()
            con.register("_rows", table)

            def create(name: str = entity.name) -> int:
                con.execute(f'CREATE TABLE "{name}" AS SELECT * FROM _rows')
                con.execute("CHECKPOINT")  # the rows are compressed and written here
                return 0

            part = measure(create)
            con.unregister("_rows")
            wall, cpu, rows = wall + part.wall, cpu + part.cpu, rows + table.num_rows
            del table
    finally:
        con.close()
    return Part(wall, cpu, rows)


def _spill_dir(out: Path) -> Path:
    return out.with_name(out.stem + ".tmp")


def floor(warehouse: Path, as_of: str) -> Part:
    """`floor.sql` on the run's warehouse, read-only: the profile's measures in one statement."""
    import duckdb

    sql = FLOOR_SQL.read_text(encoding="utf-8").replace("{{as_of}}", as_of)
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        con.execute(f"SET memory_limit = '{FLOOR_MEMORY_LIMIT}'")
        # the script's last statement returns the profile's customer count first
        return measure(lambda: con.execute(sql).fetchone()[0])
    finally:
        con.close()


def lower_bound(run_dir: Path, landing: Path, source_db: Path, as_of: str) -> LowerBound:
    warehouse = run_dir / "warehouse.duckdb"
    written = run_dir / "rows_once.duckdb"  # removed again: only its writing counts
    try:
        return LowerBound(
            read=read_sources(landing, source_db),
            write=write_rows_once(warehouse, written),
            floor=floor(warehouse, as_of),
            cores=os.cpu_count() or 1,
        )
    finally:
        for leftover in (written, written.with_name(written.name + ".wal")):
            leftover.unlink(missing_ok=True)
        shutil.rmtree(_spill_dir(written), ignore_errors=True)


def report_lines(bounds: dict[str, LowerBound]) -> list[str]:
    """The report's section: each size's parts, their sum, and CPU ÷ cores."""
    lines = [
        "## The least any pipeline needs here (`benchmarks/lower_bound.py`)",
        "",
        "Read every source row once, write the rows once (source columns only), and the floor's "
        "SQL; nothing else. Seconds of wall time, and in brackets of CPU time.",
        "",
        "| size | read the sources | write the rows once | floor | one after the other "
        "| CPU | every core busy |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for size, b in bounds.items():
        lines.append(
            f"| {size} | {b.read.wall:.1f} ({b.read.cpu:.1f}) | {b.write.wall:.1f} "
            f"({b.write.cpu:.1f}) | {b.floor.wall:.1f} ({b.floor.cpu:.1f}) | {b.in_a_row:.1f} "
            f"| {b.cpu:.1f} | {b.on_all_cores:.1f} (÷ {b.cores} cores) |"
        )
    return lines


def main(argv: list[str]) -> int:
    run_dir, landing, source_db, as_of, out = argv
    bound = lower_bound(Path(run_dir), Path(landing), Path(source_db), as_of)
    Path(out).write_text(json.dumps(bound.to_json()), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
