"""Users over HTTP: register, read, change (the user themself or staff), through the write
layer with the rules of ``users import``; and what the recommender learns from them (follows,
engagement) and what they tell it (feedback)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response

from api.deps import OrganisationIdPath, UserIdPath, ViewerDep
from api.problems import documented
from api.routes.writes import PoolDep, actor
from consumers import erasure
from contracts.api import Written
from contracts.engagement import (
    EngagementRow,
    EngagementWrite,
    FeedbackStored,
    FeedbackWrite,
    FollowRow,
)
from contracts.errors import NotFound, Unauthenticated
from contracts.users import UserPatch, UserRecord, UserView
from geo_engine import writes
from geo_engine.settings import UserSettings

router = APIRouter(prefix="/v1/users", tags=["users"], responses=documented(401, 404, 422))


def _settings(request: Request) -> UserSettings:
    settings: UserSettings = request.app.state.user_settings
    return settings


UserSettingsDep = Annotated[UserSettings, Depends(_settings)]


@router.post("", response_model=UserView, status_code=201, responses=documented(403, 409))
def register(
    body: UserRecord, viewer: ViewerDep, pool: PoolDep, settings: UserSettingsDep
) -> UserView:
    """Register yourself (``id`` is your token's sub; staff may register anyone): where you
    live is one of ``home`` (stored coarsened), ``commune`` or ``postal_code``, as in the
    import; a postal code shared by several communes leaves you pending with the candidates."""
    with pool.connection() as conn:
        return writes.register_user(conn, actor(viewer), body, settings)


@router.get("/{user_id}", response_model=UserView)
def read(user_id: UserIdPath, viewer: ViewerDep, pool: PoolDep) -> UserView:
    """Yourself (or anyone, for staff). Any other id answers 404 like a missing one."""
    with pool.connection() as conn:
        return writes.get_user(conn, actor(viewer), user_id)


@router.patch("/{user_id}", response_model=UserView)
def change(
    user_id: UserIdPath,
    body: UserPatch,
    viewer: ViewerDep,
    pool: PoolDep,
    settings: UserSettingsDep,
) -> UserView:
    """Move (one of ``home``, ``commune``, ``postal_code``) and/or change interests,
    notifications or time zone; absent fields are kept. Yourself, or anyone for staff."""
    with pool.connection() as conn:
        return writes.update_user(conn, actor(viewer), user_id, body, settings)


# --- what the recommender learns from and obeys -----------------------------------------------


@router.post(
    "/{user_id}/feedback",
    response_model=FeedbackStored,
    status_code=201,
    responses={200: {"model": FeedbackStored, "description": "a repeat: nothing new stored"}},
)
def feedback(
    user_id: UserIdPath, body: FeedbackWrite, viewer: ViewerDep, pool: PoolDep, response: Response
) -> FeedbackStored:
    """Tell the recommender "pas intéressé" (``not_interested``) or "pas ma commune"
    (``not_my_commune``) about a project you can see, or "moins de ce thème"
    (``less_of_theme``) with a ``theme``, or with a ``project_id`` to mute all its themes.
    201 when something new is stored, 200 on a repeat. A project you cannot see answers 404
    like a missing one."""
    with pool.connection() as conn:
        stored = writes.give_feedback(conn, actor(viewer), user_id, body)
    if not stored.created:
        response.status_code = 200
    return stored


@router.put(
    "/{user_id}/follows/{organisation_id}",
    response_model=FollowRow,
    status_code=201,
    responses={200: {"model": FollowRow, "description": "already followed"}},
)
def follow(
    user_id: UserIdPath,
    organisation_id: OrganisationIdPath,
    viewer: ViewerDep,
    pool: PoolDep,
    response: Response,
) -> FollowRow:
    """Follow an organisation: its projects become candidates of your recommendations
    (201; 200 if you already followed it)."""
    with pool.connection() as conn:
        row = writes.follow(conn, actor(viewer), user_id, organisation_id)
    if not row.created:
        response.status_code = 200
    return row


@router.delete("/{user_id}/follows/{organisation_id}", response_model=Written)
def unfollow(
    user_id: UserIdPath, organisation_id: OrganisationIdPath, viewer: ViewerDep, pool: PoolDep
) -> Written:
    """Stop following an organisation; ``written`` is 0 when you did not follow it."""
    with pool.connection() as conn:
        return writes.unfollow(conn, actor(viewer), user_id, organisation_id)


@router.post(
    "/{user_id}/engagements",
    response_model=EngagementRow,
    status_code=201,
    responses={200: {"model": EngagementRow, "description": "counted again"}},
)
def engage(
    user_id: UserIdPath, body: EngagementWrite, viewer: ViewerDep, pool: PoolDep, response: Response
) -> EngagementRow:
    """Record a click on (``click``) or a participation in (``participation``) a project you
    can see: 201 the first time, 200 with the count raised after."""
    with pool.connection() as conn:
        row = writes.record_engagement(conn, actor(viewer), user_id, body)
    if row.count > 1:
        response.status_code = 200
    return row


# --- erasure ---------------------------------------------------------------------------------


@router.delete("/{user_id}", response_model=Written)
def erase(user_id: UserIdPath, viewer: ViewerDep, pool: PoolDep) -> Written:
    """Forget a user (yourself, or anyone for staff), at once and in one transaction: their
    place, preferences, memberships, follows, engagement, feedback, inbox, mails and digests
    are deleted, their contributions kept without author; ``user.erased`` then has the
    consumers forget what remains. Any other id answers 404 like a missing one."""
    if viewer.user_id is None:
        raise Unauthenticated("this needs a bearer token", headers={"WWW-Authenticate": "Bearer"})
    if viewer.user_id != user_id and not viewer.staff:
        raise NotFound(writes.NO_USER)
    with pool.connection() as conn:
        if not erasure.erase_user(conn, user_id):
            raise NotFound(writes.NO_USER)
    return Written(written=1, id=user_id)
