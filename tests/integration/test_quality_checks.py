"""The quality checks inside a real Dagster run: a blocking failure stops the downstream asset.

A tiny graph stands in for the pipeline: a dummy `raw_sources` multi-asset writes rows (and their
audit) for this run into a temporary warehouse, a dummy `dbt_like` asset depends on
`raw/orders`; the checks are the real `raw_checks` / `classification_checks`.
"""

# No postponed annotations: Dagster checks the `context` annotation against the real class.

from datetime import date, datetime
from decimal import Decimal
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from assets.resources import CrmResource
from crm.schemas import ENTITY_BY_NAME
from crm.warehouse import connect, ensure_schema, raw_table_columns
from quality.checks import classification_checks, raw_checks
from quality.results import blocking_failures

pytestmark = pytest.mark.integration

AS_OF = "2026-06-30"
LOADED_AT = datetime(2026, 6, 30, 2, 0)  # UTC = 10:00 in Shanghai, load date 2026-06-30
RAW_KEYS = {name: dg.AssetKey(["raw", name]) for name in ("customers", "orders")}
DOWNSTREAM = dg.AssetKey(["dbt_like"])


def _insert(con: duckdb.DuckDBPyConnection, entity: str, rows: list[dict], run_id: str) -> None:
    columns = [name for name, _ in raw_table_columns(ENTITY_BY_NAME[entity])]
    for row in rows:
        values = row | {
            "_load_seq": con.execute("SELECT nextval('meta.load_seq')").fetchone()[0],
            "_run_id": run_id,
            "_loaded_at": LOADED_AT,
            "_source": f"{entity}/day.csv",
        }
        con.execute(
            f"INSERT INTO raw.{entity} ({', '.join(columns)}) VALUES "
            f"({', '.join('?' for _ in columns)})",
            [values.get(c) for c in columns],
        )
    con.execute(
        "INSERT INTO quality.load_audit VALUES (?, ?, ?, ?, ?, 0, 0, ?)",
        [run_id, entity, f"{entity}/day.csv", len(rows), len(rows), LOADED_AT],
    )


def _upstream(order_amount: Decimal) -> dg.AssetsDefinition:
    @dg.multi_asset(
        specs=[dg.AssetSpec(key) for key in RAW_KEYS.values()],
        name="raw_sources",
        required_resource_keys={"crm"},
    )
    def raw_sources(context: dg.AssetExecutionContext):
        run_id = context.run.run_id
        with connect(context.resources.crm.settings().warehouse) as con:
            ensure_schema(con)
            _insert(
                con,
                "customers",
                [{"customer_id": "C1", "customer_type": "company", "created_at": LOADED_AT}],
                run_id,
            )
            order = {
                "order_id": "O1",
                "customer_id": "C1",
                "ordered_at": datetime(2026, 6, 29, 2, 0),
                "amount": order_amount,
                "currency": "CNY",
                "status": "completed",
            }
            _insert(con, "orders", [order], run_id)
        for key in RAW_KEYS.values():
            yield dg.MaterializeResult(asset_key=key)

    return raw_sources


@dg.asset(key=DOWNSTREAM, deps=[RAW_KEYS["orders"]])
def dbt_like() -> None:
    """Stands in for dbt: must not run on a load whose blocking checks failed."""


def _resource(tmp_path: Path) -> CrmResource:
    return CrmResource(
        warehouse=str(tmp_path / "warehouse.duckdb"),
        landing_dir=str(tmp_path / "landing"),
        source_db_url="",
        as_of=AS_OF,
        timezone="Asia/Shanghai",
    )


def _materialized(result: dg.ExecuteInProcessResult) -> set[dg.AssetKey]:
    return {e.asset_key for e in result.get_asset_materialization_events()}


def _check_evaluations(result: dg.ExecuteInProcessResult) -> dict[tuple[str, str], bool]:
    return {
        (e.asset_key.to_user_string(), e.check_name): e.passed
        for e in result.get_asset_check_evaluations()
    }


def test_good_load_passes_every_raw_check_and_runs_downstream(tmp_path):
    result = dg.materialize(
        [_upstream(Decimal("100.00")), dbt_like, *raw_checks(RAW_KEYS)],
        resources={"crm": _resource(tmp_path)},
    )
    assert result.success
    assert DOWNSTREAM in _materialized(result)
    evaluations = _check_evaluations(result)
    # 2 entities x (suite, rejected share, volume, audit, freshness) = 10 checks.
    assert len(evaluations) == 10
    assert all(evaluations.values())
    with duckdb.connect(str(tmp_path / "warehouse.duckdb"), read_only=True) as con:
        recorded = con.execute(
            "SELECT count(*), count(*) FILTER (WHERE passed) FROM quality.check_results "
            "WHERE run_id = ?",
            [result.run_id],
        ).fetchone()
    assert recorded == (10, 10)


def _integrity_scopes(result: dg.ExecuteInProcessResult) -> dict[str, str]:
    return {
        e.asset_key.to_user_string(): e.metadata["integrity_scope"].value
        for e in result.get_asset_check_evaluations()
        if e.check_name == "source_suite"
    }


def test_a_later_run_checks_integrity_on_added_rows_and_a_forced_run_on_whole_tables(tmp_path):
    assets = [_upstream(Decimal("100.00")), dbt_like, *raw_checks(RAW_KEYS)]
    resources = {"crm": _resource(tmp_path)}
    first = dg.materialize(assets, resources=resources)
    assert _integrity_scopes(first) == {
        "raw/customers": "not verified before",
        "raw/orders": "not verified before",
    }
    # customers C1 and order O1 again: one row each, load_seq 1 and 2 in the first run
    second = dg.materialize(assets, resources=resources)
    assert second.success
    assert _integrity_scopes(second) == {
        "raw/customers": "rows added after load_seq 1",
        "raw/orders": "rows added after load_seq 2",
    }
    forced = dg.materialize(assets, resources=resources, tags={"crm/force": "true"})
    assert set(_integrity_scopes(forced).values()) == {"forced run"}


def test_blocking_failure_stops_the_downstream_asset(tmp_path):
    result = dg.materialize(
        [_upstream(Decimal("-1.00")), dbt_like, *raw_checks(RAW_KEYS)],
        resources={"crm": _resource(tmp_path)},
        raise_on_error=False,
    )
    assert not result.success
    assert DOWNSTREAM not in _materialized(result)
    evaluations = _check_evaluations(result)
    assert evaluations[("raw/orders", "source_suite")] is False
    assert evaluations[("raw/customers", "source_suite")] is True
    with duckdb.connect(str(tmp_path / "warehouse.duckdb"), read_only=True) as con:
        failures = blocking_failures(con, result.run_id)
    assert len(failures) == 1
    assert failures[0].startswith("raw/orders source_suite: raw.orders: 1 of ")
    assert "expect_column_values_to_be_between(amount): 1 unexpected, e.g. -1.0" in failures[0]


PROFILE = dg.AssetKey(["marts", "customer_profile"])
SEGMENTS = dg.AssetKey(["marts", "customer_segments"])
LIFECYCLE = dg.AssetKey(["marts", "customer_lifecycle"])
HISTORY = dg.AssetKey(["marts", "customer_stage_history"])
CHURN = dg.AssetKey(["marts", "churn_risk"])


@dg.multi_asset(
    specs=[dg.AssetSpec(k) for k in (PROFILE, SEGMENTS, LIFECYCLE, HISTORY)],
    required_resource_keys={"crm"},
)
def classified(context: dg.AssetExecutionContext):
    """C1 has two open stage periods: an impossible history."""
    with connect(context.resources.crm.settings().warehouse) as con:
        ensure_schema(con)
        con.execute("CREATE TABLE marts.customer_profile AS SELECT 'C1' AS customer_id")
        con.execute(
            "CREATE TABLE marts.customer_segments AS SELECT 'C1' AS customer_id, "
            "'high' AS value_tier, 'champions' AS rfm_segment, '重要价值客户' AS rfm_class, "
            "'A' AS credit_grade, 'partner' AS relationship_level, 'loyal' AS loyalty"
        )
        con.execute(
            "CREATE TABLE marts.customer_lifecycle AS SELECT 'C1' AS customer_id, "
            "'active' AS stage, 'new' AS previous_stage"
        )
        con.execute(
            "CREATE TABLE marts.customer_stage_history (customer_id VARCHAR, stage VARCHAR, "
            "previous_stage VARCHAR, valid_from DATE, valid_to DATE)"
        )
        con.executemany(
            "INSERT INTO marts.customer_stage_history VALUES (?, ?, ?, ?, ?)",
            [
                ("C1", "new", None, date(2026, 4, 30), None),
                ("C1", "active", "new", date(2026, 5, 31), None),
            ],
        )
    for key in (PROFILE, SEGMENTS, LIFECYCLE, HISTORY):
        yield dg.MaterializeResult(asset_key=key)


@dg.asset(key=CHURN, deps=[SEGMENTS, LIFECYCLE, HISTORY])
def churn_like() -> None:
    """Stands in for churn scoring, downstream of the classification outputs."""


def test_inconsistent_stage_history_stops_churn_scoring(tmp_path):
    result = dg.materialize(
        [classified, churn_like, *classification_checks(PROFILE, SEGMENTS, LIFECYCLE, HISTORY)],
        resources={"crm": _resource(tmp_path)},
        raise_on_error=False,
    )
    assert not result.success
    assert CHURN not in _materialized(result)
    evaluations = _check_evaluations(result)
    assert evaluations == {
        ("marts/customer_segments", "one_row_per_customer"): True,
        ("marts/customer_segments", "allowed_values"): True,
        ("marts/customer_lifecycle", "one_row_per_customer"): True,
        ("marts/customer_lifecycle", "allowed_values"): True,
        ("marts/customer_stage_history", "periods_consistent"): False,
    }
