"""A real SMTP server for tests (aiosmtpd on 127.0.0.1, a free port): records what it receives
and can be told to fail, so delivery code is tested against the protocol, not a mock.

Failure modes: `down()` (nothing listens on the port: connection refused) and `up()` again on the
same port; `fail_next(n)` answers the next n messages with a 451 temporary failure;
`reject_next(n)` answers them with a 550 permanent failure. Failures are given at the end of DATA,
where a real relay reports most of them.
"""

from __future__ import annotations

import socket
import threading
from collections import deque
from dataclasses import dataclass
from email import message_from_bytes, policy
from email.message import EmailMessage

from aiosmtpd.controller import Controller

from crm.settings import SmtpSettings

TEMPORARY_FAILURE = "451 4.3.0 Temporary local problem, try again later"
PERMANENT_FAILURE = "550 5.7.1 Message rejected"


@dataclass(frozen=True)
class ReceivedMessage:
    mail_from: str
    rcpt_tos: tuple[str, ...]
    raw: bytes

    @property
    def message(self) -> EmailMessage:
        """The message parsed with the modern email API (decoded headers and bodies)."""
        return message_from_bytes(self.raw, policy=policy.default)  # type: ignore[return-value]


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
                )
            )
        return "250 2.0.0 Message accepted for delivery"


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


class SmtpTestServer:
    """Start/stop a local SMTP server; use as a context manager or call start()/stop()."""

    def __init__(self, host: str = "127.0.0.1", port: int | None = None) -> None:
        self.host = host
        self.port = port or free_port(host)
        self._handler = _RecordingHandler()
        self._controller: Controller | None = None

    def start(self) -> SmtpTestServer:
        if self._controller is None:
            self._controller = Controller(
                self._handler, hostname=self.host, port=self.port, server_hostname="localhost"
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

    def settings(self, sender: str = "crm-alerts@example.com") -> SmtpSettings:
        """SmtpSettings for a plain relay without login (what contract §2 requires to work)."""
        return SmtpSettings(host=self.host, port=self.port, sender=sender)

    def __enter__(self) -> SmtpTestServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
