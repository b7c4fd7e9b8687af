"""What one alert looks like in a digest (domain.md §5: customer, stage, value tier, score,
reasons, action), read from a real outbox table the way delivery reads it.

The expected lines are written out by hand from the rules file's labels, so they do not depend
on how `crm.mailer` walks the rows (it reads only the columns a line shows, column-wise).
"""

from __future__ import annotations

from datetime import date

import duckdb
import pandas as pd

from crm.mailer import DigestLine, _lines, build_digests
from crm.outbox import PENDING, ensure_outbox, read_outbox
from crm.rules import default_rules

SENDER = "crm-alerts@example.com"


def _outbox_digest():
    con = duckdb.connect()
    ensure_outbox(con)
    con.execute(
        """INSERT INTO marts.churn_alerts
             (alert_id, customer_id, as_of, risk_level, risk_score, reasons, suggested_action,
              suggested_action_label, recipient, status, attempts, customer_name, stage,
              value_tier)
           VALUES
             ('a1', 'C1', DATE '2026-05-01', 'high', 91, E'订单减少 / fewer orders\n\n  \n投诉 / complaints',
              'service_recovery', '服务补救回访 / service-recovery call', 'rep@example.com',
              'pending', 0, '广州某某贸易有限公司', 'at_risk', 'high'),
             ('a2', 'C2', DATE '2026-05-01', 'high', 75, NULL,
              'follow_up_call', '电话回访 / follow-up call', 'REP@example.com ',
              'pending', 0, NULL, NULL, 'no_such_tier'),
             ('a3', 'C3', DATE '2026-05-01', 'medium', 75, '  ',
              'coupon', '发送专属优惠券 / personal coupon', 'rep@example.com',
              'pending', 0, '   ', 'loyal', NULL)"""
    )
    pending = read_outbox(con, PENDING)
    con.close()
    (digest,) = build_digests(pending, SENDER)
    return digest


def test_each_alert_becomes_the_line_a_salesperson_reads() -> None:
    rules = default_rules()
    stages, tiers = rules.lifecycle.labels, rules.segments.value_tier.labels
    lines = _lines(_outbox_digest(), rules)
    assert lines == [
        DigestLine(
            customer="广州某某贸易有限公司 (C1)",
            stage=f"{stages['at_risk'].zh} / {stages['at_risk'].en}",
            value_tier=f"{tiers['high'].zh} / {tiers['high'].en}",
            score="91 (high)",
            reasons=["订单减少 / fewer orders", "投诉 / complaints"],
            action="服务补救回访 / service-recovery call",
        ),
        # equal scores: customer_id decides; no name -> the id; an unknown code is shown as is
        DigestLine(
            customer="C2",
            stage="-",
            value_tier="no_such_tier",
            score="75 (high)",
            reasons=[],
            action="电话回访 / follow-up call",
        ),
        DigestLine(
            customer="C3",
            stage=f"{stages['loyal'].zh} / {stages['loyal'].en}",
            value_tier="-",
            score="75 (medium)",
            reasons=[],
            action="发送专属优惠券 / personal coupon",
        ),
    ]


def test_a_digest_without_the_optional_columns_still_has_a_line_per_alert() -> None:
    """Pending alerts planned by an older version may lack name, stage, tier and reasons."""
    pending = pd.DataFrame(
        {
            "alert_id": ["a1", "a2"],
            "customer_id": ["C1", "C2"],
            "as_of": [date(2026, 5, 1)] * 2,
            "risk_level": ["high", "medium"],
            "risk_score": pd.array([80, 60], dtype="int32"),
            "suggested_action": ["follow_up_call"] * 2,
            "suggested_action_label": ["电话回访 / follow-up call"] * 2,
            "recipient": ["rep@example.com"] * 2,
            "cc": [None, None],
        }
    )
    (digest,) = build_digests(pending, SENDER)
    lines = _lines(digest, default_rules())
    assert [
        (line.customer, line.stage, line.value_tier, line.score, line.reasons) for line in lines
    ] == [
        ("C1", "-", "-", "80 (high)", []),
        ("C2", "-", "-", "60 (medium)", []),
    ]
