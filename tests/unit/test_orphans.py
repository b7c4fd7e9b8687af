"""Payments whose order is unknown wait as orphans (contract §1, rule unknown_order), whatever
way the loader looks the orders up.

The loader decides a load's orphans once (crm/ingest/loader.py `_orphans_decided_once`): a load
small beside the parent table looks up only the parents it names, a large one hashes the whole
parent table. Both must give the rule's answer, so each case runs with many orders held (the
named lookup) and with few (the whole-table lookup), and the test checks which one ran."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

import crm.ingest.loader as loader_module
from tests.unit.landing_loads import load_landing

CUSTOMERS = "customer_id,name,created_at\nC1,Acme,2024-01-05\n"
ORDERS = "order_id,customer_id,ordered_at,amount,currency,status\n"
PAYMENTS = "payment_id,order_id,paid_at,amount\n"


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def _orders(ids: list[str]) -> str:
    return ORDERS + "".join(f"{i},C1,2024-02-01,100.00,CNY,completed\n" for i in ids)


@pytest.mark.parametrize(
    ("orders_held", "lookup"),
    [(40, "named parents"), (3, "whole parent table")],
)
def test_payments_of_unknown_orders_wait_and_load_when_the_order_arrives(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, orders_held: int, lookup: str
) -> None:
    landing, warehouse = tmp_path / "landing", tmp_path / "w.duckdb"
    _write(landing / "customers" / "c.csv", CUSTOMERS)
    held = ["O1", "O2", "O40"] + [f"O{i}" for i in range(3, 3 + orders_held - 3)]
    _write(landing / "orders" / "day1.csv", _orders(held))
    load_landing(landing, warehouse, "r1")

    lookups: list[str | None] = []
    original = loader_module._parent_missing_sql

    def spy(entity, among=None):
        if entity.name == "payments":
            lookups.append(among)
        return original(entity, among=among)

    monkeypatch.setattr(loader_module, "_parent_missing_sql", spy)
    _write(
        landing / "payments" / "day2.csv",
        PAYMENTS
        + "P1,O1,2024-02-02,50.00\n"
        + "P2,O2,2024-02-02,100.00\n"
        + "P3,O-404,2024-02-02,70.00\n"  # no such order yet
        + "P4,O40,2024-02-02,100.00\n",
    )
    load_landing(landing, warehouse, "r2")
    assert lookups[-1] == ("_staged" if lookup == "named parents" else None)

    with duckdb.connect(str(warehouse), read_only=True) as con:
        loaded = sorted(r[0] for r in con.execute("SELECT payment_id FROM raw.payments").fetchall())
        waiting = con.execute("SELECT payment_id, order_id FROM raw.payments_orphans").fetchall()
        rejected = con.execute(
            "SELECT entity, severity, rule, record_id, reason FROM quality.rejected_rows"
        ).fetchall()
        audit = con.execute(
            "SELECT rows_read, rows_loaded, rows_rejected, rows_duplicate FROM quality.load_audit "
            "WHERE entity = 'payments'"
        ).fetchall()
    assert loaded == ["P1", "P2", "P4"]
    assert waiting == [("P3", "O-404")]
    assert rejected == [
        (
            "payments",
            "warning",
            "unknown_order",
            "P3",
            "order_id: 'O-404' is not a known order (rule: unknown_order)",
        )
    ]
    assert audit == [(4, 3, 1, 0)]

    _write(landing / "orders" / "day3.csv", _orders(["O-404"]))
    load_landing(landing, warehouse, "r3")
    with duckdb.connect(str(warehouse), read_only=True) as con:
        loaded = sorted(r[0] for r in con.execute("SELECT payment_id FROM raw.payments").fetchall())
        left = con.execute("SELECT count(*) FROM raw.payments_orphans").fetchone()[0]
        still_rejected = con.execute("SELECT count(*) FROM quality.rejected_rows").fetchone()[0]
    assert loaded == ["P1", "P2", "P3", "P4"]
    assert (left, still_rejected) == (0, 0)
