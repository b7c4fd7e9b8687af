"""Incremental dbt builds give exactly what a full refresh gives (issue 6).

The largest staging facts (payments, interactions) are incremental: a run merges only the ids
whose loaded version is newer than the one held. Orders stay a view for now
(test_dbt_profile pins it), but are compared too, so switching them needs no new test. This test builds a small warehouse, appends
the kinds of rows a later day brings — a status change, a brand-new order, a late-arriving order
dated long ago, an orphan released with its original (older) `_load_seq`, new payments and
interactions — runs dbt incrementally, then rebuilds the same file with `--full-refresh`, and
compares every model table row by row.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import pytest

from crm.rules import default_rules
from crm.warehouse import ensure_schema
from tests.integration.dbt_fixture import dbt_vars, fetch_rows, run_dbt, write_raw_rows

AS_OF = date(2026, 3, 31)
TIMEZONE = "Asia/Shanghai"
COMPARED = {
    "staging": ["stg_shop__orders", "stg_shop__payments", "stg_crm__interactions"],
    "marts": ["customer_profile"],
}


def _order(order_id: str, customer_id: str, ordered_at: str, amount: str, status: str) -> dict:
    return {
        "order_id": order_id,
        "customer_id": customer_id,
        "ordered_at": datetime.fromisoformat(ordered_at),
        "amount": Decimal(amount),
        "discount_amount": Decimal("0"),
        "currency": "CNY",
        "status": status,
    }


def _interaction(interaction_id: str, customer_id: str, occurred_at: str, nps: int | None) -> dict:
    return {
        "interaction_id": interaction_id,
        "customer_id": customer_id,
        "resolved_customer_id": customer_id,
        "match_method": "customer_id",
        "occurred_at": datetime.fromisoformat(occurred_at),
        "channel": "phone",
        "direction": "outbound",
        "kind": "follow_up",
        "nps": nps,
    }


FIRST_LOAD = {
    "customers": [
        {"customer_id": "C1", "name": "甲", "created_at": datetime(2025, 1, 1)},
        {"customer_id": "C2", "name": "乙", "created_at": datetime(2025, 1, 1)},
    ],
    "orders": [
        _order("O1", "C1", "2026-03-01 02:00:00", "100.00", "pending"),
        _order("O2", "C1", "2026-02-01 02:00:00", "50.00", "completed"),
        _order("O3", "C2", "2025-12-01 02:00:00", "80.00", "completed"),
    ],
    "payments": [
        {
            "payment_id": "P1",
            "order_id": "O3",
            "paid_at": datetime(2025, 12, 5, 2),
            "amount": Decimal("40.00"),
        },
    ],
    "interactions": [_interaction("I1", "C1", "2026-03-02 02:00:00", 9)],
}


def _append(warehouse: Path, table: str, row: dict[str, Any], load_seq: int) -> None:
    con = duckdb.connect(str(warehouse))
    try:
        record = {**row, "_load_seq": load_seq}
        names = ", ".join(f'"{name}"' for name in record)
        marks = ", ".join("?" for _ in record)
        con.execute(f"INSERT INTO raw.{table} ({names}) VALUES ({marks})", list(record.values()))
    finally:
        con.close()


def _next_day_rows(warehouse: Path) -> None:
    """What a later run loads (first load used _load_seq 1..7)."""
    # O1 completes: a new version of a held id (the rule: the later load wins).
    _append(
        warehouse, "orders", _order("O1", "C1", "2026-03-01 02:00:00", "100.00", "completed"), 8
    )
    # A new order, and a late-arriving one dated a year back (counts in the prior year).
    _append(warehouse, "orders", _order("O4", "C2", "2026-03-30 02:00:00", "30.00", "completed"), 9)
    _append(
        warehouse, "orders", _order("O5", "C2", "2025-04-15 02:00:00", "70.00", "completed"), 10
    )
    # An orphan released this run keeps its original load order: _load_seq 0, below every id
    # the model holds (a global _load_seq watermark would miss it); ingest lists it in
    # meta.released_rows, as the loader does when it moves an orphan (test_identity_resolution).
    _append(warehouse, "orders", _order("O6", "C1", "2026-01-10 02:00:00", "20.00", "completed"), 0)
    with duckdb.connect(str(warehouse)) as con:
        ensure_schema(con)
        con.execute("INSERT INTO meta.released_rows VALUES ('orders', 0, 'r2', now())")
    payment = {"payment_id": "P2", "order_id": "O3", "paid_at": datetime(2026, 1, 3, 2)}
    _append(warehouse, "payments", {**payment, "amount": Decimal("40.00")}, 11)
    # A newer version of I1 (NPS corrected) and a new interaction.
    _append(warehouse, "interactions", _interaction("I1", "C1", "2026-03-02 02:00:00", 4), 12)
    _append(warehouse, "interactions", _interaction("I2", "C2", "2026-03-29 02:00:00", None), 13)


def _snapshot(warehouse: Path) -> dict[str, list[tuple]]:
    snapshot = {}
    for schema, tables in COMPARED.items():
        for table in tables:
            rows = fetch_rows(warehouse, f"SELECT * FROM {schema}.{table}")
            snapshot[table] = sorted(tuple(sorted(r.items())) for r in rows)
    return snapshot


def _dbt_run(warehouse: Path, target: Path, *extra: str) -> None:
    vars_json = dbt_vars(AS_OF, TIMEZONE, default_rules())
    result = run_dbt(["run", "--vars", vars_json, *extra], warehouse, target)
    assert result.returncode == 0, result.stdout[-3000:]


@pytest.fixture(scope="module")
def builds(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, list[tuple]]]:
    folder = tmp_path_factory.mktemp("incremental")
    warehouse = folder / "warehouse.duckdb"
    write_raw_rows(warehouse, FIRST_LOAD)
    _dbt_run(warehouse, folder)
    _next_day_rows(warehouse)
    _dbt_run(warehouse, folder)
    incremental = _snapshot(warehouse)
    _dbt_run(warehouse, folder, "--full-refresh")
    return {"incremental": incremental, "full_refresh": _snapshot(warehouse)}


@pytest.mark.parametrize("table", [t for tables in COMPARED.values() for t in tables])
def test_incremental_build_equals_full_refresh(builds, table: str) -> None:
    assert builds["incremental"][table] == builds["full_refresh"][table]


def test_incremental_build_merged_every_kind_of_new_row(builds) -> None:
    # Expected from the rows above, by hand: O1 now completed; O4, O5 new; O6 released orphan.
    orders = {
        dict(r)["order_id"]: dict(r)["status"] for r in builds["incremental"]["stg_shop__orders"]
    }
    assert orders == {
        "O1": "completed",
        "O2": "completed",
        "O3": "completed",
        "O4": "completed",
        "O5": "completed",
        "O6": "completed",
    }
    nps = {
        dict(r)["interaction_id"]: dict(r)["nps"]
        for r in builds["incremental"]["stg_crm__interactions"]
    }
    assert nps == {"I1": 4, "I2": None}
    profile = {dict(r)["customer_id"]: dict(r) for r in builds["incremental"]["customer_profile"]}
    # C1: completed O1 (03-01), O2 (02-01), O6 (01-10) → 3 orders, 170.00; latest NPS 4 (I1 v2).
    assert profile["C1"]["orders_total"] == 3
    assert profile["C1"]["revenue_total"] == Decimal("170.00")
    assert profile["C1"]["latest_nps"] == 4
    # C2: O3 (2025-12-01, 80) fully paid by P1 + P2; O4 (30); O5 dated 2025-04-15 is 350 days
    # before as_of → in the last 365 days and in the prior year (90 ≤ 350 < 455).
    assert profile["C2"]["orders_total"] == 3
    assert profile["C2"]["orders_prior_year"] == 2  # O3 (120 days ago) and O5 (350 days ago)
    # billed (30-730 days ago): O3 80 collected in full, O5 70 with nothing paid → 80 / 150.
    assert profile["C2"]["collection_ratio"] == pytest.approx(80 / 150)
