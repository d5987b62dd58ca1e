"""Writes, the same as the JSON Lines imports: organisations (staff), members (staff or the
organisation's admins), projects (staff, admins, agents), contributions (any signed-in user on
a map they may see). Each is one transaction through geo_engine.catalog.load."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Annotated, TypeVar

import psycopg
from fastapi import APIRouter, Depends, Request
from psycopg_pool import ConnectionPool
from pydantic import BaseModel

from api.auth import Viewer
from api.deps import ViewerDep
from api.problems import documented, not_found
from contracts.api import Written
from contracts.catalog import ContributionRecord, MemberRecord, OrganisationRecord, ProjectRecord
from geo_engine.catalog import load as catalog_load
from geo_engine.errors import Conflict, Forbidden, Unauthenticated
from geo_engine.jsonl import Line

router = APIRouter(prefix="/v1", tags=["writes"], responses=documented(401, 403, 404, 409, 422))
R = TypeVar("R", bound=BaseModel)


def _pool(request: Request) -> ConnectionPool:
    pool: ConnectionPool = request.app.state.write_pool
    return pool


PoolDep = Annotated[ConnectionPool, Depends(_pool)]


def _signed_in(viewer: Viewer) -> int:
    if viewer.user_id is None:
        raise Unauthenticated("this needs a bearer token", headers={"WWW-Authenticate": "Bearer"})
    return viewer.user_id


def _role(conn: psycopg.Connection, organisation_id: int, user_id: int) -> str | None:
    row = conn.execute(
        "SELECT role FROM organisation_member WHERE organisation_id = %s AND user_id = %s",
        (organisation_id, user_id),
    ).fetchone()
    return None if row is None else str(row[0])


def _require_role(
    conn: psycopg.Connection, viewer: Viewer, organisation_id: int, roles: set[str]
) -> None:
    user_id = _signed_in(viewer)
    if viewer.staff:
        return
    if _role(conn, organisation_id, user_id) not in roles:
        raise Forbidden(
            f"only {' or '.join(sorted(roles))}s of organisation {organisation_id} may do this"
        )


def _store(
    pool: ConnectionPool,
    record: R,
    store: Callable[[psycopg.Connection, Sequence[Line[R]], str], int],
    check: Callable[[psycopg.Connection], None],
) -> Written:
    with pool.connection() as conn:
        check(conn)
        written = store(conn, [Line(1, record)], "request")
    return Written(written=written)


@router.post("/organisations", response_model=Written, status_code=200)
def create_organisation(body: OrganisationRecord, viewer: ViewerDep, pool: PoolDep) -> Written:
    """Create or update an organisation (platform staff only)."""

    def check(_conn: psycopg.Connection) -> None:
        _signed_in(viewer)
        if not viewer.staff:
            raise Forbidden("only platform staff create organisations")

    return _store(pool, body, catalog_load.store_organisations, check)


@router.post("/members", response_model=Written)
def add_member(body: MemberRecord, viewer: ViewerDep, pool: PoolDep) -> Written:
    """Add a member to an organisation, or change their role (staff or its admins)."""
    return _store(
        pool,
        body,
        catalog_load.store_members,
        lambda conn: _require_role(conn, viewer, body.organisation_id, {"admin"}),
    )


@router.post("/projects", response_model=Written)
def create_project(body: ProjectRecord, viewer: ViewerDep, pool: PoolDep) -> Written:
    """Create or replace a project (staff, or the organisation's admins and agents)."""

    def check(conn: psycopg.Connection) -> None:
        _require_role(conn, viewer, body.organisation_id, {"admin", "agent"})
        row = conn.execute(
            "SELECT organisation_id FROM project WHERE id = %s", (body.id,)
        ).fetchone()
        if row is not None and row[0] != body.organisation_id:
            # Ids are chosen by the writer, so a taken one must be told; the answer is the same
            # whether that project is public or private, and says nothing more.
            raise Conflict(f"project id {body.id} is taken by another organisation")

    return _store(pool, body, catalog_load.store_projects, check)


@router.post("/contributions", response_model=Written)
def contribute(body: ContributionRecord, viewer: ViewerDep, pool: PoolDep) -> Written:
    """Place a contribution on a participatory map the caller can see; they are its author."""

    def check(conn: psycopg.Connection) -> None:
        user_id = _signed_in(viewer)
        if body.author_id is not None and body.author_id != user_id and not viewer.staff:
            raise Forbidden("author_id must be your own user id")
        visible = conn.execute(
            "SELECT 1 FROM visible_projects(%s) WHERE id = %s", (user_id, body.project_id)
        ).fetchone()
        if visible is None:
            raise not_found(f"project {body.project_id}")
        existing = conn.execute(
            "SELECT author_id FROM contribution WHERE id = %s", (body.id,)
        ).fetchone()
        if existing is not None and existing[0] != user_id and not viewer.staff:
            raise Forbidden(f"contribution {body.id} is someone else's")

    record = (
        body
        if body.author_id is not None
        else body.model_copy(update={"author_id": viewer.user_id})
    )
    return _store(pool, record, catalog_load.store_contributions, check)
