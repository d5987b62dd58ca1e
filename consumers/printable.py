"""The printable weekly digest of a commune: an A4 poster ("affiche") a town hall can post or
hand to residents who are rarely online, in HTML and PDF (WeasyPrint).

For a commune (INSEE code; an arrondissement municipal answers for its commune) and an ISO
week (``2026-W49``, local to the commune's time zone): the public projects that concern the
commune (``geo_engine.audience.candidates`` for an anonymous viewer: the visibility rule, so a
private project never appears) still open or upcoming, those closing within
:data:`CLOSING_SOON` first, grouped by territory, and the meetings of those projects in the
week. Everything a person reads is French.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import psycopg
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from contracts.errors import InvalidInput, NotFound
from contracts.meetings import KIND_LABELS
from geo_engine.audience import candidates

WEEK = re.compile(r"([0-9]{4})-W([0-9]{2})", re.ASCII)
CLOSING_SOON = timedelta(days=14)  # from the week's Monday: "derniers jours pour participer"
PER_SECTION = 8  # projects a section shows at most: the poster is one A4 page

# Sections narrowest first; a level word of project_candidates -> its section (every word of
# geo_engine.audience.LEVELS has one: tests/test_printable.py).
SECTION_TITLES = {
    "commune": "Dans votre commune",
    "epci": "Dans votre intercommunalité",
    "departement": "Dans votre département",
    "region": "Dans votre région",
    "france": "Partout en France",
}
SECTION_OF_LEVEL = {
    "commune": "commune",
    "arrondissement": "commune",
    "area": "commune",
    "radius": "commune",
    "epci": "epci",
    "departement": "departement",
    "region": "region",
    "national": "france",
}
_DAYS = ("lundi", "mardi", "mercredi", "jeudi", "vendredi", "samedi", "dimanche")
_MONTHS = (
    "janvier", "février", "mars", "avril", "mai", "juin",
    "juillet", "août", "septembre", "octobre", "novembre", "décembre",
)  # fmt: skip


def french_date(day: date) -> str:
    """``jeudi 3 décembre 2026``."""
    first = "1er" if day.day == 1 else str(day.day)
    return f"{_DAYS[day.weekday()]} {first} {_MONTHS[day.month - 1]} {day.year}"


def french_time(moment: datetime) -> str:
    """``18 h 30``, ``9 h``."""
    return f"{moment.hour} h {moment.minute:02d}" if moment.minute else f"{moment.hour} h"


def parse_week(text: str) -> date:
    """The Monday of an ISO week written ``YYYY-Www`` (ASCII digits); InvalidInput otherwise."""
    found = WEEK.fullmatch(text)
    if found is None:
        raise InvalidInput(
            f"week: {text!r} is not an ISO week; write it like 2026-W49",
            errors=[{"where": "query.week", "reason": "expected YYYY-Www"}],
        )
    try:
        return date.fromisocalendar(int(found[1]), int(found[2]), 1)
    except ValueError:
        raise InvalidInput(
            f"week: {text} does not exist (an ISO year has 52 or 53 weeks)",
            errors=[{"where": "query.week", "reason": "no such week"}],
        ) from None


def week_name(monday: date) -> str:
    year, week, _ = monday.isocalendar()
    return f"{year}-W{week:02d}"


@dataclass(frozen=True)
class PosterProject:
    project_id: int
    title: str
    organisation: str
    tool: str
    status: str
    closes_at: datetime | None
    closes_label: str | None


@dataclass(frozen=True)
class PosterMeeting:
    meeting_id: int
    kind_label: str
    title: str
    place: str
    project_title: str
    day_label: str
    hours_label: str


@dataclass(frozen=True)
class PosterSection:
    key: str
    title: str
    projects: list[PosterProject]


@dataclass(frozen=True)
class Poster:
    """What one commune's poster shows for one week (times in the commune's zone)."""

    commune_code: str
    commune_name: str
    week: str
    monday: date
    closing_soon: list[PosterProject]
    sections: list[PosterSection]
    meetings: list[PosterMeeting] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not (self.closing_soon or self.sections or self.meetings)


def _commune(conn: psycopg.Connection, code: str) -> tuple[str, str, str]:
    """(code, name, IANA zone) of a commune, or of the commune of an arrondissement code."""
    row = conn.execute(
        """SELECT c.code, c.name, c.timezone FROM commune AS c
           WHERE c.code = %(code)s
              OR c.code = (SELECT a.commune_code FROM arrondissement AS a WHERE a.code = %(code)s)
           ORDER BY c.code = %(code)s DESC LIMIT 1""",
        {"code": code},
    ).fetchone()
    if row is None:
        raise NotFound(f"no commune with INSEE code {code}")
    return str(row[0]), str(row[1]), str(row[2] or "Europe/Paris")


def poster(
    conn: psycopg.Connection, code: str, week: str | None = None, now: datetime | None = None
) -> Poster:
    """The poster of commune ``code`` for ``week`` (``YYYY-Www``; default: the week of
    ``now``, itself defaulting to the present, in the commune's zone). NotFound for an
    unknown commune, InvalidInput for a bad week."""
    commune_code, name, zone_name = _commune(conn, code)
    zone = ZoneInfo(zone_name)
    if week is None:
        today = (now or datetime.now(UTC)).astimezone(zone).date()
        monday = today - timedelta(days=today.weekday())
    else:
        monday = parse_week(week)
    start = datetime.combine(monday, time(0), zone)
    end = datetime.combine(monday + timedelta(days=7), time(0), zone)
    found = candidates(conn, [commune_code])  # anonymous: public projects only
    level_of = found.of(commune_code)
    ids = sorted(level_of)
    rows = conn.execute(
        """SELECT p.id, p.title, o.name, p.tool, p.status, p.closes_at
           FROM visible_projects(NULL) AS p JOIN organisation AS o ON o.id = p.organisation_id
           WHERE p.id = ANY(%(ids)s) AND p.status IN ('open', 'upcoming')
             AND (p.closes_at IS NULL OR p.closes_at >= %(start)s)
           ORDER BY p.closes_at NULLS LAST, p.title, p.id""",
        {"ids": ids, "start": start},
    ).fetchall()
    closing: list[PosterProject] = []
    by_section: dict[str, list[PosterProject]] = {key: [] for key in SECTION_TITLES}
    for project_id, title, organisation, tool, status, closes_at in rows:
        label = None
        if closes_at is not None:
            local = closes_at.astimezone(zone)
            label = f"jusqu'au {french_date(local.date())}"
        item = PosterProject(project_id, title, organisation, tool, status, closes_at, label)
        if closes_at is not None and closes_at < start + CLOSING_SOON:
            closing.append(item)
        else:
            by_section[SECTION_OF_LEVEL[level_of[project_id]]].append(item)
    sections = [
        PosterSection(key, SECTION_TITLES[key], items[:PER_SECTION])
        for key, items in by_section.items()
        if items
    ]
    meeting_rows = conn.execute(
        """SELECT m.id, m.kind, m.title, m.place, p.title, m.starts_at, m.ends_at
           FROM meeting AS m JOIN visible_projects(NULL) AS p ON p.id = m.project_id
           WHERE m.project_id = ANY(%(ids)s) AND m.cancelled_at IS NULL
             AND m.starts_at >= %(start)s AND m.starts_at < %(end)s
           ORDER BY m.starts_at, m.id""",
        {"ids": ids, "start": start, "end": end},
    ).fetchall()
    meetings = []
    for meeting_id, kind, title, place, project_title, starts_at, ends_at in meeting_rows:
        starts, ends = starts_at.astimezone(zone), ends_at.astimezone(zone)
        meetings.append(
            PosterMeeting(
                meeting_id,
                KIND_LABELS[kind],
                title,
                place,
                project_title,
                french_date(starts.date()),
                f"de {french_time(starts)} à {french_time(ends)}",
            )
        )
    return Poster(commune_code, name, week_name(monday), monday, closing, sections, meetings)


_ENV = Environment(
    loader=PackageLoader("consumers", "printable_templates"),
    autoescape=select_autoescape(["html"]),
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


def render_html(poster: Poster, public_url: str) -> str:
    """The poster as one HTML page laid out for A4 (print CSS); ``public_url`` is where
    residents reach the engine (printed as the address to follow it online)."""
    return _ENV.get_template("affiche.html").render(
        poster=poster,
        week_label=f"semaine du {french_date(poster.monday)}",
        public_url=public_url.rstrip("/"),
    )


def render_pdf(html: str) -> bytes:
    """The HTML poster as a PDF (WeasyPrint; fonts and layout from the page's own CSS)."""
    # WeasyPrint takes a second to import (Pango, fonts): only the PDF answers pay for it.
    from weasyprint import HTML  # type: ignore[import-untyped]

    pdf: bytes = HTML(string=html).write_pdf()
    return pdf
