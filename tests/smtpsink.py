"""A real SMTP server for tests: aiosmtpd on a free local port, keeping what it receives.

``running_sink()`` (a context manager) and the ``smtp_sink`` fixture yield a
:class:`SmtpSink` with the ``MailSettings`` that point at it; ``sink.messages`` are the mails
as the server received them, parsed back with the standard library
(``email.policy.default``), with their SMTP envelopes.
"""

from __future__ import annotations

import email
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from pydantic import SecretStr

from consumers.settings import MailSettings

LINK_SECRET = "test-only-link-secret-of-32-characters!"  # noqa: S105
PUBLIC_URL = "https://participation.example.fr"


@dataclass
class Received:
    """One mail as the server got it."""

    mail_from: str
    rcpt_tos: list[str]
    raw: bytes
    message: EmailMessage


@dataclass
class SmtpSink:
    """What an aiosmtpd handler collected; thread-safe (the server runs in its own thread)."""

    received: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        raw: bytes = envelope.original_content or envelope.content
        parsed = email.message_from_bytes(raw, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        with self.lock:
            self.received.append(Received(envelope.mail_from, list(envelope.rcpt_tos), raw, parsed))
        return "250 OK"

    @property
    def messages(self) -> list[EmailMessage]:
        with self.lock:
            return [r.message for r in self.received]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def mail_settings(port: int) -> MailSettings:
    """Settings of mails sent to a local server on ``port``, with the test link secret."""
    return MailSettings(
        smtp_host="127.0.0.1",
        smtp_port=port,
        smtp_timeout_s=5,
        public_url=PUBLIC_URL,
        link_secret=SecretStr(LINK_SECRET),
    )


@contextmanager
def running_sink() -> Iterator[tuple[SmtpSink, MailSettings]]:
    """A running SMTP server and the settings that send to it, until the block ends."""
    sink = SmtpSink()
    controller = Controller(sink, hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        yield sink, mail_settings(controller.port)
    finally:
        controller.stop()


@pytest.fixture
def smtp_sink() -> Iterator[tuple[SmtpSink, MailSettings]]:
    """:func:`running_sink` for one test (register with ``pytest_plugins`` in a conftest, or
    wrap ``running_sink`` in a module's own fixture)."""
    with running_sink() as running:
        yield running
