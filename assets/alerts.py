"""Churn alerts (流失预警通知, domain.md §5): plan the outbox, then deliver digests behind a gate.

Two assets so that planning (deterministic, rerunnable) and sending (side effects, retried) are
separate steps in the UI and in the logs. The outbox `marts.churn_alerts` persists across runs:
it is what makes cooldown, retries and "never twice" possible.
"""

import dagster as dg

from assets.churn import CHURN_RISK
from assets.classification import LIFECYCLE, PROFILE, SEGMENTS
from assets.resources import CrmResource
from crm.alerts import create_alerts
from crm.frames import read_query, read_table
from crm.mailer import deliver
from crm.warehouse import connect
from quality.freshness import source_freshness
from quality.results import blocking_failures

CHURN_ALERTS = dg.AssetKey(["marts", "churn_alerts"])
SALES_REPS = dg.AssetKey(["marts", "sales_reps"])
ALERT_DELIVERY = dg.AssetKey(["alert_delivery"])


@dg.asset(
    key=CHURN_ALERTS,
    deps=[CHURN_RISK, PROFILE, SEGMENTS, LIFECYCLE, SALES_REPS],
    group_name="alerts",
    kinds={"python", "duckdb"},
)
def churn_alerts(context: dg.AssetExecutionContext, crm: CrmResource) -> dg.MaterializeResult:
    """New alerts of this as_of: candidates, cooldown, routing to the owner rep, suggested action."""
    settings, rules = crm.settings(), crm.rules()
    as_of = crm.as_of_for(context)
    with connect(settings.warehouse) as con:
        risk = read_table(con, "marts.churn_risk")
        customers = read_query(
            con,
            """SELECT p.customer_id, p.name, p.owner_rep_id, l.stage, s.value_tier,
                      s.is_key_account, s.is_price_sensitive
               FROM marts.customer_profile p
               JOIN marts.customer_segments s USING (customer_id)
               JOIN marts.customer_lifecycle l USING (customer_id)""",
        )
        reps = read_table(con, "marts.sales_reps")
        new_alerts = create_alerts(con, risk, customers, reps, as_of, rules, context.run_id)
    by_recipient = new_alerts["recipient"].value_counts().to_dict() if len(new_alerts) else {}
    context.log.info(f"{len(new_alerts)} new alerts for {as_of}: {by_recipient}")
    return dg.MaterializeResult(
        metadata={"new_alerts": len(new_alerts), "recipients": len(by_recipient)}
    )


@dg.asset(key=ALERT_DELIVERY, deps=[CHURN_ALERTS], group_name="alerts", kinds={"email"})
def alert_delivery(context: dg.AssetExecutionContext, crm: CrmResource) -> dg.MaterializeResult:
    """One digest per recipient via SMTP, or .eml files in CRM_MAIL_DIR without SMTP_HOST.

    Gate: a failed blocking data-quality check of this run, or a stale feed, suppresses every
    pending alert with the reason; nothing is sent."""
    settings, rules = crm.settings(), crm.rules()
    as_of = crm.as_of_for(context)
    with connect(settings.warehouse) as con:
        problems = [
            f"blocking check failed: {name}" for name in blocking_failures(con, context.run_id)
        ]
        stale = [f for f in source_freshness(con, as_of, settings.timezone, rules) if f.stale]
        if stale:
            problems.append(
                "stale source: "
                + "; ".join(f.message for f in stale)
                + f" (older than {rules.quality.stale_after_days} days before {as_of})"
            )
        gate_ok = not problems
        gate_reason = None if gate_ok else "; ".join(problems)
        if not gate_ok:
            context.log.warning(f"alerts suppressed, {gate_reason}")
        report = deliver(
            con,
            settings.smtp,
            settings.mail_dir,
            as_of,
            context.run_id,
            rules,
            gate_ok,
            gate_reason,
        )
    where = (
        f"SMTP {settings.smtp.host}:{settings.smtp.port}"
        if settings.smtp.enabled
        else str(settings.mail_dir)
    )
    held = f" ({report.held_back} held back by the digest cap)" if report.held_back else ""
    context.log.info(
        f"alerts sent {report.sent} in {report.digests_sent} digests via {where}; "
        f"pending {report.pending}{held}, failed {report.failed}, suppressed {report.suppressed}"
    )
    for line in report.held_back_lines():
        context.log.info(line)
    undelivered = report.undelivered()
    for line in undelivered:
        context.log.warning(line)
    return dg.MaterializeResult(
        metadata={
            "sent": report.sent,
            "digests": report.digests_sent,
            "pending": report.pending,
            "failed": report.failed,
            "suppressed": report.suppressed,
            "held_back": report.held_back,
            "undelivered_digests": len(undelivered),
            "delivered_via": where,
            "gate": "open" if gate_ok else gate_reason,
        }
    )
