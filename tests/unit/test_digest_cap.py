"""The digest cap (rules `alerts.max_alerts_per_digest`) and the cap suggested to an operator
whose relay refused a digest as too large.

The suggestion must be a number that goes through: the highest-scored alerts carry the most
reasons, so an average line length would overshoot. Here the true largest count under each
limit is found independently, by rendering every candidate digest and measuring its bytes.
"""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import date

import duckdb
import pandas as pd
import pytest

from crm.mailer import alerts_that_fit, build_digests, render_message
from crm.outbox import PENDING, ensure_outbox, read_outbox
from crm.rules import default_rules

SENDER = "crm-alerts@example.com"
AS_OF = date(2026, 5, 1)
REASONS = [
    "94 天未下单，通常每 31 天下单一次 / 94 days since last order, usually every 31 days",
    "近 90 天投诉 2 次 / 2 complaints in the last 90 days",
    "近 90 天订单金额下降 62% / order value down 62% over 90 days",
    "逾期付款 3 笔，共 ¥48,200 / 3 overdue payments, ¥48,200 in total",
    "60 天未主动联系 / no outbound contact in 60 days",
]


def _pending(count: int, seed: int = 7) -> pd.DataFrame:
    """One recipient's pending alerts; the higher the score, the more reasons (as in real runs,
    where the score is the sum of the signals that fired)."""
    rng = random.Random(seed)
    rows = []
    for number in range(count):
        score = rng.randint(30, 100)
        reasons = "\n".join(REASONS[: 1 + (score - 30) * len(REASONS) // 71])
        rows.append(
            {
                "alert_id": f"a{number}",
                "customer_id": f"C{number:05d}",
                "as_of": AS_OF,
                "risk_level": "high" if score >= 50 else "medium",
                "risk_score": score,
                "reasons": reasons,
                "suggested_action": "follow_up_call",
                "suggested_action_label": "电话回访 / follow-up call",
                "recipient": "rep@example.com",
                "status": PENDING,
                "attempts": 0,
                "customer_name": "某某" * rng.randint(1, 12) + "有限公司",
                "stage": "at_risk",
                "value_tier": "medium",
            }
        )
    frame = pd.DataFrame(rows)
    con = duckdb.connect()
    ensure_outbox(con)
    con.register("incoming", frame)
    columns = ", ".join(frame.columns)
    con.execute(f"INSERT INTO marts.churn_alerts ({columns}) SELECT {columns} FROM incoming")
    pending = read_outbox(con, PENDING)
    con.close()
    return pending


def _wire_bytes(pending: pd.DataFrame, cap: int | None) -> int:
    (digest,) = build_digests(pending, SENDER, cap)
    message = render_message(digest, SENDER, AS_OF, default_rules())
    return len(message.as_bytes(policy=message.policy.clone(linesep="\r\n")))


def _largest_count_under(pending: pd.DataFrame, limit: int) -> int:
    """Binary search on the capped digest's measured size (it grows with every alert listed)."""
    low, high = 0, len(pending)
    while low < high:
        middle = (low + high + 1) // 2
        if _wire_bytes(pending, middle) <= limit:
            low = middle
        else:
            high = middle - 1
    return low


@pytest.mark.parametrize("share", [0.2, 0.5, 0.9])
def test_the_suggested_cap_goes_through_and_wastes_little(share: float) -> None:
    pending = _pending(300)
    (digest,) = build_digests(pending, SENDER)
    limit = int(_wire_bytes(pending, None) * share)
    best = _largest_count_under(pending, limit)
    assert 0 < best < len(pending)

    fit = alerts_that_fit(digest, SENDER, AS_OF, default_rules(), limit)

    assert _wire_bytes(pending, fit) <= limit  # following the advice, the digest goes through
    assert fit >= 0.9 * best, (fit, best)  # and it is not needlessly small


def test_no_cap_fits_when_one_alert_is_above_the_limit() -> None:
    pending = _pending(5)
    (digest,) = build_digests(pending, SENDER)
    one = _wire_bytes(pending, 1)
    assert alerts_that_fit(digest, SENDER, AS_OF, default_rules(), one - 1) == 0
    assert alerts_that_fit(digest, SENDER, AS_OF, default_rules(), one) == 1


def test_a_capped_digest_keeps_the_highest_scores_and_counts_the_rest() -> None:
    pending = _pending(50)
    (digest,) = build_digests(pending, SENDER, 10)
    expected = pending.sort_values(["risk_score", "customer_id"], ascending=[False, True])
    assert list(digest.alerts["alert_id"]) == list(expected["alert_id"].head(10))
    assert digest.held_back == 40
    (uncapped,) = build_digests(pending, SENDER, 50)
    assert (len(uncapped.alerts), uncapped.held_back) == (50, 0)
    assert replace(digest, held_back=0).digest_id != uncapped.digest_id
