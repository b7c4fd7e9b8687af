"""The dbt project end to end: hand-made raw rows -> `dbt build` -> marts.customer_profile.

One `dbt parse` and one `dbt build` per session (each dbt call costs seconds); the build also
runs the project's data tests and `unit_tests:`. Expected values are worked out by hand from
shared/domain.md §0-§1, §3.4, §3.5, §3.8 in the comments next to them.

Calendar used below (as_of = 2026-06-30, Asia/Shanghai = UTC+8, raw timestamps are UTC):
N days ago -> 0: 06-30, 10: 06-20, 20: 06-10, 30: 05-31, 75: 04-16, 89: 04-02, 90: 04-01,
100: 03-22, 200: 2025-12-12, 364: 2025-07-01, 365: 2025-06-30, 454: 2025-04-02,
455: 2025-04-01 (no 29 February between them). A UTC time of 02:00 is 10:00 locally, same date.
"""

from __future__ import annotations

import json
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import pytest
import yaml

from crm.rules import default_rules
from tests.integration.dbt_fixture import (
    DBT_PROJECT_DIR,
    dbt_vars,
    fetch_rows,
    read_manifest,
    run_dbt,
    write_raw_rows,
)

pytestmark = pytest.mark.integration

AS_OF = date(2026, 6, 30)
TIMEZONE = "Asia/Shanghai"


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text)


def _order(
    order_id: str,
    customer: str,
    at: str,
    amount: str,
    status: str = "completed",
    discount: str = "0",
) -> dict[str, Any]:
    return {
        "order_id": order_id,
        "customer_id": customer,
        "ordered_at": utc(at),
        "amount": Decimal(amount),
        "discount_amount": Decimal(discount),
        "currency": "CNY",
        "status": status,
    }


def _payment(payment_id: str, order_id: str, at: str, amount: str) -> dict[str, Any]:
    return {
        "payment_id": payment_id,
        "order_id": order_id,
        "paid_at": utc(at),
        "amount": Decimal(amount),
    }


def _interaction(
    interaction_id: str, customer: str, at: str, direction: str, channel: str, **extra: Any
) -> dict[str, Any]:
    return {
        "interaction_id": interaction_id,
        "customer_id": customer,
        "resolved_customer_id": customer,
        "match_method": "customer_id",
        "occurred_at": utc(at),
        "direction": direction,
        "channel": channel,
        **extra,
    }


def _customer(customer_id: str, created_at: str, **extra: Any) -> dict[str, Any]:
    return {
        "customer_id": customer_id,
        "created_at": utc(created_at),
        "customer_type": "company",
        **extra,
    }


CUSTOMERS = [
    # C001 is loaded twice: the later version (name Acme, 广东省) is current.
    _customer(
        "C001",
        "2024-01-01 02:00:00",
        name="Old name",
        province="湖南省",
        industry=" 制造业 ",
        owner_rep_id="R1",
    ),
    _customer(
        "C001",
        "2024-01-01 02:00:00",
        name="Acme",
        province="广东省",
        industry=" 制造业 ",
        owner_rep_id="R1",
    ),
    # Prospect with an explicit region that wins over its province (北京 would be 华北).
    _customer(
        "C002",
        "2025-01-01 02:00:00",
        name="Prospect",
        region="华东",
        province="北京市",
        email="p@example.com",
        customer_type="person",
    ),
    # Non-Chinese province -> 未知; an owner id no rep has (legal: alerts go to the pool).
    _customer(
        "C003", "2026-01-01 02:00:00", name="Abroad", province="California", owner_rep_id="R9"
    ),
    # 16:30 UTC on 06-30 is 00:30 on 07-01 in Shanghai: created after as_of -> not in the profile.
    _customer("C004", "2026-06-30 16:30:00", name="Tomorrow"),
    # 15:30 UTC on 06-30 is 23:30 on 06-30 in Shanghai: exists on as_of; suffix 自治区.
    _customer(
        "C005",
        "2026-06-30 15:30:00",
        name="Late today",
        province="内蒙古自治区",
        is_key_account=True,
    ),
]

SALES_REPS = [
    {"rep_id": "R1", "name": "Li", "email": "li@example.com", "active": True},
    {"rep_id": "R2", "name": "Wang", "email": "wang@example.com", "active": True},
    # R1 later becomes inactive: the current version wins.
    {
        "rep_id": "R1",
        "name": "Li",
        "email": "li@example.com",
        "manager_email": "boss@example.com",
        "active": False,
    },
]

ORDERS = [
    # C001: completed orders 0, 89, 90, 364, 365, 454, 455 days ago, amounts 100..700.
    _order("o1", "C001", "2026-06-30 02:00:00", "100.00", discount="10.00"),
    _order("o2", "C001", "2026-04-02 02:00:00", "200.00"),
    _order("o3", "C001", "2026-04-01 02:00:00", "300.00", discount="5.00"),
    _order("o4", "C001", "2025-07-01 02:00:00", "400.00"),
    _order("o5", "C001", "2025-06-30 02:00:00", "500.00"),
    _order("o6", "C001", "2025-04-02 02:00:00", "600.00"),
    _order("o7", "C001", "2025-04-01 02:00:00", "700.00"),
    # Never purchases: cancelled, refunded, pending; and one completed after as_of
    # (16:00 UTC on 06-30 is 07-01 00:00 in Shanghai).
    _order("o8", "C001", "2026-06-01 02:00:00", "999.00", status="cancelled"),
    _order("o9", "C001", "2026-06-02 02:00:00", "999.00", status="refunded"),
    _order("o10", "C001", "2026-06-03 02:00:00", "999.00", status="pending"),
    _order("o11", "C001", "2026-06-30 16:00:00", "999.00"),
    # C003: u1 (16:30 UTC 06-09 = 06-10 00:30 local) and u2 (15:59:59 UTC 06-10 = 23:59:59
    # local) are the same purchase date 06-10; u3 (16:00 UTC 06-10) is 06-11 locally.
    _order("u1", "C003", "2026-06-09 16:30:00", "30.00"),
    _order("u2", "C003", "2026-06-10 15:59:59", "20.00"),
    _order("u3", "C003", "2026-06-10 16:00:00", "10.00"),
    # u4 completed, then cancelled (current version) -> not counted.
    _order("u4", "C003", "2026-06-01 02:00:00", "500.00"),
    _order("u4", "C003", "2026-06-01 02:00:00", "500.00", status="cancelled"),
    # u5 pending, then completed (current) -> counts; 30 days ago, discounted.
    _order("u5", "C003", "2026-05-31 02:00:00", "40.00", status="pending", discount="4.00"),
    _order("u5", "C003", "2026-05-31 02:00:00", "40.00", discount="4.00"),
]

PAYMENTS = [
    _payment("p1", "o2", "2026-04-12 02:00:00", "200.00"),  # o2 paid in full 10 days later
    _payment("p2", "o3", "2026-04-05 02:00:00", "100.00"),  # o3 partial, never reaches 300
    _payment("p3", "o4", "2025-06-25 02:00:00", "400.00"),  # o4 prepaid before its date -> 0
    _payment("p4", "o5", "2025-07-10 02:00:00", "200.00"),  # o5: 200 + 300 reach 500 on
    _payment("p5", "o5", "2025-08-09 02:00:00", "300.00"),  # 08-09 = 40 days after 06-30
    _payment("p6", "o7", "2026-07-05 02:00:00", "700.00"),  # o7 paid after as_of -> not yet
    _payment("p7", "o1", "2026-06-30 03:00:00", "100.00"),  # o1 is not billed (0 days ago)
]

INTERACTIONS = [
    _interaction(
        "i1", "C001", "2026-06-30 02:00:00", "outbound", "visit", kind="visit", satisfaction=5
    ),
    _interaction(
        "i2", "C001", "2026-04-02 02:00:00", "inbound", "phone", kind="complaint", satisfaction=2
    ),
    _interaction("i3", "C001", "2026-04-01 02:00:00", "outbound", "meeting", kind="follow_up"),
    _interaction("i4", "C001", "2025-12-12 02:00:00", "outbound", "email", kind="marketing"),
    _interaction("i5", "C001", "2025-07-01 02:00:00", "outbound", "visit", kind="visit"),
    _interaction("i6", "C001", "2025-06-30 02:00:00", "outbound", "visit", kind="visit"),
    _interaction(
        "i7", "C001", "2026-03-22 02:00:00", "inbound", "chat", kind="complaint", satisfaction=1
    ),
    # NPS tie: same timestamp, i9 loaded later -> latest_nps 6; i10 is newer but has no NPS.
    _interaction("i8", "C001", "2026-06-20 02:00:00", "inbound", "survey", kind="survey", nps=9),
    _interaction("i9", "C001", "2026-06-20 02:00:00", "inbound", "survey", kind="survey", nps=6),
    _interaction("i10", "C001", "2026-06-25 02:00:00", "inbound", "phone", kind="inquiry"),
    _interaction("i11", "C001", "2026-04-16 02:00:00", "outbound", "phone", kind="follow_up"),
    # After as_of (local 07-01): does not count, not even for latest_nps.
    _interaction("i12", "C001", "2026-06-30 16:00:00", "inbound", "survey", nps=0),
    # Matched by email at load time: no customer_id, resolved to the prospect C002.
    {
        **_interaction(
            "i20",
            "C002",
            "2026-06-10 02:00:00",
            "inbound",
            "email",
            kind="inquiry",
            satisfaction=4,
            nps=10,
        ),
        "customer_id": None,
        "contact_email": "p@example.com",
        "match_method": "email",
    },
]


@pytest.fixture(scope="session")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Parse with one warehouse file name, build with another (the catalog must not depend on
    it), then hand the tests the built warehouse, both manifests and the build's output."""
    root = tmp_path_factory.mktemp("dbt")
    warehouse = root / "any_name_the_user_picks.duckdb"
    write_raw_rows(
        warehouse,
        {
            "customers": CUSTOMERS,
            "sales_reps": SALES_REPS,
            "orders": ORDERS,
            "payments": PAYMENTS,
            "interactions": INTERACTIONS,
        },
    )
    parse = run_dbt(["parse"], root / "parse_time_name.duckdb", root)
    assert parse.returncode == 0, parse.stdout + parse.stderr
    parse_manifest = read_manifest(root)
    build = run_dbt(
        ["build", "--vars", dbt_vars(AS_OF, TIMEZONE, default_rules())], warehouse, root
    )
    return {
        "warehouse": warehouse,
        "parse_manifest": parse_manifest,
        "build": build,
        "build_manifest": read_manifest(root),
    }


@pytest.fixture(scope="session")
def profile(built: dict[str, Any]) -> dict[str, dict[str, Any]]:
    assert built["build"].returncode == 0, built["build"].stdout[-6000:]
    rows = fetch_rows(built["warehouse"], "select * from marts.customer_profile")
    return {row["customer_id"]: row for row in rows}


def test_dbt_project_crm_var_equals_shipped_rules() -> None:
    project = yaml.safe_load((DBT_PROJECT_DIR / "dbt_project.yml").read_text(encoding="utf-8"))
    assert project["vars"]["crm"] == default_rules().dbt_vars()


def test_build_passes_models_data_tests_and_unit_tests(built: dict[str, Any]) -> None:
    build = built["build"]
    assert build.returncode == 0, build.stdout[-6000:]
    # 11 unit tests live in the YAML; all of them ran in this build and none failed.
    assert "11 unit tests" in build.stdout
    assert "ERROR=0" in build.stdout


def test_catalog_name_does_not_depend_on_the_warehouse_file_name(built: dict[str, Any]) -> None:
    for manifest in (built["parse_manifest"], built["build_manifest"]):
        databases = {
            node["database"]
            for node in [*manifest["nodes"].values(), *manifest["sources"].values()]
            if node["resource_type"] in {"model", "source"}
        }
        assert databases == {"warehouse"}
    # ... and the build wrote into the file named by CRM_WAREHOUSE, not the parse-time one.
    tables = fetch_rows(
        built["warehouse"],
        "select table_name from information_schema.tables where table_schema = 'marts' "
        "order by table_name",
    )
    assert [t["table_name"] for t in tables] == ["customer_profile", "sales_reps"]


def test_layers_land_in_their_exact_schemas(built: dict[str, Any]) -> None:
    rows = fetch_rows(
        built["warehouse"],
        "select table_schema, table_name, table_type from information_schema.tables "
        "where table_name in ('stg_shop__orders', 'int_orders_completed', 'customer_profile')",
    )
    assert {(r["table_schema"], r["table_name"], r["table_type"]) for r in rows} == {
        ("staging", "stg_shop__orders", "BASE TABLE"),
        ("intermediate", "int_orders_completed", "VIEW"),  # a view: see the model
        ("marts", "customer_profile", "BASE TABLE"),
    }


def test_sources_are_named_raw_for_dagster_asset_keys(built: dict[str, Any]) -> None:
    sources = {
        (s["source_name"], s["schema"], s["name"])
        for s in built["parse_manifest"]["sources"].values()
    }
    assert sources == {
        ("raw", "raw", name)
        for name in ("customers", "sales_reps", "orders", "payments", "interactions")
    }


def test_only_customers_existing_on_as_of(profile: dict[str, dict[str, Any]]) -> None:
    # C004 was created 07-01 local time; C005 at 23:30 local on as_of.
    assert sorted(profile) == ["C001", "C002", "C003", "C005"]
    assert all(row["as_of"] == AS_OF for row in profile.values())
    assert profile["C005"]["created_date"] == AS_OF


def test_identity_region_and_industry(profile: dict[str, dict[str, Any]]) -> None:
    c001 = profile["C001"]
    assert (c001["name"], c001["province"], c001["region"]) == ("Acme", "广东省", "华南")
    assert c001["industry"] == "制造业"  # trimmed
    assert c001["is_key_account_flag"] is False  # null source flag -> false
    assert profile["C002"]["region"] == "华东"  # explicit region wins over 北京
    assert profile["C002"]["industry"] == "未知"
    assert profile["C003"]["region"] == "未知"  # California
    assert profile["C005"]["region"] == "华北"  # 内蒙古自治区
    assert profile["C005"]["is_key_account_flag"] is True


def test_order_windows_at_day_boundaries(profile: dict[str, dict[str, Any]]) -> None:
    c = profile["C001"]
    # Completed o1..o7 (0, 89, 90, 364, 365, 454, 455 days ago; 100..700); o8-o11 never count.
    assert c["orders_total"] == 7
    assert c["revenue_total"] == Decimal("2800.00")  # 100+200+...+700
    assert c["avg_order_value"] == Decimal("400.00")  # 2800 / 7
    assert (c["orders_90d"], c["revenue_90d"]) == (2, Decimal("300.00"))  # 0 and 89 days
    assert (c["orders_365d"], c["revenue_365d"]) == (4, Decimal("1000.00"))  # 0, 89, 90, 364
    # prior year: 90 <= days < 455 -> 90, 364, 365, 454 -> 300+400+500+600
    assert (c["orders_prior_year"], c["revenue_prior_year"]) == (4, Decimal("1800.00"))
    assert c["discount_order_share_365d"] == pytest.approx(0.5)  # o1, o3 of 4
    assert (c["first_order_date"], c["last_order_date"]) == (date(2025, 4, 1), AS_OF)
    assert (c["recency_days"], c["tenure_days"]) == (0, 455)


def test_cadence_and_bgnbd_inputs(profile: dict[str, dict[str, Any]]) -> None:
    c = profile["C001"]
    # 7 purchase dates at 455, 454, 365, 364, 90, 89, 0 days ago -> gaps 1, 89, 1, 274, 1, 89;
    # sorted 1, 1, 1, 89, 89, 274 -> median (1 + 89) / 2 = 45.
    assert c["purchase_days"] == 7
    assert c["median_gap_days"] == pytest.approx(45.0)
    # before the last date: gaps 1, 89, 1, 274, 1 -> median 1
    assert c["median_gap_before_last_days"] == pytest.approx(1.0)
    assert (c["prev_order_date"], c["last_gap_days"]) == (date(2026, 4, 2), 89)
    assert (c["bgnbd_x"], c["bgnbd_t_x"], c["bgnbd_T"]) == (6, 455, 455)


def test_same_day_orders_and_local_dates_near_midnight(
    profile: dict[str, dict[str, Any]],
) -> None:
    c = profile["C003"]
    # u1 + u2 on 06-10, u3 on 06-11, u5 on 05-31; u4's current version is cancelled.
    assert c["orders_total"] == 4
    assert c["purchase_days"] == 3
    assert c["revenue_total"] == Decimal("100.00")  # 30 + 20 + 10 + 40
    assert c["avg_order_value"] == Decimal("25.00")
    assert (c["first_order_date"], c["last_order_date"]) == (date(2026, 5, 31), date(2026, 6, 11))
    assert (c["recency_days"], c["tenure_days"]) == (19, 30)
    # gaps 10 (05-31 -> 06-10) and 1 -> median 5.5; only 2 dates before the last -> null
    assert c["median_gap_days"] == pytest.approx(5.5)
    assert c["median_gap_before_last_days"] is None
    assert (c["prev_order_date"], c["last_gap_days"]) == (date(2026, 6, 10), 1)
    assert c["discount_order_share_365d"] == pytest.approx(0.25)  # u5 of 4
    assert (c["bgnbd_x"], c["bgnbd_t_x"], c["bgnbd_T"]) == (2, 11, 30)


def test_credit_measures(profile: dict[str, dict[str, Any]]) -> None:
    c = profile["C001"]
    # Billed (30 <= days < 730): o2..o7. paid_days: o2 10, o3 90 (partial -> days_since),
    # o4 0 (prepaid), o5 40, o6 454 (never), o7 455 (paid after as_of).
    assert c["billed_orders"] == 6
    assert c["billed_amount"] == Decimal("2700.00")  # 200+300+400+500+600+700
    assert c["collected_amount"] == Decimal("1200.00")  # 200+100+400+500+0+0
    assert c["collection_ratio"] == pytest.approx(1200 / 2700)
    assert c["max_paid_days"] == 455
    u = profile["C003"]
    # u5 (30 days ago, 40.00) unpaid -> 30 days; the June orders are not billed yet.
    assert (u["billed_orders"], u["billed_amount"], u["collected_amount"]) == (
        1,
        Decimal("40.00"),
        Decimal("0.00"),
    )
    assert (u["collection_ratio"], u["max_paid_days"]) == (0.0, 30)


def test_interaction_measures_and_latest_nps(profile: dict[str, dict[str, Any]]) -> None:
    c = profile["C001"]
    # last 90 days: i1 (0), i2 (89), i8, i9 (10), i10 (5), i11 (75); i12 is after as_of.
    assert c["interactions_90d"] == 6
    assert (c["inbound_90d"], c["outbound_90d"]) == (4, 2)  # i2, i8, i9, i10 / i1, i11
    assert c["complaints_90d"] == 1  # i2 (i7 is 100 days ago)
    assert c["avg_satisfaction_90d"] == pytest.approx(3.5)  # (5 + 2) / 2
    assert c["latest_nps"] == 6  # i8/i9 tie on timestamp, i9 loaded later
    assert c["last_outbound_date"] == AS_OF
    assert c["last_outbound_days"] == 0


def test_relationship_inputs(profile: dict[str, dict[str, Any]]) -> None:
    c = profile["C001"]
    assert c["outbound_visits_365d"] == 3  # visit/meeting: i1 (0), i3 (90), i5 (364); i6 is 365
    assert c["outbound_quarters_365d"] == 4  # i1 0-90, i3 90-180, i4 180-270, i5 270-365
    assert c["inbound_365d"] == 5  # i2, i7, i8, i9, i10
    # o1 (i1 same day), o2 04-02 (i11 04-16: 14 days, inclusive), o3 (i3 same day),
    # o4 (i5 same day) -> 4 of the 4 orders of the last 365 days.
    assert c["followed_up_orders_365d"] == 4


def test_prospect_has_zero_counts_and_null_buyer_fields(
    profile: dict[str, dict[str, Any]],
) -> None:
    p = profile["C002"]
    zero_counts = [
        "orders_total",
        "orders_90d",
        "orders_365d",
        "purchase_days",
        "orders_prior_year",
        "billed_orders",
        "outbound_90d",
        "complaints_90d",
        "outbound_visits_365d",
        "outbound_quarters_365d",
        "followed_up_orders_365d",
    ]
    assert {name: p[name] for name in zero_counts} == dict.fromkeys(zero_counts, 0)
    zero_money = ["revenue_total", "revenue_90d", "revenue_365d", "revenue_prior_year"]
    assert {name: p[name] for name in zero_money} == dict.fromkeys(zero_money, Decimal("0.00"))
    buyer_only = [
        "first_order_date",
        "last_order_date",
        "avg_order_value",
        "recency_days",
        "tenure_days",
        "median_gap_days",
        "discount_order_share_365d",
        "prev_order_date",
        "last_gap_days",
        "median_gap_before_last_days",
        "bgnbd_x",
        "bgnbd_t_x",
        "bgnbd_T",
        "collection_ratio",
        "max_paid_days",
        "last_outbound_date",
        "last_outbound_days",
    ]
    assert {name: p[name] for name in buyer_only} == dict.fromkeys(buyer_only)
    # The email-matched interaction i20 (20 days ago) counts for the prospect.
    assert (p["interactions_90d"], p["inbound_90d"], p["inbound_365d"]) == (1, 1, 1)
    assert (p["avg_satisfaction_90d"], p["latest_nps"]) == (4.0, 10)


def test_sales_reps_current_version(built: dict[str, Any]) -> None:
    rows = fetch_rows(built["warehouse"], "select * from marts.sales_reps order by rep_id")
    assert [(r["rep_id"], r["active"], r["manager_email"]) for r in rows] == [
        ("R1", False, "boss@example.com"),
        ("R2", True, None),
    ]


def test_spill_settings_are_set_once_per_database_not_per_cursor(tmp_path) -> None:
    """dbt-duckdb re-runs `settings:` as SET statements on every thread's cursor; once a query
    has spilled, `SET temp_directory` fails and every later node errors (seen on the 1M-customer
    benchmark). The spill directory and memory budget must be connection options."""
    import duckdb

    from assets.dbt import DBT_PROJECT_DIR

    profile = yaml.safe_load((DBT_PROJECT_DIR / "profiles.yml").read_text(encoding="utf-8"))
    output = profile["customer_intel"]["outputs"]["local"]
    assert "temp_directory" not in (output.get("settings") or {})
    assert {"temp_directory", "memory_limit"} <= set(output["config_options"])

    # Why, on a real DuckDB: after a spill, a cursor's SET temp_directory is refused.
    spill = str(tmp_path / "spill")
    con = duckdb.connect(config={"memory_limit": "64MB", "temp_directory": spill, "threads": 1})
    try:
        con.execute(
            "SELECT count(*) FROM (SELECT range % 1000003 AS k, list(range) FROM range(5000000) "
            "GROUP BY ALL)"
        ).fetchone()
        with pytest.raises(duckdb.Error, match="temporary directory"):
            con.cursor().execute(f"SET temp_directory = '{spill}'")
    finally:
        con.close()


def _bytes(setting: str) -> float:
    """DuckDB's display of a size ("1.8 GiB", "2.3 GiB", "512.0 MiB") in bytes."""
    number, unit = setting.split()
    return float(number) * {"KiB": 2**10, "MiB": 2**20, "GiB": 2**30}[unit]


def test_dbt_duckdb_budget_leaves_room_for_the_waiting_job_process(tmp_path) -> None:
    """During `dbt_models` the Dagster job process (~0.7 GiB at 1M customers) waits beside the
    dbt CLI, whose own Python takes ~0.3 GiB more: dbt's DuckDB gets a smaller budget than the
    job's connections, or the run's tree goes over its 4 GiB (issue #6). Read from the
    connection dbt really opens, and from the job's `crm.warehouse.connect`."""
    from crm.warehouse import connect

    warehouse = tmp_path / "warehouse.duckdb"
    write_raw_rows(warehouse, {})
    result = run_dbt(
        [
            "show",
            "--inline",
            "select current_setting('memory_limit') as budget, "
            "current_setting('temp_directory') as spill",
            "--output",
            "json",
            "--vars",
            dbt_vars(AS_OF, TIMEZONE, default_rules()),
        ],
        warehouse,
        tmp_path,
    )
    assert result.returncode == 0, result.stdout
    shown = json.loads(result.stdout[result.stdout.index("{") : result.stdout.rindex("}") + 1])
    dbt_setting = shown["show"][0]
    with connect(warehouse) as con:
        (job_budget,) = con.execute("SELECT current_setting('memory_limit')").fetchone()

    assert _bytes(job_budget) - _bytes(dbt_setting["budget"]) >= 384 * 2**20
    assert dbt_setting["spill"] == f"{warehouse}.tmp"
