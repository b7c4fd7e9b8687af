"""JSONL landing files: their rows through the fast lane (crm.ingest.fastlane) vs the exact validator.

Why: call-centre systems often export their logs as JSONL. Each line is parsed by Python's
`json` module; the objects then used to go, row by row, through the exact validator (~10 µs a
row), while CSV and Parquet rows took the fast lane. This loads a call-centre log of `--rows`
interactions (numbers as JSON numbers, ~5 % of the lines without a customer_id but with an
e-mail or a phone) beside a customer export, once with every row sent to the exact validator
and once as shipped, and compares the raw tables and rejected rows of both warehouses.

    .venv/bin/python -m benchmarks.bench_jsonl [--rows 1000000]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import duckdb
import numpy as np

from crm.ingest.fastlane import FastLane
from tests.unit.landing_loads import load_landing

CUSTOMERS = 50_000


def write_landing(landing: Path, rows: int) -> None:
    (landing / "customers").mkdir(parents=True)
    (landing / "interactions").mkdir(parents=True)
    customers = (landing / "customers" / "customers.csv").as_posix()
    log = (landing / "interactions" / "call_centre.jsonl").as_posix()
    with duckdb.connect() as con:
        con.execute(
            f"""COPY (
            SELECT 'C' || lpad(CAST(i AS VARCHAR), 7, '0') AS customer_id,
                   'c' || CAST(i AS VARCHAR) || '@example.cn' AS email,
                   CAST(13800000000 + i AS VARCHAR) AS phone,
                   '2024-01-01' AS created_at
            FROM range(1, {CUSTOMERS + 1}) t(i)
            ) TO '{customers}' (HEADER, QUOTE '')"""
        )
        customer = f"1 + (i * 7919) % {CUSTOMERS}"
        con.execute(
            f"""COPY (
            SELECT 'I' || lpad(CAST(i AS VARCHAR), 9, '0') AS interaction_id,
                   CASE WHEN i % 20 <> 0
                        THEN 'C' || lpad(CAST({customer} AS VARCHAR), 7, '0') END AS customer_id,
                   CASE WHEN i % 40 = 0
                        THEN 'c' || CAST({customer} AS VARCHAR) || '@example.cn' END
                       AS contact_email,
                   CASE WHEN i % 40 = 20
                        THEN CAST(13800000000 + {customer} AS VARCHAR) END AS contact_phone,
                   strftime(TIMESTAMP '2024-01-01' + INTERVAL (i % 600000) MINUTE,
                            '%Y-%m-%d %H:%M:%S') AS occurred_at,
                   ['phone', 'wechat', 'email', 'visit'][1 + i % 4] AS channel,
                   CASE WHEN i % 3 = 0 THEN 'outbound' ELSE 'inbound' END AS direction,
                   ['inquiry', 'follow_up', 'complaint'][1 + i % 3] AS kind,
                   'R' || lpad(CAST(i % 20 AS VARCHAR), 3, '0') AS rep_id,
                   CASE WHEN i % 5 = 0 THEN 1 + i % 5 END AS satisfaction,
                   CASE WHEN i % 11 = 0 THEN i % 11 END AS nps
            FROM range(1, {rows + 1}) t(i)
            ) TO '{log}' (FORMAT JSON)"""
        )


def exact_only(self, batch, *, expose_row_numbers):
    """Every row to the exact validator, as JSONL rows went before they took the fast lane."""
    return 0, batch.take(np.arange(len(batch), dtype=np.int64))


def load(landing: Path, warehouse: Path) -> list[list[tuple]]:
    load_landing(landing, warehouse, run_id="bench")
    with duckdb.connect(str(warehouse)) as con:
        return [
            con.execute(sql).fetchall()
            for sql in (
                "SELECT * EXCLUDE (_run_id, _loaded_at) FROM raw.interactions ORDER BY _load_seq",
                "SELECT * EXCLUDE (_run_id, _loaded_at) FROM raw.interactions_orphans "
                "ORDER BY _load_seq",
                "SELECT * EXCLUDE (run_id, rejected_at) FROM quality.rejected_rows "
                "ORDER BY source, row_number",
            )
        ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        landing = Path(tmp) / "landing"
        write_landing(landing, args.rows)
        mib = (landing / "interactions" / "call_centre.jsonl").stat().st_size / 2**20
        shipped = FastLane.stage
        FastLane.stage = exact_only
        try:
            start = time.perf_counter()
            old = load(landing, Path(tmp) / "exact.duckdb")
            slow = time.perf_counter() - start
        finally:
            FastLane.stage = shipped
        start = time.perf_counter()
        new = load(landing, Path(tmp) / "fast.duckdb")
        fast = time.perf_counter() - start
    print("| interactions | MiB | exact validator s | fast lane s | same | loaded |")
    print("|---:|---:|---:|---:|---|---:|")
    print(
        f"| {args.rows:,} | {mib:.0f} | {slow:.2f} | {fast:.2f} | {old == new} | {len(new[0]):,} |"
    )


if __name__ == "__main__":
    main()
