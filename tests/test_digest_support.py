"""What the alert and digest tests share: a real SMTP server (aiosmtpd) that keeps what it
receives, a sender that talks SMTP to it, a small composer whose plain mails list each item's
project and kind (so the tests read back exactly what a round chose; the real templates are
tested in test_mail_*.py and used by test_scheduler.py and test_loop_faults.py), and writers
of users, projects and inbox rows."""

from __future__ import annotations

import hashlib
import smtplib
import socket
import threading
from collections.abc import Iterator, Sequence
from datetime import datetime
from email import message_from_bytes
from email.message import EmailMessage, Message
from typing import Any

import psycopg
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from consumers.content import DigestContent, Item, Recipient
from contracts.experiments import TemplateVariant
from geo_engine.catalog import load as catalog_load
from geo_engine.jsonl import Line
from tests.api_data import national, organisation, project


class Collector:
    """aiosmtpd handler keeping every message it accepts."""

    def __init__(self) -> None:
        self.messages: list[Message] = []
        self.lock = threading.Lock()

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:  # noqa: N802
        assert isinstance(envelope.content, bytes)
        with self.lock:
            self.messages.append(message_from_bytes(envelope.content))
        return "250 OK"


@pytest.fixture
def smtp() -> Iterator[tuple[Collector, int]]:
    collector = Collector()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    controller = Controller(collector, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield collector, port
    finally:
        controller.stop()


class SmtpSender:
    """One SMTP connection per call to the local server."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.calls = 0

    def send(self, messages: Sequence[EmailMessage]) -> None:
        self.calls += 1
        with smtplib.SMTP("127.0.0.1", self.port, timeout=10) as client:
            for m in messages:
                client.send_message(m)


class FailingSender:
    """A sender whose SMTP server is gone."""

    def send(self, messages: Sequence[EmailMessage]) -> None:
        raise ConnectionRefusedError("no SMTP server")


class TinyComposer:
    """Plain-text mails carrying their delivery key and items, enough to count them."""

    def message_id(self, key: str) -> str:
        return f"<{hashlib.sha256(key.encode()).hexdigest()[:32]}@test.geo-engine.example>"

    def _mail(
        self, recipient: Recipient, key: str, subject: str, lines: list[str], template: str
    ) -> EmailMessage:
        mail = EmailMessage()
        mail["From"] = "test@geo-engine.example"
        mail["To"] = f"citoyen-{recipient.user_id}@habitants.geo-engine.example"
        mail["Subject"] = subject
        mail["Message-ID"] = self.message_id(key)
        mail["X-Key"] = key
        mail["X-Template"] = template  # the subject line an experiment chose
        mail.set_content("\n".join(lines) + "\n")
        return mail

    def alert(
        self,
        recipient: Recipient,
        items: Sequence[Item],
        key: str,
        template: TemplateVariant = "standard",
    ) -> EmailMessage:
        return self._mail(
            recipient,
            key,
            items[0].title,
            [f"item {i.project_id} {i.kind}" for i in items],
            template,
        )

    def digest(
        self,
        recipient: Recipient,
        digest: DigestContent,
        key: str,
        template: TemplateVariant = "standard",
    ) -> EmailMessage:
        return self._mail(
            recipient,
            key,
            f"Digest {digest.period_start.isoformat()}",
            [f"item {i.project_id} {i.kind} {i.section}" for i in digest.items],
            template,
        )


def items_of(mail: Message) -> list[tuple[int, str]]:
    body = mail.get_payload(decode=True)
    assert isinstance(body, bytes)
    return [
        (int(line.split()[1]), line.split()[2])
        for line in body.decode().splitlines()
        if line.startswith("item ")
    ]


def add_projects(
    conn: psycopg.Connection, org_id: int, ids: Sequence[int], visibility: str = "public"
) -> None:
    catalog_load.store_organisations(conn, [Line(1, organisation(org_id))], "test")
    records = [project(p, org_id, national(), visibility=visibility) for p in ids]
    catalog_load.store_projects(conn, [Line(n, r) for n, r in enumerate(records, 1)], "test")


def add_users(
    conn: psycopg.Connection,
    ids: Sequence[int],
    commune: str = "75056",
    timezone: str | None = None,
    **notifications: Any,
) -> None:
    import json

    prefs = json.dumps({"email": True, **notifications})
    conn.execute(
        """INSERT INTO app_user (id, notifications, timezone)
           SELECT unnest(%s::bigint[]), %s::jsonb, %s""",
        (list(ids), prefs, timezone),
    )
    conn.execute(
        "INSERT INTO user_place (user_id, commune_code) SELECT unnest(%s::bigint[]), %s",
        (list(ids), commune),
    )


def add_inbox(
    conn: psycopg.Connection,
    user_id: int,
    project_id: int,
    created_at: datetime,
    *,
    kind: str = "published",
    priority: int = 1,
    level: int = 0,
) -> None:
    conn.execute(
        """INSERT INTO inbox (user_id, project_id, kind, level, priority, reason, created_at)
           VALUES (%s, %s, %s, %s, %s, 'Un projet dans votre commune', %s)""",
        (user_id, project_id, kind, level, priority, created_at),
    )
