"""Publish: the last step of a run, after every check passed (write-audit-publish)."""

import dagster as dg

from assets.resources import CrmResource
from crm.publish import publish
from crm.run_state import fingerprint, record_completed
from crm.warehouse import connect


def build_publish_asset(upstream: list[dg.AssetKey]) -> dg.AssetsDefinition:
    """The publication depends on every output, so it runs only when all of them succeeded."""

    @dg.asset(
        name="published_tables",
        group_name="publish",
        deps=upstream,
        kinds={"duckdb", "parquet"},
        description="analytics.duckdb and one Parquet file per table in CRM_PUBLISH_DIR.",
    )
    def published_tables(
        context: dg.AssetExecutionContext, crm: CrmResource
    ) -> dg.MaterializeResult:
        settings = crm.settings()
        report = publish(settings.warehouse, settings.publish_dir)
        as_of = crm.as_of_for(context)
        with connect(settings.warehouse) as con:
            # What the next run compares with to know whether anything changed (run_state).
            value = fingerprint(
                con, settings=settings, rules=crm.rules(), aliases=crm.aliases(), as_of=as_of
            )
            record_completed(con, context.run_id, as_of, value)
        for table in report.missing:
            context.log.warning(f"{table} does not exist in the warehouse yet; not published")
        context.log.info(
            f"published {len(report.tables)} tables to {report.directory}: "
            + ", ".join(f"{t} ({n} rows)" for t, n in report.tables.items())
        )
        return dg.MaterializeResult(
            metadata={
                "directory": dg.MetadataValue.path(str(report.directory)),
                **{t: n for t, n in report.tables.items()},
            }
        )

    return published_tables
