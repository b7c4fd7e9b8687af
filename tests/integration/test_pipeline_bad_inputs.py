"""Bad sources dropped into a working world, seen from the outside (contract §1 "Validation").

Two outcomes only. A source that cannot be read as its format fails the run: exit 1, the last
stderr line names the file (or `db:<table>`) and the problem — not a traceback — and neither the
loaded data nor the previous publication changes. A bad *row* is quarantined in
`quality.rejected_rows` with its reason, the rest of the source loads, and `quality.load_audit`
reconciles for every source. Orphans load once their parent arrives; a later version of an order
wins in `marts.customer_profile`.

Runs are in-process (`pipelines.run.main`, as `test_customer_daily.py` does) and share one world:
one successful run, then the failing runs (cheap: they stop in raw_sources), then two more
successful runs that add quarantined rows, an orphan, its parent and a changed order.
"""

from __future__ import annotations

import shutil
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path

import duckdb
import pytest

from tests.integration.world import build_world

pytestmark = pytest.mark.integration

# The load gates judge whole deliveries: a handful of rows with several bad ones, or a one-row
# file after a six-row one, trips them by design. This file tests row quarantine and source
# failures, so the gates are opened through the rules file (contract §2 CRM_RULES).
GATES_OFF = "quality:\n  max_rejected_share: 1.0\n  max_volume_drop: 1.0\n"

ORDERS_HEADER = (
    "order_id,customer_id,ordered_at,amount,discount_amount,currency,status,channel,"
    "product_category\n"
)
# Second run. O20 is a new order of C002. O21–O23 break one rule each. O24's customer C007
# arrives only in the third run.
ORDERS_SECOND_RUN = ORDERS_HEADER + (
    "O20,C002,2026-06-10 10:00:00,100.00,0,CNY,completed,store,B\n"
    "O21,C001,2026-06-11 10:00:00,-1.00,0,CNY,completed,online,A\n"
    "O22,C001,2026-06-12 10:00:00,10.00,0,CNY,shipped,online,A\n"
    "O23,C001,2099-01-01 10:00:00,10.00,0,CNY,completed,online,A\n"
    "O24,C007,2026-06-12 10:00:00,250.00,0,CNY,completed,online,A\n"
)
# A Chinese Excel export in GBK: Chinese headers and the status 已完成 (completed).
GBK_ORDERS = (
    "订单编号,客户编号,下单时间,订单金额,状态\nO25,C003,2026-06-05 10:00:00,300.00,已完成\n"
)
# Third run: C007 arrives, and a later file changes O20's amount from 100.00 to 400.00.
LATE_CUSTOMER = (
    "customer_id,name,customer_type,created_at\nC007,迟到客户有限公司,company,2026-06-01\n"
)
ORDERS_THIRD_RUN = ORDERS_HEADER + "O20,C002,2026-06-10 10:00:00,400.00,0,CNY,completed,store,B\n"


def _run_job(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> int:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("SMTP_HOST", raising=False)
    from pipelines.run import main

    return main([])


def _published(env: dict[str, str]) -> duckdb.DuckDBPyConnection:
    return duckdb.connect(f"{env['CRM_PUBLISH_DIR']}/analytics.duckdb", read_only=True)


def publication_snapshot(env: dict[str, str]) -> dict[str, list[tuple]]:
    with _published(env) as con:
        tables = con.execute(
            "SELECT table_schema || '.' || table_name FROM information_schema.tables ORDER BY 1"
        ).fetchall()
        return {
            t: sorted(map(repr, con.execute(f"SELECT * FROM {t}").fetchall())) for (t,) in tables
        }


def raw_snapshot(env: dict[str, str]) -> dict[str, int]:
    """Row counts of every raw table and the loaded-files bookkeeping."""
    with duckdb.connect(env["CRM_WAREHOUSE"], read_only=True) as con:
        tables = con.execute(
            "SELECT table_schema || '.' || table_name FROM information_schema.tables "
            "WHERE table_schema IN ('raw', 'meta') ORDER BY 1"
        ).fetchall()
        return {t: con.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for (t,) in tables}


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("bad_inputs")
    env = build_world(root)
    (root / "rules.yaml").write_text(GATES_OFF, encoding="utf-8")
    env["CRM_RULES"] = str(root / "rules.yaml")
    with pytest.MonkeyPatch.context() as mp:
        assert _run_job(env, mp) == 0
    return env


@contextmanager
def dropped_in(path: Path, content: bytes) -> Iterator[None]:
    """A bad file lies in the landing folder for one run, then the user removes it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    try:
        yield
    finally:
        path.unlink()


def assert_failed_cleanly(
    env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture,
    expected_in_last_line: tuple[str, ...],
) -> None:
    publication_before, raw_before = publication_snapshot(env), raw_snapshot(env)
    capfd.readouterr()
    code = _run_job(env, monkeypatch)
    _, err = capfd.readouterr()
    last_line = [line for line in err.splitlines() if line.strip()][-1]
    assert code == 1
    for expected in expected_in_last_line:
        assert expected in last_line, last_line
    assert not last_line.lstrip().startswith(("Traceback", "File ", "raise ")), last_line
    assert publication_snapshot(env) == publication_before
    assert raw_snapshot(env) == raw_before


def test_binary_file_named_csv_fails_the_run(world, monkeypatch, capfd):
    landing = Path(world["CRM_LANDING_DIR"])
    png = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8
    with dropped_in(landing / "orders" / "export.csv", png):
        assert_failed_cleanly(world, monkeypatch, capfd, ("orders/export.csv", "binary"))


def test_file_missing_a_required_column_fails_the_run(world, monkeypatch, capfd):
    landing = Path(world["CRM_LANDING_DIR"])
    content = "customer_id,name\nC050,缺少创建时间\n".encode()
    with dropped_in(landing / "customers" / "no_created_at.csv", content):
        assert_failed_cleanly(
            world,
            monkeypatch,
            capfd,
            ("customers/no_created_at.csv", "required column 'created_at' is missing"),
        )


def test_missing_database_table_fails_the_run(world, monkeypatch, capfd):
    db = Path(world["CRM_SOURCE_DB_URL"].removeprefix("sqlite:///"))
    backup = db.with_suffix(".bak")
    shutil.copy2(db, backup)
    try:
        with sqlite3.connect(db) as con:
            con.execute("DROP TABLE payments")
        assert_failed_cleanly(world, monkeypatch, capfd, ("db:payments", "missing"))
    finally:
        shutil.move(backup, db)


@pytest.fixture(scope="module")
def later_runs(world: dict[str, str]) -> dict[str, object]:
    """Second run: bad rows, a GBK export, an orphan. Third run: its parent, a changed order."""
    landing = Path(world["CRM_LANDING_DIR"])
    (landing / "orders").mkdir(exist_ok=True)
    (landing / "orders" / "2026-06-a.csv").write_text(ORDERS_SECOND_RUN, encoding="utf-8")
    (landing / "orders" / "导出.csv").write_bytes(GBK_ORDERS.encode("gbk"))
    with pytest.MonkeyPatch.context() as mp:
        assert _run_job(world, mp) == 0
    with _published(world) as con:
        second = {
            "rejected": con.execute(
                "SELECT source, row_number, reason FROM quality.rejected_rows "
                "WHERE entity = 'orders' ORDER BY source, row_number"
            ).fetchall(),
            "profile": dict(
                (cid, (n, revenue))
                for cid, n, revenue in con.execute(
                    "SELECT customer_id, orders_total, revenue_total FROM marts.customer_profile"
                ).fetchall()
            ),
        }
    (landing / "customers" / "late.csv").write_text(LATE_CUSTOMER, encoding="utf-8")
    (landing / "orders" / "2026-06-b.csv").write_text(ORDERS_THIRD_RUN, encoding="utf-8")
    with pytest.MonkeyPatch.context() as mp:
        assert _run_job(world, mp) == 0
    return {"second": second}


def test_bad_rows_are_quarantined_with_their_reason(later_runs):
    rejected = {
        (source, row): reason
        for source, row, reason in later_runs["second"]["rejected"]
        if source == "orders/2026-06-a.csv"
    }
    # Data rows of 2026-06-a.csv: 1 O20, 2 O21, 3 O22, 4 O23, 5 O24.
    assert sorted(rejected) == [("orders/2026-06-a.csv", n) for n in (2, 3, 4, 5)]
    assert "amount" in rejected[("orders/2026-06-a.csv", 2)]
    assert "'-1" in rejected[("orders/2026-06-a.csv", 2)]
    assert "status" in rejected[("orders/2026-06-a.csv", 3)]
    assert "'shipped'" in rejected[("orders/2026-06-a.csv", 3)]
    # 2099 is more than one day after any load date (the machine's clock)
    assert "ordered_at" in rejected[("orders/2026-06-a.csv", 4)]
    assert "2099-01-01" in rejected[("orders/2026-06-a.csv", 4)]
    assert "unknown_customer" in rejected[("orders/2026-06-a.csv", 5)]
    assert "C007" in rejected[("orders/2026-06-a.csv", 5)]


def test_gbk_export_with_chinese_headers_loads(later_runs):
    # C003: O8 5000.00 (database) + O25 300.00 (GBK file, 已完成 = completed) = 5300.00
    assert later_runs["second"]["profile"]["C003"] == (2, Decimal("5300.00"))


def test_load_audit_reconciles_for_every_source(world, later_runs):
    with _published(world) as con:
        audit = con.execute(
            "SELECT source, rows_read, rows_loaded, rows_rejected, rows_duplicate "
            "FROM quality.load_audit"
        ).fetchall()
    for source, read, loaded, rejected, duplicate in audit:
        assert read == loaded + rejected + duplicate, source
    by_source = {source: tuple(rest) for source, *rest in audit}
    # 5 rows read: O20 loads, O21–O23 invalid, O24 orphan → (5, 1, 4, 0)
    assert by_source["orders/2026-06-a.csv"] == (5, 1, 4, 0)
    assert by_source["orders/导出.csv"] == (1, 1, 0, 0)
    assert by_source["orders/2026-06-b.csv"] == (1, 1, 0, 0)  # a changed row is loaded
    assert by_source["customers/late.csv"] == (1, 1, 0, 0)


def test_orphan_loads_when_its_customer_arrives(world, later_runs):
    with _published(world) as con:
        still_rejected = con.execute(
            "SELECT count(*) FROM quality.rejected_rows WHERE reason LIKE '%C007%'"
        ).fetchone()[0]
        c007 = con.execute(
            "SELECT orders_total, revenue_total FROM marts.customer_profile "
            "WHERE customer_id = 'C007'"
        ).fetchone()
        invalid_left = con.execute(
            "SELECT count(*) FROM quality.rejected_rows WHERE source = 'orders/2026-06-a.csv'"
        ).fetchone()[0]
    assert still_rejected == 0
    assert c007 == (1, Decimal("250.00"))  # O24
    assert invalid_left == 3  # O21–O23 stay rejected: they are wrong, not early


def test_later_version_of_an_order_wins(later_runs, world):
    # C002 completed: O6 300.00 + O7 200.00 + O20. Second run O20 = 100.00 → 600.00;
    # third run's later file says 400.00 → 900.00.
    assert later_runs["second"]["profile"]["C002"] == (3, Decimal("600.00"))
    with _published(world) as con:
        c002 = con.execute(
            "SELECT orders_total, revenue_total FROM marts.customer_profile "
            "WHERE customer_id = 'C002'"
        ).fetchone()
    assert c002 == (3, Decimal("900.00"))
