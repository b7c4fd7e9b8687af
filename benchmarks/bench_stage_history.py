"""Stage history kept in place vs rewritten whole, as the history grows with days of operation.

Why: `marts.customer_stage_history` gains a period for every stage change and keeps it, so
after a year of daily runs it holds several periods per customer. The lifecycle step used to
read all of it, advance it and write all of it back every day; it now reads the working periods
of the day (open ones and those touching as_of) and writes back the rows that changed
(`crm/stage_history.py`). `make bench` runs one day at a time and does not show this growth.

For each history size, a synthetic history (one open period per customer, the rest closed in
the past) is written to a DuckDB file; one day in which 1 % of the customers change stage is
then run both ways on copies of that file, phase by phase, and the two tables are compared.

    .venv/bin/python -m benchmarks.bench_stage_history [--customers 1000000] [--periods 1,3,5]
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from datetime import date
from pathlib import Path

import duckdb
import numpy as np

from crm.frames import read_table, replace_table
from crm.lifecycle import advance_history
from crm.rules import STAGES
from crm.stage_history import TABLE, TYPES, read_working_periods, store_working_periods

AS_OF = date(2026, 6, 30)
CHANGED_SHARE = 0.01


def build_history(path: Path, customers: int, periods_per_customer: int) -> int:
    """A history of about `periods_per_customer` periods per customer (1 to 2·p − 1, the
    last one open), contiguous, ending the day before AS_OF; returns the periods written."""
    stages = ", ".join(f"'{s}'" for s in STAGES)
    spread = 2 * periods_per_customer - 1
    with duckdb.connect(str(path)) as con:
        con.execute("CREATE SCHEMA marts")
        con.execute(
            f"""CREATE TABLE {TABLE} AS
            WITH customers AS (
                SELECT 'C' || lpad(CAST(i AS VARCHAR), 7, '0') AS customer_id,
                       1 + CAST(hash(i) % {spread} AS INTEGER) AS n
                FROM range({customers}) t(i)),
            periods AS (
                SELECT customer_id, n, unnest(range(n)) AS k FROM customers),
            staged AS (
                SELECT customer_id, k,
                       ([{stages}])[1 + CAST(hash(customer_id, k) % {len(STAGES)} AS INTEGER)]
                           AS stage,
                       DATE '{AS_OF.isoformat()}' - CAST(1 + (n - 1 - k) * 20 AS INTEGER)
                           AS valid_from,
                       CASE WHEN k < n - 1 THEN DATE '{AS_OF.isoformat()}'
                            - CAST(1 + (n - 2 - k) * 20 AS INTEGER) END AS valid_to
                FROM periods)
            SELECT customer_id, stage,
                   lag(stage) OVER (PARTITION BY customer_id ORDER BY k) AS previous_stage,
                   valid_from, valid_to
            FROM staged ORDER BY customer_id, valid_from"""
        )
        return con.execute(f"SELECT count(*) FROM {TABLE}").fetchone()[0]


def todays_stages(path: Path, seed: int = 5):
    """The current stage of every customer, with CHANGED_SHARE of them moved to another stage."""
    with duckdb.connect(str(path), read_only=True) as con:
        current = read_table(
            con, f"(SELECT customer_id, stage FROM {TABLE} WHERE valid_to IS NULL)"
        )
    rng = np.random.default_rng(seed)
    moved = rng.random(len(current)) < CHANGED_SHARE
    shifted = [STAGES[(STAGES.index(s) + 1) % len(STAGES)] for s in current["stage"][moved]]
    stage = current["stage"].to_numpy(dtype=object).copy()
    stage[moved] = shifted
    current["stage"] = stage
    current["stage"] = current["stage"].astype("str")
    return current, int(moved.sum())


def _timed(phases: dict[str, float], name: str, action):
    started = time.perf_counter()
    result = action()
    phases[name] = time.perf_counter() - started
    return result


def _run_day(path: Path, stages, read, write) -> dict[str, float]:
    """One day's history work, phase by phase: `read(con)` the periods, advance them,
    `write(con, advanced)` (returns the rows written) in a transaction, then checkpoint."""
    phases: dict[str, float] = {}
    with duckdb.connect(str(path)) as con:
        periods = _timed(phases, "read", lambda: read(con))
        advanced = _timed(phases, "advance", lambda: advance_history(periods, stages, AS_OF))

        def store() -> int:
            con.execute("BEGIN TRANSACTION")
            written = write(con, advanced)
            con.execute("COMMIT")
            con.execute("CHECKPOINT")
            return written

        phases["rows written"] = _timed(phases, "write", store)
        phases["rows read"] = len(periods)
    return phases


def run_whole(path: Path, stages) -> dict[str, float]:
    """The code before: read everything, advance, rewrite everything."""

    def rewrite(con, advanced) -> int:
        return replace_table(con, TABLE, advanced, TYPES)

    return _run_day(path, stages, lambda con: read_table(con, TABLE), rewrite)


def run_in_place(path: Path, stages) -> dict[str, float]:
    """The code now: the working periods only, and only the rows that changed written."""

    def store_changes(con, advanced) -> int:
        return store_working_periods(con, AS_OF, advanced)[1]

    return _run_day(path, stages, lambda con: read_working_periods(con, AS_OF), store_changes)


def same_table(a: Path, b: Path) -> bool:
    with duckdb.connect() as con:
        con.execute(f"ATTACH '{a}' AS a (READ_ONLY)")
        con.execute(f"ATTACH '{b}' AS b (READ_ONLY)")
        differ = con.execute(
            f"SELECT (SELECT count(*) FROM (FROM a.{TABLE} EXCEPT ALL FROM b.{TABLE})) + "
            f"(SELECT count(*) FROM (FROM b.{TABLE} EXCEPT ALL FROM a.{TABLE}))"
        ).fetchone()[0]
    return differ == 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--periods", default="1,3,5", help="periods per customer, comma-separated")
    args = parser.parse_args()
    print(f"{args.customers:,} customers, {CHANGED_SHARE:.0%} change stage on {AS_OF}")
    print(
        "| periods | way | read s | advance s | write s | total s | rows read | rows written |\n"
        "|---:|---|---:|---:|---:|---:|---:|---:|"
    )
    with tempfile.TemporaryDirectory() as folder:
        for per_customer in (int(p) for p in args.periods.split(",")):
            base = Path(folder) / f"history_{per_customer}.duckdb"
            total = build_history(base, args.customers, per_customer)
            stages, _moved = todays_stages(base)
            results = {}
            for way, run in (("whole", run_whole), ("in place", run_in_place)):
                copy = Path(folder) / f"{way.replace(' ', '_')}.duckdb"
                shutil.copy(base, copy)
                phases = run(copy, stages)
                results[way] = copy
                seconds = phases["read"] + phases["advance"] + phases["write"]
                print(
                    f"| {total:,} | {way} | {phases['read']:.2f} | {phases['advance']:.2f} | "
                    f"{phases['write']:.2f} | {seconds:.2f} | {int(phases['rows read']):,} | "
                    f"{int(phases['rows written']):,} |",
                    flush=True,
                )
            if not same_table(results["whole"], results["in place"]):
                raise SystemExit(f"the two ways disagree at {total:,} periods")
            for path in (base, *results.values()):
                path.unlink()
    print("both ways wrote the same table at every size")


if __name__ == "__main__":
    main()
