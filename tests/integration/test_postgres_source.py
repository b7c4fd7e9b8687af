"""Orders and payments from a real PostgreSQL server (contract §1: "any SQLAlchemy URL").

What differs from the SQLite world of `world.py`: the driver hands over `timestamptz` values as
aware datetimes and `numeric` values as Decimals, and the server checks a password. The same
rows must land in `raw.orders` / `raw.payments` exactly as they do from SQLite, and a refused
connection must fail the run with a message that never shows the password.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest

from crm.ingest.aliases import load_aliases
from crm.ingest.errors import SourceError
from crm.ingest.loader import Loader
from crm.rules import default_rules
from crm.warehouse import connect
from tests.integration.pg_server import PgServer, start_pg_server
from tests.integration.world import ORDERS, PAYMENTS, build_world

pytestmark = pytest.mark.integration

PG_USER = "crm"
PG_PASSWORD = "Pg-s3cret-7731"
WRONG_PASSWORD = "Wr0ng-pass-4419"
ENTITY_COLUMNS = {
    "orders": (
        "order_id, customer_id, ordered_at, amount, discount_amount, currency, status, "
        "channel, product_category"
    ),
    "payments": "payment_id, order_id, paid_at, amount",
}

ORDERS_DDL = """CREATE TABLE orders (
    order_id text PRIMARY KEY, customer_id text, ordered_at timestamptz, amount numeric(18, 2),
    discount_amount numeric(18, 2), currency text, status text, channel text,
    product_category text, updated_at timestamptz)"""
PAYMENTS_DDL = """CREATE TABLE payments (
    payment_id text PRIMARY KEY, order_id text, paid_at timestamptz, amount numeric(18, 2),
    updated_at timestamptz)"""


@pytest.fixture(scope="module")
def pg(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PgServer]:
    server = start_pg_server(tmp_path_factory.mktemp("pg"), user=PG_USER, password=PG_PASSWORD)
    try:
        server.create_database("shop")
        server.create_database("empty")
        server.create_database("odd")
        _fill_shop(server)
        _fill_odd(server)
        yield server
    finally:
        server.stop()


def _fill_shop(server: PgServer) -> None:
    """The world's orders and payments, typed as a real shop database types them.

    The world's timestamps are local business time (Asia/Shanghai); the session time zone makes
    PostgreSQL store them as those instants, while the server itself runs in UTC — so the
    driver returns them as UTC-aware datetimes, unlike SQLite's naive local text."""
    import psycopg

    with psycopg.connect(server.conninfo("shop")) as conn:
        conn.execute("SET TIME ZONE 'Asia/Shanghai'")
        conn.execute(ORDERS_DDL)
        conn.execute(PAYMENTS_DDL)
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO orders VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                [tuple(str(v) for v in row) for row in ORDERS],
            )
            cur.executemany(
                "INSERT INTO payments VALUES (%s, %s, %s, %s, %s)",
                [tuple(str(v) for v in row) for row in PAYMENTS],
            )


def _fill_odd(server: PgServer) -> None:
    """A shop whose orders table uses PostgreSQL's 'infinity' timestamp as an "open" marker:
    a value the driver itself refuses to turn into a Python datetime."""
    import psycopg

    with psycopg.connect(server.conninfo("odd")) as conn:
        conn.execute(ORDERS_DDL)
        conn.execute(PAYMENTS_DDL)
        conn.execute(
            "INSERT INTO orders VALUES ('O1', 'C001', 'infinity', 10, 0, 'CNY', 'completed', "
            "'online', 'A', now())"
        )


def _load_raw(root: Path, env: dict[str, str], db_url: str) -> Path:
    """Runs only the loader (what raw_sources does) into a fresh warehouse under root."""
    warehouse = root / "loader-only.duckdb"
    with connect(warehouse) as con:
        Loader(
            con,
            landing_dir=Path(env["CRM_LANDING_DIR"]),
            source_db_url=db_url,
            rules=default_rules(),
            aliases=load_aliases(),
            timezone=env["CRM_TIMEZONE"],
            run_id="test",
        ).run()
    return warehouse


def _rows(warehouse: Path, table: str) -> list[tuple]:
    columns = ENTITY_COLUMNS[table.split(".")[1].removesuffix("_orphans")]
    with duckdb.connect(str(warehouse), read_only=True) as con:
        return con.execute(f"SELECT {columns} FROM {table} ORDER BY 1").fetchall()


def test_postgres_rows_load_exactly_like_the_sqlite_rows(pg: PgServer, tmp_path: Path):
    sqlite_env = build_world(tmp_path / "sqlite")
    pg_root = tmp_path / "pg"
    pg_env = build_world(pg_root)
    from_sqlite = _load_raw(tmp_path / "sqlite", sqlite_env, sqlite_env["CRM_SOURCE_DB_URL"])
    from_pg = _load_raw(pg_root, pg_env, pg.url("shop"))
    for table in ("raw.orders", "raw.payments", "raw.orders_orphans", "raw.payments_orphans"):
        assert _rows(from_pg, table) == _rows(from_sqlite, table), table
    # Spot check by hand: O1 was ordered 2025-12-01 09:00 in Shanghai (UTC+8) → 01:00 UTC;
    # amount 1000.00 survives the numeric → DECIMAL(18,2) trip.
    o1 = _rows(from_pg, "raw.orders")[0]
    assert (o1[0], str(o1[2]), str(o1[3])) == ("O1", "2025-12-01 01:00:00", "1000.00")
    assert len(_rows(from_pg, "raw.orders")) == 10  # 11 orders, O10 waits for customer C999
    assert [r[0] for r in _rows(from_pg, "raw.payments_orphans")] == ["P4"]  # order O404


def _run_job(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> int:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("SMTP_HOST", raising=False)
    from pipelines.run import main

    return main([])


def test_customer_daily_reads_orders_and_payments_from_postgres(
    pg: PgServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    env = build_world(tmp_path)
    (tmp_path / "source" / "shop.db").unlink()  # nothing but PostgreSQL can supply the orders
    env["CRM_SOURCE_DB_URL"] = pg.url("shop")
    # The world is tiny: its one orphan order of 11 is above the 5% rejected-share gate, which
    # is not what this test is about.
    (tmp_path / "rules.yaml").write_text("quality:\n  max_rejected_share: 1.0\n", encoding="utf-8")
    env["CRM_RULES"] = str(tmp_path / "rules.yaml")
    assert _run_job(env, monkeypatch) == 0
    with duckdb.connect(f"{env['CRM_PUBLISH_DIR']}/analytics.duckdb", read_only=True) as con:
        audit = dict(
            (source, rest)
            for source, *rest in con.execute(
                "SELECT source, rows_read, rows_loaded, rows_rejected, rows_duplicate "
                "FROM quality.load_audit"
            ).fetchall()
        )
        c001 = con.execute(
            "SELECT orders_total, revenue_total, last_order_date, collection_ratio "
            "FROM marts.customer_profile WHERE customer_id = 'C001'"
        ).fetchone()
    # 11 orders read, O10 rejected (unknown customer C999); 5 payments, P4 rejected (O404).
    assert audit["db:orders"] == [11, 10, 1, 0]
    assert audit["db:payments"] == [5, 4, 1, 0]
    # C001 completed O1 1000 + O2 2000 + O3 500 + O4 3000 = 6500 (O5 cancelled); last 2026-06-01.
    # Billed orders (30–730 days old): O1 1000 paid in full, O2 2000 paid 1900, O3 500 unpaid;
    # O4 is 29 days old → not billed. collected 1000 + 1900 + 0 = 2900 of 3500.
    assert c001[0] == 4 and str(c001[1]) == "6500.00" and str(c001[2]) == "2026-06-01"
    assert c001[3] == pytest.approx(2900 / 3500)


def _failure_text(env: dict[str, str], monkeypatch, capfd) -> tuple[int, str, str]:
    code = _run_job(env, monkeypatch)
    out, err = capfd.readouterr()
    last_line = [line for line in err.splitlines() if line.strip()][-1]
    return code, last_line, out + err


def test_wrong_password_fails_without_showing_it(
    pg: PgServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture
):
    env = build_world(tmp_path)
    env["CRM_SOURCE_DB_URL"] = pg.url("shop", password=WRONG_PASSWORD)
    code, last_line, everything = _failure_text(env, monkeypatch, capfd)
    assert code == 1
    assert "db:orders" in last_line and "password authentication failed" in last_line
    assert WRONG_PASSWORD not in everything and PG_PASSWORD not in everything
    assert not (tmp_path / "published" / "analytics.duckdb").exists()


def test_missing_table_fails_naming_it_without_the_password(
    pg: PgServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture
):
    env = build_world(tmp_path)
    env["CRM_SOURCE_DB_URL"] = pg.url("empty")
    code, last_line, everything = _failure_text(env, monkeypatch, capfd)
    assert code == 1
    assert "db:orders" in last_line and "missing" in last_line
    assert PG_PASSWORD not in everything


def test_loader_error_for_a_refused_connection_masks_the_password(pg: PgServer, tmp_path: Path):
    env = build_world(tmp_path)
    with pytest.raises(SourceError) as failure:
        _load_raw(tmp_path, env, pg.url("shop", password=WRONG_PASSWORD))
    assert WRONG_PASSWORD not in str(failure.value)
    assert f"{PG_USER}:***@127.0.0.1:{pg.port}/shop" in str(failure.value)


def test_driver_failure_while_reading_rows_names_the_table_not_the_password(
    pg: PgServer, tmp_path: Path
):
    env = build_world(tmp_path)
    with pytest.raises(SourceError) as failure:
        _load_raw(tmp_path, env, pg.url("odd"))
    message = str(failure.value)
    assert message.startswith("db:orders: reading failed")
    assert PG_PASSWORD not in message
    # Nothing of the failed table was kept; the landing files before it loaded normally.
    with duckdb.connect(str(tmp_path / "loader-only.duckdb"), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM raw.orders").fetchone()[0] == 0
        assert con.execute("SELECT count(*) FROM raw.customers").fetchone()[0] == 5
