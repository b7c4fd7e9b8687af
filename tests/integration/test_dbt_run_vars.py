"""How the Dagster dbt step hands dbt the values that change every run (issue 6: partial parse).

as_of and the verified watermarks travel in CRM_DBT_RUN_VARS (dbt_project/macros/run_vars.sql);
`--vars` carries only what belongs to the parse (`assets.dbt.parse_vars`: time zone and rules).
dbt parses the whole project again whenever `--vars` differ from the previous invocation's, so
with as_of in `--vars` every new day paid a full parse. These tests run dbt the way the step does
on two consecutive days, in one target folder, and check that the second day reuses the parse
and still computes for its own as_of; that `--vars` given by hand win; and that a run without an
as_of stops with a message saying how to give one, instead of computing for a made-up date.
"""

from __future__ import annotations

import json
import os
import subprocess
from datetime import date, timedelta
from pathlib import Path

import pytest

from assets.dbt import environment, parse_vars
from crm.rules import default_rules
from tests.integration.dbt_fixture import fetch_rows, run_dbt, write_raw_rows
from tests.integration.test_incremental import AS_OF, FIRST_LOAD, TIMEZONE

pytestmark = pytest.mark.integration

FULL_PARSE = "Unable to do partial parsing"
# C1's only completed order of FIRST_LOAD (O2) is dated 2026-02-01 02:00 UTC: 10:00 in Shanghai.
C1_LAST_ORDER = date(2026, 2, 1)


def run_profile(
    warehouse: Path,
    target: Path,
    run_vars: dict | str | None,
    by_hand: dict | None = None,
) -> subprocess.CompletedProcess[str]:
    """`dbt run` up to the profile with the step's `--vars` (plus `by_hand` ones) and, unless
    None, CRM_DBT_RUN_VARS = `run_vars` (a string is passed as it is)."""
    vars_ = {**parse_vars(TIMEZONE, default_rules()), **(by_hand or {})}
    env = {}
    if run_vars is not None:
        env["CRM_DBT_RUN_VARS"] = run_vars if isinstance(run_vars, str) else json.dumps(run_vars)
    args = ["run", "--select", "+customer_profile", "--vars", json.dumps(vars_, ensure_ascii=False)]
    return run_dbt(args, warehouse, target, env)


def profile_of_c1(warehouse: Path) -> tuple[date, int]:
    rows = fetch_rows(
        warehouse,
        "select as_of, recency_days from marts.customer_profile where customer_id = 'C1'",
    )
    return rows[0]["as_of"], rows[0]["recency_days"]


@pytest.fixture
def warehouse(tmp_path: Path) -> Path:
    path = tmp_path / "warehouse.duckdb"
    write_raw_rows(path, FIRST_LOAD)
    return path


def test_a_new_day_reuses_the_parse_and_computes_for_its_own_as_of(warehouse, tmp_path):
    next_day = AS_OF + timedelta(days=1)

    first = run_profile(warehouse, tmp_path, {"as_of": AS_OF.isoformat()})
    assert first.returncode == 0, first.stdout[-3000:]
    assert FULL_PARSE in first.stdout  # nothing parsed yet in this target folder
    assert profile_of_c1(warehouse) == (AS_OF, (AS_OF - C1_LAST_ORDER).days)

    second = run_profile(warehouse, tmp_path, {"as_of": next_day.isoformat()})
    assert second.returncode == 0, second.stdout[-3000:]
    assert FULL_PARSE not in second.stdout
    assert profile_of_c1(warehouse) == (next_day, (next_day - C1_LAST_ORDER).days)

    # By hand, as_of in `--vars` wins over the environment; a changed `--vars` is a new parse.
    later = next_day + timedelta(days=1)
    by_hand = run_profile(
        warehouse, tmp_path, {"as_of": next_day.isoformat()}, {"as_of": later.isoformat()}
    )
    assert by_hand.returncode == 0, by_hand.stdout[-3000:]
    assert FULL_PARSE in by_hand.stdout
    assert profile_of_c1(warehouse) == (later, (later - C1_LAST_ORDER).days)


@pytest.mark.parametrize(
    ("run_vars", "message"),
    [
        (None, "as_of is not set: pass --vars"),
        ({"verified_since": {}}, "as_of is not set: pass --vars"),
        ("[]", "CRM_DBT_RUN_VARS must hold a JSON object"),
    ],
)
def test_a_run_without_a_usable_as_of_stops_and_says_how_to_give_it(
    warehouse, tmp_path, run_vars, message
):
    result = run_profile(warehouse, tmp_path, run_vars)
    assert result.returncode != 0
    assert message in result.stdout
    tables = fetch_rows(
        warehouse, "select table_name from information_schema.tables where table_schema = 'marts'"
    )
    assert "customer_profile" not in {t["table_name"] for t in tables}


def test_run_values_are_set_for_the_dbt_process_only(monkeypatch):
    monkeypatch.setenv("CRM_WAREHOUSE", "/before/warehouse.duckdb")
    monkeypatch.delenv("CRM_DBT_RUN_VARS", raising=False)
    with environment(CRM_WAREHOUSE="/run/warehouse.duckdb", CRM_DBT_RUN_VARS='{"as_of": "x"}'):
        assert os.environ["CRM_WAREHOUSE"] == "/run/warehouse.duckdb"
        assert os.environ["CRM_DBT_RUN_VARS"] == '{"as_of": "x"}'
    assert os.environ["CRM_WAREHOUSE"] == "/before/warehouse.duckdb"
    assert "CRM_DBT_RUN_VARS" not in os.environ
    with pytest.raises(RuntimeError), environment(CRM_DBT_RUN_VARS="{}"):
        raise RuntimeError("dbt could not start")
    assert "CRM_DBT_RUN_VARS" not in os.environ
