"""The in-app inbox: a user's items read through the visibility rule again, and marked read.

Rows are written by the fan-out (consumers/fanout.py). Reading goes through
``visible_projects(user)`` every time, so an item whose project was made private after the
fan-out disappears for a non-member, from the pages and from the unread count alike; marking
read touches only items the user may see, so its count tells nothing of the others.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import psycopg

from contracts.inbox import InboxItem, InboxKey, InboxMeeting
from geo_engine.audience import LEVELS
from geo_engine.db import load_sql

PAGE = load_sql("consumers", "inbox.sql")
UNREAD = load_sql("consumers", "inbox_unread.sql")
MARK_READ = load_sql("consumers", "inbox_read.sql")


@dataclass(frozen=True)
class After:
    """The keyset of the last item of a page: items strictly older come next."""

    created_at: datetime
    project_id: int
    kind: str
    meeting_id: int
    lead_days: int


def level_word(level: int) -> str:
    """inbox.level as a word: an index into LEVELS, or ``followed`` (-1: a follower of the
    organisation outside the project's audience)."""
    return LEVELS[level] if 0 <= level < len(LEVELS) else "followed"


def page(
    conn: psycopg.Connection,
    user_id: int,
    *,
    unread: bool | None = None,
    limit: int = 50,
    after: After | None = None,
) -> list[InboxItem]:
    """Up to ``limit`` items of ``user_id``'s inbox, newest first, after ``after``;
    ``unread`` True: unread only, False: read only, None: all."""
    params = {
        "user": user_id,
        "unread": unread,
        "limit": limit,
        "after_created": after and after.created_at,
        "after_project": after and after.project_id,
        "after_kind": after and after.kind,
        "after_meeting": after and after.meeting_id,
        "after_lead": after and after.lead_days,
    }
    items = []
    for row in conn.execute(PAGE, params).fetchall():
        (pid, title, org, kind, mid, lead, reason, level, created, read_at, *meeting) = row
        mkind, mtitle, mplace, starts, ends, cancelled = meeting
        items.append(
            InboxItem(
                project_id=pid,
                title=title,
                organisation=org,
                kind=kind,
                meeting_id=mid,
                lead_days=lead,
                reason=reason,
                level=level_word(level),
                created_at=created,
                read=read_at is not None,
                meeting=None
                if mkind is None
                else InboxMeeting(
                    meeting_id=mid,
                    kind=mkind,
                    title=mtitle,
                    place=mplace,
                    starts_at=starts,
                    ends_at=ends,
                    cancelled=cancelled is not None,
                ),
            )
        )
    return items


def unread_count(conn: psycopg.Connection, user_id: int) -> int:
    """Unread items ``user_id`` may still see."""
    row = conn.execute(UNREAD, {"user": user_id}).fetchone()
    assert row is not None
    return int(row[0])


def mark_read(conn: psycopg.Connection, user_id: int, keys: Sequence[InboxKey] | None) -> int:
    """Mark read the items ``keys`` of ``user_id`` (None: every item) that the user may see
    and had not read; returns how many. Idempotent: a second call marks 0."""
    keys = keys or []
    row = conn.execute(
        MARK_READ,
        {
            "user": user_id,
            "all": not keys,
            "projects": [k.project_id for k in keys],
            "kinds": [k.kind for k in keys],
            "meetings": [k.meeting_id for k in keys],
            "leads": [k.lead_days for k in keys],
        },
    ).fetchone()
    assert row is not None
    return int(row[0])
