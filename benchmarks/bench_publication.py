"""Publication cost of the tables that grow with days of operation.

Why: `make bench` runs one day at a time. Two published tables keep every day's rows: the alert
outbox (`marts.churn_alerts`: every alert ever planned, with its delivery status) and the stage
history. Publication copies each table whole into a new `analytics.duckdb` and a Parquet file
every run (contract §4: one file per table, replaced atomically), so its cost follows their
size, not the day's change. This measures `crm.publish.publish` for each alone at the sizes a
1M-customer business reaches: alerts of a first day (~120k at L), about a year (~3M: ~8k a day
with the 14-day cooldown) and three years; a history of 1 and 5 periods per customer.

    .venv/bin/python -m benchmarks.bench_publication [--alerts 120000,3000000,9000000]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import duckdb

from benchmarks.bench_stage_history import build_history
from crm.outbox import OUTBOX_TABLE, ensure_outbox
from crm.publish import publish
from crm.stage_history import TABLE as HISTORY_TABLE

# An alert's reasons as the churn step writes them (three signals, Chinese and English): ~320
# characters like the L run's average.
REASONS = (
    "115 天未下单，通常每 39 天下单一次 / 115 days since last order, usually every 39 days\n"
    "近一季度 0 单，前一年平均每季度 2 单 / 0 orders last quarter, 2 per quarter the year before\n"
    "近一季度消费 0 元，前一年平均每季度 4845.59 元 / spent 0 last quarter, 4845.59 per quarter "
    "the year before"
)


def build_alerts(path: Path, rows: int) -> None:
    """`rows` sent alerts, ~8k per as_of going back from 2026-11-01, in the outbox's own table."""
    with duckdb.connect(str(path)) as con:
        ensure_outbox(con)
        con.execute(
            f"""INSERT INTO {OUTBOX_TABLE} BY NAME
            SELECT strftime(DATE '2026-11-01' - CAST(i // 8000 AS INTEGER), '%Y%m%d') || '-'
                       || lpad(to_hex(hash(i)), 16, '0') AS alert_id,
                   'C' || lpad(CAST(hash(i) % 1000000 AS VARCHAR), 7, '0') AS customer_id,
                   DATE '2026-11-01' - CAST(i // 8000 AS INTEGER) AS as_of,
                   'high' AS risk_level, CAST(60 + hash(i) % 40 AS INTEGER) AS risk_score,
                   replace($reasons, '115', CAST(100 + i % 300 AS VARCHAR)) AS reasons,
                   'call_customer' AS suggested_action, '电话回访 / call the customer'
                       AS suggested_action_label,
                   'rep' || CAST(i % 20 AS VARCHAR) || '@example.com' AS recipient,
                   'manager@example.com' AS cc, 'sent' AS status, 1 AS attempts,
                   TIMESTAMP '2026-11-01 01:00:00' AS sent_at, '客户' || CAST(i AS VARCHAR)
                       AS customer_name, 'at_risk' AS stage, 'medium' AS value_tier,
                   i % 17 = 0 AS is_key_account, 'R' || CAST(i % 20 AS VARCHAR) AS owner_rep_id,
                   'recency,frequency_drop,monetary_drop' AS signals,
                   'd-' || CAST(i // 50 AS VARCHAR) AS digest_id,
                   '<' || CAST(i AS VARCHAR) || '@crm>' AS message_id,
                   TIMESTAMP '2026-11-01 01:00:00' AS created_at, 'run' AS created_run_id,
                   TIMESTAMP '2026-11-01 01:00:00' AS last_attempt_at, 'run' AS last_run_id
            FROM range({rows}) t(i)""",
            {"reasons": REASONS},
        )


def time_publish(warehouse: Path, table: str, folder: Path) -> tuple[float, int]:
    """Seconds to publish `table` alone (DuckDB file + Parquet) and the Parquet size in MiB."""
    started = time.perf_counter()
    publish(warehouse, folder, (table,))
    seconds = time.perf_counter() - started
    parquet = folder / f"{table.split('.', 1)[1]}.parquet"
    return seconds, parquet.stat().st_size >> 20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--alerts", default="120000,3000000,9000000")
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--periods", default="1,5", help="history periods per customer")
    args = parser.parse_args()
    print("| table | rows | publish s | µs per row | Parquet MiB |\n|---|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        sizes = [("alerts", int(n)) for n in args.alerts.split(",")]
        sizes += [("history", int(p)) for p in args.periods.split(",")]
        for kind, size in sizes:
            warehouse = root / f"{kind}_{size}.duckdb"
            if kind == "alerts":
                build_alerts(warehouse, size)
                table = OUTBOX_TABLE
            else:
                build_history(warehouse, args.customers, size)
                table = HISTORY_TABLE
            with duckdb.connect(str(warehouse), read_only=True) as con:
                rows = con.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
            seconds, mib = time_publish(warehouse, table, root / "published")
            print(
                f"| `{table}` | {rows:,} | {seconds:.2f} | {seconds / rows * 1e6:.2f} | {mib:,} |",
                flush=True,
            )
            warehouse.unlink()


if __name__ == "__main__":
    main()
