"""What a mail or the inbox shows of one item, agreed between the rounds that choose items
(consumers/alerts.py, consumers/digest.py) and the templates that render them (consumers/mail).

Everything here was read through the visibility rule for its recipient just before rendering.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Literal

# Digest sections, narrowest first: "Dans votre commune", "Dans votre intercommunalité",
# "Dans votre département", "Dans votre région", "Partout en France".
Section = Literal["commune", "epci", "departement", "region", "france"]
SECTIONS: tuple[Section, ...] = ("commune", "epci", "departement", "region", "france")


@dataclass(frozen=True)
class MeetingInfo:
    """A physical meeting of a project (times are aware datetimes, shown in the recipient's
    time zone)."""

    meeting_id: int
    kind: str  # reunion_publique | atelier | balade_urbaine
    title: str
    place: str
    starts_at: datetime
    ends_at: datetime


@dataclass(frozen=True)
class Item:
    """One inbox row as shown: ``kind`` is ``inbox.kind``; ``reason`` is French, for a person;
    ``tool`` a ``contracts.spaces.Tool`` value; ``closes_at`` aware or None."""

    project_id: int
    title: str
    organisation: str
    tool: str
    kind: str
    reason: str
    section: Section
    closes_at: datetime | None
    meeting: MeetingInfo | None = None


@dataclass(frozen=True)
class Recipient:
    """Who a mail goes to: ``timezone`` is the IANA zone the user's times are shown in."""

    user_id: int
    timezone: str
    commune_name: str | None


@dataclass(frozen=True)
class DigestContent:
    """One digest: its local period (the day, or the Monday of the ISO week) and its items,
    ranked, at most one per (project, kind, meeting)."""

    frequency: Literal["daily", "weekly"]
    period_start: date
    items: tuple[Item, ...]
