"""The whole graph on one screen.

sources ─► raw_sources ─► dbt (staging → intermediate → marts.customer_profile, marts.sales_reps)
        ─► customer_segments, customer_lifecycle (+ history, flow) ─► segment_summary
        ─► churn_risk ─► churn_alerts ─► alert_delivery ─► published_tables

Jobs: `customer_daily` (everything, for today's as_of or the run's `crm/as_of` tag) and
`customer_history` (everything but alert delivery: what a backfill of past dates runs).
Writers share one DuckDB file, so every job runs in one process, one step at a time.
"""

from __future__ import annotations

import dagster as dg

from assets import alerts, churn, classification, ingest
from assets.dbt import CrmDbtCliResource, build_dbt_assets, dbt_executable, dbt_project
from assets.publish import build_publish_asset
from assets.resources import CrmResource
from pipelines import log_filters
from pipelines.failure_summary import summarise_failure
from pipelines.sensors import build_landing_sensor, build_schedule
from quality.checks import classification_checks, raw_checks

log_filters.install()  # Dagster's misleading warnings on a skipped rerun, lowered to DEBUG
_project = dbt_project()
dbt_models = build_dbt_assets(_project)

_outputs = [
    classification.SUMMARY,
    classification.FLOW,
    classification.HISTORY,
    churn.CHURN_RISK,
    alerts.ALERT_DELIVERY,
]
published_tables = build_publish_asset(_outputs)

_assets = [
    ingest.raw_sources,
    dbt_models,
    classification.customer_segments,
    classification.customer_lifecycle,
    classification.segment_summary_table,
    churn.churn_risk,
    alerts.churn_alerts,
    alerts.alert_delivery,
    published_tables,
]

# Blocking checks between ingest and dbt, and between classification and churn/alerts; dbt
# tests come with the dbt assets.
_checks = raw_checks(ingest.RAW_KEYS) + classification_checks(
    classification.PROFILE,
    classification.SEGMENTS,
    classification.LIFECYCLE,
    classification.HISTORY,
)

customer_daily = dg.define_asset_job(
    "customer_daily",
    selection=dg.AssetSelection.all(),
    executor_def=dg.in_process_executor,
    hooks={summarise_failure},
    description="Ingest, profile, classify, score churn, email alerts, publish.",
)

customer_history = dg.define_asset_job(
    "customer_history",
    selection=dg.AssetSelection.all()
    - dg.AssetSelection.assets(alerts.CHURN_ALERTS, alerts.ALERT_DELIVERY),
    executor_def=dg.in_process_executor,
    hooks={summarise_failure},
    description="Everything but alerts: rebuilds classification history for past as_of dates.",
)

defs = dg.Definitions(
    assets=_assets,
    asset_checks=_checks,
    jobs=[customer_daily, customer_history],
    schedules=[build_schedule(customer_daily)],
    sensors=[build_landing_sensor(customer_daily)],
    resources={
        "crm": CrmResource(),
        "dbt": CrmDbtCliResource(
            project_dir=_project,
            profiles_dir=str(_project.profiles_dir),
            dbt_executable=dbt_executable(),
        ),
    },
)
