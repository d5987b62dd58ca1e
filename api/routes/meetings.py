"""Public meetings over HTTP: announce, change, cancel (staff, or the admins and agents of the
project's organisation), read one, its ``.ics``, and the map's meetings in a box.

Every read goes through the visibility rule of the meeting's project: a private project's
meeting answers a non-member exactly like a missing one (404, same detail). Meetings are few
and their queries small, so the routes use the write pool's (synchronous) connections, as the
write layer does.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Path, Query, Request, Response

from api.deps import MAX_ID, BBoxDep, PageLimit, ProjectIdPath, ViewerDep
from api.problems import documented
from api.routes.writes import PoolDep, actor
from contracts.api import Written
from contracts.errors import InvalidInput
from contracts.meetings import (
    FIRST_YEAR,
    LAST_YEAR,
    MeetingCollection,
    MeetingView,
    MeetingWrite,
)
from contracts.values import Integer
from geo_engine import meetings

router = APIRouter(prefix="/v1", tags=["meetings"], responses=documented(401, 422))

MeetingIdPath = Annotated[int, Path(ge=1, le=MAX_ID, description="meeting id"), Integer]
Since = Annotated[
    datetime | None,
    Query(
        alias="from",
        description="ISO 8601 with a time zone; meetings over before it are left out "
        "(default: now)",
    ),
]


@router.post(
    "/projects/{project_id}/meetings",
    response_model=Written,
    status_code=201,
    responses=documented(403, 404),
)
def announce(
    project_id: ProjectIdPath, body: MeetingWrite, viewer: ViewerDep, pool: PoolDep
) -> Written:
    """Announce a meeting of a project (staff, or the admins and agents of its organisation):
    the engine assigns its id and answers it. A project you may not see answers 404 like a
    missing one."""
    with pool.connection() as conn:
        meeting_id, written = meetings.announce(conn, actor(viewer), project_id, body)
    return Written(written=written, id=meeting_id)


@router.put("/meetings/{meeting_id}", response_model=Written, responses=documented(403, 404, 409))
def change(
    meeting_id: MeetingIdPath, body: MeetingWrite, viewer: ViewerDep, pool: PoolDep
) -> Written:
    """Replace a meeting's kind, title, place, location and times; ``written`` is 0 when
    nothing differed. A cancelled meeting is not changed (409)."""
    with pool.connection() as conn:
        written = meetings.change(conn, actor(viewer), meeting_id, body)
    return Written(written=written, id=meeting_id)


@router.delete("/meetings/{meeting_id}", response_model=Written, responses=documented(403, 404))
def cancel(meeting_id: MeetingIdPath, viewer: ViewerDep, pool: PoolDep) -> Written:
    """Cancel a meeting (it stays readable, with ``cancelled_at``, and leaves the map);
    ``written`` is 0 when it already was."""
    with pool.connection() as conn:
        written = meetings.cancel(conn, actor(viewer), meeting_id)
    return Written(written=written, id=meeting_id)


# Declared before /meetings/{meeting_id}, whose pattern would take "12.ics" as an id.
@router.get(
    "/meetings/{meeting_id}.ics",
    response_class=Response,
    responses={200: {"content": {"text/calendar": {}}}, **documented(404)},
)
def ics(meeting_id: MeetingIdPath, viewer: ViewerDep, pool: PoolDep, request: Request) -> Response:
    """The meeting as an iCalendar file (one VEVENT, stable UID, times in UTC)."""
    with pool.connection() as conn:
        meeting = meetings.read_meeting(conn, meeting_id, viewer.user_id)
    return Response(
        meetings.ics(meeting, str(request.base_url)),
        media_type="text/calendar; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="reunion-{meeting_id}.ics"'},
    )


@router.get("/meetings/{meeting_id}", response_model=MeetingView, responses=documented(404))
def read(meeting_id: MeetingIdPath, viewer: ViewerDep, pool: PoolDep) -> MeetingView:
    """One meeting, cancelled ones included (with ``cancelled_at``)."""
    with pool.connection() as conn:
        return meetings.read_meeting(conn, meeting_id, viewer.user_id)


@router.get("/meetings", response_model=MeetingCollection)
def in_bbox(
    bbox: BBoxDep,
    viewer: ViewerDep,
    pool: PoolDep,
    since: Since = None,
    limit: PageLimit = 100,
) -> MeetingCollection:
    """The map's meetings: placed in the box, not over at ``from``, not cancelled, soonest
    first, as GeoJSON points."""
    if since is None:
        since = datetime.now(UTC)
    elif since.tzinfo is None or since.utcoffset() is None:
        raise InvalidInput(
            "from: give a time zone (e.g. 2026-12-01T00:00:00+01:00)",
            errors=[{"where": "query.from", "reason": "a date and time without a time zone"}],
        )
    elif not FIRST_YEAR <= since.year <= LAST_YEAR:
        raise InvalidInput(
            f"from: give a year between {FIRST_YEAR} and {LAST_YEAR}",
            errors=[{"where": "query.from", "reason": "year out of range"}],
        )
    with pool.connection() as conn:
        found = meetings.meetings_in_bbox(conn, bbox, since, viewer.user_id, limit)
    return MeetingCollection.model_validate(
        {
            "type": "FeatureCollection",
            "features": [
                {
                    "type": "Feature",
                    "id": m.id,
                    "geometry": {
                        "type": "Point",
                        "coordinates": [m.location.lon, m.location.lat],
                    },
                    "properties": m,
                }
                for m in found
                if m.location is not None
            ],
        }
    )
