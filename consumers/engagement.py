"""The engagement worker: opens, clicks, participations, dismissals and unsubscribes, back
into the engine.

Each batch is one statement (``engagement.sql``): every event into ``engagement_event``
(partitioned by month), clicks and participations counted up in ``engagement`` (what the
recommender reads: a click changes the next ranking), dismissals into
``recommendation_feedback`` as ``not_interested``. Unsubscribes took effect when they were
written; here they are only recorded. A project that does not exist makes the event a
:class:`~contracts.errors.NotFound` (dead-lettered); an event of a user who no longer exists
(erased) is left out, so that erasure is not undone.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

import psycopg

from consumers.worker import Worker
from contracts.errors import NotFound
from contracts.events import Event
from geo_engine.db import load_sql

_WRITE = load_sql("consumers", "engagement.sql")
_MISSING_PROJECTS = (
    "SELECT p FROM unnest(%s::int8[]) AS p WHERE NOT EXISTS (SELECT 1 FROM project WHERE id = p)"
)

KINDS = {
    "notification.opened": "opened",
    "notification.clicked": "clicked",
    "project.participated": "participated",
    "recommendation.dismissed": "dismissed",
    "notification.unsubscribed": "unsubscribed",
}


def _ensure_partitions(conn: psycopg.Connection, events: Sequence[Event]) -> None:
    # Before any row of a month lands in the default partition (which would then forbid
    # creating the month's own); an existing month costs a catalog look-up.
    months = sorted({date(e.occurred_at.year, e.occurred_at.month, 1) for e in events})
    for month in months:
        conn.execute("SELECT ensure_engagement_partitions(%s, 1)", (month,))


def handle(conn: psycopg.Connection, events: Sequence[Event]) -> None:
    """Write a batch of engagement events (set-wise; see the module). Raises NotFound naming
    the projects that do not exist."""
    projects = [getattr(e, "project_id", None) for e in events]
    missing = conn.execute(_MISSING_PROJECTS, ([p for p in set(projects) if p],)).fetchall()
    if missing:
        raise NotFound(
            "no project " + ", ".join(str(row[0]) for row in sorted(missing)) + " in the engine"
        )
    _ensure_partitions(conn, events)
    conn.execute(
        _WRITE,
        {
            "ids": [e.event_id for e in events],
            "users": [getattr(e, "user_id") for e in events],  # noqa: B009  every kind has it
            "kinds": [KINDS[e.type] for e in events],
            "projects": projects,
            "notifications": [getattr(e, "notification", None) for e in events],
            "at": [e.occurred_at for e in events],
        },
    )


WORKER = Worker(name="engagement", stream="engagement", types=frozenset(KINDS), handle=handle)
