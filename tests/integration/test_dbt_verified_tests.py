"""The `*_since_verified` dbt tests of the incremental staging models (macros/verified.sql).

With `verified_since` they read the rows staged after the watermark, rows without load_seq and
released orphans; without it, every row — exactly dbt's `unique` and `relationships`. Staged rows
are written straight into the staging tables here, so the tests are seen catching (or, below
the watermark, deliberately not reading) what the models should never produce.
"""

from __future__ import annotations

import json

import duckdb
import pytest

from crm.rules import default_rules
from tests.integration.dbt_fixture import dbt_vars, run_dbt, write_raw_rows
from tests.integration.test_incremental import AS_OF, FIRST_LOAD, TIMEZONE

pytestmark = pytest.mark.integration

MODEL = "stg_crm__interactions"


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """A small warehouse built once; each test works on a copy of its file."""
    folder = tmp_path_factory.mktemp("verified")
    warehouse = folder / "warehouse.duckdb"
    write_raw_rows(warehouse, FIRST_LOAD)
    vars_ = dbt_vars(AS_OF, TIMEZONE, default_rules())
    result = run_dbt(
        ["build", "--exclude-resource-type", "unit_test", "--vars", vars_], warehouse, folder
    )
    assert result.returncode == 0, result.stdout
    with duckdb.connect(str(warehouse), read_only=True) as con:
        top = con.execute("SELECT max(_load_seq) FROM raw.interactions").fetchone()[0]
    return warehouse, top


@pytest.fixture
def warehouse(built, tmp_path):
    source, top = built
    copy = tmp_path / "warehouse.duckdb"
    copy.write_bytes(source.read_bytes())
    return copy, top


def stage_copy_of_i1(warehouse, load_seq: int, **changes: str) -> None:
    """A staged row like I1's, with another load_seq (and optionally other values)."""
    sets = ", ".join(f"'{v}' AS {k}" for k, v in changes.items())
    replace = (
        f"REPLACE ({sets}, {load_seq} AS load_seq)" if sets else f"REPLACE ({load_seq} AS load_seq)"
    )
    with duckdb.connect(str(warehouse)) as con:
        con.execute(
            f"INSERT INTO staging.{MODEL} SELECT * {replace} "
            f"FROM staging.{MODEL} WHERE interaction_id = 'I1'"
        )


def failing_tests(warehouse, tmp_path, since: int | None, channel: str = "vars") -> set[str]:
    """Names of the tests of the model that fail, with or without a watermark, given in
    `--vars` (a run by hand) or in CRM_DBT_RUN_VARS (how the Dagster step gives it)."""
    vars_ = json.loads(dbt_vars(AS_OF, TIMEZONE, default_rules()))
    env = {}
    if since is not None and channel == "vars":
        vars_["verified_since"] = {MODEL: since}
    elif since is not None:
        env["CRM_DBT_RUN_VARS"] = json.dumps({"verified_since": {MODEL: since}})
    result = run_dbt(
        ["test", "--select", MODEL, "--vars", json.dumps(vars_, ensure_ascii=False)],
        warehouse,
        tmp_path,
        env,
    )
    run_results = json.loads((tmp_path / "target" / "run_results.json").read_text())
    failed = {r["unique_id"].split(".")[2] for r in run_results["results"] if r["status"] == "fail"}
    assert (result.returncode != 0) == bool(failed), result.stdout
    return failed


UNIQUE = f"unique_since_verified_{MODEL}_interaction_id"
REFERENCE = (
    f"relationships_since_verified_{MODEL}_customer_id__customer_id__ref_stg_crm__customers_"
)


def test_a_duplicate_staged_after_the_watermark_fails(warehouse, tmp_path):
    path, top = warehouse
    stage_copy_of_i1(path, top + 1)
    assert failing_tests(path, tmp_path, since=top) == {UNIQUE}


@pytest.mark.parametrize("channel", ["vars", "environment"])
def test_rows_at_or_below_the_watermark_are_not_read_unless_there_is_none(
    warehouse, tmp_path, channel
):
    path, top = warehouse
    stage_copy_of_i1(path, top)  # verified rows are not read again
    assert failing_tests(path, tmp_path, since=top, channel=channel) == set()
    assert failing_tests(path, tmp_path, since=None, channel=channel) == {UNIQUE}  # every row


def test_an_unknown_customer_fails_when_staged_after_or_released(warehouse, tmp_path):
    path, top = warehouse
    stage_copy_of_i1(path, top + 1, interaction_id="I9", customer_id="C404")
    assert failing_tests(path, tmp_path, since=top) == {REFERENCE}
    with duckdb.connect(str(path)) as con:
        con.execute(f"DELETE FROM staging.{MODEL} WHERE interaction_id = 'I9'")
    # an orphan released with its original, older load_seq is read too
    stage_copy_of_i1(path, 0, interaction_id="I8", customer_id="C404")
    assert failing_tests(path, tmp_path, since=top) == set()
    with duckdb.connect(str(path)) as con:
        con.execute("INSERT INTO meta.released_rows VALUES ('interactions', 0, 'r', now())")
    assert failing_tests(path, tmp_path, since=top) == {REFERENCE}
