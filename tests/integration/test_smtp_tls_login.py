"""Digest delivery through an SMTP server that demands STARTTLS and a login (a real aiosmtpd on
127.0.0.1 with a throwaway self-signed certificate), configured the way an operator would: the
SMTP_* / ALERT_FROM environment variables of contract.md §2, and the certificate trusted through
OpenSSL's SSL_CERT_FILE (crm.mailer builds its client context with ssl.create_default_context(),
which reads that variable; certificate verification stays on).

What is checked is what the outbox and the mail server see (domain.md §5 "Delivery"): a delivered
digest went over TLS in an authenticated session; a wrong password, an untrusted certificate or a
missing STARTTLS leaves the alerts `pending` after one attempt with a readable reason, nothing is
delivered, and the password is never stored.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from crm.alerts import create_alerts
from crm.mailer import DeliveryReport, deliver
from crm.outbox import read_outbox
from crm.rules import default_rules
from crm.settings import Settings, SmtpSettings
from tests.smtp_server import (
    AuthAttempt,
    SelfSignedCertificate,
    SmtpTestServer,
    server_tls_context,
    write_self_signed_certificate,
)

AS_OF = date(2026, 5, 1)
SENDER = "crm-alerts@example.com"
USER = "crm-mailer"
PASSWORD = "Tr0ub4dor&3-secret"
WRONG_PASSWORD = "wr0ng-Passw0rd-xyz"
REP_EMAIL = "zhang@example.com"
FAST = {"backoff_seconds": 0.01, "transient_retries": 2, "timeout_seconds": 5.0}
TLS_VERSIONS = {"TLSv1.2", "TLSv1.3"}  # what ssl.create_default_context() may negotiate

REPS = pd.DataFrame(
    [("R1", "张三", REP_EMAIL, "boss@example.com", "华南", True)],
    columns=["rep_id", "name", "email", "manager_email", "team", "active"],
)
# Two ordinary (not key) customers of the active rep R1: both alerts go to R1 alone, no cc,
# so one digest and one email (domain.md §5 routing and digest).
CUSTOMERS = pd.DataFrame(
    [
        ("C1", "广州某某贸易有限公司", "R1", "active", "high", False, None),
        ("C2", "张三", "R1", "at_risk", "medium", False, True),
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


def high_risk(customer_id: str, score: int) -> dict:
    return {
        "customer_id": customer_id,
        "as_of": AS_OF,
        "risk_score": score,
        "risk_level": "high",  # high is always an alert candidate (domain.md §5)
        "p_alive": 0.3,
        "expected_orders_90d": 0.2,
        "signals": "overdue",
        "reasons": "94 天未下单 / 94 days since last order",
    }


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> SelfSignedCertificate:
    return write_self_signed_certificate(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def secured_server(certificate: SelfSignedCertificate) -> Iterator[SmtpTestServer]:
    """STARTTLS required before anything else, AUTH required and offered only over TLS."""
    server = SmtpTestServer(
        tls_context=server_tls_context(certificate),
        require_starttls=True,
        credentials=(USER, PASSWORD),
    )
    with server:
        yield server


@pytest.fixture
def con(tmp_path: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    connection = duckdb.connect(str(tmp_path / "warehouse.duckdb"))
    created = create_alerts(
        connection,
        pd.DataFrame([high_risk("C1", 60), high_risk("C2", 80)]),
        CUSTOMERS,
        REPS,
        AS_OF,
        default_rules(),
        run_id="plan",
    )
    assert list(created["recipient"]) == [REP_EMAIL, REP_EMAIL]
    yield connection
    connection.close()


def smtp_from_env(
    monkeypatch: pytest.MonkeyPatch,
    server: SmtpTestServer,
    *,
    starttls: bool,
    password: str | None,
    trusted_ca: Path | None,
) -> SmtpSettings:
    """Configure delivery only through the environment, as an operator does (contract.md §2)."""
    for name in ("SSL_CERT_FILE", "SSL_CERT_DIR", "SMTP_USER", "SMTP_PASSWORD"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SMTP_HOST", server.host)
    monkeypatch.setenv("SMTP_PORT", str(server.port))
    monkeypatch.setenv("SMTP_STARTTLS", "true" if starttls else "false")
    monkeypatch.setenv("ALERT_FROM", SENDER)
    if password is not None:
        monkeypatch.setenv("SMTP_USER", USER)
        monkeypatch.setenv("SMTP_PASSWORD", password)
    if trusted_ca is not None:
        monkeypatch.setenv("SSL_CERT_FILE", str(trusted_ca))
    return Settings.from_env().smtp


def run(con: duckdb.DuckDBPyConnection, smtp: SmtpSettings, tmp_path: Path) -> DeliveryReport:
    return deliver(con, smtp, tmp_path / "mail", AS_OF, "run", default_rules(), True, None, **FAST)


def outbox(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    return read_outbox(con).set_index("customer_id").sort_index()


def assert_one_failed_attempt(con: duckdb.DuckDBPyConnection, tmp_path: Path) -> pd.Series:
    """Both alerts still pending after exactly one attempt, no .eml fallback; the shared error."""
    stored = outbox(con)
    assert list(stored["status"]) == ["pending", "pending"]
    assert list(stored["attempts"]) == [1, 1]
    assert stored["sent_at"].isna().all()
    assert stored["last_error"].nunique() == 1
    assert not (tmp_path / "mail").exists()
    return stored["last_error"]


def assert_no_secret(text: str, password: str) -> None:
    """Neither the password nor its base64 forms on the wire (AUTH LOGIN sends base64(password),
    AUTH PLAIN base64("\\0user\\0password"), RFC 4616) may end up in stored text."""
    plain_blob = f"\0{USER}\0{password}".encode()
    for secret in (
        password,
        base64.b64encode(password.encode()).decode(),
        base64.b64encode(plain_blob).decode(),
    ):
        assert secret not in text


def test_starttls_and_login_deliver_over_a_verified_tls_session(
    con, secured_server, certificate, monkeypatch, tmp_path
) -> None:
    smtp = smtp_from_env(
        monkeypatch, secured_server, starttls=True, password=PASSWORD, trusted_ca=certificate.cert
    )
    assert (smtp.starttls, smtp.user, smtp.sender) == (True, USER, SENDER)

    report = run(con, smtp, tmp_path)

    [received] = secured_server.messages  # one digest for R1's two alerts
    assert received.rcpt_tos == (REP_EMAIL,)
    assert received.mail_from == SENDER
    assert received.tls_version in TLS_VERSIONS
    assert received.login == USER
    # smtplib tries its preferred mechanisms in the order CRAM-MD5, PLAIN, LOGIN among those the
    # server advertises (aiosmtpd: LOGIN PLAIN) and stops at the first success: one PLAIN exchange.
    assert secured_server.auth_attempts == [
        AuthAttempt(mechanism="PLAIN", login=USER, accepted=True, over_tls=True)
    ]
    text = received.message.get_body(("plain",)).get_content()
    assert "广州某某贸易有限公司 (C1)" in text and "(C2)" in text

    stored = outbox(con)
    assert list(stored["status"]) == ["sent", "sent"]
    assert list(stored["attempts"]) == [1, 1]
    assert set(stored["message_id"]) == {received.message["Message-ID"]}
    assert (report.sent, report.pending, report.failed, report.digests_sent) == (2, 0, 0, 1)


def test_untrusted_certificate_is_refused_before_the_password_is_sent(
    con, secured_server, monkeypatch, tmp_path
) -> None:
    # Same server, but the client was not told to trust the self-signed certificate: verification
    # must fail (it is not switched off), so the password never reaches an unverified peer.
    smtp = smtp_from_env(
        monkeypatch, secured_server, starttls=True, password=PASSWORD, trusted_ca=None
    )

    report = run(con, smtp, tmp_path)

    assert secured_server.messages == []
    assert secured_server.auth_attempts == []
    error = assert_one_failed_attempt(con, tmp_path).iloc[0]
    assert "CERTIFICATE_VERIFY_FAILED" in error
    assert_no_secret(error, PASSWORD)
    assert (report.sent, report.pending, report.failed) == (0, 2, 0)


def test_wrong_password_keeps_alerts_pending_without_storing_it(
    con, secured_server, certificate, monkeypatch, tmp_path
) -> None:
    smtp = smtp_from_env(
        monkeypatch,
        secured_server,
        starttls=True,
        password=WRONG_PASSWORD,
        trusted_ca=certificate.cert,
    )

    report = run(con, smtp, tmp_path)

    assert secured_server.messages == []
    # The password really was presented, over TLS, and refused: smtplib tries every advertised
    # mechanism it knows (PLAIN, then LOGIN) before giving up; one delivery attempt in the outbox.
    attempts = secured_server.auth_attempts
    assert sorted(a.mechanism for a in attempts) == ["LOGIN", "PLAIN"]
    assert all(a.login == USER and a.over_tls and not a.accepted for a in attempts)

    error = assert_one_failed_attempt(con, tmp_path).iloc[0]
    assert "535" in error  # RFC 4954: 535 5.7.8 authentication credentials invalid
    assert_no_secret(error, WRONG_PASSWORD)
    assert_no_secret(str(report.recipients[REP_EMAIL].error), WRONG_PASSWORD)
    assert report.recipients[REP_EMAIL].outcome == "pending"
    assert (report.sent, report.pending, report.failed) == (0, 2, 0)


@pytest.mark.parametrize(
    ("password", "expected_in_error"),
    [
        # relay without login: RFC 3207 §4, a server requiring TLS answers 530 to MAIL FROM
        (None, "530 Must issue a STARTTLS command first"),
        # with login: AUTH is advertised only over TLS, smtplib refuses to log in without it
        (PASSWORD, "SMTP AUTH extension not supported"),
    ],
    ids=["relay", "login"],
)
def test_server_requiring_tls_with_starttls_off_fails_clearly_and_sends_nothing(
    con, secured_server, certificate, monkeypatch, tmp_path, password, expected_in_error
) -> None:
    smtp = smtp_from_env(
        monkeypatch, secured_server, starttls=False, password=password, trusted_ca=certificate.cert
    )

    report = run(con, smtp, tmp_path)

    assert secured_server.messages == []
    assert secured_server.auth_attempts == []  # no credentials over the plain connection
    error = assert_one_failed_attempt(con, tmp_path).iloc[0]
    assert expected_in_error in error
    assert_no_secret(error, PASSWORD)
    assert (report.sent, report.pending, report.failed) == (0, 2, 0)
