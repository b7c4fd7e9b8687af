"""`python -m pipelines.run [--job customer_daily] [--as-of YYYY-MM-DD]`: run a job once, in this
process, and print what it produced and where (what `make demo` calls).

Same graph, resources and environment as `dagster job execute -m pipelines.definitions -j
customer_daily`; this wrapper adds the closing summary and a one-sentence failure message.
"""

from __future__ import annotations

import argparse
import os
import sys
from datetime import date

import dagster as dg

from assets.resources import AS_OF_TAG
from crm.run_state import FORCE_TAG
from crm.settings import Settings, parse_as_of
from crm.warehouse import connect


def _instance() -> dg.DagsterInstance:
    """The persistent instance when DAGSTER_HOME is set (runs show in `make dev`)."""
    if os.environ.get("DAGSTER_HOME"):
        os.makedirs(os.environ["DAGSTER_HOME"], exist_ok=True)
        return dg.DagsterInstance.get()
    return dg.DagsterInstance.ephemeral()


def failure_summary(result: dg.ExecuteInProcessResult) -> str:
    """The first failed step's message, as one sentence a user can act on.

    A blocking check names itself and its finding (e.g. "orders: 7 of 100 rows rejected = 7 %,
    above the limit of 5 %"), not just the step that stopped."""
    failed_checks = [
        f"{e.asset_check_evaluation_data.asset_key.to_user_string()} "
        f"{e.asset_check_evaluation_data.check_name}: "
        f"{e.asset_check_evaluation_data.description or 'failed'}"
        for e in result.all_events
        if e.event_type_value == "ASSET_CHECK_EVALUATION"
        and not e.asset_check_evaluation_data.passed
        and e.asset_check_evaluation_data.severity == dg.AssetCheckSeverity.ERROR
    ]
    if failed_checks:
        return "blocking data-quality check failed: " + " | ".join(failed_checks)
    for event in result.all_events:
        if event.is_step_failure and event.step_failure_data:
            user_error = event.step_failure_data.user_failure_data
            if user_error and user_error.description:
                return f"step {event.step_key} failed: {user_error.description}"
            error = event.step_failure_data.error
            while error is not None and error.cause is not None:  # the root cause, not wrappers
                error = error.cause
            text = error.message.strip().splitlines()[-1] if error else "unknown error"
            return f"step {event.step_key} failed: {text}"
    return "the run failed before any step ran"


def print_summary(settings: Settings, as_of: date) -> None:
    pub = settings.publish_dir / "analytics.duckdb"
    print(f"\nRun for as_of {as_of} succeeded.")
    print(f"  Published tables (BI):  {pub}")
    print(f"                          {settings.publish_dir}/<table>.parquet")
    with connect(pub, read_only=True) as con:

        def show(title: str, sql: str) -> None:
            rows = con.execute(sql).fetchall()
            print(f"  {title}: " + (", ".join(f"{k} {v}" for k, v in rows) or "none"))

        show(
            "Customers per stage",
            "SELECT stage, count(*) FROM marts.customer_lifecycle GROUP BY 1 ORDER BY 2 DESC",
        )
        show(
            "Customers per value tier",
            "SELECT value_tier, count(*) FROM marts.customer_segments GROUP BY 1 ORDER BY 2 DESC",
        )
        show(
            "Churn risk levels",
            "SELECT risk_level, count(*) FROM marts.churn_risk GROUP BY 1 ORDER BY 2 DESC",
        )
        show(
            "Rejected source rows",
            "SELECT entity, count(*) FROM quality.rejected_rows GROUP BY 1 ORDER BY 1",
        )
        rows = con.execute(
            "SELECT recipient, status, count(*) FROM marts.churn_alerts WHERE as_of = ? "
            "GROUP BY 1, 2 ORDER BY 3 DESC, 1",
            [as_of],
        ).fetchall()
    print(f"  Alerts of {as_of}: {sum(r[2] for r in rows)}")
    for recipient, status, n in rows:
        print(f"    {n:4d} {status:10s} → {recipient}")
    if settings.smtp.enabled:
        print(f"  Emails: sent through SMTP {settings.smtp.host}:{settings.smtp.port}")
    else:
        print(
            f"  Emails (.eml, open with any mail client): {settings.mail_dir / as_of.isoformat()}"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--job", default="customer_daily")
    parser.add_argument("--as-of", help="run date YYYY-MM-DD (default: CRM_AS_OF or today)")
    parser.add_argument(
        "--force",
        action="store_true",
        help="recompute every step even when nothing changed since the last complete run",
    )
    args = parser.parse_args(argv)
    settings = Settings.from_env()
    as_of = parse_as_of(args.as_of) if args.as_of else settings.resolved_as_of()

    from pipelines.definitions import defs

    job = defs.resolve_job_def(args.job)
    tags = {AS_OF_TAG: as_of.isoformat()} | ({FORCE_TAG: "true"} if args.force else {})
    result = job.execute_in_process(instance=_instance(), tags=tags, raise_on_error=False)
    if not result.success:
        print(f"\nRun {result.run_id} for as_of {as_of} FAILED.", file=sys.stderr)
        print(failure_summary(result), file=sys.stderr)
        return 1
    skipped = [e.step_key for e in result.all_events if e.event_type_value == "STEP_SKIPPED"]
    if skipped:
        print(
            f"Nothing changed since the last complete run: {len(skipped)} step(s) skipped, "
            "the published tables are current (use --force to recompute)."
        )
    if args.job == "customer_daily":
        print_summary(Settings.from_env(), as_of)
    return 0


if __name__ == "__main__":
    sys.exit(main())
