"""Writes: parse the body, call the write layer (``geo_engine.writes``), answer. Who may write
what, the rule for ids and the outbox events are the layer's; its refusals are
``contracts.errors`` kinds, answered as problem documents by ``api.problems``."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from psycopg_pool import ConnectionPool

from api.auth import Viewer
from api.deps import OrganisationIdPath, UserIdPath, ViewerDep
from api.problems import documented
from contracts.api import Written
from contracts.catalog import ContributionWrite, MemberRecord, OrganisationRecord, ProjectWrite
from geo_engine import writes
from geo_engine.writes import Actor

router = APIRouter(prefix="/v1", tags=["writes"], responses=documented(401, 403, 404, 409, 422))


def _pool(request: Request) -> ConnectionPool:
    pool: ConnectionPool = request.app.state.write_pool
    return pool


PoolDep = Annotated[ConnectionPool, Depends(_pool)]


def actor(viewer: Viewer) -> Actor:
    return Actor(user_id=viewer.user_id, staff=viewer.staff)


@router.post("/organisations", response_model=Written, status_code=200)
def create_organisation(body: OrganisationRecord, viewer: ViewerDep, pool: PoolDep) -> Written:
    """Create or update an organisation (platform staff only)."""
    with pool.connection() as conn:
        return writes.write_organisation(conn, actor(viewer), body)


@router.post("/members", response_model=Written)
def add_member(body: MemberRecord, viewer: ViewerDep, pool: PoolDep) -> Written:
    """Add a member to an organisation, or change their role (staff or its admins)."""
    with pool.connection() as conn:
        return writes.add_member(conn, actor(viewer), body)


@router.delete("/members/{organisation_id}/{user_id}", response_model=Written)
def remove_member(
    organisation_id: OrganisationIdPath, user_id: UserIdPath, viewer: ViewerDep, pool: PoolDep
) -> Written:
    """Remove a member (staff, the organisation's admins, or the member themself);
    ``written`` is 0 when there was no such membership."""
    with pool.connection() as conn:
        return writes.remove_member(conn, actor(viewer), organisation_id, user_id)


@router.post("/projects", response_model=Written)
def write_project(body: ProjectWrite, viewer: ViewerDep, pool: PoolDep) -> Written:
    """Create a project (leave ``id`` out: the engine assigns it and answers it), or update one
    of the organisation's by its id (staff, or the organisation's admins and agents). An id
    that is not one of the organisation's projects answers 404, the same whether it is free or
    another organisation's."""
    with pool.connection() as conn:
        return writes.write_project(conn, actor(viewer), body)


@router.post("/contributions", response_model=Written)
def contribute(body: ContributionWrite, viewer: ViewerDep, pool: PoolDep) -> Written:
    """Place a contribution on a participatory map the caller can see (leave ``id`` out: the
    engine assigns it), or change one of the caller's own by its id; the caller is its author.
    Any other id answers 404, the same whether it is free or someone else's."""
    with pool.connection() as conn:
        return writes.write_contribution(conn, actor(viewer), body)
