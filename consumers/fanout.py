"""Fan-out: from a project event to one inbox row per user it concerns and who wants it.

The audience is the ground's ``project_audience`` (which applies the visibility rule: a
private project reaches its organisation's members only), plus, for a public project, the
organisation's followers outside it; users who muted the project's space, tool or one of its
themes (``app_user.notifications``) are left out, and so are those whose relevance, the
recommender's weighted scorer on the features known at fan-out, is not above
``LoopSettings.relevance_threshold``. The frequency is not a filter: the inbox always gets the
row, the alert and digest rounds decide what is mailed. Each project is one
``INSERT … SELECT … ON CONFLICT DO NOTHING`` (``fanout.sql``): handling an event twice, or a
scheduled pass running twice, adds nothing.

Rows (table ``inbox``, migration 0008): ``level`` is the index into
:data:`geo_engine.audience.LEVELS` of the narrowest reason, or -1 for a follower reached by the
follow alone; ``priority`` 2 for a civic deadline in the user's own commune, else 1.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from uuid import UUID

import psycopg
from psycopg import sql

from consumers.settings import LoopSettings
from consumers.worker import Worker
from contracts.errors import InvalidInput, NotFound
from contracts.events import (
    Event,
    MeetingAnnounced,
    ProjectMadePublic,
    ProjectPublished,
    ProjectResultsPublished,
)
from geo_engine.audience import LEVELS
from geo_engine.db import load_sql
from recommender.scorers import LinearScorer, load_weighted

FANOUT = load_sql("consumers", "fanout.sql")

#: Event type → inbox kind.
KINDS: dict[str, str] = {
    "project.published": "published",
    "project.made_public": "published",
    "project.results_published": "results",
    "meeting.announced": "meeting_announced",
}

#: Tools whose closing is a civic deadline: a vote, a consultation, a petition… closing soon
#: in the user's own commune comes first in the alert budget (priority 2).
DEADLINE_TOOLS: frozenset[str] = frozenset(
    {"votation", "consultation", "questionnaire", "budget_participatif", "petition"}
)

_HANDLED = (ProjectPublished, ProjectMadePublic, ProjectResultsPublished, MeetingAnnounced)
FOLLOWER = -1  # inbox.level of a follower outside the project's audience


@dataclass(frozen=True)
class Relevance:
    """What of the weighted scorer applies at fan-out: the statement's score parameters."""

    level_weights: list[float]  # LEVELS order, then level:epci_xxl
    space_weights: dict[str, float]  # space → weight (space:loi, space:idees)
    interest: float
    followed: float
    muted: float
    threshold: float

    @classmethod
    def of(cls, scorer: LinearScorer, threshold: float) -> Relevance:
        """The weights of ``scorer`` (centred scorers shift every user alike, so the centre is
        folded into the threshold) and the threshold users must pass."""
        w = scorer.weights
        names = [f"level:{level}" for level in LEVELS] + ["level:epci_xxl"]
        centre = sum(w.get(n, 0.0) * c for n, c in scorer.centre.items())
        return cls(
            level_weights=[w.get(n, 0.0) for n in names],
            space_weights={s: w.get(f"space:{s}", 0.0) for s in ("loi", "idees")},
            interest=w.get("interest_declared", 0.0),
            followed=w.get("followed", 0.0),
            muted=w.get("theme_muted", 0.0),
            threshold=threshold + centre,
        )

    def params(self) -> dict[str, object]:
        """The statement's parameters of the score (fanout.sql names them)."""
        return {
            "levels": list(LEVELS),
            "level_weights": self.level_weights,
            "space_weights": json.dumps(self.space_weights),
            "w_interest": self.interest,
            "w_followed": self.followed,
            "w_muted": self.muted,
            "threshold": self.threshold,
        }


def fan_out(
    conn: psycopg.Connection,
    project_id: int,
    kind: str,
    relevance: Relevance,
    *,
    meeting_id: int = 0,
    lead_days: int = 0,
    event_id: UUID | None = None,
    deadline: bool = False,
) -> int:
    """Write the inbox rows of one project (``project.id``) and ``kind`` (an ``inbox.kind``),
    in the caller's transaction; returns the rows added (0 when all were there already).
    ``meeting_id`` and ``lead_days`` are 0 but for meetings' kinds; ``event_id`` is the event
    that caused them, if any; ``deadline``: a civic deadline, priority 2 in the user's own
    commune. Raises NotFound for an unknown project."""
    row = conn.execute("SELECT themes FROM project WHERE id = %s", (project_id,)).fetchone()
    if row is None:
        raise NotFound(f"project {project_id} does not exist")
    shared = (
        sql.SQL(" + ").join(
            sql.SQL("({} = ANY (u.interests))::int").format(sql.Literal(t)) for t in row[0]
        )
        if row[0]
        else sql.SQL("0")
    )
    params = {
        "project": project_id,
        "kind": kind,
        "meeting": meeting_id,
        "lead": lead_days,
        "event": event_id,
        "deadline": deadline,
        **relevance.params(),
    }
    with conn.cursor() as cur:
        # Planned for this project (its scope decides which branch reads millions of rows).
        # No JIT (compiling costs more than it saves here), and room to hash the users.
        cur.execute("SET LOCAL jit = off")
        cur.execute("SET LOCAL work_mem = '256MB'")
        cur.execute(sql.SQL(FANOUT).format(shared=shared), params, prepare=False)
        return cur.rowcount


def handler(
    loop: LoopSettings | None = None, scorer: LinearScorer | None = None
) -> Callable[[psycopg.Connection, Sequence[Event]], None]:
    """The fan-out worker's ``handle``: each event of the batch, in stream order, fanned out
    (one statement per project event). A project missing at handling time raises NotFound
    (dead-lettered); one made private since reaches its members only; a meeting cancelled or
    missing gives no row (a missing one raises NotFound)."""
    relevance = Relevance.of(
        scorer or load_weighted(), (loop or LoopSettings()).relevance_threshold
    )

    def handle(conn: psycopg.Connection, events: Sequence[Event]) -> None:
        for event in events:
            kind = KINDS.get(event.type)
            if kind is None or not isinstance(event, _HANDLED):
                raise InvalidInput(f"the fan-out does not handle {event.type} events")
            meeting_id = 0
            if isinstance(event, MeetingAnnounced):
                row = conn.execute(
                    "SELECT cancelled_at IS NOT NULL FROM meeting"
                    " WHERE id = %s AND project_id = %s",
                    (event.meeting_id, event.project_id),
                ).fetchone()
                if row is None:
                    raise NotFound(
                        f"meeting {event.meeting_id} of project {event.project_id} does not exist"
                    )
                if row[0]:
                    continue
                meeting_id = event.meeting_id
            fan_out(
                conn,
                event.project_id,
                kind,
                relevance,
                meeting_id=meeting_id,
                event_id=event.event_id,
            )

    return handle


def worker(loop: LoopSettings | None = None, scorer: LinearScorer | None = None) -> Worker:
    """The ``fanout`` consumer group on the ``project`` stream."""
    return Worker("fanout", "project", frozenset(KINDS), handler(loop, scorer))


def closing_soon(
    conn: psycopg.Connection,
    now: datetime,
    days: int,
    loop: LoopSettings | None = None,
    scorer: LinearScorer | None = None,
) -> int:
    """Rows of kind ``closing_soon`` for the audience of every open project closing within
    ``days`` days of ``now`` (aware); priority 2 where the tool is a civic deadline
    (:data:`DEADLINE_TOOLS`) and the project concerns the user's own commune. Once per
    (user, project): a second pass adds nothing. Returns the rows added."""
    if now.tzinfo is None:
        raise InvalidInput("now must carry its time zone")
    relevance = Relevance.of(
        scorer or load_weighted(), (loop or LoopSettings()).relevance_threshold
    )
    projects = conn.execute(
        """SELECT id, tool FROM project
           WHERE status = 'open' AND closes_at > %s AND closes_at <= %s ORDER BY id""",
        (now, now + timedelta(days=days)),
    ).fetchall()
    return sum(
        fan_out(conn, pid, "closing_soon", relevance, deadline=tool in DEADLINE_TOOLS)
        for pid, tool in projects
    )


def meeting_reminders(
    conn: psycopg.Connection,
    now: datetime,
    leads: Sequence[int],
    loop: LoopSettings | None = None,
    scorer: LinearScorer | None = None,
) -> int:
    """Rows of kind ``meeting_reminder`` (``meeting_id``, ``lead_days``) for the audience of
    every meeting not cancelled starting within a lead of ``now`` (aware): the reminder of lead
    L is due for a meeting starting after the next shorter lead and within L days (a meeting
    announced the day before gets the 1-day reminder only). Once per (user, meeting, lead).
    Returns the rows added."""
    if now.tzinfo is None:
        raise InvalidInput("now must carry its time zone")
    if any(lead < 1 for lead in leads):
        raise InvalidInput(f"reminder leads must be whole days ≥ 1, got {list(leads)}")
    relevance = Relevance.of(
        scorer or load_weighted(), (loop or LoopSettings()).relevance_threshold
    )
    ordered = sorted(set(leads))
    added = 0
    for shorter, lead in zip([0, *ordered], ordered, strict=False):
        meetings = conn.execute(
            """SELECT id, project_id FROM meeting
               WHERE cancelled_at IS NULL AND starts_at > %s AND starts_at <= %s ORDER BY id""",
            (now + timedelta(days=shorter), now + timedelta(days=lead)),
        ).fetchall()
        for mid, pid in meetings:
            added += fan_out(
                conn, pid, "meeting_reminder", relevance, meeting_id=mid, lead_days=lead
            )
    return added
