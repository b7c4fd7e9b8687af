"""Digest delivery against a REAL SMTP server (aiosmtpd on 127.0.0.1) and to `.eml` files.

What is checked is what a salesperson and the outbox see: one email per recipient with the right
To/Cc, readable Chinese, alerts ordered by score, and delivery state across runs (retries after
an outage, 451 retried within a run, failed after 5 attempts, a digest above the relay's size
limit, gate suppression, no double sends).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import date, timedelta
from email import message_from_bytes, policy
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from crm.alerts import create_alerts  # noqa: E402
from crm.mailer import build_digests, deliver, render_message  # noqa: E402
from crm.outbox import PENDING, read_outbox  # noqa: E402
from crm.rules import default_rules  # noqa: E402
from crm.settings import SmtpSettings  # noqa: E402
from tests.smtp_server import SmtpTestServer  # noqa: E402

AS_OF = date(2026, 5, 1)
SENDER = "crm-alerts@example.com"
POOL = "sales-pool@example.com"
FAST_RETRY = {"backoff_seconds": 0.01, "transient_retries": 2}
OVERDUE_REASON = (
    "94 天未下单，通常每 31 天下单一次 / 94 days since last order, usually every 31 days"
)

REPS = pd.DataFrame(
    [
        ("R1", "张三", "zhang@example.com", "boss@example.com", "华南", True),
        ("R2", "李四", "li@example.com", "boss2@example.com", "华东", True),
    ],
    columns=["rep_id", "name", "email", "manager_email", "team", "active"],
)

CUSTOMERS = pd.DataFrame(
    [
        # customer_id, name, owner, stage, value_tier, is_key_account, is_price_sensitive
        ("C1", "广州某某贸易有限公司", "R1", "active", "high", True, None),
        ("C2", "张三", "R1", "at_risk", "medium", False, True),
        ("C3", "上海某某科技有限公司", "R2", "loyal", "low", False, False),
        ("C4", "无主客户", None, "active", "low", False, None),
        ("C5", "深圳某某电子有限公司", "R1", "active", "medium", False, None),
    ],
    columns=[
        "customer_id",
        "name",
        "owner_rep_id",
        "stage",
        "value_tier",
        "is_key_account",
        "is_price_sensitive",
    ],
)


def risk(customer_id: str, score: int, signals: str = "overdue", as_of: date = AS_OF) -> dict:
    return {
        "customer_id": customer_id,
        "as_of": as_of,
        "risk_score": score,
        "risk_level": "high" if score >= 50 else "medium",
        "p_alive": 0.3,
        "expected_orders_90d": 0.2,
        "signals": signals,
        "reasons": OVERDUE_REASON + "\n近 90 天投诉 2 次 / 2 complaints in the last 90 days",
    }


@pytest.fixture
def smtp_server() -> Iterator[SmtpTestServer]:
    with SmtpTestServer() as server:
        yield server


@pytest.fixture
def con(tmp_path: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    connection = duckdb.connect(str(tmp_path / "warehouse.duckdb"))
    yield connection
    connection.close()


def add_alerts(con: duckdb.DuckDBPyConnection, rows: list[dict], as_of: date = AS_OF) -> None:
    created = create_alerts(
        con, pd.DataFrame(rows), CUSTOMERS, REPS, as_of, default_rules(), run_id="plan"
    )
    assert len(created) == len(rows)


def four_alerts(con: duckdb.DuckDBPyConnection) -> None:
    """C1 (key, R1) 60, C2 (R1) 80, C3 (R2) 55, C4 (no owner) 70 -> 3 recipients."""
    add_alerts(con, [risk("C1", 60), risk("C2", 80), risk("C3", 55), risk("C4", 70)])


def run(
    con,
    smtp: SmtpSettings,
    tmp_path: Path,
    gate_ok: bool = True,
    gate_reason: str | None = None,
    as_of: date = AS_OF,
    max_alerts_per_digest: int | None = None,
):
    rules = default_rules()
    if max_alerts_per_digest is not None:
        alerts = rules.alerts.model_copy(update={"max_alerts_per_digest": max_alerts_per_digest})
        rules = rules.model_copy(update={"alerts": alerts})
    return deliver(
        con,
        smtp,
        tmp_path / "mail",
        as_of,
        "run",
        rules,
        gate_ok,
        gate_reason,
        **FAST_RETRY,
    )


def outbox(con) -> pd.DataFrame:
    return read_outbox(con).set_index("customer_id")


def by_recipient(server: SmtpTestServer) -> dict[str, list]:
    received: dict[str, list] = {}
    for item in server.messages:
        received.setdefault(item.message["To"], []).append(item)
    return received


def test_one_digest_per_recipient_with_to_and_cc(con, smtp_server, tmp_path) -> None:
    four_alerts(con)
    report = run(con, smtp_server.settings(SENDER), tmp_path)

    received = by_recipient(smtp_server)
    assert sorted(received) == ["li@example.com", POOL, "zhang@example.com"]
    assert all(len(items) == 1 for items in received.values())
    zhang = received["zhang@example.com"][0]
    # C1 is a key account of R1: R1's manager is copied, and the envelope goes to both.
    assert zhang.message["Cc"] == "boss@example.com"
    assert sorted(zhang.rcpt_tos) == ["boss@example.com", "zhang@example.com"]
    assert received["li@example.com"][0].message["Cc"] is None
    assert received["li@example.com"][0].rcpt_tos == ("li@example.com",)
    assert zhang.mail_from == SENDER and zhang.message["From"] == SENDER

    # C2 (80) before C1 (60) in R1's digest: by risk score, highest first.
    text = zhang.message.get_body(("plain",)).get_content()
    assert text.index("(C2)") < text.index("(C1)")

    stored = outbox(con)
    assert set(stored["status"]) == {"sent"}
    assert stored["sent_at"].notna().all()
    assert list(stored["attempts"]) == [1, 1, 1, 1]
    assert stored.loc["C1", "message_id"] == zhang.message["Message-ID"]
    assert stored.loc["C1", "message_id"] == stored.loc["C2", "message_id"]
    assert (report.sent, report.pending, report.failed) == (4, 0, 0)
    assert report.recipients["zhang@example.com"].alerts == 2


def test_chinese_content_decodes(con, smtp_server, tmp_path) -> None:
    four_alerts(con)
    run(con, smtp_server.settings(SENDER), tmp_path)
    item = by_recipient(smtp_server)["zhang@example.com"][0]
    item.raw.decode("ascii")  # headers RFC 2047-encoded, bodies base64: 7-bit clean on the wire
    message = item.message
    assert message.get_content_type() == "multipart/alternative"
    assert "客户流失预警" in message["Subject"]
    text = message.get_body(("plain",)).get_content()
    html = message.get_body(("html",)).get_content()
    for body in (text, html):
        assert "广州某某贸易有限公司" in body
        assert "张三" in body
        assert "94 天未下单，通常每 31 天下单一次" in body
        assert "安排高层拜访 / executive visit" in body  # C1: key account
        assert "发送专属优惠券 / personal coupon" in body  # C2: price sensitive
    assert message.get_body(("plain",)).get_content_charset() == "utf-8"


def test_rerun_sends_nothing_new(con, smtp_server, tmp_path) -> None:
    four_alerts(con)
    run(con, smtp_server.settings(SENDER), tmp_path)
    first = len(smtp_server.messages)
    report = run(con, smtp_server.settings(SENDER), tmp_path)
    assert len(smtp_server.messages) == first == 3
    assert (report.sent, report.recipients) == (0, {})


def test_server_down_then_each_alert_goes_out_once(con, smtp_server, tmp_path) -> None:
    add_alerts(con, [risk("C1", 60), risk("C3", 55)])
    smtp_server.down()
    report = run(con, smtp_server.settings(SENDER), tmp_path)
    stored = outbox(con)
    assert set(stored["status"]) == {"pending"}
    assert list(stored["attempts"]) == [1, 1]
    assert stored["last_error"].str.contains("ConnectionRefused").all()
    assert report.pending == 2

    # the next day another of R1's customers joins; R1 gets ONE digest with both alerts
    next_day = AS_OF + timedelta(days=1)
    add_alerts(con, [risk("C5", 65, as_of=next_day)], as_of=next_day)
    smtp_server.up()
    report = run(con, smtp_server.settings(SENDER), tmp_path, as_of=next_day)
    received = by_recipient(smtp_server)
    assert sorted(received) == ["li@example.com", "zhang@example.com"]
    zhang_text = received["zhang@example.com"][0].message.get_body(("plain",)).get_content()
    assert "(C1)" in zhang_text and "(C5)" in zhang_text
    assert report.sent == 3
    assert set(outbox(con)["status"]) == {"sent"}

    run(con, smtp_server.settings(SENDER), tmp_path, as_of=next_day)
    assert len(smtp_server.messages) == 2  # nothing twice


def test_temporary_failure_is_retried_within_the_run(con, smtp_server, tmp_path) -> None:
    add_alerts(con, [risk("C3", 55)])
    smtp_server.fail_next(2)  # two 451 answers, then acceptance: within 1 + 2 tries
    report = run(con, smtp_server.settings(SENDER), tmp_path)
    assert smtp_server.refused_count == 2
    assert len(smtp_server.messages) == 1
    assert report.sent == 1
    assert outbox(con).loc["C3", "attempts"] == 1


def test_temporary_failure_beyond_retries_counts_one_attempt(con, smtp_server, tmp_path) -> None:
    add_alerts(con, [risk("C3", 55)])
    smtp_server.fail_next(3)
    run(con, smtp_server.settings(SENDER), tmp_path)
    stored = outbox(con).loc["C3"]
    assert (stored["status"], stored["attempts"]) == ("pending", 1)
    assert "451" in stored["last_error"]
    run(con, smtp_server.settings(SENDER), tmp_path)
    assert outbox(con).loc["C3", "status"] == "sent"
    assert len(smtp_server.messages) == 1


def test_five_failed_attempts_mark_the_alert_failed(con, smtp_server, tmp_path) -> None:
    add_alerts(con, [risk("C3", 55)])
    smtp_server.reject_next(5)  # 550: permanent, not retried within a run
    for attempt in range(1, 5):
        run(con, smtp_server.settings(SENDER), tmp_path)
        stored = outbox(con).loc["C3"]
        assert (stored["status"], stored["attempts"]) == ("pending", attempt)
    report = run(con, smtp_server.settings(SENDER), tmp_path)
    stored = outbox(con).loc["C3"]
    assert (stored["status"], stored["attempts"]) == ("failed", 5)
    assert "550" in stored["last_error"]
    assert report.failed == 1
    [line] = report.undelivered()  # what the run logs as a warning
    assert line.startswith("digest to li@example.com (1 alert) not delivered")
    assert "now failed (max attempts reached)" in line and "550" in line
    run(con, smtp_server.settings(SENDER), tmp_path)  # server accepts again: nothing is resent
    assert smtp_server.messages == []


def test_one_failing_digest_does_not_hold_back_or_duplicate_others(
    con, smtp_server, tmp_path
) -> None:
    four_alerts(con)
    smtp_server.reject_next(1)  # the first digest of the run is refused, the others go out
    run(con, smtp_server.settings(SENDER), tmp_path)
    assert len(smtp_server.messages) == 2
    assert sorted(outbox(con)["status"]) == ["pending", "sent", "sent", "sent"]
    run(con, smtp_server.settings(SENDER), tmp_path)
    received = by_recipient(smtp_server)
    assert sorted(received) == ["li@example.com", POOL, "zhang@example.com"]
    assert all(len(items) == 1 for items in received.values())


def smtp_sizes(con) -> dict[str, int]:
    """Bytes each pending digest takes on the wire (CRLF line ends), by recipient."""
    sizes = {}
    for digest in build_digests(read_outbox(con, PENDING), SENDER):
        message = render_message(digest, SENDER, AS_OF, default_rules())
        sizes[digest.recipient] = len(message.as_bytes(policy=message.policy.clone(linesep="\r\n")))
    return sizes


def test_a_digest_above_the_relays_size_limit_waits_and_the_others_go(con, tmp_path) -> None:
    """A relay with a message size limit (Postfix: message_size_limit) refuses a digest above it
    with 552. That counts one failed attempt for its alerts, which wait for the next run, and the
    other recipients' digests still go out (docs/performance.md, "First-day digest size")."""
    add_alerts(
        con, [risk("C1", 60), risk("C2", 80), risk("C5", 65), risk("C3", 55), risk("C4", 70)]
    )
    sizes = smtp_sizes(con)
    largest, second = sorted(sizes.values(), reverse=True)[:2]
    assert largest - second > 1000  # three alerts against one: the limit falls clearly between
    too_big = max(sizes, key=sizes.__getitem__)
    assert too_big == "zhang@example.com"  # R1 owns C1, C2 and C5
    limit = (largest + second) // 2
    with SmtpTestServer(data_size_limit=limit) as server:
        report = run(con, server.settings(SENDER), tmp_path)
        assert sorted(by_recipient(server)) == ["li@example.com", POOL]
    stored = outbox(con)
    waiting = stored.loc[["C1", "C2", "C5"]]
    assert list(waiting["status"]) == ["pending"] * 3
    assert list(waiting["attempts"]) == [1] * 3
    # the stored reason names both sizes, so the operator sees the digest is what is unusual
    size_detail = f"the digest is {largest:,} bytes, above the relay's SIZE limit of {limit:,}"
    for error in waiting["last_error"]:
        assert "552" in error and size_detail in error
    assert list(stored.loc[["C3", "C4"], "status"]) == ["sent", "sent"]
    assert (report.sent, report.failed, report.pending) == (2, 0, 3)
    [line] = report.undelivered()
    assert line.startswith(f"digest to {too_big} (3 alerts) not delivered")
    assert "stay pending for the next run" in line and size_detail in line

    # The reason also says what to do about it, with a cap that fits: following that advice,
    # the next run's digest goes through the same relay, the highest scores in it.
    advice = re.search(
        r"raise the relay's limit, or set alerts\.max_alerts_per_digest to (\d+) or less", line
    )
    assert advice is not None, line
    cap = int(advice.group(1))
    assert 1 <= cap < 3
    with SmtpTestServer(data_size_limit=limit) as server:
        report = run(con, server.settings(SENDER), tmp_path, max_alerts_per_digest=cap)
        [zhang] = by_recipient(server)["zhang@example.com"]
    assert report.undelivered() == []
    stored = outbox(con)
    listed = ["C2", "C5", "C1"][:cap]  # scores 80, 65, 60
    assert list(stored.loc[listed, "status"]) == ["sent"] * cap
    assert zhang.message["Message-ID"] == stored.loc[listed[0], "message_id"]
    assert report.held_back == 3 - cap


def test_a_relay_that_takes_no_single_alert_is_told_apart_from_one_a_cap_would_satisfy(
    con, tmp_path
) -> None:
    """Below the size of a one-alert digest no cap helps: the reason says so instead of
    suggesting a cap of 0, which the rules file would refuse anyway."""
    add_alerts(con, [risk("C3", 55)])
    limit = smtp_sizes(con)["li@example.com"] // 2
    with SmtpTestServer(data_size_limit=limit) as server:
        report = run(con, server.settings(SENDER), tmp_path)
        assert server.messages == []
    [line] = report.undelivered()
    assert f"above the relay's SIZE limit of {limit:,} bytes" in line
    assert "a digest of one alert is already above it, so raise the relay's limit" in line
    assert "max_alerts_per_digest" not in line


def test_a_digest_cap_lists_the_highest_scores_and_the_rest_follow_next_run(
    con, smtp_server, tmp_path
) -> None:
    """alerts.max_alerts_per_digest: R1 has C2 (80), C5 (65) and C1 (60, a key account). With a
    cap of 2, the first email lists C2 and C5 and says one more waits; C1 stays pending without
    an attempt counted, and the manager is not copied on an email that does not list the key
    account. The next run sends C1, with the manager in Cc, and nothing twice."""
    add_alerts(
        con, [risk("C1", 60), risk("C2", 80), risk("C5", 65), risk("C3", 55), risk("C4", 70)]
    )
    report = run(con, smtp_server.settings(SENDER), tmp_path, max_alerts_per_digest=2)

    [zhang] = by_recipient(smtp_server)["zhang@example.com"]
    text = zhang.message.get_body(("plain",)).get_content()
    html_body = zhang.message.get_body(("html",)).get_content()
    assert "(C2)" in text and "(C5)" in text and "(C1)" not in text
    assert "2 位客户" in zhang.message["Subject"]
    for body in (text, html_body):
        assert "另有 1 条排序靠后的预警未列入本邮件" in body
        assert "1 more alert, ranked lower, is not listed here" in body
    assert zhang.message["Cc"] is None and zhang.rcpt_tos == ("zhang@example.com",)
    li_text = by_recipient(smtp_server)["li@example.com"][0].message.get_body(("plain",))
    assert "more alert" not in li_text.get_content()  # under the cap: no note

    stored = outbox(con)
    assert list(stored.loc[["C2", "C5", "C3", "C4"], "status"]) == ["sent"] * 4
    assert stored.loc["C1", "status"] == "pending"
    assert stored.loc["C1", "attempts"] == 0 and pd.isna(stored.loc["C1", "last_error"])
    assert (report.sent, report.pending, report.held_back) == (4, 1, 1)
    assert report.held_back_lines() == [
        "digest to zhang@example.com listed 2 of 3 pending alerts "
        "(alerts.max_alerts_per_digest); 1 wait for the next run"
    ]

    report = run(con, smtp_server.settings(SENDER), tmp_path, max_alerts_per_digest=2)
    received = by_recipient(smtp_server)
    assert [len(received[r]) for r in sorted(received)] == [1, 1, 2]  # li, pool, zhang
    second = received["zhang@example.com"][1]
    assert "(C1)" in second.message.get_body(("plain",)).get_content()
    assert second.message["Cc"] == "boss@example.com"
    assert set(outbox(con)["status"]) == {"sent"}
    assert (report.sent, report.pending, report.held_back) == (1, 0, 0)


def test_login_error_never_stores_the_password(con, smtp_server, tmp_path) -> None:
    add_alerts(con, [risk("C3", 55)])
    settings = SmtpSettings(
        host=smtp_server.host,
        port=smtp_server.port,
        user="crm",
        password="s3cret-Pa55",
        sender=SENDER,
    )
    run(con, settings, tmp_path)  # the server offers no AUTH on a plain connection
    stored = outbox(con).loc["C3"]
    assert stored["status"] == "pending" and stored["attempts"] == 1
    assert stored["last_error"]
    assert "s3cret-Pa55" not in stored["last_error"]


def test_gate_failure_suppresses_and_sends_nothing(con, smtp_server, tmp_path) -> None:
    four_alerts(con)
    reason = "source orders is stale: newest record 45 days before as_of"
    report = run(con, smtp_server.settings(SENDER), tmp_path, gate_ok=False, gate_reason=reason)
    assert smtp_server.messages == []
    stored = outbox(con)
    assert set(stored["status"]) == {"suppressed"}
    assert set(stored["status_reason"]) == {reason}
    assert set(stored["last_error"]) == {reason}
    assert report.suppressed == 4
    run(con, smtp_server.settings(SENDER), tmp_path)  # a later good run does not send them
    assert smtp_server.messages == []


def test_eml_files_without_smtp_host(con, tmp_path) -> None:
    four_alerts(con)
    report = run(con, SmtpSettings(sender=SENDER), tmp_path)
    folder = tmp_path / "mail" / AS_OF.isoformat()
    files = sorted(folder.glob("*.eml"))
    assert len(files) == 3
    assert sorted(report.eml_paths) == files
    assert not list(folder.glob("*.tmp"))  # written via a temp file, nothing left behind
    zhang_files = [f for f in files if f.name.startswith("zhang@example.com__")]
    assert len(zhang_files) == 1
    message = message_from_bytes(zhang_files[0].read_bytes(), policy=policy.default)
    assert (message["To"], message["Cc"]) == ("zhang@example.com", "boss@example.com")
    assert "广州某某贸易有限公司" in message.get_body(("plain",)).get_content()
    assert set(outbox(con)["status"]) == {"sent"}

    again = run(con, SmtpSettings(sender=SENDER), tmp_path)
    assert again.eml_paths == []
    assert sorted(folder.glob("*.eml")) == files
