"""Physical meetings of projects (réunion publique, atelier, balade urbaine): writes with their
outbox events, and reads through the visibility rule.

Writes go like contributions (``geo_engine/writes.py``): the import (``store_meetings``,
trusted, all or nothing, refusals naming line and field) and the API (``announce``,
``change``, ``cancel``) write the rows and their events (``meeting.announced``,
``meeting.updated``, ``meeting.cancelled``) in one transaction. Who may write: platform staff,
or the admins and agents of the project's organisation. The checks run in the order of
``writes.py``: signed in; the project (or the meeting's project) visible to the caller, else
the answer of a missing one (:func:`no_meeting`, :func:`no_project`); then the role (403).
The sign-in, role and id rules are ``writes.py``'s own (this module sits above it).

Reads (one meeting, the map's meetings in a box, the ``.ics``) show a meeting only when its
project is in ``visible_projects(viewer)``: a private project's meeting is, for a non-member,
exactly a missing one.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import psycopg
from icalendar import Calendar
from icalendar import Event as IcsEvent

from contracts.errors import Conflict, NotFound
from contracts.meetings import KIND_LABELS, MeetingKind, MeetingRecord, MeetingView, MeetingWrite
from contracts.users import Home
from geo_engine.db import copy_rows, load_sql
from geo_engine.jsonl import ImportRejected, Line
from geo_engine.outbox import insert_events
from geo_engine.writes import Actor, free_id, require_role, signed_in

WRITER_ROLES = {"admin", "agent"}
MEETINGS_IN_BBOX = load_sql("geo_engine", "meetings_in_bbox.sql")


def no_meeting(meeting_id: int) -> str:
    """The one answer for a meeting that does not exist or whose project is hidden."""
    return f"no meeting {meeting_id}"


def no_project(project_id: int) -> str:
    return f"no project {project_id}"


# --- writes ----------------------------------------------------------------------------------

# One event per meeting written: announced when inserted, updated when a field differed.
MEETING_EVENTS = insert_events(
    """(SELECT CASE WHEN w.inserted THEN 'meeting.announced' ELSE 'meeting.updated' END AS type,
               jsonb_build_object('meeting_id', w.id, 'project_id', w.project_id,
                                  'organisation_id', p.organisation_id) AS payload
        FROM written AS w JOIN project AS p ON p.id = w.project_id)"""
)

UPSERT = (
    """WITH written AS (
           INSERT INTO meeting AS t (id, project_id, kind, title, place, location, starts_at,
                                     ends_at)
           SELECT id, project_id, kind, title, place, location, starts_at, ends_at
           FROM stage_meeting
           ON CONFLICT (id) DO UPDATE
           SET kind = EXCLUDED.kind, title = EXCLUDED.title, place = EXCLUDED.place,
               location = EXCLUDED.location, starts_at = EXCLUDED.starts_at,
               ends_at = EXCLUDED.ends_at, updated_at = now()
           WHERE (t.kind, t.title, t.place, t.starts_at, t.ends_at)
                     IS DISTINCT FROM
                 (EXCLUDED.kind, EXCLUDED.title, EXCLUDED.place, EXCLUDED.starts_at,
                  EXCLUDED.ends_at)
              OR NOT (t.location IS NOT DISTINCT FROM EXCLUDED.location)
           RETURNING (xmax = 0) AS inserted, t.id, t.project_id
       ) """
    + MEETING_EVENTS
)

BAD_REFERENCES = """
    SELECT s.line, 'project_id', format('no project %s', s.project_id)
    FROM stage_meeting AS s
    WHERE NOT EXISTS (SELECT 1 FROM project AS p WHERE p.id = s.project_id)
    UNION ALL
    SELECT s.line, 'id', format('meeting %s belongs to project %s, not %s', m.id, m.project_id,
                                s.project_id)
    FROM stage_meeting AS s JOIN meeting AS m ON m.id = s.id
    WHERE m.project_id <> s.project_id
    UNION ALL
    SELECT s.line, 'id', format('meeting %s is cancelled; a cancelled meeting stays as it was',
                                m.id)
    FROM stage_meeting AS s JOIN meeting AS m ON m.id = s.id
    WHERE m.cancelled_at IS NOT NULL
    ORDER BY 1
"""


def _ewkt(point: Home | None) -> str | None:
    return None if point is None else f"SRID=4326;POINT({point.lon!r} {point.lat!r})"


def store_meetings(
    conn: psycopg.Connection, lines: Sequence[Line[MeetingRecord]], source: str = "input"
) -> int:
    """Create meetings or replace existing ones (same id, same project), in the caller's
    transaction, with one ``meeting.announced`` or ``meeting.updated`` per row written; a row
    equal to the stored one writes and announces nothing. ImportRejected names every line
    whose project is missing, whose id is another project's meeting, or a cancelled one.
    Returns rows written."""
    with conn.cursor() as cur:
        cur.execute("""DROP TABLE IF EXISTS stage_meeting;
                       CREATE TEMP TABLE stage_meeting (line integer, id bigint,
                       project_id bigint, kind text, title text, place text,
                       location geometry(Point, 4326), starts_at timestamptz,
                       ends_at timestamptz) ON COMMIT DROP""")
        copy_rows(
            cur,
            "stage_meeting",
            ["line", "id", "project_id", "kind", "title", "place", "location"]
            + ["starts_at", "ends_at"],
            (
                (n, r.id, r.project_id, r.kind.value, r.title, r.place, _ewkt(r.location))
                + (r.starts_at, r.ends_at)
                for n, r in lines
            ),
        )
        cur.execute(BAD_REFERENCES)
        errors = [f"{source}:{line}: {field}: {reason}" for line, field, reason in cur.fetchall()]
        if errors:
            raise ImportRejected(errors)
        cur.execute(UPSERT)
        written = cur.rowcount  # one event per row written
        cur.execute("DROP TABLE stage_meeting")
        return written


def _project_of_writer(conn: psycopg.Connection, actor: Actor, project_id: int) -> int:
    """The organisation of a project the caller may write meetings of (FOR KEY SHARE: it
    stays until commit)."""
    user_id = signed_in(actor)
    row = conn.execute(
        """SELECT p.organisation_id FROM project AS p
           WHERE p.id = %(project)s
             AND (%(staff)s OR p.id IN (SELECT v.id FROM visible_projects(%(user)s) AS v))
           FOR KEY SHARE OF p""",
        {"project": project_id, "staff": actor.staff, "user": user_id},
    ).fetchone()
    if row is None:
        raise NotFound(no_project(project_id))
    require_role(conn, actor, int(row[0]), WRITER_ROLES)
    return int(row[0])


def _meeting_of_writer(
    conn: psycopg.Connection, actor: Actor, meeting_id: int
) -> tuple[int, datetime | None]:
    """(project id, cancelled_at) of a meeting the caller may write, locked until commit."""
    user_id = signed_in(actor)
    row = conn.execute(
        """SELECT m.project_id, p.organisation_id, m.cancelled_at
           FROM meeting AS m JOIN project AS p ON p.id = m.project_id
           WHERE m.id = %(meeting)s
             AND (%(staff)s OR p.id IN (SELECT v.id FROM visible_projects(%(user)s) AS v))
           FOR UPDATE OF m""",
        {"meeting": meeting_id, "staff": actor.staff, "user": user_id},
    ).fetchone()
    if row is None:
        raise NotFound(no_meeting(meeting_id))
    require_role(conn, actor, int(row[1]), WRITER_ROLES)
    return int(row[0]), row[2]


def _store_one(conn: psycopg.Connection, record: MeetingRecord) -> int:
    try:
        return store_meetings(conn, [Line(1, record)], "request")
    except ImportRejected as exc:  # pragma: no cover - the checks above come first
        raise exc.within("meeting refused") from None


def announce(
    conn: psycopg.Connection, actor: Actor, project_id: int, body: MeetingWrite
) -> tuple[int, int]:
    """A new meeting of a project (staff, or its organisation's admins and agents), with its
    ``meeting.announced`` event. Returns (meeting id assigned by the engine, rows written)."""
    with conn.transaction():
        _project_of_writer(conn, actor, project_id)
        meeting_id = free_id(conn, "meeting")
        record = MeetingRecord.model_validate(
            {**dict(body), "id": meeting_id, "project_id": project_id}
        )
        written = _store_one(conn, record)
    return meeting_id, written


def change(conn: psycopg.Connection, actor: Actor, meeting_id: int, body: MeetingWrite) -> int:
    """Replace a meeting's kind, title, place, location and times; ``meeting.updated`` when
    anything differed. Returns rows written (0: nothing differed). A cancelled meeting is a
    409: it is not changed back."""
    with conn.transaction():
        project_id, cancelled_at = _meeting_of_writer(conn, actor, meeting_id)
        if cancelled_at is not None:
            raise Conflict(f"meeting {meeting_id} is cancelled; announce a new one instead")
        record = MeetingRecord.model_validate(
            {**dict(body), "id": meeting_id, "project_id": project_id}
        )
        return _store_one(conn, record)


def cancel(conn: psycopg.Connection, actor: Actor, meeting_id: int) -> int:
    """Cancel a meeting (``meeting.cancelled``); 1 when it was cancelled now, 0 when it
    already was (nothing announced again)."""
    with conn.transaction():
        _meeting_of_writer(conn, actor, meeting_id)
        row = conn.execute(
            """WITH written AS (
                   UPDATE meeting SET cancelled_at = now(), updated_at = now()
                   WHERE id = %s AND cancelled_at IS NULL
                   RETURNING id, project_id
               ),
               announced AS ("""
            + insert_events(
                """(SELECT 'meeting.cancelled' AS type,
                           jsonb_build_object('meeting_id', w.id, 'project_id', w.project_id,
                                              'organisation_id', p.organisation_id) AS payload
                    FROM written AS w JOIN project AS p ON p.id = w.project_id)"""
            )
            + """ RETURNING 1)
               SELECT (SELECT count(*) FROM written)""",
            (meeting_id,),
        ).fetchone()
    assert row is not None
    return int(row[0])


# --- reads -----------------------------------------------------------------------------------

VIEW_COLUMNS = """m.id, m.project_id, p.title, m.kind, m.title, m.place, ST_X(m.location),
                  ST_Y(m.location), m.starts_at, m.ends_at, m.cancelled_at"""


def _view(row: Sequence[Any]) -> MeetingView:
    meeting_id, project_id, project_title, kind, title, place, lon, lat = row[:8]
    starts_at, ends_at, cancelled_at = row[8:11]
    return MeetingView(
        id=meeting_id,
        project_id=project_id,
        project_title=project_title,
        kind=MeetingKind(kind),
        kind_label=KIND_LABELS[kind],
        title=title,
        place=place,
        location=None if lon is None else Home(lon=lon, lat=lat),
        starts_at=starts_at.astimezone(UTC),
        ends_at=ends_at.astimezone(UTC),
        cancelled_at=None if cancelled_at is None else cancelled_at.astimezone(UTC),
        ics_url=f"/v1/meetings/{meeting_id}.ics",
    )


def read_meeting(conn: psycopg.Connection, meeting_id: int, viewer: int | None) -> MeetingView:
    """One meeting (cancelled ones too, with ``cancelled_at``) whose project ``viewer`` (a
    user id, None: anonymous) may see; NotFound, the same as for a missing one, otherwise."""
    row = conn.execute(
        f"""SELECT {VIEW_COLUMNS}
            FROM meeting AS m JOIN visible_projects(%(viewer)s) AS p ON p.id = m.project_id
            WHERE m.id = %(id)s""",
        {"id": meeting_id, "viewer": viewer},
    ).fetchone()
    if row is None:
        raise NotFound(no_meeting(meeting_id))
    return _view(row)


def meetings_in_bbox(
    conn: psycopg.Connection,
    bbox: tuple[float, float, float, float],
    since: datetime,
    viewer: int | None,
    limit: int,
) -> list[MeetingView]:
    """Meetings placed in ``bbox`` (minlon, minlat, maxlon, maxlat, WGS84 degrees) not over at
    ``since`` and not cancelled, whose project ``viewer`` may see; soonest first, at most
    ``limit``."""
    minlon, minlat, maxlon, maxlat = bbox
    rows = conn.execute(
        MEETINGS_IN_BBOX,
        {
            "minlon": minlon,
            "minlat": minlat,
            "maxlon": maxlon,
            "maxlat": maxlat,
            "since": since,
            "viewer": viewer,
            "limit": limit,
        },
    ).fetchall()
    return [_view(r) for r in rows]


def ics(meeting: MeetingView, public_url: str) -> bytes:
    """The meeting as an iCalendar file (RFC 5545): one VEVENT whose UID is stable per meeting
    (a calendar that imports it twice keeps one event), times in UTC, the place as LOCATION
    and GEO when known, the meeting's page as URL; a cancelled one says STATUS:CANCELLED."""
    calendar = Calendar()
    calendar.add("prodid", "-//geo-engine//Participation citoyenne//FR")
    calendar.add("version", "2.0")
    calendar.add("method", "PUBLISH")
    event = IcsEvent()
    event.add("uid", f"meeting-{meeting.id}@geo-engine")
    event.add("dtstamp", datetime.now(UTC))
    event.add("dtstart", meeting.starts_at.astimezone(UTC))
    event.add("dtend", meeting.ends_at.astimezone(UTC))
    event.add("summary", f"{KIND_LABELS[meeting.kind.value]} : {meeting.title}")
    event.add("description", f"Projet : {meeting.project_title}")
    event.add("location", meeting.place)
    if meeting.location is not None:
        event.add("geo", (meeting.location.lat, meeting.location.lon))
    event.add("url", f"{public_url.rstrip('/')}/v1/meetings/{meeting.id}")
    event.add("status", "CANCELLED" if meeting.cancelled_at is not None else "CONFIRMED")
    calendar.add_component(event)
    text: bytes = calendar.to_ical()
    return text
