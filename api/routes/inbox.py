"""The in-app inbox over HTTP: the user themself or staff; anyone else gets the answer of a
missing user (as /v1/users/{id}/recommendations). Items are read through the visibility
rule again (consumers/inbox.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Query

from api import cursors
from api.deps import Cursor, SettingsDep, UserIdPath, ViewerDep
from api.problems import documented
from api.routes.writes import PoolDep, actor
from consumers import inbox
from contracts.errors import InvalidInput
from contracts.inbox import InboxItem, InboxPage, Marked, MarkRead
from contracts.values import Integer
from geo_engine import writes

router = APIRouter(prefix="/v1/users", tags=["inbox"], responses=documented(401, 404, 422))

MAX_INBOX_PAGE = 200
Limit = Annotated[
    int, Query(ge=1, le=MAX_INBOX_PAGE, description=f"items, at most {MAX_INBOX_PAGE}"), Integer
]
Unread = Annotated[
    bool | None, Query(description="true: unread items only; false: read ones only; absent: all")
]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_KINDS = ("published", "closing_soon", "results", "meeting_announced", "meeting_reminder",
          "recommended")  # fmt: skip
# What _encode writes: "<µs>.<project>.<kind index>.<meeting>.<lead>.<24 hex digits>".
_BODY = rb"(0|[1-9][0-9]{0,17})\.([1-9][0-9]{0,18})\.([0-9])\.(0|[1-9][0-9]{0,18})\.([0-9]{1,3})"


def _encode(item: InboxItem, viewer: int | None, secret: str) -> str:
    micros = (item.created_at - _EPOCH) // timedelta(microseconds=1)
    body = (
        f"{micros}.{item.project_id}.{_KINDS.index(item.kind)}.{item.meeting_id}.{item.lead_days}"
    )
    return cursors.seal(body, viewer, secret, purpose="inbox:")


def _decode(cursor: str | None, viewer: int | None, secret: str) -> inbox.After | None:
    """The keyset a cursor carries (None without one); 422 for a cursor that is not ours.
    Signed with the viewer's id, as the API's other cursors (api/cursors.py)."""
    if cursor is None:
        return None
    found = cursors.unseal(cursor, _BODY, viewer, secret, purpose="inbox:")
    micros, project, kind, meeting, lead = (int(g) for g in found.groups())
    if kind >= len(_KINDS) or project >= 2**63 or meeting >= 2**63:
        raise InvalidInput("cursor: not a cursor this API gave to this caller")
    return inbox.After(
        _EPOCH + timedelta(microseconds=micros), project, _KINDS[kind], meeting, lead
    )


@router.get("/{user_id}/inbox", response_model=InboxPage)
def get_inbox(
    user_id: UserIdPath,
    viewer: ViewerDep,
    pool: PoolDep,
    settings: SettingsDep,
    unread: Unread = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> InboxPage:
    """Your inbox, newest first: each item with its project, organisation, kind, the French
    reason it reached you, the level of that reason, when, whether read, and its meeting.
    Items whose project you may no longer see (made private since) are left out, and not
    counted in ``unread``."""
    secret = settings.jwt_secret.get_secret_value()
    after = _decode(cursor, viewer.user_id, secret)
    with pool.connection() as conn:
        writes.get_user(conn, actor(viewer), user_id)  # yourself or staff, else 404
        items = inbox.page(conn, user_id, unread=unread, limit=limit + 1, after=after)
        unread_count = inbox.unread_count(conn, user_id)
    more = len(items) > limit
    items = items[:limit]
    return InboxPage(
        user_id=user_id,
        unread=unread_count,
        items=items,
        next_cursor=_encode(items[-1], viewer.user_id, secret) if more else None,
    )


@router.post("/{user_id}/inbox/read", response_model=Marked)
def mark_read(user_id: UserIdPath, body: MarkRead, viewer: ViewerDep, pool: PoolDep) -> Marked:
    """Mark items read (``items``, at most 500), or all of them (``all``: true). Idempotent:
    items already read, or that you may no longer see, are not counted in ``marked``."""
    with pool.connection() as conn:
        writes.get_user(conn, actor(viewer), user_id)
        marked = inbox.mark_read(conn, user_id, None if body.all else body.items)
        unread_count = inbox.unread_count(conn, user_id)
        conn.commit()
    return Marked(marked=marked, unread=unread_count)
