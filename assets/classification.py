"""Classification: segments (domain.md §3) and lifecycle stages with history (§2).

Grain: one row per customer of `marts.customer_profile` (plus history periods and summaries).
Consumers: churn scoring, alerts, BI. Python reads the per-customer mart only, never raw facts.
"""

from datetime import date

import dagster as dg
import pandas as pd

from assets.resources import CrmResource
from crm.frames import read_table, replace_as_of, replace_table
from crm.lifecycle import (
    STAGE_INPUTS,
    advance_history,
    classify_stages,
    lifecycle_flow,
    lifecycle_table,
    stages_before,
)
from crm.rules import Rules
from crm.segments import SEGMENT_INPUTS, compute_segments
from crm.stage_history import count_periods, read_working_periods, store_working_periods
from crm.summaries import SUMMARY_PROFILE_INPUTS, segment_summary
from crm.warehouse import connect

PROFILE = dg.AssetKey(["marts", "customer_profile"])
SEGMENTS = dg.AssetKey(["marts", "customer_segments"])
LIFECYCLE = dg.AssetKey(["marts", "customer_lifecycle"])
HISTORY = dg.AssetKey(["marts", "customer_stage_history"])
FLOW = dg.AssetKey(["marts", "lifecycle_flow"])
SUMMARY = dg.AssetKey(["marts", "segment_summary"])

DATE = "DATE"


@dg.asset(key=SEGMENTS, deps=[PROFILE], group_name="classification", kinds={"python", "duckdb"})
def customer_segments(context: dg.AssetExecutionContext, crm: CrmResource) -> dg.MaterializeResult:
    """Value tier, key account, RFM, credit grade, relationship level, loyalty, price sensitivity,
    region/industry per customer (客户分类 / 分级)."""
    settings, rules = crm.settings(), crm.rules()
    as_of = crm.as_of_for(context)
    with connect(settings.warehouse) as con:
        profile = read_table(con, "marts.customer_profile", SEGMENT_INPUTS)
        segments = compute_segments(profile, rules)
        segments["as_of"] = as_of
        replace_table(con, "marts.customer_segments", segments, {"as_of": DATE})
    counts = segments["value_tier"].value_counts().to_dict()
    context.log.info(f"segments for {len(segments)} customers; value tiers {counts}")
    return dg.MaterializeResult(
        metadata={
            "customers": len(segments),
            **{f"value_tier_{k}": int(v) for k, v in counts.items()},
        }
    )


@dg.multi_asset(
    specs=[
        dg.AssetSpec(
            LIFECYCLE, deps=[PROFILE], group_name="classification", kinds={"python", "duckdb"}
        ),
        dg.AssetSpec(
            HISTORY, deps=[PROFILE], group_name="classification", kinds={"python", "duckdb"}
        ),
        dg.AssetSpec(FLOW, deps=[PROFILE], group_name="classification", kinds={"python", "duckdb"}),
    ],
    can_subset=False,
)
def customer_lifecycle(context: dg.AssetExecutionContext, crm: CrmResource):
    """Lifecycle stage per customer (客户生命周期), its history and the flow between stages.

    The history persists across runs: a period is added only when a stage changes, so rerunning
    an as_of adds nothing and running month ends in order builds history (the backfill)."""
    settings, rules = crm.settings(), crm.rules()
    as_of = crm.as_of_for(context)
    with connect(settings.warehouse) as con:
        profile = read_table(con, "marts.customer_profile", STAGE_INPUTS)
        stages = classify_stages(profile, rules)
        # Only the periods this as_of can change or needs: the closed past stays in place.
        history = read_working_periods(con, as_of)
        con.execute(
            "CREATE TABLE IF NOT EXISTS meta.lifecycle_runs (as_of DATE PRIMARY KEY, "
            "run_id VARCHAR, recorded_at TIMESTAMP)"
        )
        newest = con.execute("SELECT max(as_of) FROM meta.lifecycle_runs").fetchone()[0]
        recorded = con.execute(
            "SELECT count(*) FROM meta.lifecycle_runs WHERE as_of = ?", [as_of]
        ).fetchone()[0]
        advanced = not (recorded and newest is not None and as_of < newest)
        if not advanced:
            # A rerun of a past as_of (e.g. a backfill range run twice): history stays as it is.
            context.log.info(f"{as_of} is already in the stage history; history left unchanged")
            new_history = history
        else:
            try:
                new_history = advance_history(history, stages, as_of)
            except ValueError as exc:
                raise dg.Failure(description=f"customer_stage_history: {exc}") from None
        previous = stages_before(new_history, as_of)
        flow = lifecycle_flow(previous, stages, as_of)
        lifecycle = lifecycle_at(new_history, stages, as_of, rules, advanced=advanced)
        con.execute("BEGIN TRANSACTION")
        deleted = inserted = 0
        if advanced:
            deleted, inserted = store_working_periods(con, as_of, new_history)
        replace_table(
            con, "marts.customer_lifecycle", lifecycle, {"stage_since": DATE, "as_of": DATE}
        )
        replace_as_of(con, "marts.lifecycle_flow", flow, as_of, {"as_of": DATE})
        con.execute(
            "INSERT OR REPLACE INTO meta.lifecycle_runs VALUES (?, ?, now())",
            [as_of, context.run_id],
        )
        con.execute("COMMIT")
        periods = count_periods(con)
    context.log.info(
        f"stage history: {len(history)} working periods read, {deleted} rows deleted and "
        f"{inserted} inserted; {periods} periods in all"
    )
    by_stage = lifecycle["stage"].value_counts().to_dict()
    context.log.info(f"stages on {as_of}: {by_stage}")
    yield dg.MaterializeResult(
        asset_key=LIFECYCLE,
        metadata={"customers": len(lifecycle), **{k: int(v) for k, v in by_stage.items()}},
    )
    yield dg.MaterializeResult(
        asset_key=HISTORY, metadata={"periods": periods, "rows_written": inserted}
    )
    yield dg.MaterializeResult(asset_key=FLOW, metadata={"transitions": len(flow)})


def lifecycle_at(
    history: pd.DataFrame, stages: pd.DataFrame, as_of: date, rules: Rules, *, advanced: bool
) -> pd.DataFrame:
    """`marts.customer_lifecycle` for as_of: the newest as_of advances the history as usual; a
    past as_of (a rerun inside a backfilled range) reads stage_since / previous_stage from the
    period that covered that date. `advanced`: `history` already is advance_history's result
    for (stages, as_of). `history` may be only the working periods of as_of
    (`crm.stage_history.read_working_periods`): every period read here is among them."""
    starts = pd.to_datetime(history["valid_from"]).dt.date if len(history) else pd.Series([])
    if not len(history) or as_of >= starts.max():
        return lifecycle_table(history, stages, as_of, rules, advanced=advanced)
    ends = pd.to_datetime(history["valid_to"]).dt.date
    covering = history[(starts <= as_of) & (history["valid_to"].isna() | (ends > as_of))]
    periods = covering.set_index("customer_id")
    labels = rules.lifecycle.labels
    rows = []
    for customer_id, stage in zip(stages["customer_id"], stages["stage"], strict=True):
        known = customer_id in periods.index
        rows.append(
            {
                "customer_id": customer_id,
                "stage": stage,
                "stage_zh": labels[stage].zh,
                "stage_since": periods.at[customer_id, "valid_from"] if known else as_of,
                "previous_stage": periods.at[customer_id, "previous_stage"] if known else None,
                "as_of": as_of,
            }
        )
    return pd.DataFrame(rows)


@dg.asset(
    key=SUMMARY, deps=[SEGMENTS, LIFECYCLE], group_name="classification", kinds={"python", "duckdb"}
)
def segment_summary_table(
    context: dg.AssetExecutionContext, crm: CrmResource
) -> dg.MaterializeResult:
    """Customers and revenue_365d per segment kind and segment, kept per as_of for trends."""
    settings = crm.settings()
    as_of = crm.as_of_for(context)
    with connect(settings.warehouse) as con:
        segments = read_table(con, "marts.customer_segments")
        profile = read_table(con, "marts.customer_profile", SUMMARY_PROFILE_INPUTS)
        lifecycle = read_table(con, "marts.customer_lifecycle")
        summary = segment_summary(segments, profile, lifecycle, as_of)
        con.execute("BEGIN TRANSACTION")
        replace_as_of(
            con,
            "marts.segment_summary",
            summary,
            as_of,
            {"as_of": DATE, "revenue_365d": "DECIMAL(18,2)"},
        )
        con.execute("COMMIT")
    return dg.MaterializeResult(metadata={"rows": len(summary)})
