"""The loop's mails, sent through SmtpSender to a real SMTP server (aiosmtpd) and read back as
it received them: RFC 8058 headers, a Message-ID stable by key, both parts in French, signed
links only, the open pixel, sections and times in the recipient's zone."""

from __future__ import annotations

import email
import email.policy
import re
from collections.abc import Iterator
from datetime import UTC, date, datetime
from email.message import EmailMessage
from html.parser import HTMLParser
from urllib.parse import urlsplit

import pytest

from consumers.content import DigestContent, Item, MeetingInfo, Recipient
from consumers.mail import Mail, SmtpSender, compose_alert, compose_digest, links, message_id
from consumers.settings import MailSettings
from contracts.errors import InvalidInput, Unavailable
from tests.smtpsink import (
    LINK_SECRET,
    PUBLIC_URL,
    SmtpSink,
    free_port,
    mail_settings,
    running_sink,
)

Sink = tuple[SmtpSink, MailSettings]


@pytest.fixture
def smtp_sink() -> Iterator[Sink]:
    with running_sink() as running:
        yield running


LYON = Recipient(user_id=4242, timezone="Europe/Paris", commune_name="Lyon")
NOUMEA = Recipient(user_id=988, timezone="Pacific/Noumea", commune_name="Nouméa")
MEETING = MeetingInfo(
    meeting_id=77,
    kind="reunion_publique",
    title="Réunion sur la place",
    place="Salle des fêtes, 1 rue de la Mairie",
    starts_at=datetime(2026, 12, 1, 17, 30, tzinfo=UTC),
    ends_at=datetime(2026, 12, 1, 19, 0, tzinfo=UTC),
)


def _item(project_id: int, section: str, **changes: object) -> Item:
    values: dict[str, object] = {
        "project_id": project_id,
        "title": f"Projet {project_id}",
        "organisation": "Ville de Lyon",
        "tool": "budget_participatif",
        "kind": "published",
        "reason": "Un projet dans votre commune",
        "section": section,
        "closes_at": None,
    }
    values.update(changes)
    return Item(**values)  # type: ignore[arg-type]


ITEMS = (
    _item(11, "france", kind="recommended", reason="Proche de vos centres d'intérêt"),
    _item(
        12,
        "commune",
        title="Réaménager la place <b>Bellecour</b> & ses abords",
        closes_at=datetime(2026, 12, 20, 22, 59, tzinfo=UTC),
    ),
    _item(13, "epci", kind="meeting_announced", meeting=MEETING, tool="consultation"),
    _item(14, "commune", tool="votation", kind="closing_soon"),
)


def _parts(mail: EmailMessage | Mail) -> tuple[str, str]:
    """The plain and HTML parts, of a received mail or of a composed one's bytes."""
    message = mail if isinstance(mail, EmailMessage) else _parse(mail.raw)
    assert message.get_content_type() == "multipart/alternative"
    plain = message.get_body(("plain",))
    html = message.get_body(("html",))
    assert plain is not None and html is not None
    return plain.get_content(), html.get_content()


def _parse(raw: bytes) -> EmailMessage:
    parsed = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(parsed, EmailMessage)
    return parsed


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.hrefs: list[str] = []
        self.images: list[str] = []
        self.headings: list[str] = []
        self._in_h2 = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag == "a" and found.get("href"):
            self.hrefs.append(str(found["href"]))
        if tag == "img" and found.get("src"):
            self.images.append(str(found["src"]))
        self._in_h2 = tag == "h2"

    def handle_data(self, data: str) -> None:
        if self._in_h2 and data.strip():
            self.headings.append(data.strip())

    def handle_endtag(self, tag: str) -> None:
        if tag == "h2":
            self._in_h2 = False


def _html_links(html: str) -> _Links:
    parser = _Links()
    parser.feed(html)
    return parser


def _token(url: str, prefix: str) -> str:
    path = urlsplit(url).path
    assert path.startswith(prefix), url
    return path.removeprefix(prefix)


def test_digest_as_the_server_received_it(smtp_sink: Sink) -> None:
    sink, settings = smtp_sink
    key = "digest:4242:weekly:2026-11-30"
    digest = DigestContent(frequency="weekly", period_start=date(2026, 11, 30), items=ITEMS)
    SmtpSender(settings).send([compose_digest(LYON, digest, key, settings)])

    [received] = sink.received
    mail = received.message
    assert received.rcpt_tos == ["citoyen-4242@habitants.geo-engine.example"]
    assert received.mail_from == "ne-pas-repondre@geo-engine.example"
    assert mail["To"] == "citoyen-4242@habitants.geo-engine.example"
    assert mail["Subject"] == "Votre résumé de la semaine : 4 nouveautés près de chez vous"
    assert mail["Message-ID"] == message_id(key, settings)
    assert re.fullmatch(r"<[0-9a-f]{64}@geo-engine\.example>", mail["Message-ID"])
    assert mail["Date"] is not None and mail["From"] is not None
    # RFC 8058: one HTTPS URI in angle brackets, and the one-click POST marker; the raw header
    # is plain ASCII on one line (no RFC 2047 encoded word a client could not use as a URL).
    assert mail["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    raw_header = re.search(rb"^List-Unsubscribe: (.*)$", received.raw, re.MULTILINE)
    assert raw_header is not None and b"=?" not in raw_header.group(1)
    unsubscribe = re.fullmatch(r"<(https://[^>]+)>", mail["List-Unsubscribe"])
    assert unsubscribe is not None
    u_token = _token(unsubscribe.group(1), "/m/u/")
    assert links.verify(u_token, "u", LINK_SECRET) == links.LinkPayload("u", 4242, key)

    text, html = _parts(mail)
    page = _html_links(html)
    # Sections in order, narrowest first, with their French headings; empty ones left out.
    assert page.headings == [
        "Dans votre commune",
        "Dans votre intercommunalité",
        "Partout en France",
    ]
    assert text.index("== Dans votre commune ==") < text.index("== Partout en France ==")
    assert "Votre résumé de la semaine du lundi 30 novembre 2026" in text
    # The title is text, escaped in the HTML, as it is in the plain part.
    assert "Réaménager la place &lt;b&gt;Bellecour&lt;/b&gt; &amp; ses abords" in html
    assert "<b>Bellecour</b>" not in html
    assert "Réaménager la place <b>Bellecour</b> & ses abords" in text
    # Times in the recipient's zone, in French: 22:59 UTC is 23 h 59 in Paris in December.
    assert "Participation jusqu'au dimanche 20 décembre 2026 à 23 h 59." in text
    assert "Réunion publique : Réunion sur la place" in text
    assert "mardi 1er décembre 2026, de 18 h 30 à 20 h" in text
    # Every project link is a signed click redirect naming its project; the meeting has its .ics.
    clicks = [h for h in page.hrefs if h.startswith(f"{PUBLIC_URL}/m/c/")]
    projects = {links.verify(_token(h, "/m/c/"), "c", LINK_SECRET).project_id for h in clicks}
    assert projects == {11, 12, 13, 14}
    for href in page.hrefs:
        assert href.startswith(f"{PUBLIC_URL}/"), href
        assert "/projets/" not in href and "?projet=" not in href  # never the target itself
    assert f"{PUBLIC_URL}/v1/meetings/77.ics" in page.hrefs
    assert f"{PUBLIC_URL}/v1/meetings/77.ics" in text
    assert unsubscribe.group(1) in page.hrefs and unsubscribe.group(1) in text
    # The open pixel, signed for this mail.
    [pixel] = page.images
    assert pixel.endswith(".gif")
    o_token = _token(pixel, "/m/o/").removesuffix(".gif")
    assert links.verify(o_token, "o", LINK_SECRET) == links.LinkPayload("o", 4242, key)


def test_alert_and_the_same_key_twice(smtp_sink: Sink) -> None:
    sink, settings = smtp_sink
    key = "alert:988:12:published:0:0"
    item = _item(12, "commune", title="Nouvelle piste cyclable", organisation="Ville de Nouméa")
    first = compose_alert(NOUMEA, [item], key, settings)
    again = compose_alert(NOUMEA, [item], key, settings)
    other = compose_alert(NOUMEA, [item], "alert:988:12:closing_soon:0:0", settings)
    SmtpSender(settings).send([first, again, other])

    one, two, three = sink.messages
    assert one["Message-ID"] == two["Message-ID"] == message_id(key, settings)
    assert three["Message-ID"] != one["Message-ID"]
    assert one["Subject"] == "Nouveau projet : Nouvelle piste cyclable"
    text, html = _parts(one)
    assert "Une nouveauté près de chez vous (Nouméa)" in text
    assert "Se désinscrire de ces e-mails" in text and "Se désinscrire" in html
    assert one["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"

    several = compose_alert(NOUMEA, ITEMS[:3], key, settings)
    assert several["Subject"] == "3 nouveautés près de chez vous"
    two_lines = _item(12, "commune", title="Une ligne\r\nBcc: quelqu'un@example.fr")
    assert compose_alert(NOUMEA, [two_lines], key, settings)["Subject"] == (
        "Nouveau projet : Une ligne Bcc: quelqu'un@example.fr"
    )
    nowhere = compose_alert(Recipient(988, "Europe/Paris", None), [item], key, settings)
    assert "Une nouveauté près de chez vous :" in _parts(nowhere)[0]


def test_times_follow_the_recipients_zone(smtp_sink: Sink) -> None:
    _, settings = smtp_sink
    digest = DigestContent(
        frequency="daily", period_start=date(2026, 12, 1), items=(ITEMS[2], ITEMS[1])
    )
    noumea, _ = _parts(compose_digest(NOUMEA, digest, "digest:988:daily:2026-12-01", settings))
    # 17:30 UTC is 04:30 the next day in Nouméa (UTC+11); 22:59 UTC on the 20th is 09:59 the 21st.
    assert "mercredi 2 décembre 2026, de 4 h 30 à 6 h" in noumea
    assert "Participation jusqu'au lundi 21 décembre 2026 à 9 h 59." in noumea
    assert "Votre résumé du mardi 1er décembre 2026" in noumea
    # Summer time in Paris: 16:00 UTC on 1 July is 18 h.
    summer = MeetingInfo(
        78,
        "balade_urbaine",
        "Balade",
        "Parvis",
        datetime(2026, 7, 1, 16, 0, tzinfo=UTC),
        datetime(2026, 7, 1, 17, 15, tzinfo=UTC),
    )
    july = DigestContent("daily", date(2026, 6, 30), (_item(15, "commune", meeting=summer),))
    paris, _ = _parts(compose_digest(LYON, july, "digest:4242:daily:2026-06-30", settings))
    assert "Balade urbaine : Balade" in paris
    assert "mercredi 1er juillet 2026, de 18 h à 19 h 15" in paris


def test_what_cannot_be_composed(smtp_sink: Sink) -> None:
    _, settings = smtp_sink
    empty = DigestContent("daily", date(2026, 12, 1), ())
    with pytest.raises(InvalidInput, match="empty digest"):
        compose_digest(LYON, empty, "digest:4242:daily:2026-12-01", settings)
    with pytest.raises(InvalidInput, match="at least one item"):
        compose_alert(LYON, [], "alert:4242:1:published:0:0", settings)
    lost = Recipient(4242, "Europe/Atlantis", None)
    with pytest.raises(InvalidInput, match="unknown time zone"):
        compose_alert(lost, [ITEMS[0]], "alert:4242:1:published:0:0", settings)
    with pytest.raises(InvalidInput, match="unknown time zone"):
        compose_digest(lost, DigestContent("daily", date(2026, 12, 1), ITEMS), "d:1", settings)
    naive = _item(16, "commune", closes_at=datetime(2026, 12, 20, 23, 0))
    with pytest.raises(InvalidInput, match="time zone"):
        compose_alert(LYON, [naive], "alert:4242:16:published:0:0", settings)
    with pytest.raises(InvalidInput, match="project 0"):
        compose_alert(LYON, [_item(0, "commune")], "alert:4242:0:published:0:0", settings)
    for bad_key in ("", "clé:é", "a b", "x" * 201):
        with pytest.raises(InvalidInput, match="mail key"):
            compose_alert(LYON, [ITEMS[0]], bad_key, settings)


def test_a_server_that_is_down_is_unavailable() -> None:
    settings = mail_settings(free_port())  # nobody listens there
    message = compose_alert(LYON, [ITEMS[0]], "alert:4242:11:recommended:0:0", settings)
    with pytest.raises(Unavailable, match=r"SMTP server 127\.0\.0\.1:\d+ unreachable"):
        SmtpSender(settings).send([message])
    SmtpSender(settings).send([])  # nothing to send: no connection, no error


def test_a_temporary_refusal_is_unavailable_a_permanent_one_invalid(smtp_sink: Sink) -> None:
    sink, settings = smtp_sink
    message = compose_alert(LYON, [ITEMS[0]], "alert:4242:11:recommended:0:0", settings)

    async def refuse_temporarily(*_: object) -> str:
        return "451 4.3.0 try again later"

    async def refuse(*_: object) -> str:
        return "554 5.7.1 rejected"

    sink.handle_DATA = refuse_temporarily  # type: ignore[method-assign]
    with pytest.raises(Unavailable, match="451"):
        SmtpSender(settings).send([message])
    sink.handle_DATA = refuse  # type: ignore[method-assign]
    with pytest.raises(InvalidInput, match="554") as refused:
        SmtpSender(settings).send([message])
    assert message["Message-ID"] in refused.value.detail
    assert sink.received == []
