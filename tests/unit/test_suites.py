"""GX suites of quality/suites.py (contract §1 row rules, ids, references) and the GX adapter.

Rows are written straight into a temporary warehouse (bypassing the loader), so the suites are
seen catching what the loader should never let through. Time zone Asia/Shanghai (UTC+8); the
load happens at 2026-06-30 02:00 UTC = 2026-06-30 10:00 local, so the load date is 2026-06-30
and the latest allowed local date is 2026-07-01 (load date + future_tolerance_days = 1).
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

import dagster as dg
import duckdb
import pytest

from crm.rules import default_rules
from crm.schemas import ENTITY_BY_NAME
from crm.warehouse import raw_table_columns
from quality.gx_adapter import suite_outcome, to_asset_check_result
from quality.results import WARN, CheckOutcome
from quality.suites import integrity_properties, validate_entity

TZ = "Asia/Shanghai"
RUN = "run-now"
EARLIER_RUN = "run-before"
LOADED_AT = datetime(2026, 6, 30, 2, 0)  # UTC, naive as in raw tables


def insert_raw(
    con: duckdb.DuckDBPyConnection,
    entity: str,
    rows: list[dict[str, Any]],
    run_id: str = RUN,
) -> None:
    """Rows in load order; `_load_seq` from the warehouse sequence unless a row sets it."""
    columns = [name for name, _ in raw_table_columns(ENTITY_BY_NAME[entity])]
    for row in rows:
        values = dict(row)
        if "_load_seq" not in values:
            values["_load_seq"] = con.execute("SELECT nextval('meta.load_seq')").fetchone()[0]
        values.setdefault("_run_id", run_id)
        values.setdefault("_loaded_at", LOADED_AT)
        values.setdefault("_source", f"{entity}/test.csv")
        con.execute(
            f"INSERT INTO raw.{entity} ({', '.join(columns)}) "
            f"VALUES ({', '.join('?' for _ in columns)})",
            [values.get(c) for c in columns],
        )


def customer(cid: str, **over: Any) -> dict[str, Any]:
    return {
        "customer_id": cid,
        "customer_type": "company",
        "employees": 10,
        "email": f"{cid.lower()}@example.com",
        "is_key_account": False,
        "created_at": datetime(2025, 1, 1),
    } | over


def order(oid: str, cid: str, **over: Any) -> dict[str, Any]:
    return {
        "order_id": oid,
        "customer_id": cid,
        "ordered_at": datetime(2026, 6, 1, 2, 0),
        "amount": Decimal("100.00"),
        "discount_amount": Decimal("0.00"),
        "currency": "CNY",
        "status": "completed",
    } | over


def payment(pid: str, oid: str, **over: Any) -> dict[str, Any]:
    return {
        "payment_id": pid,
        "order_id": oid,
        "paid_at": datetime(2026, 6, 2, 2, 0),
        "amount": Decimal("100.00"),
    } | over


def interaction(iid: str, cid: str, **over: Any) -> dict[str, Any]:
    return {
        "interaction_id": iid,
        "customer_id": cid,
        "occurred_at": datetime(2026, 6, 3, 2, 0),
        "channel": "phone",
        "direction": "inbound",
        "kind": "inquiry",
        "satisfaction": 5,
        "nps": 10,
        "resolved_customer_id": cid,
        "match_method": "customer_id",
    } | over


def rep(rid: str, **over: Any) -> dict[str, Any]:
    return {
        "rep_id": rid,
        "name": "王芳",
        "email": f"{rid.lower()}@example.com",
        "active": True,
    } | over


def good_world(con: duckdb.DuckDBPyConnection) -> None:
    insert_raw(con, "customers", [customer("C1"), customer("C2", customer_type="person")])
    insert_raw(con, "sales_reps", [rep("R1")])
    insert_raw(con, "orders", [order("O1", "C1"), order("O2", "C2", status="pending")])
    insert_raw(con, "payments", [payment("P1", "O1")])
    insert_raw(con, "interactions", [interaction("I1", "C1")])


def failed_expectations(con: duckdb.DuckDBPyConnection, entity: str) -> dict[str, int]:
    validation = validate_entity(con, entity, default_rules(), RUN, TZ)
    outcome = suite_outcome(validation.results, entity)
    assert outcome.passed is validation.success
    return {
        r["expectation"]: r["unexpected_count"]
        for r in outcome.metadata["expectation_results"]
        if not r["success"]
    }


@pytest.mark.parametrize(
    "entity", ["customers", "sales_reps", "orders", "payments", "interactions"]
)
def test_good_rows_pass_every_suite(con, entity):
    good_world(con)
    assert failed_expectations(con, entity) == {}


BAD_ROWS = [
    # (entity, the bad row, the expectation that must name it)
    (
        "customers",
        customer("C9", customer_type="robot"),
        "expect_column_values_to_be_in_set(customer_type)",
    ),
    (
        "customers",
        customer("C9", created_at=None),
        "expect_column_values_to_not_be_null(created_at)",
    ),
    ("sales_reps", rep("R9", email=None), "expect_column_values_to_not_be_null(email)"),
    (
        "orders",
        order("O9", "C1", amount=Decimal("-0.01")),
        "expect_column_values_to_be_between(amount)",
    ),
    ("orders", order("O9", "C1", status="shipped"), "expect_column_values_to_be_in_set(status)"),
    ("orders", order("O9", "C1", currency="USD"), "expect_column_values_to_be_in_set(currency)"),
    (
        "payments",
        payment("P9", "O1", amount=Decimal("-5.00")),
        "expect_column_values_to_be_between(amount)",
    ),
    (
        "interactions",
        interaction("I9", "C1", satisfaction=6),
        "expect_column_values_to_be_between(satisfaction)",
    ),
    (
        "interactions",
        interaction("I9", "C1", satisfaction=0),
        "expect_column_values_to_be_between(satisfaction)",
    ),
    ("interactions", interaction("I9", "C1", nps=11), "expect_column_values_to_be_between(nps)"),
    (
        "interactions",
        interaction("I9", "C1", direction="sideways"),
        "expect_column_values_to_be_in_set(direction)",
    ),
    (
        "interactions",
        interaction("I9", "C1", kind="gossip"),
        "expect_column_values_to_be_in_set(kind)",
    ),
    (
        "interactions",
        interaction("I9", "C1", channel="fax"),
        "expect_column_values_to_be_in_set(channel)",
    ),
]


@pytest.mark.parametrize(("entity", "row", "expectation"), BAD_ROWS)
def test_a_bad_row_fails_its_suite_naming_the_rule(con, entity, row, expectation):
    good_world(con)
    insert_raw(con, entity, [row])
    assert failed_expectations(con, entity) == {expectation: 1}


def test_timestamp_window_is_judged_on_the_local_date(con):
    good_world(con)
    insert_raw(
        con,
        "orders",
        [
            # 2026-07-01 15:59 UTC = 2026-07-01 23:59 local = load date + 1 day: allowed.
            order("O_EDGE", "C1", ordered_at=datetime(2026, 7, 1, 15, 59)),
            # 2026-07-01 16:00 UTC = 2026-07-02 00:00 local: more than one day after: rejected.
            order("O_LATE", "C1", ordered_at=datetime(2026, 7, 1, 16, 0)),
            # 1989-12-31 16:00 UTC = 1990-01-01 00:00 local: the earliest allowed day.
            order("O_1990", "C1", ordered_at=datetime(1989, 12, 31, 16, 0)),
            # 1989-12-31 15:59 UTC = 1989-12-31 23:59 local: before 1990-01-01.
            order("O_1989", "C1", ordered_at=datetime(1989, 12, 31, 15, 59)),
        ],
    )
    validation = validate_entity(con, "orders", default_rules(), RUN, TZ)
    outcome = suite_outcome(validation.results, "orders")
    (failed,) = [r for r in outcome.metadata["expectation_results"] if not r["success"]]
    assert failed["expectation"] == "expect_column_values_to_be_between(ordered_at_local_date)"
    assert failed["unexpected_count"] == 2
    assert sorted(failed["examples"]) == ["1989-12-31", "2026-07-02"]


def test_only_the_current_version_of_this_runs_rows_is_validated(con):
    good_world(con)
    # O1 loaded with a bad status and then corrected later in the same run: latest wins.
    insert_raw(con, "orders", [order("O5", "C1", status="bogus"), order("O5", "C1")])
    # A bad row of an earlier run is not this run's load (the loader judged it then).
    insert_raw(con, "orders", [order("O6", "C1", status="bogus")], run_id=EARLIER_RUN)
    assert failed_expectations(con, "orders") == {}


def test_an_id_with_two_rows_at_its_latest_load_seq_fails(con):
    good_world(con)
    insert_raw(con, "customers", [customer("C7", _load_seq=900), customer("C7", _load_seq=900)])
    failed = failed_expectations(con, "customers")
    # Both suites see it: the run sample holds two current rows of C7, the aggregate one id.
    assert failed == {
        "expect_column_values_to_be_unique(customer_id)": 2,
        "expect_column_values_to_be_between(customer_id_not_unique_after_latest_wins)": 1,
    }


@pytest.mark.parametrize(
    ("entity", "row", "expectation", "example"),
    [
        (
            "orders",
            order("O9", "C404"),
            "expect_column_values_to_be_between(customer_id_not_in_customers)",
            "O9 -> C404",
        ),
        (
            "payments",
            payment("P9", "O404"),
            "expect_column_values_to_be_between(order_id_not_in_orders)",
            "P9 -> O404",
        ),
        (
            "interactions",
            interaction("I9", None, resolved_customer_id="C404", match_method="email"),
            "expect_column_values_to_be_between(resolved_customer_id_not_in_customers)",
            "I9 -> C404",
        ),
    ],
)
def test_a_reference_to_an_unknown_parent_fails(con, entity, row, expectation, example):
    good_world(con)
    insert_raw(con, entity, [row], run_id=EARLIER_RUN)  # global: found whatever run loaded it
    validation = validate_entity(con, entity, default_rules(), RUN, TZ)
    outcome = suite_outcome(validation.results, entity)
    failed = [r for r in outcome.metadata["expectation_results"] if not r["success"]]
    assert [(r["expectation"], r["examples"]) for r in failed] == [(expectation, [example])]
    assert example in outcome.message


def test_interaction_without_resolved_customer_fails(con):
    good_world(con)
    insert_raw(con, "interactions", [interaction("I8", None, resolved_customer_id=None)])
    assert failed_expectations(con, "interactions") == {
        "expect_column_values_to_not_be_null(resolved_customer_id)": 1,
        # the same row, seen by the whole-table reference aggregate
        "expect_column_values_to_be_between(resolved_customer_id_not_in_customers)": 1,
    }


def test_a_run_that_loaded_nothing_passes(con):
    good_world(con)
    validation = validate_entity(con, "orders", default_rules(), "run-without-rows", TZ)
    assert validation.success
    assert validation.rows_checked == 0


def test_sample_is_capped(con):
    good_world(con)
    insert_raw(con, "orders", [order(f"O{i}", "C1") for i in range(10, 20)])
    validation = validate_entity(con, "orders", default_rules(), RUN, TZ, sample_rows=4)
    assert validation.rows_checked == 4


def test_adapter_turns_a_failed_suite_into_an_error_check_result_with_examples(con):
    good_world(con)
    insert_raw(con, "orders", [order("O9", "C1", amount=Decimal("-5.00"))])
    validation = validate_entity(con, "orders", default_rules(), RUN, TZ)
    key = dg.AssetKey(["raw", "orders"])
    outcome = suite_outcome(validation.results, "raw.orders")
    result = to_asset_check_result(outcome, asset_key=key, check_name="source_suite")
    assert result.passed is False
    assert result.severity == dg.AssetCheckSeverity.ERROR
    assert result.asset_key == key and result.check_name == "source_suite"
    assert result.metadata["failed_expectations"].value == 1
    assert "expect_column_values_to_be_between(amount): 1 unexpected, e.g. -5.0" in outcome.message
    (row,) = [r for r in result.metadata["expectation_results"].value if not r["success"]]
    assert row["examples"] == ["-5.0"]


def test_adapter_keeps_a_warning_severity():
    outcome = CheckOutcome(False, "orders: newest record 2026-01-01: stale", {"newest": "x"})
    result = to_asset_check_result(
        outcome, asset_key=dg.AssetKey(["raw", "orders"]), check_name="freshness", severity=WARN
    )
    assert result.severity == dg.AssetCheckSeverity.WARN
    assert result.description == outcome.message


@pytest.mark.parametrize("seed", range(5))
def test_latest_wins_property_equals_its_definition(seed):
    """The one-pass form of `<id>_not_unique_after_latest_wins` against its definition written
    out: ids whose rows at their highest _load_seq are more than one, plus ids with a version
    that has no _load_seq."""
    import random

    rng = random.Random(seed)
    con = duckdb.connect()
    con.execute("CREATE SCHEMA raw")
    con.execute("CREATE TABLE raw.orders (order_id VARCHAR, _load_seq BIGINT)")
    rows = [
        (rng.choice([None, *(f"O{i}" for i in range(30))]), rng.choice([None, *range(12)]))
        for _ in range(150)
    ]
    con.executemany("INSERT INTO raw.orders VALUES (?, ?)", rows)
    (prop,) = [
        p
        for p in integrity_properties(ENTITY_BY_NAME["orders"])
        if p.name == "order_id_not_unique_after_latest_wins"
    ]
    found = {k for (k,) in con.execute(f"SELECT key FROM ({prop.violations_sql})").fetchall()}
    expected = {
        k
        for (k,) in con.execute(
            """SELECT r.order_id FROM raw.orders r
               WHERE r.order_id IS NOT NULL AND r._load_seq = (
                   SELECT max(_load_seq) FROM raw.orders x WHERE x.order_id = r.order_id)
               GROUP BY 1 HAVING count(*) > 1
               UNION SELECT order_id FROM raw.orders
               WHERE _load_seq IS NULL AND order_id IS NOT NULL"""
        ).fetchall()
    }
    assert found == expected and len(expected) > 0


@pytest.mark.parametrize("earlier_rows", [3, 60], ids=["mostly this run", "mostly earlier runs"])
def test_run_sample_is_the_current_versions_of_this_runs_ids(con, earlier_rows):
    """Both ways of finding current versions (a window when the run loaded most rows, a join
    when it loaded few) give the definition: this run's rows with no later version of their id,
    each with the local date of its timestamp."""
    from quality.suites import run_sample

    earlier = [order(f"O{i}", "C1") for i in range(earlier_rows)]
    insert_raw(con, "orders", earlier, run_id=EARLIER_RUN)
    now = [order(f"O{i}", "C1", status="pending") for i in range(0, 40, 2)]  # newer versions
    now += [order("N1", "C1"), order("N1", "C1", amount=Decimal("5.00"))]  # the later N1 wins
    insert_raw(con, "orders", now)
    insert_raw(con, "orders", [order("O0", "C1", status="cancelled")], run_id="run-later")
    sample = run_sample(con, ENTITY_BY_NAME["orders"], RUN, TZ, sample_rows=1000)
    expected = con.execute(
        """SELECT order_id, status, amount, CAST(timezone(?, ordered_at AT TIME ZONE 'UTC') AS DATE)
           FROM raw.orders r WHERE _run_id = ? AND _load_seq = (
               SELECT max(_load_seq) FROM raw.orders x WHERE x.order_id = r.order_id)
           ORDER BY order_id""",
        [TZ, RUN],
    ).fetchall()
    got = sample.sort_values("order_id")[
        ["order_id", "status", "amount", "ordered_at_local_date"]
    ].itertuples(index=False)
    assert [(a, b, Decimal(str(c)).quantize(Decimal("0.01")), d.date()) for a, b, c, d in got] == [
        (a, b, c, d) for a, b, c, d in expected
    ]
    assert len(expected) == 20  # O2…O38 and N1; O0 has a later version
    assert len(run_sample(con, ENTITY_BY_NAME["orders"], RUN, TZ, sample_rows=7)) == 7
