"""The growth team's experiments over HTTP, staff only (401 without a token, 403 with a token
that is not staff's): list, create (a draft), read, and start, pause or stop. The same rules as
``geo-engine growth experiment`` (geo_engine/experiments.py)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query

from api.deps import StaffDep
from api.problems import documented
from api.routes.writes import PoolDep
from contracts.experiments import NAME, Experiment, ExperimentSpec, Surface
from geo_engine import experiments
from recommender.variants import check_spec

router = APIRouter(
    prefix="/v1/growth/experiments", tags=["growth"], responses=documented(401, 403, 422)
)
ExperimentName = Annotated[
    str, Path(pattern=NAME.pattern, description="the experiment's name (a lower-case slug)")
]


@router.get("", response_model=list[Experiment])
def listing(
    _: StaffDep,
    pool: PoolDep,
    surface: Annotated[Surface | None, Query(description="only this surface")] = None,
) -> list[Experiment]:
    """Every experiment, newest first."""
    with pool.connection() as conn:
        return experiments.listing(conn, surface)


@router.post("", response_model=Experiment, status_code=201, responses=documented(409))
def create(spec: ExperimentSpec, _: StaffDep, pool: PoolDep) -> Experiment:
    """Store an experiment as a draft: nobody is exposed before it is started. 409 when the
    name is taken; 422 for weights of unknown features."""
    with pool.connection() as conn:
        return experiments.create(conn, check_spec(spec))


@router.get("/{name}", response_model=Experiment, responses=documented(404))
def read(name: ExperimentName, _: StaffDep, pool: PoolDep) -> Experiment:
    """One experiment."""
    with pool.connection() as conn:
        return experiments.get(conn, name)


@router.post("/{name}/{action}", response_model=Experiment, responses=documented(404, 409))
def transition(
    name: ExperimentName,
    action: Annotated[Literal["start", "pause", "stop"], Path(description="what to do")],
    _: StaffDep,
    pool: PoolDep,
) -> Experiment:
    """Start (or resume), pause, or stop for good. 409 when the experiment's status does not
    allow it, or when starting it would overlap a running or paused experiment of the same
    surface and unit (the message names it)."""
    with pool.connection() as conn:
        return experiments.transition(conn, name, action, datetime.now(UTC))
