"""dbt models as Dagster assets: staging → intermediate → marts (`customer_profile`, `sales_reps`).

dbt tests surface as asset checks; a failing test fails the dbt step, so nothing downstream of a
bad mart runs in that run (write-audit-publish: publication is the last step).

The uniqueness and reference tests of the incremental staging models read only the rows staged
since their last passing build (dbt_project/macros/verified.sql): this step tells dbt the
watermarks (the run value `verified_since`) and records new ones after a build whose tests all
passed.

as_of and the watermarks reach dbt through the environment variable CRM_DBT_RUN_VARS, not
`--vars`, so that a new day keeps dbt's partial parse (dbt_project/macros/run_vars.sql).
"""

import hashlib
import importlib.metadata
import json
import os
import subprocess
import sys
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from functools import cached_property
from pathlib import Path
from typing import Any

import dagster as dg
from dagster_dbt import DagsterDbtTranslator, DbtCliResource, DbtProject, dbt_assets
from packaging import version

from assets.resources import CrmResource
from crm.rules import Rules
from crm.run_state import content_hash, is_forced
from crm.schemas import ENTITY_BY_NAME
from crm.warehouse import connect
from quality.verified import Scope, record_verified, scope_for

DBT_PROJECT_DIR = Path(__file__).resolve().parents[1] / "dbt_project"
DAILY_EXCLUDE = "tag:structural"
# Incremental staging model -> the raw entity it holds one current row per id of.
VERIFIED_STAGING = {
    "stg_shop__orders": "orders",
    "stg_shop__payments": "payments",
    "stg_crm__interactions": "interactions",
}


def dbt_executable() -> str:
    """The dbt of this virtualenv: dagster-dbt would otherwise look for `dbt` on PATH."""
    candidate = Path(sys.executable).with_name("dbt")
    return str(candidate) if candidate.exists() else "dbt"


class CrmDbtCliResource(DbtCliResource):
    """dagster-dbt's dbt resource without two start-up costs this project does not use.

    Before each dbt command dagster-dbt runs `dbt --version` in a subprocess (to tell dbt Core
    from the Fusion engine) and loads dbt's adapter in this process (only for column metadata and
    row counts, which these assets do not fetch): ~5.5 s of every daily dbt step at 1M customers,
    before dbt itself starts. The version is read from the installed dbt-core package instead —
    the same dbt whose executable `dbt_executable()` picks beside this interpreter — and no
    adapter is loaded (dagster-dbt handles a missing adapter; only those metadata calls need it).
    tests/integration/test_definitions.py checks both against the pinned dagster-dbt."""

    @cached_property
    def _cli_version(self) -> version.Version:
        if Path(self.dbt_executable).parent == Path(sys.executable).parent:
            return version.parse(importlib.metadata.version("dbt-core"))
        return super()._cli_version  # another dbt: ask it

    def _initialize_dbt_core_adapter(self, args: Sequence[str]) -> None:  # type: ignore[override]
        return None


def dbt_project() -> DbtProject:
    return DbtProject(project_dir=DBT_PROJECT_DIR, profiles_dir=DBT_PROJECT_DIR)


def manifest_is_stale(project: DbtProject) -> bool:
    """True when the manifest is missing, unreadable, or older than a model/macro/yml file."""
    manifest = project.manifest_path
    if not manifest.exists():
        return True
    try:
        json.loads(manifest.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return True
    built = manifest.stat().st_mtime
    watched = ("models", "macros", "seeds", "tests", "dbt_project.yml", "profiles.yml")
    for name in watched:
        path = DBT_PROJECT_DIR / name
        files = [path] if path.is_file() else (path.rglob("*") if path.exists() else [])
        if any(f.is_file() and f.stat().st_mtime > built for f in files):
            return True
    return False


def prepare_manifest(project: DbtProject) -> Path:
    """Runs `dbt parse` when the manifest is missing or stale, so a fresh clone just works.

    dagster-dbt only auto-prepares under `dagster dev`; the CLI, tests and CI need this."""
    if manifest_is_stale(project):
        env = {**os.environ, "DBT_SEND_ANONYMOUS_USAGE_STATS": "false"}
        result = subprocess.run(
            [
                dbt_executable(),
                "parse",
                "--quiet",
                "--project-dir",
                str(DBT_PROJECT_DIR),
                "--profiles-dir",
                str(DBT_PROJECT_DIR),
            ],
            env=env,
            capture_output=True,
            text=True,
            cwd=DBT_PROJECT_DIR,
        )
        if result.returncode != 0:
            raise RuntimeError(f"dbt parse failed:\n{result.stdout}\n{result.stderr}")
    return project.manifest_path


def staging_definitions(timezone: str) -> str:
    """Hash of the dbt project's models, macros, tests and settings and of the time zone (a new
    one restages every row): a change voids every staging watermark, so the next build tests
    whole tables once."""
    files = content_hash(DBT_PROJECT_DIR, ("dbt_project.yml", "models", "macros", "tests"))
    return hashlib.sha256(f"{timezone}\n{files}".encode()).hexdigest()


def staging_scopes(warehouse: Path, definitions: str, *, whole: bool) -> dict[str, Scope]:
    """Which staged rows each incremental staging model's tests must read in this build."""
    with connect(warehouse) as con:
        return {
            model: scope_for(
                con, ENTITY_BY_NAME[entity], definitions, whole=whole, subject=f"staging.{model}"
            )
            for model, entity in VERIFIED_STAGING.items()
        }


def parse_vars(timezone: str, rules: Rules) -> dict[str, Any]:
    """The `--vars` of a daily build: only what changes the parsed project when it changes.

    Values that change every run (as_of, the verified watermarks) go through CRM_DBT_RUN_VARS
    instead (dbt_project/macros/run_vars.sql): any change of `--vars` makes dbt parse the whole
    project again, and with these alone a daily run reuses the previous parse."""
    return {"timezone": timezone, "crm": rules.dbt_vars()}


@contextmanager
def environment(**values: str) -> Iterator[None]:
    """Sets environment variables for the block and restores the previous ones after it.

    Why scoped: the values belong to one dbt process; left in this process they would leak into
    whatever runs next in it (another run, a test's own dbt call reading a stale watermark)."""
    previous = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in previous.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def models_whose_tests_passed(
    manifest: Mapping[str, Any], run_results: Mapping[str, Any], models: list[str]
) -> list[str]:
    """Models of `models` all of whose data tests ran in this build and passed. A build of a
    selection may not run them all; only a model whose every test passed may be recorded."""
    status = {r["unique_id"]: r["status"] for r in run_results.get("results", [])}
    passed = []
    for model in models:
        model_id = f"model.customer_intel.{model}"
        tests = [
            uid
            for uid, node in manifest.get("nodes", {}).items()
            if node.get("resource_type") == "test" and node.get("attached_node") == model_id
        ]
        if tests and all(status.get(uid) == "pass" for uid in tests):
            passed.append(model)
    return passed


class CrmDbtTranslator(DagsterDbtTranslator):
    """dbt sources `raw.<table>` are the ingest assets `raw/<table>`; models keep their names."""

    def get_group_name(self, dbt_resource_props):  # noqa: D102 - documented in the class
        if dbt_resource_props["resource_type"] == "model":
            fqn = dbt_resource_props.get("fqn", [])
            return fqn[1] if len(fqn) > 2 else "dbt"
        return super().get_group_name(dbt_resource_props)


def build_dbt_assets(project: DbtProject) -> dg.AssetsDefinition:
    manifest = prepare_manifest(project)

    @dbt_assets(
        manifest=manifest,
        project=project,
        dagster_dbt_translator=CrmDbtTranslator(),
        name="dbt_models",
        # tests that hold by construction run in the test suite, not daily (see the yml)
        exclude=DAILY_EXCLUDE,
    )
    def dbt_models(context: dg.AssetExecutionContext, dbt: DbtCliResource, crm: CrmResource):
        """`dbt build` for this run's as_of and rules: models, then their tests."""
        settings = crm.settings()
        rules = crm.rules()
        as_of = crm.as_of_for(context)
        definitions = staging_definitions(settings.timezone)
        scopes = staging_scopes(settings.warehouse, definitions, whole=is_forced(context.run.tags))
        for model, scope in scopes.items():
            context.log.info(f"{model} uniqueness and reference tests read: {scope.reason}")
        run_vars = {
            "as_of": as_of.isoformat(),
            "verified_since": {m: s.since for m, s in scopes.items() if s.since is not None},
        }
        context.log.info(f"dbt build for as_of {as_of} on {settings.warehouse}")
        # dbt unit tests check the SQL, not the data: they run in the test suite, not every day.
        args = ["build", "--exclude-resource-type", "unit_test"]
        args += ["--vars", json.dumps(parse_vars(settings.timezone, rules), ensure_ascii=False)]
        # The dbt process gets this run's file and run values through its environment; the
        # process is started inside `dbt.cli`, so the variables are set only around that call.
        with environment(
            CRM_WAREHOUSE=str(settings.warehouse),
            CRM_DBT_RUN_VARS=json.dumps(run_vars, ensure_ascii=False),
        ):
            # One fixed target folder (runs never overlap: one writer), instead of a new folder
            # per run that would pile up under target/ on a daily schedule; it also keeps dbt's
            # partial-parse state from one run to the next.
            invocation = dbt.cli(args, context=context, target_path=Path("target") / "run")
        yield from invocation.stream()
        # Reached only when dbt succeeded (a failing test raises above).
        verified = models_whose_tests_passed(
            invocation.manifest, invocation.get_artifact("run_results.json"), list(scopes)
        )
        with connect(settings.warehouse) as con:
            for model in verified:
                record_verified(con, scopes[model], definitions, context.run_id)
        if verified:
            context.log.info(f"tests passed: {', '.join(verified)} verified to this run's rows")

    return dbt_models
