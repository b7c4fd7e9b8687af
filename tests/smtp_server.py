"""A real SMTP server for tests (aiosmtpd on 127.0.0.1, a free port): records what it receives
and can be told to fail, so delivery code is tested against the protocol, not a mock.

Failure modes: `down()` (nothing listens on the port: connection refused) and `up()` again on the
same port; `fail_next(n)` answers the next n messages with a 451 temporary failure;
`reject_next(n)` answers them with a 550 permanent failure. Failures are given at the end of DATA,
where a real relay reports most of them.

Secured mode (for the STARTTLS + login path of the mailer): pass `tls_context` (STARTTLS offered;
`server_tls_context()` builds one from `write_self_signed_certificate()`), `require_starttls`
(every command but EHLO/NOOP/STARTTLS/QUIT answered 530 until TLS is up) and `credentials` (AUTH
required, offered only over TLS, one user/password accepted). Each received message then records
the TLS version and the login of the session it came in on.

Size limit: `data_size_limit` (bytes) is advertised as SIZE in EHLO, and a larger message is
refused with 552, as a relay with Postfix's `message_size_limit` does.
"""

from __future__ import annotations

import hmac
import ipaddress
import socket
import ssl
import threading
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from crm.settings import SmtpSettings

TEMPORARY_FAILURE = "451 4.3.0 Temporary local problem, try again later"
PERMANENT_FAILURE = "550 5.7.1 Message rejected"
# A throwaway test certificate: long enough to outlive any test run, short enough to be obviously
# not for production; RSA 2048 is what OpenSSL's default security level (2) accepts.
TEST_CERTIFICATE_DAYS = 2
TEST_KEY_BITS = 2048


@dataclass(frozen=True)
class ReceivedMessage:
    mail_from: str
    rcpt_tos: tuple[str, ...]
    raw: bytes
    tls_version: str | None = None  # e.g. "TLSv1.3" when the session ran STARTTLS, else None
    login: str | None = None  # the AUTH user of the session, None when it did not log in

    @property
    def message(self) -> EmailMessage:
        """The message parsed with the modern email API (decoded headers and bodies)."""
        return message_from_bytes(self.raw, policy=policy.default)  # type: ignore[return-value]


def _tls_version(session) -> str | None:
    """The negotiated protocol of a session after STARTTLS (aiosmtpd sets `session.ssl` then)."""
    if session.ssl is None:
        return None
    ssl_object = session.ssl.get("ssl_object")
    return ssl_object.version() if ssl_object is not None else None


def _login(session) -> str | None:
    if not session.authenticated or session.login_data is None:
        return None
    login = session.login_data
    return login.decode("utf-8", "replace") if isinstance(login, bytes) else str(login)


@dataclass(frozen=True)
class AuthAttempt:
    """One AUTH exchange the server judged; the password itself is never kept."""

    mechanism: str
    login: str
    accepted: bool
    over_tls: bool


class _OneUserAuthenticator:
    """aiosmtpd authenticator accepting exactly one login/password pair, recording each try."""

    def __init__(self, user: str, password: str, lock: threading.Lock) -> None:
        self._user = user.encode()
        self._password = password.encode()
        self._lock = lock
        self.attempts: list[AuthAttempt] = []

    def __call__(self, server, session, envelope, mechanism: str, auth_data) -> AuthResult:
        if not isinstance(auth_data, LoginPassword):
            return AuthResult(success=False, handled=False)
        accepted = hmac.compare_digest(auth_data.login, self._user) and hmac.compare_digest(
            auth_data.password, self._password
        )
        with self._lock:
            self.attempts.append(
                AuthAttempt(
                    mechanism=mechanism,
                    login=auth_data.login.decode("utf-8", "replace"),
                    accepted=accepted,
                    over_tls=session.ssl is not None,
                )
            )
        if not accepted:
            return AuthResult(success=False, handled=False)
        return AuthResult(success=True, auth_data=auth_data)


class _RecordingHandler:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.received: list[ReceivedMessage] = []
        self.replies: deque[str] = deque()
        self.refused = 0

    async def handle_DATA(self, server, session, envelope) -> str:  # the name aiosmtpd calls
        with self.lock:
            if self.replies:
                self.refused += 1
                return self.replies.popleft()
            self.received.append(
                ReceivedMessage(
                    mail_from=envelope.mail_from,
                    rcpt_tos=tuple(envelope.rcpt_tos),
                    raw=bytes(envelope.original_content or envelope.content),
                    tls_version=_tls_version(session),
                    login=_login(session),
                )
            )
        return "250 2.0.0 Message accepted for delivery"


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


@dataclass(frozen=True)
class SelfSignedCertificate:
    """PEM files of a self-signed certificate; `cert` doubles as the CA file a client trusts."""

    cert: Path
    key: Path


def write_self_signed_certificate(
    folder: Path, hostname: str = "localhost"
) -> SelfSignedCertificate:
    """A throwaway self-signed certificate for `hostname` and 127.0.0.1 (what the test client
    dials, so what its hostname check compares against), written as PEM into `folder`.

    Equivalent of `openssl req -x509 -newkey rsa:2048 -nodes -subj /CN=localhost
    -addext subjectAltName=DNS:localhost,IP:127.0.0.1`, without needing the openssl binary.
    """
    key = rsa.generate_private_key(public_exponent=65537, key_size=TEST_KEY_BITS)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostname)])
    now = datetime.now(UTC)
    alt_names = [x509.DNSName(hostname), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=TEST_CERTIFICATE_DAYS))
        .add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=True,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    folder.mkdir(parents=True, exist_ok=True)
    paths = SelfSignedCertificate(
        cert=folder / "smtp-test-cert.pem", key=folder / "smtp-test-key.pem"
    )
    paths.cert.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    paths.key.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return paths


def server_tls_context(certificate: SelfSignedCertificate) -> ssl.SSLContext:
    """The server side of STARTTLS: presents the test certificate, asks no client certificate."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(certificate.cert, certificate.key)
    return context


class SmtpTestServer:
    """Start/stop a local SMTP server; use as a context manager or call start()/stop()."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int | None = None,
        *,
        tls_context: ssl.SSLContext | None = None,
        require_starttls: bool = False,
        credentials: tuple[str, str] | None = None,
        data_size_limit: int | None = None,
    ) -> None:
        self.host = host
        self._data_size_limit = data_size_limit
        self.port = port or free_port(host)
        self._handler = _RecordingHandler()
        self._controller: Controller | None = None
        self._tls_context = tls_context
        self._require_starttls = require_starttls
        self._authenticator = (
            _OneUserAuthenticator(*credentials, lock=self._handler.lock) if credentials else None
        )

    def _smtp_parameters(self) -> dict[str, object]:
        """aiosmtpd SMTP keywords: STARTTLS offered/required, AUTH required and only over TLS, the
        message size limit."""
        parameters: dict[str, object] = {}
        if self._tls_context is not None:
            parameters["tls_context"] = self._tls_context
            parameters["require_starttls"] = self._require_starttls
        if self._authenticator is not None:
            parameters["authenticator"] = self._authenticator
            parameters["auth_required"] = True
            parameters["auth_require_tls"] = True
        if self._data_size_limit is not None:
            parameters["data_size_limit"] = self._data_size_limit
        return parameters

    def start(self) -> SmtpTestServer:
        if self._controller is None:
            self._controller = Controller(
                self._handler,
                hostname=self.host,
                port=self.port,
                server_hostname="localhost",
                **self._smtp_parameters(),
            )
            self._controller.start()
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def down(self) -> None:
        """Stop listening: clients get 'connection refused' until up()."""
        self.stop()

    def up(self) -> None:
        self.start()

    def fail_next(self, count: int, reply: str = TEMPORARY_FAILURE) -> None:
        """Answer the next `count` messages with a temporary failure (451)."""
        with self._handler.lock:
            self._handler.replies.extend([reply] * count)

    def reject_next(self, count: int, reply: str = PERMANENT_FAILURE) -> None:
        """Answer the next `count` messages with a permanent failure (550)."""
        self.fail_next(count, reply)

    @property
    def messages(self) -> list[ReceivedMessage]:
        with self._handler.lock:
            return list(self._handler.received)

    @property
    def refused_count(self) -> int:
        """How many messages were answered with an injected failure."""
        with self._handler.lock:
            return self._handler.refused

    @property
    def auth_attempts(self) -> list[AuthAttempt]:
        """Every AUTH exchange judged by the server (empty when no credentials are required)."""
        if self._authenticator is None:
            return []
        with self._handler.lock:
            return list(self._authenticator.attempts)

    def settings(self, sender: str = "crm-alerts@example.com") -> SmtpSettings:
        """SmtpSettings for a plain relay without login (what contract §2 requires to work)."""
        return SmtpSettings(host=self.host, port=self.port, sender=sender)

    def __enter__(self) -> SmtpTestServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
