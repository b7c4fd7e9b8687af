"""The Dagster graph as a data engineer sees it in `dagster dev`: jobs, schedule, sensor, checks."""

import os
from pathlib import Path

import dagster as dg
import pytest

from pipelines.definitions import defs
from pipelines.sensors import SCHEDULE_CRON, SCHEDULE_TIMEZONE


def test_customer_daily_contains_every_stage_in_flow_order():
    job = defs.resolve_job_def("customer_daily")
    keys = {node.name for node in job.graph.node_defs}
    assert {"raw_sources", "dbt_models", "customer_lifecycle", "published_tables"} <= keys
    graph = defs.resolve_asset_graph()
    published = dg.AssetKey("published_tables")
    upstream = graph.upstream_key_iterator(published)
    assert dg.AssetKey("alert_delivery") in set(upstream)


def test_dbt_models_and_tests_are_assets_and_checks():
    graph = defs.resolve_asset_graph()
    profile = dg.AssetKey(["marts", "customer_profile"])
    assert profile in graph.get_all_asset_keys()
    # raw sources feed dbt staging: the ingest multi-asset is upstream of the profile
    ancestors = graph.get(profile).parent_keys
    assert ancestors, "customer_profile has no upstream models"
    checks = {c.asset_key for c in graph.asset_check_keys}
    assert profile in checks  # dbt tests on the mart surface as asset checks


def test_daily_dbt_tests_leave_out_only_the_structural_ones():
    """Tests tagged `structural` (a key of a filter or GROUP BY) run in the test suite; every
    other dbt data test is a check of the daily run, the `*_since_verified` ones included."""
    import yaml

    from assets.dbt import DBT_PROJECT_DIR

    names = {c.name for c in defs.resolve_asset_graph().asset_check_keys}
    assert "unique_since_verified_stg_crm__interactions_interaction_id" in names
    assert "unique_stg_crm__customers_customer_id" in names
    intermediate = yaml.safe_load(
        (DBT_PROJECT_DIR / "models/intermediate/_intermediate__models.yml").read_text("utf-8")
    )
    structural = []
    for model in intermediate["models"]:
        tests = [(t, None) for t in model.get("data_tests", [])]
        tests += [(t, c["name"]) for c in model.get("columns", []) for t in c.get("data_tests", [])]
        for test, column in tests:
            if isinstance(test, dict):
                ((kind, spec),) = test.items()
                if "structural" in spec.get("config", {}).get("tags", []):
                    structural.append((kind, model["name"], column))
    assert sorted(structural) == [
        ("not_null", "int_customers_enriched", "customer_id"),
        ("not_null", "int_customers_enriched", "industry"),
        ("not_null", "int_customers_enriched", "region"),
        ("not_null", "int_orders_billed", "order_id"),
        ("not_null", "int_orders_billed", "paid_days"),
        ("unique", "int_customers_enriched", "customer_id"),
        ("unique", "int_orders_billed", "order_id"),
        ("unique", "int_orders_completed", "order_id"),
        ("unique_combination_of_columns", "int_purchase_dates_collapsed", None),
    ]
    assert not any(n.startswith("unique_int_orders_") for n in names)
    assert not any("int_purchase_dates_collapsed" in n for n in names)
    assert not any("int_orders_billed" in n or "int_customers_enriched" in n for n in names)
    # only the tagged tests are left out: the profile checks the same customer columns daily
    assert "not_null_int_orders_completed_order_id" in names
    assert {
        "unique_customer_profile_customer_id",
        "not_null_customer_profile_region",
        "not_null_customer_profile_industry",
    } <= names


def test_dbt_resource_skips_dagster_dbts_start_up_work_without_changing_the_version():
    """CrmDbtCliResource answers dagster-dbt's version question from the installed package
    (the same answer as `dbt --version`) and loads no adapter; both hooks are still what the
    pinned dagster-dbt calls before every dbt command."""
    import inspect
    import re
    import subprocess

    from dagster_dbt import DbtCliResource

    from assets.dbt import CrmDbtCliResource

    resource = defs.resources["dbt"]
    assert isinstance(resource, CrmDbtCliResource)
    printed = subprocess.run(
        [resource.dbt_executable, "--version"], capture_output=True, text=True, check=True
    ).stdout
    assert str(resource._cli_version) == re.search(r"(\d+\.\d+\.\d+)", printed).group(1)
    assert resource._initialize_dbt_core_adapter(["build"]) is None
    cli_source = inspect.getsource(DbtCliResource.cli)
    assert "self._cli_version" in cli_source
    assert "self._initialize_dbt_core_adapter(" in cli_source


def test_history_job_never_sends_alerts():
    job = defs.resolve_job_def("customer_history")
    names = {node.name for node in job.graph.node_defs}
    assert "alert_delivery" not in names and "marts__churn_alerts" not in names


def test_daily_schedule_runs_at_six_shanghai_for_that_day():
    schedule = defs.resolve_schedule_def("customer_daily_schedule")
    assert (schedule.cron_schedule, schedule.execution_timezone) == (
        SCHEDULE_CRON,
        SCHEDULE_TIMEZONE,
    )
    assert SCHEDULE_CRON == "0 6 * * *" and SCHEDULE_TIMEZONE == "Asia/Shanghai"
    from datetime import datetime
    from zoneinfo import ZoneInfo

    context = dg.build_schedule_context(
        scheduled_execution_time=datetime(2026, 11, 23, 6, 0, tzinfo=ZoneInfo("Asia/Shanghai"))
    )
    request = schedule.evaluate_tick(context).run_requests[0]
    assert request.tags["crm/as_of"] == "2026-11-23"


def test_landing_sensor_fires_once_per_change(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("CRM_LANDING_DIR", str(tmp_path))
    sensor = defs.resolve_sensor_def("landing_files_sensor")
    first = sensor.evaluate_tick(dg.build_sensor_context(cursor=None))
    assert not first.run_requests  # empty folder: skip
    (tmp_path / "orders").mkdir()
    (tmp_path / "orders" / "day1.csv").write_text("order_id\n", encoding="utf-8")
    second = sensor.evaluate_tick(dg.build_sensor_context(cursor=None))
    assert len(second.run_requests) == 1
    third = sensor.evaluate_tick(dg.build_sensor_context(cursor=second.cursor))
    assert not third.run_requests  # nothing changed since
    (tmp_path / "orders" / "day2.csv").write_text("order_id\n", encoding="utf-8")
    fourth = sensor.evaluate_tick(dg.build_sensor_context(cursor=second.cursor))
    assert len(fourth.run_requests) == 1
    assert os.environ["CRM_LANDING_DIR"] == str(tmp_path)
