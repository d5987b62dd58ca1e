"""The bytes a composed mail is: French headers and bodies that come back exactly as composed
through a real SMTP server (aiosmtpd) and the standard library's parser; 8bit parts unless a
line is too long or a text holds the boundary; the quoted-printable form for servers without
8BITMIME."""

from __future__ import annotations

import email
import email.policy
from datetime import UTC, date, datetime
from email.message import EmailMessage

import pytest
from aiosmtpd.controller import Controller
from pydantic import SecretStr

from consumers.content import DigestContent, Item, Recipient
from consumers.mail import Mail, SmtpSender, compose_alert, compose_digest, links
from consumers.mail.message import encoded_words, unstructured
from consumers.settings import MailSettings
from tests.smtpsink import (
    LINK_SECRET,
    PUBLIC_URL,
    SmtpSink,
    free_port,
    mail_settings,
    running_sink,
)

TITLE = "Été 2027 : rénovation de l'église Saint-Éloi — « participez » à l'œuvre ! ☀"
BESANCON = Recipient(user_id=25056, timezone="Europe/Paris", commune_name="Besançon")


def _item(project_id: int, title: str = TITLE, **changes: object) -> Item:
    values: dict[str, object] = {
        "project_id": project_id,
        "title": title,
        "organisation": "Ville de Besançon",
        "tool": "consultation",
        "kind": "closing_soon",
        "reason": "Un projet dans votre commune, à deux pas de chez vous",
        "section": "commune",
        "closes_at": datetime(2027, 3, 28, 0, 30, tzinfo=UTC),
    }
    values.update(changes)
    return Item(**values)  # type: ignore[arg-type]


def _parse(raw: bytes) -> EmailMessage:
    parsed = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(parsed, EmailMessage)
    assert not parsed.defects
    return parsed


def _bodies(message: EmailMessage) -> tuple[str, str]:
    plain, html = message.get_body(("plain",)), message.get_body(("html",))
    assert plain is not None and html is not None
    # Line ends as on the wire (CRLF) in both encodings; compared here as Python's "\n".
    return plain.get_content().replace("\r\n", "\n"), html.get_content().replace("\r\n", "\n")


def test_accents_round_trip_through_the_server() -> None:
    with running_sink() as (sink, settings):
        settings = settings.model_copy(
            update={"mail_from": "Mairie de Besançon <ne-pas-repondre@geo-engine.example>"}
        )
        key = "alert:25056:31:closing_soon:0:0"
        mail = compose_alert(BESANCON, [_item(31)], key, settings)
        assert mail.eight_bit
        SmtpSender(settings).send([mail])
        [received] = sink.received
    head = received.raw.split(b"\r\n\r\n", 1)[0]
    assert head.isascii()  # RFC 2047 headers, no SMTPUTF8 needed
    assert all(len(line) <= 998 for line in head.split(b"\r\n"))
    got = received.message
    assert got["Subject"] == mail["Subject"] == f"Bientôt clos : {TITLE}"
    assert got["From"] == mail["From"] == "Mairie de Besançon <ne-pas-repondre@geo-engine.example>"
    assert got["From"].addresses[0].display_name == "Mairie de Besançon"
    assert got["To"] == mail["To"] == mail.to == "citoyen-25056@habitants.geo-engine.example"
    assert got["Message-ID"] == mail["Message-ID"] == mail.message_id
    assert got["List-Unsubscribe"] == mail["List-Unsubscribe"]
    assert got["Auto-Submitted"] == "auto-generated"
    assert received.rcpt_tos == [mail.to]
    plain, html = _bodies(got)
    assert f"* {TITLE}\n" in plain
    assert "Un projet dans votre commune, à deux pas de chez vous" in plain
    # 00:30 UTC on the day clocks change (01:00 UTC) is still 1 h 30 in Paris.
    assert "Participation jusqu'au dimanche 28 mars 2027 à 1 h 30." in plain
    assert "Une nouveauté près de chez vous (Besançon) :" in plain
    assert "« participez » à l&#39;œuvre ! ☀</a>" in html
    assert got.get_body(("plain",))["Content-Transfer-Encoding"] == "8bit"
    # What was sent is the composed mail's bytes, once parsed the same as received.
    assert _bodies(_parse(mail.raw)) == (plain, html)


def test_long_lines_and_the_boundary_fall_back_to_quoted_printable() -> None:
    settings = MailSettings(public_url=PUBLIC_URL, link_secret=SecretStr(LINK_SECRET))
    long_title = "Réaménagement " * 80  # one line of more than 998 octets
    digest = DigestContent("weekly", date(2027, 3, 22), (_item(32, long_title), _item(33)))
    long = compose_digest(BESANCON, digest, "digest:25056:weekly:2027-03-22", settings)
    assert not long.eight_bit
    assert all(len(line) <= 78 for line in long.raw.split(b"\r\n")[12:])
    plain, _ = _bodies(_parse(long.raw))
    assert " ".join(long_title.split()) in plain and TITLE in plain

    # A title holding the mail's own boundary cannot end its part.
    key = "alert:25056:34:published:0:0"
    boundary = compose_alert(BESANCON, [_item(34)], key, settings).boundary
    sneaky = compose_alert(
        BESANCON, [_item(34, f"x\n--{boundary}\nContent-Type: text/html\n\n<b>")], key, settings
    )
    assert not sneaky.eight_bit
    parsed = _parse(sneaky.raw)
    assert len(list(parsed.iter_parts())) == 2
    assert f"--{boundary}" in _bodies(parsed)[0]


def test_the_seven_bit_form_says_the_same() -> None:
    with running_sink() as (_, settings):
        digest = DigestContent("daily", date(2027, 3, 28), (_item(35), _item(36, "Ça bouge")))
        mail = compose_digest(BESANCON, digest, "digest:25056:daily:2027-03-28", settings)
    assert isinstance(mail, Mail) and mail.eight_bit and mail.as_bytes() == mail.raw
    seven = mail.as_seven_bit()
    assert seven.isascii() and not mail.raw.isascii()
    assert all(len(line) <= 78 for line in seven.split(b"\r\n")[12:])
    assert _bodies(_parse(seven)) == _bodies(_parse(mail.raw))
    assert _parse(seven)["Subject"] == "Votre résumé du jour : 2 nouveautés près de chez vous"

    # A server that does not announce 8BITMIME (aiosmtpd decoding data) gets that form.
    sink = SmtpSink()
    controller = Controller(sink, hostname="127.0.0.1", port=free_port(), decode_data=True)
    controller.start()
    try:
        SmtpSender(mail_settings(controller.port)).send([mail])
    finally:
        controller.stop()
    [received] = sink.received
    assert received.raw.rstrip(b"\r\n") == seven.rstrip(b"\r\n")
    assert _bodies(received.message) == _bodies(_parse(mail.raw))


def test_headers_are_encoded_words_of_whole_characters() -> None:
    assert unstructured("Subject", "Bonjour\r\nBcc: x@example.fr") == (
        "Subject: Bonjour Bcc: x@example.fr"
    )
    text = "é" * 40 + "☀" * 20
    words = encoded_words(text).split("\r\n ")
    assert all(len(word) <= 75 for word in words)
    header = _parse(f"Subject: {encoded_words(text)}\r\n\r\n".encode())["Subject"]
    assert header == text


def test_a_mails_click_tokens_are_the_signed_ones() -> None:
    key = "digest:25056:daily:2027-03-28"
    projects = [1, 31, 2**63 - 1]
    assert links.click_tokens(25056, key, projects, LINK_SECRET) == [
        links.sign(links.LinkPayload("c", 25056, key, project), LINK_SECRET) for project in projects
    ]
    for bad in ([0], [2**63]):
        with pytest.raises(ValueError, match="out of range"):
            links.click_tokens(25056, key, bad, LINK_SECRET)
    with pytest.raises(ValueError, match="notification key"):
        links.click_tokens(25056, "a b", projects, LINK_SECRET)
