"""Digest emails for churn alerts (domain.md §5) and their delivery from the outbox.

Why digests: a salesperson gets ONE email per run listing all of their pending alerts, highest
risk first, instead of one email per customer (at most rules.alerts.max_alerts_per_digest of
them when the rules set it: the rest wait for the next run). Why an outbox: a failed attempt
leaves the alerts `pending` for the next run, and every delivered digest is recorded at once, so
nothing is sent twice for one alert key. A digest's Message-ID derives from (recipient, sorted
alert ids): a retry of the same digest carries the same id, so a receiving system can also drop
duplicates.

Transport: SMTP when a host is configured (plain relay without login; STARTTLS and login when
configured), else an `.eml` file per digest under `<mail_dir>/<as_of>/` (written atomically).
Consumer: the alerts asset, after the blocking data-quality gate has been evaluated.
"""

from __future__ import annotations

import hashlib
import html
import os
import re
import smtplib
import ssl
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from email import policy
from email.message import EmailMessage
from email.utils import formatdate
from pathlib import Path

import duckdb
import pandas as pd

from crm.frames import records
from crm.outbox import (
    FAILED,
    PENDING,
    ensure_outbox,
    mark_attempt_failed,
    mark_sent,
    read_outbox,
    status_counts,
    statuses_of,
    suppress_pending,
)
from crm.rules import Label, Rules
from crm.settings import SmtpSettings

# Transport settings, not business rules (so not in the rules file): how long one SMTP
# conversation may hang, and how a 4xx "try again later" is retried inside one run before it
# counts as a failed attempt.
SMTP_TIMEOUT_SECONDS = 10.0
TRANSIENT_RETRIES = 2
TRANSIENT_BACKOFF_SECONDS = 1.0

DEFAULT_GATE_REASON = "blocking data-quality check failed"


@dataclass(frozen=True)
class Digest:
    """One email: a recipient's pending alerts, ordered by risk_score desc, then customer_id.

    `held_back`: the recipient's pending alerts beyond rules.alerts.max_alerts_per_digest, not in
    this email; they stay pending, unattempted, and the email says how many wait."""

    recipient: str
    cc: tuple[str, ...]
    alerts: pd.DataFrame
    digest_id: str
    message_id: str
    held_back: int = 0

    @property
    def alert_ids(self) -> list[str]:
        return list(self.alerts["alert_id"])


@dataclass
class RecipientResult:
    recipient: str
    cc: tuple[str, ...]
    alerts: int
    outcome: str  # sent | pending (will retry) | failed (gave up)
    digest_id: str
    message_id: str
    error: str | None = None
    eml_path: Path | None = None
    held_back: int = 0  # pending alerts not listed because of max_alerts_per_digest


@dataclass
class DeliveryReport:
    """What one delivery run did; alert counts, not email counts, except `digests_sent`."""

    recipients: dict[str, RecipientResult] = field(default_factory=dict)
    sent: int = 0  # alerts delivered this run
    failed: int = 0  # alerts that reached max_attempts this run
    pending: int = 0  # alerts still waiting after this run (retries of the next run)
    suppressed: int = 0  # alerts suppressed this run by the quality gate
    held_back: int = 0  # pending alerts left out of their digest by max_alerts_per_digest
    eml_paths: list[Path] = field(default_factory=list)

    @property
    def digests_sent(self) -> int:
        return sum(1 for r in self.recipients.values() if r.outcome == "sent")

    def undelivered(self) -> list[str]:
        """One line per digest the server did not take: recipient, alerts, fate and the reply.

        The counts alone ("pending 3") do not tell an operator whose mail is stuck, or why."""
        lines = []
        for result in self.recipients.values():
            if result.outcome == "sent":
                continue
            fate = (
                "its alerts are now failed (max attempts reached)"
                if result.outcome == FAILED
                else "its alerts stay pending for the next run"
            )
            alerts = f"{result.alerts} alert" + ("" if result.alerts == 1 else "s")
            lines.append(
                f"digest to {result.recipient} ({alerts}) not delivered, {fate}: {result.error}"
            )
        return lines

    def held_back_lines(self) -> list[str]:
        """One line per digest that max_alerts_per_digest cut: what was listed, what waits."""
        return [
            f"digest to {r.recipient} listed {r.alerts:,} of {r.alerts + r.held_back:,} pending "
            f"alerts (alerts.max_alerts_per_digest); {r.held_back:,} wait for the next run"
            for r in self.recipients.values()
            if r.held_back
        ]


class DeliveryError(Exception):
    """A digest could not be handed over; `transient` for a 4xx worth retrying soon."""

    def __init__(
        self,
        message: str,
        *,
        transient: bool,
        unreachable: bool = False,
        size_limit: int | None = None,
        message_size: int | None = None,
    ) -> None:
        super().__init__(message)
        self.transient = transient
        self.unreachable = unreachable
        # The relay's announced SIZE when it refused the message for being larger.
        self.size_limit = size_limit
        self.message_size = message_size  # its bytes on the wire, measured then


def _is_missing(value: object) -> bool:
    """NULL as the outbox frame carries it: None, or NaN in a pandas string column."""
    return value is None or (not isinstance(value, str) and bool(pd.isna(value)))


def _split_addresses(text: object) -> list[str]:
    if _is_missing(text):
        return []
    return [a.strip() for a in str(text).split(",") if a.strip()]


def digest_id_for(recipient: str, alert_ids: list[str]) -> str:
    """Stable id of a digest: the same recipient and alerts always give the same id."""
    key = recipient.strip().lower() + "\n" + ",".join(sorted(alert_ids))
    return hashlib.sha256(key.encode()).hexdigest()[:20]


def _message_id(digest_id: str, sender: str) -> str:
    domain = sender.rsplit("@", 1)[-1] if "@" in sender else "localhost"
    return f"<crm-digest.{digest_id}@{domain}>"


def build_digests(
    pending: pd.DataFrame, sender: str, max_alerts: int | None = None
) -> list[Digest]:
    """Group pending alerts by recipient (case-insensitively): one digest per recipient.

    With `max_alerts`, a digest keeps the recipient's highest-scored alerts up to that number;
    Cc, digest id and Message-ID follow the alerts listed, so a key account held back does not
    copy its manager on an email that does not mention it."""
    if pending.empty:
        return []
    frame = pending.copy()
    frame["_recipient_key"] = frame["recipient"].str.strip().str.lower()
    digests = []
    for _, group in frame.groupby("_recipient_key", sort=True):
        ordered = group.sort_values(
            ["risk_score", "customer_id", "as_of"], ascending=[False, True, False], kind="stable"
        ).drop(columns="_recipient_key")
        held_back = 0
        if max_alerts is not None and len(ordered) > max_alerts:
            held_back = len(ordered) - max_alerts
            ordered = ordered.head(max_alerts)
        recipient = str(ordered["recipient"].iloc[0]).strip()
        cc: list[str] = []
        for value in ordered["cc"]:
            for address in _split_addresses(value):
                known = {a.lower() for a in cc} | {recipient.lower()}
                if address.lower() not in known:
                    cc.append(address)
        digest_id = digest_id_for(recipient, list(ordered["alert_id"]))
        digests.append(
            Digest(
                recipient=recipient,
                cc=tuple(sorted(cc, key=str.lower)),
                alerts=ordered.reset_index(drop=True),
                digest_id=digest_id,
                message_id=_message_id(digest_id, sender),
                held_back=held_back,
            )
        )
    return digests


def _label(labels: dict[str, Label], code: object) -> str:
    if _is_missing(code):
        return "-"
    label = labels.get(str(code))
    return f"{label.zh} / {label.en}" if label else str(code)


def _customer(alert: Mapping[str, object]) -> str:
    name = alert.get("customer_name")
    if _is_missing(name) or not str(name).strip():
        return str(alert["customer_id"])
    return f"{name} ({alert['customer_id']})"


@dataclass(frozen=True)
class DigestLine:
    """One alert as the digest shows it, shared by the text and HTML bodies."""

    customer: str
    stage: str
    value_tier: str
    score: str
    reasons: list[str]
    action: str


# The outbox columns a digest line shows, read column-wise (`crm.frames.records`): all 27
# columns of every alert through `iterrows` took 10-20 s for a first day's 118k alerts.
_LINE_COLUMNS = (
    "customer_id",
    "customer_name",
    "stage",
    "value_tier",
    "risk_score",
    "risk_level",
    "reasons",
    "suggested_action_label",
)


def _reason_lines(reasons: object) -> list[str]:
    """One reason per line of the stored text; none for NULL (not the text "nan")."""
    if _is_missing(reasons):
        return []
    return [line for line in str(reasons).splitlines() if line.strip()]


def _lines(digest: Digest, rules: Rules) -> list[DigestLine]:
    stages, tiers = rules.lifecycle.labels, rules.segments.value_tier.labels
    return [
        DigestLine(
            customer=_customer(alert),
            stage=_label(stages, alert.get("stage")),
            value_tier=_label(tiers, alert.get("value_tier")),
            score=f"{int(alert['risk_score'])} ({alert['risk_level']})",
            reasons=_reason_lines(alert.get("reasons")),
            action=str(alert["suggested_action_label"]),
        )
        for alert in records(digest.alerts, _LINE_COLUMNS)
    ]


def _subject(count: int, as_of: date) -> str:
    customers = "customer" if count == 1 else "customers"
    return f"客户流失预警：{count} 位客户 / Churn alerts: {count} {customers} ({as_of.isoformat()})"


def _held_back_note(held_back: int) -> tuple[str, str]:
    """(zh, en) sentences telling the reader that more alerts wait; the recipient must not
    take a capped list for all of their customers at risk."""
    english = (
        "1 more alert, ranked lower, is not listed here; it follows in the next digest."
        if held_back == 1
        else f"{held_back} more alerts, ranked lower, are not listed here; they follow in the "
        "next digest."
    )
    return f"另有 {held_back} 条排序靠后的预警未列入本邮件，将在下次发送。", english


def _text_body(lines: list[DigestLine], as_of: date, held_back: int = 0) -> str:
    out = [
        f"以下客户有流失风险（{as_of.isoformat()}），按风险分从高到低排列。",
        f"These customers are at risk of churning ({as_of.isoformat()}), highest risk first.",
        *(_held_back_note(held_back) if held_back else ()),
        "",
    ]
    for number, line in enumerate(lines, start=1):
        out += [
            f"{number}. {line.customer}",
            f"   阶段 / Stage: {line.stage}",
            f"   价值 / Value tier: {line.value_tier}",
            f"   风险分 / Risk score: {line.score}",
            "   原因 / Reasons:",
            *[f"   - {reason}" for reason in line.reasons],
            f"   建议 / Suggested action: {line.action}",
            "",
        ]
    return "\n".join(out)


def _html_body(lines: list[DigestLine], as_of: date, held_back: int = 0) -> str:
    e = html.escape
    note = (
        "<p>" + "<br>".join(e(t) for t in _held_back_note(held_back)) + "</p>" if held_back else ""
    )
    rows = "".join(
        "<tr>"
        f"<td>{e(line.customer)}</td><td>{e(line.stage)}</td><td>{e(line.value_tier)}</td>"
        f"<td>{e(line.score)}</td>"
        f"<td>{'<br>'.join(e(r) for r in line.reasons)}</td><td>{e(line.action)}</td>"
        "</tr>"
        for line in lines
    )
    return (
        '<!DOCTYPE html><html><head><meta charset="utf-8"></head><body>'
        f"<p>以下客户有流失风险（{e(as_of.isoformat())}），按风险分从高到低排列。<br>"
        f"These customers are at risk of churning ({e(as_of.isoformat())}), highest risk first.</p>"
        f"{note}"
        '<table border="1" cellpadding="4" cellspacing="0">'
        "<tr><th>客户 / Customer</th><th>阶段 / Stage</th><th>价值 / Value tier</th>"
        "<th>风险分 / Risk score</th><th>原因 / Reasons</th><th>建议 / Suggested action</th></tr>"
        f"{rows}</table></body></html>"
    )


def render_message(digest: Digest, sender: str, as_of: date, rules: Rules) -> EmailMessage:
    """multipart/alternative (text + HTML), UTF-8 bodies in base64, RFC 2047 subject."""
    lines = _lines(digest, rules)
    message = EmailMessage(policy=policy.default)
    message["From"] = sender
    message["To"] = digest.recipient
    if digest.cc:
        message["Cc"] = ", ".join(digest.cc)
    message["Subject"] = _subject(len(lines), as_of)
    message["Date"] = formatdate(localtime=False, usegmt=True)
    message["Message-ID"] = digest.message_id
    message["X-CRM-Digest-Id"] = digest.digest_id
    text, markup = (
        _text_body(lines, as_of, digest.held_back),
        _html_body(lines, as_of, digest.held_back),
    )
    message.set_content(text, subtype="plain", charset="utf-8", cte="base64")
    message.add_alternative(markup, subtype="html", charset="utf-8", cte="base64")
    return message


def _scrub(text: str, smtp: SmtpSettings) -> str:
    """Never let the SMTP password reach the outbox or a log."""
    return text.replace(smtp.password, "***") if smtp.password else text


def _describe(exc: BaseException) -> str:
    if isinstance(exc, smtplib.SMTPResponseException):
        detail = exc.smtp_error
        text = detail.decode("utf-8", "replace") if isinstance(detail, bytes) else str(detail)
        return f"{type(exc).__name__}: {exc.smtp_code} {text}"
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        parts = [
            f"{address}: {code} {msg.decode('utf-8', 'replace') if isinstance(msg, bytes) else msg}"
            for address, (code, msg) in exc.recipients.items()
        ]
        return f"{type(exc).__name__}: " + "; ".join(parts)
    return f"{type(exc).__name__}: {exc}"


def _is_transient(exc: BaseException) -> bool:
    if isinstance(exc, smtplib.SMTPResponseException):
        return 400 <= exc.smtp_code < 500
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        return bool(exc.recipients) and all(400 <= c < 500 for c, _ in exc.recipients.values())
    return False


def _is_unreachable(exc: BaseException) -> bool:
    """The server cannot be reached at all: no point trying the other digests this run."""
    if isinstance(exc, smtplib.SMTPConnectError):
        return True
    return isinstance(exc, OSError) and not isinstance(exc, smtplib.SMTPException)


def send_smtp(
    message: EmailMessage,
    smtp: SmtpSettings,
    recipients: list[str],
    timeout: float = SMTP_TIMEOUT_SECONDS,
) -> dict[str, tuple[int, bytes]]:
    """Hand one message to the SMTP server; returns recipients the server refused (partial).

    Raises DeliveryError (password scrubbed) when nothing was accepted.
    """
    client: smtplib.SMTP | None = None
    try:
        with smtplib.SMTP(smtp.host or "", smtp.port, timeout=timeout) as client:
            if smtp.starttls:
                client.starttls(context=ssl.create_default_context())
            if smtp.user:
                client.login(smtp.user, smtp.password or "")
            return client.send_message(message, from_addr=smtp.sender, to_addrs=recipients)
    except (OSError, smtplib.SMTPException) as exc:
        detail, size_limit, size = _size_detail(exc, message, client)
        raise DeliveryError(
            _scrub(_describe(exc) + detail, smtp),
            transient=_is_transient(exc),
            unreachable=_is_unreachable(exc),
            size_limit=size_limit,
            message_size=size,
        ) from None


def _wire_size(message: EmailMessage) -> int:
    """Bytes the message takes on the wire (CRLF line ends): what smtplib announces as SIZE."""
    return len(message.as_bytes(policy=message.policy.clone(linesep="\r\n")))


def _size_detail(
    exc: BaseException, message: EmailMessage, client: smtplib.SMTP | None
) -> tuple[str, int | None, int | None]:
    """For a refusal because the digest is larger than the relay takes: the two sizes, the
    relay's limit when the message is above it (else None), and the message's size when
    measured (so the advice does not serialize a 30 MB digest again).

    A relay announces its limit as SIZE in its EHLO reply (Postfix: message_size_limit, 10 MB by
    default) and refuses a larger message with 552. The bare reply does not tell the operator that
    the digest, not the relay, is unusual: a first run on years of history can make digests of
    tens of MB (docs/performance.md, "First-day digest size")."""
    if not isinstance(exc, smtplib.SMTPResponseException) or exc.smtp_code != 552:
        return "", None, None
    size = _wire_size(message)
    announced = client.esmtp_features.get("size", "") if client is not None else ""
    limit = int(announced) if announced.isdigit() and int(announced) > 0 else None
    if limit is None:
        return f" (the digest is {size:,} bytes)", None, size
    if size <= limit:
        return "", None, size
    return (
        f" (the digest is {size:,} bytes, above the relay's SIZE limit of {limit:,} bytes)",
        limit,
        size,
    )


def alerts_that_fit(
    digest: Digest,
    sender: str,
    as_of: date,
    rules: Rules,
    limit: int,
    full_size: int | None = None,
) -> int:
    """How many of the digest's alerts (highest scores first) fit under `limit` bytes on the wire.

    Why estimate, then check, and not search: a first day's digest can hold 20k alerts in 30 MB.
    The email is a fixed part plus a line per alert, so the one-alert digest (with its "more
    alerts wait" note) gives the fixed part and the full one the average line. The highest
    scores tend to carry more reasons than the average, so the estimate is then rendered and
    lowered until it fits: the number suggested to the operator is one that goes through.
    0: not even one alert fits. `full_size`: the whole digest's bytes, when already measured."""
    total = len(digest.alerts)

    def size(count: int) -> int:
        head = replace(
            digest, alerts=digest.alerts.head(count), held_back=digest.held_back + total - count
        )
        return _wire_size(render_message(head, sender, as_of, rules))

    fixed_and_one = size(1)
    if fixed_and_one > limit:
        return 0
    if total == 1:
        return 1
    full = full_size if full_size is not None else size(total)
    per_alert = (full - fixed_and_one) / (total - 1)
    fit = min(total - 1, 1 + int((limit - fixed_and_one) / per_alert))
    while fit > 1 and (measured := size(fit)) > limit:
        over_per_alert = (measured - fixed_and_one) / (fit - 1)
        fit = min(fit - 1, 1 + int((limit - fixed_and_one) / over_per_alert))
    return fit


def _size_advice(fit: int) -> str:
    if fit == 0:
        return (
            "; a digest of one alert is already above it, so raise the relay's limit; until then "
            "its alerts stay pending, an attempt counted each run"
        )
    return (
        f"; raise the relay's limit, or set alerts.max_alerts_per_digest to {fit} or less in the "
        "rules file; until then its alerts stay pending, an attempt counted each run"
    )


def _safe_name(address: str) -> str:
    return re.sub(r"[^A-Za-z0-9._@+-]", "_", address.strip().lower())


def write_eml(message: EmailMessage, mail_dir: Path, as_of: date, digest: Digest) -> Path:
    """`<mail_dir>/<as_of>/<recipient>__<digest_id>.eml`, via a temp file and os.replace so a
    reader never sees half a message; rewriting the same digest gives the same file."""
    folder = Path(mail_dir) / as_of.isoformat()
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"{_safe_name(digest.recipient)}__{digest.digest_id}.eml"
    handle, temp_name = tempfile.mkstemp(dir=folder, prefix=".", suffix=".eml.tmp")
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(message.as_bytes())
        os.replace(temp_name, target)
    except BaseException:
        Path(temp_name).unlink(missing_ok=True)
        raise
    return target


def _send_with_retries(
    send: Callable[[], dict[str, tuple[int, bytes]]],
    retries: int,
    backoff_seconds: float,
) -> dict[str, tuple[int, bytes]]:
    """A 4xx is retried `retries` times with a doubling pause before it counts as a failure."""
    for retry in range(retries + 1):
        try:
            return send()
        except DeliveryError as exc:
            if not exc.transient or retry == retries:
                raise
            time.sleep(backoff_seconds * (2**retry))
    raise AssertionError("unreachable")  # pragma: no cover


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def _pending_total(con: duckdb.DuckDBPyConnection) -> int:
    return status_counts(con).get(PENDING, 0)


def deliver(
    con: duckdb.DuckDBPyConnection,
    smtp: SmtpSettings,
    mail_dir: Path,
    as_of: date,
    run_id: str,
    rules: Rules,
    gate_ok: bool,
    gate_reason: str | None,
    *,
    transient_retries: int = TRANSIENT_RETRIES,
    backoff_seconds: float = TRANSIENT_BACKOFF_SECONDS,
    timeout_seconds: float = SMTP_TIMEOUT_SECONDS,
) -> DeliveryReport:
    """Deliver every pending alert (this run's and older retries) as one digest per recipient,
    capped at rules.alerts.max_alerts_per_digest when set (the rest stay pending, unattempted).

    With gate_ok false nothing leaves: every pending alert becomes `suppressed` with the reason.
    Each digest's outcome is written to the outbox before the next digest is tried.
    """
    ensure_outbox(con)
    report = DeliveryReport()
    if not gate_ok:
        report.suppressed = suppress_pending(con, gate_reason or DEFAULT_GATE_REASON, run_id)
        return report
    unreachable_error: str | None = None
    cap = rules.alerts.max_alerts_per_digest
    for digest in build_digests(read_outbox(con, PENDING), smtp.sender, cap):
        message = render_message(digest, smtp.sender, as_of, rules)
        result = RecipientResult(
            recipient=digest.recipient,
            cc=digest.cc,
            alerts=len(digest.alerts),
            outcome="sent",
            digest_id=digest.digest_id,
            message_id=digest.message_id,
            held_back=digest.held_back,
        )
        report.held_back += digest.held_back
        note = None
        try:
            if unreachable_error is not None:
                raise DeliveryError(unreachable_error, transient=False, unreachable=True)
            if smtp.enabled:
                refused = _send_with_retries(
                    lambda m=message, d=digest: send_smtp(
                        m, smtp, [d.recipient, *d.cc], timeout_seconds
                    ),
                    transient_retries,
                    backoff_seconds,
                )
                if refused:
                    note = _scrub(f"refused by the server: {', '.join(sorted(refused))}", smtp)
            else:
                result.eml_path = write_eml(message, mail_dir, as_of, digest)
                report.eml_paths.append(result.eml_path)
        except DeliveryError as exc:
            if exc.unreachable:
                unreachable_error = str(exc)
            error = str(exc)
            if exc.size_limit is not None:
                fit = alerts_that_fit(
                    digest, smtp.sender, as_of, rules, exc.size_limit, exc.message_size
                )
                error += _size_advice(fit)
            report.failed += _record_failure(con, digest, error, rules, run_id, result)
        else:
            mark_sent(
                con,
                digest.alert_ids,
                sent_at=_now(),
                digest_id=digest.digest_id,
                message_id=digest.message_id,
                run_id=run_id,
                note=note,
            )
            report.sent += result.alerts
        report.recipients[digest.recipient] = result
    report.pending = _pending_total(con)
    return report


def _record_failure(
    con: duckdb.DuckDBPyConnection,
    digest: Digest,
    error: str,
    rules: Rules,
    run_id: str,
    result: RecipientResult,
) -> int:
    """Count the failed attempt; returns how many of the digest's alerts are now `failed`."""
    mark_attempt_failed(
        con,
        digest.alert_ids,
        error=error,
        max_attempts=rules.alerts.max_attempts,
        attempted_at=_now(),
        digest_id=digest.digest_id,
        message_id=digest.message_id,
        run_id=run_id,
    )
    statuses = statuses_of(con, digest.alert_ids)
    gave_up = sum(1 for status in statuses.values() if status == FAILED)
    result.error = error
    result.outcome = FAILED if gave_up == len(digest.alert_ids) else PENDING
    return gave_up
