"""Ingest: landing files and the operational database → `raw.*` tables of the warehouse.

One multi-asset for all five entities because their load order matters (customers before the
orders that reference them, so orphans are decided in the same run) and because one DuckDB writer
at a time is the rule. Grain: one raw row per loaded version; consumer: dbt staging.
"""

import dagster as dg

from assets.resources import CrmResource
from crm.ingest.errors import SourceError
from crm.ingest.loader import Loader
from crm.run_state import FORCE_TAG, is_forced, unchanged_since
from crm.schemas import ENTITIES
from crm.warehouse import connect

RAW_KEYS = {e.name: dg.AssetKey(["raw", e.name]) for e in ENTITIES}


@dg.multi_asset(
    specs=[
        dg.AssetSpec(
            key,
            group_name="ingest",
            kinds={"duckdb", "python"},
            description=f"Every loaded version of a source {name} row (latest `_load_seq` wins).",
            # not materialised when nothing changed since the last complete run (run_state)
            skippable=True,
        )
        for name, key in RAW_KEYS.items()
    ],
    can_subset=False,
    name="raw_sources",
)
def raw_sources(context: dg.AssetExecutionContext, crm: CrmResource):
    """Loads new landing files and new database rows; rejected rows go to quality tables."""
    settings = crm.settings()
    rules = crm.rules()
    context.log.info(
        f"landing {settings.landing_dir}; database "
        f"{'(none)' if not settings.source_db_url else 'configured'}; warehouse {settings.warehouse}"
    )
    with connect(settings.warehouse) as con:
        loader = Loader(
            con,
            landing_dir=settings.landing_dir,
            source_db_url=settings.source_db_url,
            rules=rules,
            aliases=crm.aliases(),
            timezone=settings.timezone,
            run_id=context.run_id,
            log=context.log.info,
        )
        try:
            report = loader.run()
        except SourceError as exc:
            # One sentence naming the source and the problem; loaded data stays as it was.
            raise dg.Failure(description=str(exc), allow_retries=False) from None
        previous = None
        if not is_forced(context.run.tags):
            previous = unchanged_since(
                con,
                settings=settings,
                rules=rules,
                aliases=crm.aliases(),
                as_of=crm.as_of_for(context),
            )
    if report.warnings:
        context.log.warning(
            f"{len(report.warnings)} warning(s): " + " | ".join(report.warnings[:20])
        )
    if previous:
        # No outputs: Dagster skips every later step, and the publication stays as it is.
        context.log.info(
            f"Nothing changed since run {previous} (same as_of, rules, settings, code and "
            "source data): the published tables are current, the later steps are skipped. "
            f"Tag the run {FORCE_TAG}=true (pipelines.run --force) to recompute anyway."
        )
        return
    for name, key in RAW_KEYS.items():
        total = report.totals(name)
        yield dg.MaterializeResult(
            asset_key=key,
            metadata={
                "rows_read": total.rows_read,
                "rows_loaded": total.rows_loaded,
                "rows_rejected": total.rows_rejected,
                "rows_duplicate": total.rows_duplicate,
                "orphans_released": report.orphans_released.get(name, 0),
                "sources": dg.MetadataValue.md(
                    "\n".join(
                        f"- `{a.source}`: read {a.rows_read}, loaded {a.rows_loaded}, "
                        f"rejected {a.rows_rejected}, duplicate {a.rows_duplicate}"
                        for a in report.audits
                        if a.entity == name
                    )
                    or "no new data"
                ),
            },
        )
