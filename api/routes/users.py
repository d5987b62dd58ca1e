"""Users over HTTP: register, read, change (the user themself or staff), through the write
layer with the rules of ``users import``."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request

from api.deps import UserIdPath, ViewerDep
from api.problems import documented
from api.routes.writes import PoolDep, actor
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
