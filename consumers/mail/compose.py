"""The loop's mails, in French: an instant alert or a digest, HTML and plain text.

Both are ``multipart/alternative`` (plain text first, HTML last, as RFC 2046 orders them),
rendered by Jinja2 from ``templates/`` with autoescape on the HTML. Every project link goes
through the engine's click redirect, the HTML carries an open pixel, and the headers carry
the RFC 8058 pair (``List-Unsubscribe`` with the HTTPS unsubscribe URL and
``List-Unsubscribe-Post: List-Unsubscribe=One-Click``). The ``Message-ID`` is derived from the
idempotency key (``mail_delivery.key``), so a mail re-sent after a crash is the same message
for every server and client on its way.

A daily round composes a million digests, so what does not depend on the recipient is
rendered once: an item's fragment (its texts, its times in one zone) is cached per item and
zone, a mail's frame (title, counts, commune, section headings) per those values, both cut
where the recipient's signed links go; a mail is then joins of those pieces and its links
(:mod:`consumers.mail.message` writes the bytes). About 0.1 ms per 10-item digest instead of
7 ms with ``EmailMessage`` (bench/README.md, "mail").

The items were read through the visibility rule for the recipient just before (the caller's
job, ``consumers/content.py``); nothing here reads the database.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from email.utils import formatdate, parseaddr
from functools import cache, lru_cache
from zoneinfo import ZoneInfo

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from markupsafe import Markup, escape

from consumers.content import SECTIONS, DigestContent, Item, MeetingInfo, Recipient, Section
from consumers.mail import links
from consumers.mail.message import Mail, address_header, alternative, crlf, unstructured
from consumers.settings import MailSettings
from contracts.errors import InvalidInput
from contracts.experiments import TemplateVariant as Template
from contracts.spaces import TOOL_LABELS, Tool

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
    return _message_id(key, _domain(settings.mail_from))


def _domain(mail_from: str) -> str:
    return parseaddr(mail_from)[1].rpartition("@")[2] or "geo-engine.example"


def _message_id(key: str, domain: str) -> str:
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
    body: Markup


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


# Where a recipient's value goes in a rendered piece: \x00name\x00. PostgreSQL text cannot
# hold a NUL, and a piece whose NULs do not frame a known slot is refused (_cut).
def _slot(name: str) -> Markup:
    return Markup(f"\x00{name}\x00")  # noqa: S704 - our own slot names


@dataclass(frozen=True)
class _Piece:
    """A rendered text cut at its slots: ``texts[0] slot[0] texts[1] … texts[-1]``."""

    texts: tuple[str, ...]
    slots: tuple[str, ...]

    def fill(self, values: dict[str, str]) -> str:
        out = [self.texts[0]]
        for slot, text in zip(self.slots, self.texts[1:], strict=True):
            out.append(values[slot])
            out.append(text)
        return "".join(out)


def _cut(rendered: str, known: frozenset[str]) -> _Piece:
    parts = crlf(rendered).split("\x00")
    slots = tuple(parts[1::2])
    if len(parts) % 2 == 0 or not known.issuperset(slots):
        raise InvalidInput("a text of the mail holds a NUL character")
    return _Piece(tuple(parts[0::2]), slots)


_URL = frozenset({"url"})


@dataclass(frozen=True)
class _Fragment:
    """An item in both parts, cut where its click URL goes."""

    text: tuple[str, ...]
    html: tuple[str, ...]


def _tool_label(tool: str) -> str:
    try:
        return TOOL_LABELS[Tool(tool)]
    except ValueError:
        return tool


def _meeting(meeting: MeetingInfo, zone: str, public_url: str) -> _Meeting:
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
        ics_url=f"{public_url}/v1/meetings/{meeting.meeting_id}.ics",
    )


@lru_cache(maxsize=16_384)  # about 2 kB each: 32 MB at most
def _fragment(item: Item, zone: str, public_url: str) -> _Fragment:
    """The item rendered once per zone: every recipient of a commune shares its items."""
    shown = _Shown(
        title=item.title,
        organisation=item.organisation,
        tool=_tool_label(item.tool),
        kind=KIND_LABELS.get(item.kind, item.kind),
        reason=item.reason,
        url=_slot("url"),
        closes=None if item.closes_at is None else french_datetime(item.closes_at, zone),
        meeting=None if item.meeting is None else _meeting(item.meeting, zone, public_url),
    )
    templates = environment()
    text = str(templates.get_template("_item.txt").module.item(shown))  # type: ignore[attr-defined]
    html = str(templates.get_template("_item.html").module.item(shown))  # type: ignore[attr-defined]
    return _Fragment(_cut(text, _URL).texts, _cut(html, _URL).texts)


@dataclass(frozen=True)
class _Frame:
    """What every mail of one configuration shares."""

    secret: str
    public_url: str
    click_prefixes: tuple[str, str]  # a click URL less its token, as text and in HTML
    from_line: str
    from_value: str
    domain: str
    recipient_template: str


@lru_cache(maxsize=8)
def _frame(mail_from: str, public_url: str, secret: str, recipient_template: str) -> _Frame:
    to = recipient_template.replace("{user_id}", "1")
    if not to.isascii() or not to.isprintable() or " " in to:
        raise InvalidInput(f"recipient template {recipient_template!r} is not an ASCII address")
    from_line, from_value = address_header("From", mail_from)
    return _Frame(
        secret=secret,
        public_url=public_url,
        click_prefixes=(
            links.click_url(public_url, ""),
            links.click_url(str(escape(public_url)), ""),
        ),
        from_line=from_line,
        from_value=from_value,
        domain=_domain(mail_from),
        recipient_template=recipient_template,
    )


def _frame_of(settings: MailSettings) -> _Frame:
    return _frame(
        settings.mail_from,
        settings.public_url,
        settings.link_secret.get_secret_value(),
        settings.recipient_template,
    )


_LAYOUT_SLOTS = frozenset(
    {"unsubscribe", "pixel", "body", *(f"g{n}" for n in range(len(SECTIONS)))}
)


@lru_cache(maxsize=4_096)
def _layout(
    template: str,
    sections: tuple[Section, ...],
    count: object,
    commune_name: str | None,
    public_url: str,
    title: str = "",
) -> tuple[_Piece, _Piece]:
    """The plain and HTML frame of a mail, cut at the recipient's links and items: slot
    ``body`` (an alert's items) or ``g0``, ``g1``… (a digest's ``sections``)."""
    values = {
        "groups": tuple(
            _Group(SECTION_HEADINGS[section], _slot(f"g{n}")) for n, section in enumerate(sections)
        ),
        "title": title,
        "count": count,
        "commune_name": commune_name,
        "settings_url": f"{public_url}/map",
        "unsubscribe_url": _slot("unsubscribe"),
        "pixel_url": _slot("pixel"),
        "body": _slot("body"),
    }
    templates = environment()
    text = templates.get_template(f"{template}.txt").render(values)
    html = templates.get_template(f"{template}.html").render(values)
    return _cut(text, _LAYOUT_SLOTS), _cut(html, _LAYOUT_SLOTS)


_dates: dict[int, str] = {}


def _date_header() -> str:
    """``Date:`` now, formatted once per second."""
    now = int(time.time())
    value = _dates.get(now)
    if value is None:
        _dates.clear()
        value = _dates[now] = formatdate(now, localtime=False)
    return value


def _nouveautes(count: int) -> str:
    return "1 nouveauté" if count == 1 else f"{count} nouveautés"


def _mail(
    recipient: Recipient,
    key: str,
    subject: str,
    frame: _Frame,
    layout: tuple[_Piece, _Piece],
    groups: Sequence[tuple[str, Sequence[Item]]],
) -> Mail:
    """The mail of ``groups`` of items, each with the name of its slot in ``layout``."""
    user = recipient.user_id
    try:
        unsubscribe_token = links.sign(links.LinkPayload("u", user, key), frame.secret)
        pixel_token = links.sign(links.LinkPayload("o", user, key), frame.secret)
        tokens = iter(
            links.click_tokens(
                user, key, [item.project_id for _, group in groups for item in group], frame.secret
            )
        )
    except ValueError as exc:
        raise InvalidInput(f"a link of the mail: {exc}") from None
    public = frame.public_url
    text_values = {
        "unsubscribe": links.unsubscribe_url(public, unsubscribe_token),
        "pixel": links.open_pixel_url(public, pixel_token),
    }
    html_values = {name: str(escape(url)) for name, url in text_values.items()}
    zone = recipient.timezone
    # A token is base64url and dots: only the base URL needs escaping in HTML.
    text_click, html_click = frame.click_prefixes
    for name, group in groups:
        fragments = [_fragment(item, zone, public) for item in group]
        group_tokens = [next(tokens) for _ in group]
        text_values[name] = "".join(
            [(text_click + t).join(f.text) for f, t in zip(fragments, group_tokens, strict=True)]
        )
        html_values[name] = "".join(
            [(html_click + t).join(f.html) for f, t in zip(fragments, group_tokens, strict=True)]
        )

    to = frame.recipient_template.replace("{user_id}", str(user))
    mid = _message_id(key, frame.domain)
    subject = " ".join(subject.split())  # one line, whatever a title holds
    date = _date_header()
    unsubscribe = f"<{text_values['unsubscribe']}>"
    headers = (
        ("From", frame.from_value),
        ("To", to),
        ("Subject", subject),
        ("Date", date),
        ("Message-ID", mid),
        # One unbroken line: RFC 5322 allows 998 characters; a folded or encoded URL is
        # one no client can use.
        ("List-Unsubscribe", unsubscribe),
        ("List-Unsubscribe-Post", "List-Unsubscribe=One-Click"),
        ("Auto-Submitted", "auto-generated"),  # RFC 3834: no vacation replies
    )
    lines = (
        frame.from_line,
        f"To: {to}",
        unstructured("Subject", subject),
        f"Date: {date}",
        f"Message-ID: {mid}",
        f"List-Unsubscribe: {unsubscribe}",
        "List-Unsubscribe-Post: List-Unsubscribe=One-Click",
        "Auto-Submitted: auto-generated",
    )
    boundary = f"=_{mid[1:33]}"
    raw, eight_bit = alternative(
        lines, boundary, layout[0].fill(text_values), layout[1].fill(html_values)
    )
    return Mail(
        key=key,
        message_id=mid,
        to=to,
        raw=raw,
        headers=headers,
        eight_bit=eight_bit,
        boundary=boundary,
    )


def _projets(count: int) -> str:
    return "1 projet" if count == 1 else f"{count} projets"


def at_commune(name: str) -> str:
    """« à Bayonne », « au Havre », « aux Mureaux », « à La Rochelle »: the preposition French
    contracts with the commune's article."""
    if name.startswith("Le "):
        return f"au {name[3:]}"
    if name.startswith("Les "):
        return f"aux {name[4:]}"
    return f"à {name}"


def alert_subject(items: Sequence[Item], commune_name: str | None, template: Template) -> str:
    """The subject of an alert about ``items`` in the experiment's ``template``: ``standard``
    « Nouveau projet : <titre> » (« 3 nouveautés près de chez vous » for several),
    ``question`` « Votre avis compte : <titre> » (« … : 3 projets près de chez vous »),
    ``local`` « Nouveau projet à Bayonne : <titre> » (standard without a commune)."""
    label = KIND_LABELS.get(items[0].kind, items[0].kind)
    one = len(items) == 1
    if template == "question":
        what = items[0].title if one else f"{_projets(len(items))} près de chez vous"
        return f"Votre avis compte : {what}"
    if template == "local" and commune_name:
        where = at_commune(commune_name)
        return (
            f"{label} {where} : {items[0].title}" if one else f"{_nouveautes(len(items))} {where}"
        )
    return f"{label} : {items[0].title}" if one else f"{_nouveautes(len(items))} près de chez vous"


def digest_subject(digest: DigestContent, commune_name: str | None, template: Template) -> str:
    """The subject of a digest in the experiment's ``template``: ``standard`` « Votre résumé
    du jour : 3 nouveautés près de chez vous », ``question`` « Votre avis compte : 3 projets
    près de chez vous », ``local`` « Votre résumé du jour à Bayonne : 3 nouveautés »
    (standard without a commune)."""
    count = len(digest.items)
    name = "Votre résumé du jour" if digest.frequency == "daily" else "Votre résumé de la semaine"
    if template == "question":
        return f"Votre avis compte : {_projets(count)} près de chez vous"
    if template == "local" and commune_name:
        return f"{name} {at_commune(commune_name)} : {_nouveautes(count)}"
    return f"{name} : {_nouveautes(count)} près de chez vous"


def compose_alert(
    recipient: Recipient,
    items: Sequence[Item],
    key: str,
    settings: MailSettings,
    template: Template = "standard",
) -> Mail:
    """An instant alert about ``items`` (at least one), for the mail of idempotency ``key``;
    ``template`` chooses the subject line (:func:`alert_subject`), nothing else.

    Raises InvalidInput for no items, an unknown time zone, naive times, or a key a link
    cannot carry (1-200 printable ASCII characters)."""
    if not items:
        raise InvalidInput("an alert needs at least one item")
    _check(recipient, key)
    frame = _frame_of(settings)
    subject = alert_subject(items, recipient.commune_name, template)
    layout = _layout("alert", (), len(items), recipient.commune_name, frame.public_url)
    return _mail(recipient, key, subject, frame, layout, [("body", items)])


def compose_digest(
    recipient: Recipient,
    digest: DigestContent,
    key: str,
    settings: MailSettings,
    template: Template = "standard",
) -> Mail:
    """A daily or weekly digest: its items grouped by section, narrowest first ("Dans votre
    commune" … "Partout en France"), each section keeping the items' order; ``template``
    chooses the subject line (:func:`digest_subject`), nothing else.

    Raises InvalidInput for an empty digest (none is sent), an unknown time zone, naive
    times, or a key a link cannot carry."""
    if not digest.items:
        raise InvalidInput("an empty digest is not sent")
    _check(recipient, key)
    frame = _frame_of(settings)
    by_section: dict[Section, list[Item]] = {}
    for item in digest.items:
        by_section.setdefault(item.section, []).append(item)
    sections = [section for section in SECTIONS if section in by_section]
    day = french_date(digest.period_start)
    if digest.frequency == "daily":
        title = f"Votre résumé du {day}"
    else:
        title = f"Votre résumé de la semaine du {day}"
    count = _nouveautes(len(digest.items))
    layout = _layout(
        "digest", tuple(sections), count, recipient.commune_name, frame.public_url, title
    )
    subject = digest_subject(digest, recipient.commune_name, template)
    return _mail(
        recipient,
        key,
        subject,
        frame,
        layout,
        [(f"g{n}", by_section[section]) for n, section in enumerate(sections)],
    )


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


def clear_caches() -> None:
    """Forget the rendered fragments and frames (benchmarks; templates changed in tests)."""
    _fragment.cache_clear()
    _layout.cache_clear()
