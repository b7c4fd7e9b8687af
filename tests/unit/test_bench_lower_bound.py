"""`make bench` measures the least any pipeline needs: read the sources, write the rows once, floor.

The report uses these figures to say whether a time target is reachable on this machine at all,
so each part must handle exactly the rows it claims, and the arithmetic of the report (one part
after the other, and CPU time spread over every core) must be right.
"""

import json
import os
import sqlite3
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from benchmarks.lower_bound import (
    LowerBound,
    Part,
    measure,
    read_sources,
    report_lines,
    write_rows_once,
)
from benchmarks.run import RunResult, markdown
from crm.warehouse import connect, ensure_schema
from tests.reference.domain_reference import ENTITY_COLUMNS  # contract §1, written independently

ROOT = Path(__file__).resolve().parents[2]


def test_every_source_row_is_read_once(tmp_path):
    landing = tmp_path / "landing"
    (landing / "customers").mkdir(parents=True)
    (landing / "interactions").mkdir()
    (landing / "customers" / "export.csv").write_text(
        "customer_id,name\nC1,甲\nC2,乙\nC3,丙\n", encoding="utf-8"
    )
    pq.write_table(
        pa.table({"interaction_id": [f"I{i}" for i in range(5)]}),
        landing / "interactions" / "part.parquet",
    )
    (landing / "interactions" / "log.jsonl").write_text(
        '{"interaction_id": "J1"}\n{"interaction_id": "J2"}\n', encoding="utf-8"
    )
    (landing / "interactions" / "README.txt").write_text("not a source\n", encoding="utf-8")
    db = tmp_path / "shop.db"
    with sqlite3.connect(db) as con:
        con.execute("CREATE TABLE orders (order_id TEXT, amount NUMERIC(18,2))")
        con.executemany("INSERT INTO orders VALUES (?, ?)", [(f"O{i}", i) for i in range(4)])
        con.execute("CREATE TABLE payments (payment_id TEXT)")
        con.executemany("INSERT INTO payments VALUES (?)", [("P1",), ("P2",)])
        con.execute("CREATE TABLE audit_log (line TEXT)")  # not a source table
        con.executemany("INSERT INTO audit_log VALUES (?)", [("x",)] * 7)

    part = read_sources(landing, db)

    assert part.rows == 3 + 5 + 2 + 4 + 2
    assert part.wall > 0


def _warehouse_with_two_orders(run_dir):
    warehouse = run_dir / "warehouse.duckdb"
    with connect(warehouse) as con:
        ensure_schema(con)
        con.execute(
            """INSERT INTO raw.orders (order_id, customer_id, ordered_at, amount, status,
                   _load_seq, _source, _row_hash)
               VALUES ('O1', 'C1', TIMESTAMP '2026-11-01 08:00', 10.50, 'completed', 1, 'db:orders',
                       'h1'),
                      ('O2', 'C1', TIMESTAMP '2026-11-02 09:00', 99.99, 'pending', 2, 'db:orders',
                       'h2')"""
        )
        con.execute(
            """INSERT INTO raw.customers (customer_id, created_at, _load_seq)
               VALUES ('C1', TIMESTAMP '2026-01-01', 3)"""
        )
    return warehouse


def test_the_rows_are_written_once_with_their_source_columns_and_types(tmp_path):
    warehouse = _warehouse_with_two_orders(tmp_path)
    out = tmp_path / "once.duckdb"

    part = write_rows_once(warehouse, out)

    assert part.rows == 3
    con = duckdb.connect(str(out), read_only=True)
    try:
        columns = con.execute(
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_name = 'orders' ORDER BY ordinal_position"
        ).fetchall()
        assert [name for name, _ in columns] == ENTITY_COLUMNS[
            "orders"
        ]  # no load metadata, no row hash
        assert dict(columns)["amount"] == "DECIMAL(18,2)"
        assert dict(columns)["ordered_at"] == "TIMESTAMP"
        assert con.execute("SELECT sum(amount) FROM orders").fetchone()[0] == Decimal("110.49")
        assert con.execute("SELECT count(*) FROM customers").fetchone()[0] == 1
    finally:
        con.close()


def test_the_child_reports_its_figures_and_leaves_no_written_file(tmp_path):
    _warehouse_with_two_orders(tmp_path)
    (tmp_path / "landing" / "orders").mkdir(parents=True)
    (tmp_path / "landing" / "orders" / "o.csv").write_text("order_id\nO1\nO2\n", encoding="utf-8")
    out = tmp_path / "bound.json"

    subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks.lower_bound",
            str(tmp_path),
            str(tmp_path / "landing"),
            str(tmp_path / "no-such.db"),  # a run without a source database
            "2026-11-02",
            str(out),
        ],
        cwd=ROOT,
        check=True,
    )

    bound = LowerBound.from_json(json.loads(out.read_text(encoding="utf-8")))
    assert (bound.read.rows, bound.write.rows) == (2, 3)
    assert bound.floor.wall > 0
    assert bound.floor.rows == 1  # the one customer created before as_of
    assert bound.cores == os.cpu_count()
    assert sorted(p.name for p in tmp_path.iterdir() if "once" in p.name) == []


def test_cpu_time_is_not_wall_time():
    idle = measure(lambda: time.sleep(0.3) or 0)
    assert idle.wall >= 0.3
    assert idle.cpu < 0.1


def test_the_report_adds_the_parts_and_spreads_the_cpu_over_the_cores():
    bound = LowerBound(
        read=Part(wall=10.0, cpu=12.0, rows=50),
        write=Part(wall=20.0, cpu=38.0, rows=50),
        floor=Part(wall=70.0, cpu=130.0, rows=1),
        cores=2,
    )
    assert bound.in_a_row == 100.0
    assert bound.cpu == 180.0
    assert bound.on_all_cores == 90.0
    assert LowerBound.from_json(json.loads(json.dumps(bound.to_json()))) == bound
    assert (
        "| L | 10.0 (12.0) | 20.0 (38.0) | 70.0 (130.0) | 100.0 | 180.0 | 90.0 (÷ 2 cores) |"
        in report_lines({"L": bound})
    )

    full = RunResult("L", "full", "2026-11-01", True, 400.0, 3000.0, floor_seconds=70.0)
    assert "The least any pipeline needs" not in markdown([full], {})
    full.lower_bound = bound
    assert "| L | 10.0 (12.0) | 20.0 (38.0) |" in markdown([full], {})
