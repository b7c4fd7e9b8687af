"""CSV landing files: Arrow's reader for plain files (crm.ingest.csv_arrow) vs the row-wise reader.

Why: CRM exports arrive as CSV, often GBK-encoded from Excel. The row-wise reader (Python's `csv`
module, then columns built from its rows) costs ~12 µs per row of a 14-column export and holds
the GIL the loader's other thread needs. This times, for a customer export of `--rows` rows in
UTF-8 and in GB18030, reading the file alone (`read_file`, both ways, outputs compared) and
loading it into a new warehouse (`Loader`, both ways, raw tables compared).

    .venv/bin/python -m benchmarks.bench_csv [--rows 1000000]
"""

from __future__ import annotations

import argparse
import codecs
import tempfile
import time
from pathlib import Path

import duckdb

import crm.ingest.readers as readers
from crm.ingest.aliases import load_aliases
from crm.schemas import CUSTOMERS
from tests.unit.landing_loads import load_landing

HEADER = (
    "customer_id,name,customer_type,industry,region,province,city,employees,email,phone,"
    "owner_rep_id,source_channel,is_key_account,created_at"
)


def write_export(path: Path, rows: int, encoding: str) -> None:
    """A customer export shaped like the demo's (Chinese names and places, empty cells)."""
    utf8 = path.with_suffix(".utf8.csv")
    with duckdb.connect() as con:
        con.execute(
            f"""COPY (
            SELECT 'C' || lpad(CAST(i AS VARCHAR), 7, '0') AS customer_id,
                   CASE WHEN i % 3 = 0 THEN '杭州海纳' || CAST(i % 997 AS VARCHAR) || '商贸有限公司'
                        ELSE '林伟' || CAST(i % 89 AS VARCHAR) END AS name,
                   CASE WHEN i % 3 = 0 THEN 'company' ELSE 'person' END AS customer_type,
                   CASE WHEN i % 3 = 0 THEN '零售' ELSE '' END AS industry,
                   '' AS region, '浙江省' AS province, '杭州' AS city,
                   CASE WHEN i % 3 = 0 THEN CAST(i % 500 AS VARCHAR) ELSE '' END AS employees,
                   'c' || CAST(i AS VARCHAR) || '@example.cn' AS email,
                   CAST(13800000000 + i AS VARCHAR) AS phone,
                   'R' || lpad(CAST(i % 20 AS VARCHAR), 3, '0') AS owner_rep_id,
                   'wechat' AS source_channel, 'false' AS is_key_account,
                   strftime(TIMESTAMP '2024-01-01' + INTERVAL (i % 900) DAY, '%Y-%m-%d %H:%M:%S')
                       AS created_at
            FROM range(1, {rows + 1}) t(i)
            ) TO '{utf8.as_posix()}' (HEADER, QUOTE '')"""
        )
    encoder = codecs.getincrementalencoder(encoding)()
    with utf8.open(encoding="utf-8") as source, path.open("wb") as target:
        while block := source.read(1 << 22):
            target.write(encoder.encode(block))
        target.write(encoder.encode("", final=True))
    utf8.unlink()


def _both_ways(run) -> tuple[float, float, bool]:
    """Seconds of `run()` with the row-wise reader forced, then as shipped; equal results?"""
    plain = readers.is_plain_csv
    readers.is_plain_csv = lambda *args: False
    try:
        start = time.perf_counter()
        old = run()
        slow = time.perf_counter() - start
    finally:
        readers.is_plain_csv = plain
    start = time.perf_counter()
    new = run()
    return slow, time.perf_counter() - start, old == new


def read_rows(path: Path) -> list[tuple]:
    out = []
    for chunk in readers.read_file(path, CUSTOMERS, load_aliases(), display_name=path.name):
        if isinstance(chunk, readers.TextBatch):
            out.append((chunk.row_numbers.tobytes(), list(chunk.texts)))  # Array == is equals()
    return out


def load(landing: Path, warehouse: Path) -> list[tuple]:
    load_landing(landing, warehouse, run_id="bench")
    with duckdb.connect(str(warehouse)) as con:
        return con.execute(
            "SELECT * EXCLUDE (_run_id, _loaded_at) FROM raw.customers ORDER BY _load_seq"
        ).fetchall()


def bench(encoding: str, rows: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        landing = Path(tmp) / "landing"
        (landing / "customers").mkdir(parents=True)
        path = landing / "customers" / "export.csv"
        write_export(path, rows, encoding)
        mib = path.stat().st_size / 2**20
        warehouses = iter([Path(tmp) / "a.duckdb", Path(tmp) / "b.duckdb"])
        for step, run in (
            ("read", lambda: read_rows(path)),
            ("load", lambda: load(landing, next(warehouses))),
        ):
            slow, fast, same = _both_ways(run)
            print(
                f"| {encoding} | {rows:,} | {mib:.0f} | {step} | {slow:.2f} | {fast:.2f} | {same} |"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    args = parser.parse_args()
    print("| encoding | rows | MiB | step | row-wise s | Arrow s | same |")
    print("|---|---:|---:|---|---:|---:|---|")
    for encoding in ("utf-8", "gb18030"):
        bench(encoding, args.rows)


if __name__ == "__main__":
    main()
