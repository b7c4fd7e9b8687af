"""dbt models as Dagster assets: staging → intermediate → marts (`customer_profile`, `sales_reps`).

dbt tests surface as asset checks; a failing test fails the dbt step, so nothing downstream of a
bad mart runs in that run (write-audit-publish: publication is the last step).
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
from dagster_dbt import DagsterDbtTranslator, DbtCliResource, DbtProject, dbt_assets

from assets.resources import CrmResource

DBT_PROJECT_DIR = Path(__file__).resolve().parents[1] / "dbt_project"


def dbt_executable() -> str:
    """The dbt of this virtualenv: dagster-dbt would otherwise look for `dbt` on PATH."""
    candidate = Path(sys.executable).with_name("dbt")
    return str(candidate) if candidate.exists() else "dbt"


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
    )
    def dbt_models(context: dg.AssetExecutionContext, dbt: DbtCliResource, crm: CrmResource):
        """`dbt build` for this run's as_of and rules: models, then their tests."""
        settings = crm.settings()
        rules = crm.rules()
        as_of = crm.as_of_for(context)
        dbt_vars = {
            "as_of": as_of.isoformat(),
            "timezone": settings.timezone,
            "crm": rules.dbt_vars(),
        }
        # The dbt subprocess inherits this process's environment: point it at this run's file.
        os.environ["CRM_WAREHOUSE"] = str(settings.warehouse)
        context.log.info(f"dbt build for as_of {as_of} on {settings.warehouse}")
        # dbt unit tests check the SQL, not the data: they run in the test suite, not every day.
        args = ["build", "--exclude-resource-type", "unit_test"]
        # One fixed target folder (runs never overlap: one writer), instead of a new folder per
        # run that would pile up under target/ on a daily schedule.
        yield from dbt.cli(
            [*args, "--vars", json.dumps(dbt_vars, ensure_ascii=False)],
            context=context,
            target_path=Path("target") / "run",
        ).stream()

    return dbt_models
