"""The seeded demo data set: customers, sales reps, orders, payments and interactions.

Consumers: `make demo`, the benchmarks and the integration tests. The same seed and as_of give
byte-identical outputs. Memory stays bounded at any size because customers are generated in
blocks (`DemoShape.block_customers`); each block has its own random stream derived from the seed,
and its orders, payments and interactions are written before the next block starts.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import sqlalchemy as sa

from crm.demo.customers import (
    SALES_REP_COLUMNS,
    CustomerBlock,
    customer_header,
    customer_id_width,
    customer_rows,
    make_customers,
    sales_rep_rows,
)
from crm.demo.interactions import INTERACTION_COLUMNS, make_interactions
from crm.demo.orders import (
    AMOUNT_COLUMNS,
    ORDER_COLUMNS,
    PAYMENT_COLUMNS,
    make_orders,
    make_payments,
    orders_table,
)
from crm.demo.shape import DEFAULT_SHAPE, DemoShape
from crm.demo.timeline import (
    Timeline,
    build_timeline,
    cumulative,
    seasonal_buyer_weights,
    shopping_weights,
)
from crm.demo.writers import (
    CsvSink,
    ParquetChunkSink,
    SqlTableSink,
    YearlyCsvSink,
    open_database,
)
from crm.rules import default_rules
from crm.settings import DEFAULT_TIMEZONE

ENGLISH_CUSTOMER_FILE = "customers/crm_export_2024.csv"
CHINESE_CUSTOMER_FILE = "customers/客户导出_销售部.csv"
SALES_REP_FILE = "sales_reps/sales_reps.csv"
ENTITIES = ("customers", "sales_reps", "orders", "payments", "interactions")
# Our own file names per landing folder: --force removes exactly these, nothing else.
OWN_OUTPUT_PATTERNS: dict[str, tuple[str, ...]] = {
    "customers": ("crm_export_2024.csv", "客户导出_销售部.csv"),
    "sales_reps": ("sales_reps.csv",),
    "interactions": ("interactions_*.csv", "interactions_part_*.parquet"),
    "orders": ("orders.csv", "orders_part_*.parquet"),
    "payments": ("payments.csv", "payments_part_*.parquet"),
}
_TEXT = "TEXT"
_WATERMARK_COLUMN = "updated_at"
_MONEY = "NUMERIC(18,2)"
ORDER_DDL: list[tuple[str, str]] = [
    ("order_id", f"{_TEXT} PRIMARY KEY"),
    ("customer_id", f"{_TEXT} NOT NULL"),
    ("ordered_at", f"{_TEXT} NOT NULL"),
    ("amount", f"{_MONEY} NOT NULL"),
    ("discount_amount", f"{_MONEY} NOT NULL"),
    ("currency", f"{_TEXT} NOT NULL"),
    ("status", f"{_TEXT} NOT NULL"),
    ("channel", _TEXT),
    ("product_category", _TEXT),
    ("updated_at", f"{_TEXT} NOT NULL"),
]
PAYMENT_DDL: list[tuple[str, str]] = [
    ("payment_id", f"{_TEXT} PRIMARY KEY"),
    ("order_id", f"{_TEXT} NOT NULL"),
    ("paid_at", f"{_TEXT} NOT NULL"),
    ("amount", f"{_MONEY} NOT NULL"),
    ("updated_at", f"{_TEXT} NOT NULL"),
]

Echo = Callable[[str], None]


def _quiet(_message: str) -> None:
    """Default progress sink for library callers (tests, benchmarks)."""


@dataclass
class _Progress:
    """Rows written and seconds spent per entity, for the progress lines and the summary."""

    echo: Echo
    rows: dict[str, int] = field(default_factory=lambda: dict.fromkeys(ENTITIES, 0))
    seconds: dict[str, float] = field(default_factory=lambda: dict.fromkeys(ENTITIES, 0.0))

    def timed(self, entity: str, started: float, rows: int) -> None:
        self.rows[entity] += rows
        self.seconds[entity] += time.perf_counter() - started


def landing_has_customers(landing_dir: Path) -> bool:
    folder = landing_dir / "customers"
    return folder.is_dir() and any(
        p.is_file() and not p.name.startswith(".") for p in folder.iterdir()
    )


def remove_own_outputs(landing_dir: Path) -> None:
    """Delete the files a previous run of this generator wrote (and only those)."""
    for folder, patterns in OWN_OUTPUT_PATTERNS.items():
        for pattern in patterns:
            for path in sorted((landing_dir / folder).glob(pattern)):
                path.unlink()


class _Outputs:
    """Open sinks for one run: customer exports, reps, interactions, orders and payments."""

    def __init__(
        self, stack: ExitStack, landing_dir: Path, db: sa.Connection | None, use_parquet: bool
    ) -> None:
        self.english = CsvSink(
            landing_dir / ENGLISH_CUSTOMER_FILE, customer_header(gbk=False), "utf-8-sig"
        )
        self.chinese = CsvSink(
            landing_dir / CHINESE_CUSTOMER_FILE, customer_header(gbk=True), "gbk"
        )
        for sink in (self.english, self.chinese):
            stack.callback(sink.close)
        self.interactions = self._file_sink(
            landing_dir, "interactions", INTERACTION_COLUMNS, use_parquet
        )
        self.sql_orders: SqlTableSink | None = None
        self.sql_payments: SqlTableSink | None = None
        if db is not None:
            self.sql_orders = SqlTableSink(db, "orders", ORDER_DDL, AMOUNT_COLUMNS)
            self.sql_payments = SqlTableSink(db, "payments", PAYMENT_DDL, AMOUNT_COLUMNS)
            self.orders, self.payments = self.sql_orders, self.sql_payments
        else:
            self.orders = self._single_file_sink(landing_dir, "orders", ORDER_COLUMNS, use_parquet)
            self.payments = self._single_file_sink(
                landing_dir, "payments", PAYMENT_COLUMNS, use_parquet
            )
        for sink in (self.interactions, self.orders, self.payments):
            stack.callback(sink.close)

    @staticmethod
    def _file_sink(landing_dir: Path, entity: str, columns: tuple[str, ...], use_parquet: bool):
        folder = landing_dir / entity
        if use_parquet:
            return ParquetChunkSink(folder, entity)
        folder.mkdir(parents=True, exist_ok=True)
        return YearlyCsvSink(
            folder, entity, list(columns), columns[4 if entity == "interactions" else 2]
        )

    @staticmethod
    def _single_file_sink(
        landing_dir: Path, entity: str, columns: tuple[str, ...], use_parquet: bool
    ) -> _WithoutUpdatedAt:
        """Files carry the contract columns only: updated_at is a database watermark."""
        if use_parquet:
            sink = ParquetChunkSink(landing_dir / entity, entity)
        else:
            header = [c for c in columns if c != _WATERMARK_COLUMN]
            sink = CsvSink(landing_dir / entity / f"{entity}.csv", header, "utf-8")
        return _WithoutUpdatedAt(sink)


class _WithoutUpdatedAt:
    """Drops the database-only `updated_at` column before a file sink writes a table."""

    def __init__(self, sink: CsvSink | ParquetChunkSink) -> None:
        self.sink = sink

    def write_table(self, table: pa.Table) -> None:
        self.sink.write_table(table.drop_columns([_WATERMARK_COLUMN]))

    def close(self) -> None:
        self.sink.close()


def _write_sales_reps(landing_dir: Path, progress: _Progress) -> None:
    started = time.perf_counter()
    sink = CsvSink(landing_dir / SALES_REP_FILE, list(SALES_REP_COLUMNS), "utf-8")
    rows = sales_rep_rows()
    sink.write_rows(rows)
    sink.close()
    progress.timed("sales_reps", started, len(rows))


def _write_block(
    rng: np.random.Generator,
    block: CustomerBlock,
    outputs: _Outputs,
    progress: _Progress,
    context: _RunContext,
) -> None:
    started = time.perf_counter()
    outputs.english.write_rows(customer_rows(block, gbk=False))
    outputs.chinese.write_rows(customer_rows(block, gbk=True))
    progress.timed("customers", started, len(block))

    started = time.perf_counter()
    orders = make_orders(
        rng,
        block,
        context.timeline,
        context.shape,
        context.shop_cdf,
        context.seasonal_cdf,
        first_order_number=progress.rows["orders"] + 1,
    )
    outputs.orders.write_table(orders_table(rng, orders, block, context.currency))
    progress.timed("orders", started, len(orders))

    started = time.perf_counter()
    payments = make_payments(
        rng,
        orders,
        block,
        context.timeline,
        context.shape,
        first_payment_number=progress.rows["payments"] + 1,
    )
    outputs.payments.write_table(payments)
    progress.timed("payments", started, payments.num_rows)

    started = time.perf_counter()
    interactions = make_interactions(
        rng,
        block,
        context.timeline,
        context.shape,
        first_number=progress.rows["interactions"] + 1,
        last_order_day=orders.last_order_day(
            len(block), context.timeline, default=block.window_last
        ),
    )
    outputs.interactions.write_table(interactions)
    progress.timed("interactions", started, interactions.num_rows)


@dataclass(frozen=True)
class _RunContext:
    timeline: Timeline
    shape: DemoShape
    shop_cdf: np.ndarray
    seasonal_cdf: np.ndarray
    currency: str


def generate(
    customers: int,
    seed: int,
    as_of: date,
    landing_dir: Path,
    db_url: str | None,
    force: bool = False,
    *,
    timezone: str = DEFAULT_TIMEZONE,
    shape: DemoShape = DEFAULT_SHAPE,
    echo: Echo = _quiet,
    now: datetime | None = None,
) -> dict[str, int]:
    """Write the demo data set; return rows written per entity ({} when data already exists).

    `db_url` None writes orders and payments as landing files instead of database tables.
    `now` (default: the clock) only matters when as_of is today: nothing is dated after it.
    """
    if customers < 1:
        raise ValueError("customers must be at least 1")
    landing_dir = Path(landing_dir)
    if landing_has_customers(landing_dir) and not force:
        echo(f"Demo data already exists in {landing_dir / 'customers'}; use --force to replace it.")
        return {}
    remove_own_outputs(landing_dir)
    timeline = build_timeline(as_of, shape.history_days, timezone, now)
    context = _RunContext(
        timeline=timeline,
        shape=shape,
        shop_cdf=cumulative(shopping_weights(timeline, shape)),
        seasonal_cdf=cumulative(seasonal_buyer_weights(timeline, shape)),
        currency=default_rules().quality.currency,
    )
    progress = _Progress(echo)
    blocks = range(0, customers, shape.block_customers)
    streams = np.random.SeedSequence(seed).spawn(len(blocks))
    id_width = customer_id_width(customers)
    use_parquet = customers > shape.csv_max_customers
    run_started = time.perf_counter()
    echo(f"Generating {customers:,} customers (seed {seed}, as_of {as_of}) into {landing_dir}")
    _write_sales_reps(landing_dir, progress)
    engine = open_database(db_url) if db_url else None
    with ExitStack() as stack:
        db = stack.enter_context(engine.begin()) if engine is not None else None
        outputs = _Outputs(stack, landing_dir, db, use_parquet)
        for number, (start, stream) in enumerate(zip(blocks, streams, strict=True), start=1):
            rng = np.random.default_rng(stream)
            count = min(shape.block_customers, customers - start)
            block = make_customers(rng, start + 1, count, id_width, timeline, shape)
            _write_block(rng, block, outputs, progress, context)
            echo(_block_line(number, len(blocks), progress, run_started))
        for sink in (outputs.sql_orders, outputs.sql_payments):
            if sink is not None:
                sink.index("updated_at")
    if engine is not None:
        engine.dispose()
    _echo_summary(progress, time.perf_counter() - run_started, landing_dir, db_url)
    return dict(progress.rows)


def _block_line(number: int, blocks: int, progress: _Progress, run_started: float) -> str:
    counts = ", ".join(f"{e} {progress.rows[e]:,}" for e in ENTITIES if e != "sales_reps")
    return f"  block {number}/{blocks}: {counts} ({time.perf_counter() - run_started:.1f} s)"


def _echo_summary(
    progress: _Progress, seconds: float, landing_dir: Path, db_url: str | None
) -> None:
    for entity in ENTITIES:
        progress.echo(
            f"  {entity:<13} {progress.rows[entity]:>12,} rows  {progress.seconds[entity]:8.1f} s"
        )
    where = f"{landing_dir}" + (f" and {db_url}" if db_url else "")
    total = sum(progress.rows.values())
    progress.echo(f"Done: {total:,} rows in {seconds:.1f} s, written to {where}")
