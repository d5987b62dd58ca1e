"""The loop's mails, in French: an instant alert or a digest, HTML and plain text.

Both are ``multipart/alternative`` (plain text first, HTML last, as RFC 2046 orders them),
rendered by Jinja2 from ``templates/`` with autoescape on the HTML. Every project link goes
through the engine's click redirect, the HTML carries an open pixel, and the headers carry
the RFC 8058 pair (``List-Unsubscribe`` with the HTTPS unsubscribe URL and
``List-Unsubscribe-Post: List-Unsubscribe=One-Click``). The ``Message-ID`` is derived from the
idempotency key (``mail_delivery.key``), so a mail re-sent after a crash is the same message
for every server and client on its way.

The items were read through the visibility rule for the recipient just before (the caller's
job, ``consumers/content.py``); nothing here reads the database.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from email.headerregistry import Address, BaseHeader, HeaderRegistry
from email.message import EmailMessage
from email.policy import default as default_policy
from email.utils import format_datetime, parseaddr
from functools import cache
from zoneinfo import ZoneInfo

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from consumers.content import SECTIONS, DigestContent, Item, MeetingInfo, Recipient, Section
from consumers.mail import links
from consumers.settings import MailSettings
from contracts.errors import InvalidInput
from contracts.spaces import TOOL_LABELS, Tool


class _HeaderClasses(HeaderRegistry):
    """The standard header registry, remembering the class it builds for each name: the
    standard one builds a new class for every header of every mail (a third of the time
    of composing one)."""

    def __init__(self) -> None:
        super().__init__()
        self._built: dict[str, type[BaseHeader]] = {}

    def __getitem__(self, name: str) -> type[BaseHeader]:
        built = self._built.get(name.lower())
        if built is None:
            built = self._built[name.lower()] = super().__getitem__(name)
        return built


_BODY_POLICY = default_policy.clone(header_factory=_HeaderClasses())
_HEADER_POLICY = _BODY_POLICY.clone(max_line_length=998)
SECTION_HEADINGS: dict[Section, str] = {
    "commune": "Dans votre commune",
    "epci": "Dans votre intercommunalité",
    "departement": "Dans votre département",
    "region": "Dans votre région",
    "france": "Partout en France",
}
KIND_LABELS = {
    "published": "Nouveau projet",
    "closing_soon": "Bientôt clos",
    "results": "Résultats publiés",
    "meeting_announced": "Rencontre annoncée",
    "meeting_reminder": "Rappel de rencontre",
    "recommended": "Recommandé pour vous",
}
MEETING_LABELS = {
    "reunion_publique": "Réunion publique",
    "atelier": "Atelier",
    "balade_urbaine": "Balade urbaine",
}
_DAYS = ("lundi", "mardi", "mercredi", "jeudi", "vendredi", "samedi", "dimanche")
_MONTHS = (
    "janvier",
    "février",
    "mars",
    "avril",
    "mai",
    "juin",
    "juillet",
    "août",
    "septembre",
    "octobre",
    "novembre",
    "décembre",
)


def french_date(moment: date) -> str:
    """``mardi 1er décembre 2026`` (a datetime: the date in its own zone)."""
    day = "1er" if moment.day == 1 else str(moment.day)
    return f"{_DAYS[moment.weekday()]} {day} {_MONTHS[moment.month - 1]} {moment.year}"


def french_time(moment: datetime) -> str:
    """``18 h 30``, ``9 h`` (typographie française)."""
    return f"{moment.hour} h {moment.minute:02d}" if moment.minute else f"{moment.hour} h"


def french_datetime(moment: datetime, zone: str) -> str:
    """``mardi 1er décembre 2026 à 18 h 30`` in the IANA ``zone``; ``moment`` must be aware."""
    if moment.tzinfo is None:
        raise InvalidInput("a time shown in a mail must carry its time zone")
    local = moment.astimezone(ZoneInfo(zone))
    return f"{french_date(local)} à {french_time(local)}"


def message_id(key: str, settings: MailSettings) -> str:
    """``<sha256-hex-of-key@domain>``, the domain of ``MailSettings.mail_from``: the same key
    always gives the same Message-ID (``mail_delivery.message_id``)."""
    domain = parseaddr(settings.mail_from)[1].rpartition("@")[2] or "geo-engine.example"
    return f"<{hashlib.sha256(key.encode('utf-8')).hexdigest()}@{domain}>"


def recipient_address(user_id: int, settings: MailSettings) -> str:
    """The To: address of a user, from ``MailSettings.recipient_template``."""
    return settings.recipient_template.replace("{user_id}", str(user_id))


@dataclass(frozen=True)
class _Meeting:
    label: str
    title: str
    place: str
    when: str
    ics_url: str


@dataclass(frozen=True)
class _Shown:
    """An item as the templates show it: texts in French, times in the recipient's zone."""

    title: str
    organisation: str
    tool: str
    kind: str
    reason: str
    url: str
    closes: str | None
    meeting: _Meeting | None


@dataclass(frozen=True)
class _Group:
    heading: str
    items: tuple[_Shown, ...]


@cache
def environment() -> Environment:
    """The templates of consumers/mail/templates (autoescaped when .html)."""
    return Environment(
        loader=PackageLoader("consumers.mail", "templates"),
        autoescape=select_autoescape(enabled_extensions=("html",), default_for_string=False),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        auto_reload=False,  # templates ship with the code: no stat() per mail
    )


def _tool_label(tool: str) -> str:
    try:
        return TOOL_LABELS[Tool(tool)]
    except ValueError:
        return tool


def _meeting(meeting: MeetingInfo, zone: str, settings: MailSettings) -> _Meeting:
    start = meeting.starts_at.astimezone(ZoneInfo(zone))
    end = meeting.ends_at.astimezone(ZoneInfo(zone))
    when = (
        f"{french_date(start)}, de {french_time(start)} à {french_time(end)}"
        if start.date() == end.date()
        else f"du {french_datetime(start, zone)} au {french_datetime(end, zone)}"
    )
    return _Meeting(
        label=MEETING_LABELS.get(meeting.kind, meeting.kind),
        title=meeting.title,
        place=meeting.place,
        when=when,
        ics_url=f"{settings.public_url}/v1/meetings/{meeting.meeting_id}.ics",
    )


def _shown(item: Item, recipient: Recipient, key: str, settings: MailSettings) -> _Shown:
    secret = settings.link_secret.get_secret_value()
    try:
        token = links.sign(links.LinkPayload("c", recipient.user_id, key, item.project_id), secret)
    except ValueError as exc:
        raise InvalidInput(f"item of project {item.project_id}: {exc}") from None
    return _Shown(
        title=item.title,
        organisation=item.organisation,
        tool=_tool_label(item.tool),
        kind=KIND_LABELS.get(item.kind, item.kind),
        reason=item.reason,
        url=links.click_url(settings.public_url, token),
        closes=None
        if item.closes_at is None
        else french_datetime(item.closes_at, recipient.timezone),
        meeting=None
        if item.meeting is None
        else _meeting(item.meeting, recipient.timezone, settings),
    )


def _nouveautes(count: int) -> str:
    return "1 nouveauté" if count == 1 else f"{count} nouveautés"


def _message(
    recipient: Recipient,
    key: str,
    subject: str,
    template: str,
    context: dict[str, object],
    settings: MailSettings,
) -> EmailMessage:
    secret = settings.link_secret.get_secret_value()
    unsubscribe = links.unsubscribe_url(
        settings.public_url, links.sign(links.LinkPayload("u", recipient.user_id, key), secret)
    )
    pixel = links.open_pixel_url(
        settings.public_url, links.sign(links.LinkPayload("o", recipient.user_id, key), secret)
    )
    values = {
        **context,
        "recipient": recipient,
        "unsubscribe_url": unsubscribe,
        "pixel_url": pixel,
        "settings_url": f"{settings.public_url}/map",
    }
    templates = environment()
    text = templates.get_template(f"{template}.txt").render(values)
    html = templates.get_template(f"{template}.html").render(values)

    message = EmailMessage(policy=_BODY_POLICY)
    message["Subject"] = " ".join(subject.split())  # one line, whatever a title holds
    message["From"] = settings.mail_from
    message["To"] = Address(addr_spec=recipient_address(recipient.user_id, settings))
    message["Date"] = format_datetime(datetime.now(UTC))
    message["Message-ID"] = message_id(key, settings)
    message["List-Unsubscribe"] = f"<{unsubscribe}>"
    message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    message["Auto-Submitted"] = "auto-generated"  # RFC 3834: no vacation replies
    message.set_content(text, subtype="plain", charset="utf-8", cte="quoted-printable")
    message.add_alternative(html, subtype="html", charset="utf-8", cte="quoted-printable")
    # Bodies are encoded (quoted-printable, 76-character lines) by now; headers are folded when
    # the mail is written out. At 78 characters the standard library turns a long unbroken
    # List-Unsubscribe URL into an RFC 2047 encoded word, which no client reads as a URL:
    # allow RFC 5322's 998 for the headers.
    message.policy = _HEADER_POLICY
    return message


def compose_alert(
    recipient: Recipient, items: Sequence[Item], key: str, settings: MailSettings
) -> EmailMessage:
    """An instant alert about ``items`` (at least one), for the mail of idempotency ``key``.

    Raises InvalidInput for no items, an unknown time zone, naive times, or a key a link
    cannot carry (1-200 printable ASCII characters)."""
    if not items:
        raise InvalidInput("an alert needs at least one item")
    _check(recipient, key)
    shown = tuple(_shown(item, recipient, key, settings) for item in items)
    subject = (
        f"{shown[0].kind} : {items[0].title}"
        if len(items) == 1
        else f"{_nouveautes(len(items))} près de chez vous"
    )
    return _message(recipient, key, subject, "alert", {"items": shown}, settings)


def compose_digest(
    recipient: Recipient, digest: DigestContent, key: str, settings: MailSettings
) -> EmailMessage:
    """A daily or weekly digest: its items grouped by section, narrowest first ("Dans votre
    commune" … "Partout en France"), each section keeping the items' order.

    Raises InvalidInput for an empty digest (none is sent), an unknown time zone, naive
    times, or a key a link cannot carry."""
    if not digest.items:
        raise InvalidInput("an empty digest is not sent")
    _check(recipient, key)
    groups = tuple(
        _Group(
            SECTION_HEADINGS[section],
            tuple(
                _shown(item, recipient, key, settings)
                for item in digest.items
                if item.section == section
            ),
        )
        for section in SECTIONS
        if any(item.section == section for item in digest.items)
    )
    day = french_date(digest.period_start)
    if digest.frequency == "daily":
        title, subject_name = f"Votre résumé du {day}", "Votre résumé du jour"
    else:
        title, subject_name = f"Votre résumé de la semaine du {day}", "Votre résumé de la semaine"
    subject = f"{subject_name} : {_nouveautes(len(digest.items))} près de chez vous"
    context: dict[str, object] = {
        "groups": groups,
        "title": title,
        "count": _nouveautes(len(digest.items)),
    }
    return _message(recipient, key, subject, "digest", context, settings)


def _check(recipient: Recipient, key: str) -> None:
    try:
        ZoneInfo(recipient.timezone)
    except (ValueError, KeyError) as exc:  # ZoneInfoNotFoundError is a KeyError
        raise InvalidInput(f"unknown time zone {recipient.timezone!r}") from exc
    _check_key(key)


def _check_key(key: str) -> None:
    if not 1 <= len(key) <= links.MAX_KEY_CHARS or not key.isascii() or not key.isprintable():
        raise InvalidInput(f"a mail key is 1 to 200 printable ASCII characters, not {key!r}")
    if " " in key:
        raise InvalidInput(f"a mail key has no space: {key!r}")
