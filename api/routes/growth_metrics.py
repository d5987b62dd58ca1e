"""The growth team's figures over HTTP (staff only): the report of an experiment or of
everyone, and the participation rate per commune or EPCI for the dashboard's map
(``growth/report.py`` defines every figure)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Query

from api.deps import StaffDep
from api.problems import documented
from api.routes.writes import PoolDep
from contracts.experiments import NAME
from contracts.growth import AreaRate, Report
from geo_engine import experiments
from growth import report

router = APIRouter(prefix="/v1/growth", tags=["growth"], responses=documented(401, 403, 404, 422))

Since = Annotated[
    str | None,
    Query(
        max_length=40,
        description="start, ISO 8601 date or instant (Paris time without an offset); "
        "default: 30 days before until",
        examples=["2026-11-01"],
    ),
]
Until = Annotated[
    str | None,
    Query(
        max_length=40,
        description="end (exclusive), ISO 8601 date or instant; default: now",
        examples=["2026-12-01T00:00:00+01:00"],
    ),
]


def _period(since: str | None, until: str | None) -> tuple[datetime, datetime]:
    end = report.parse_instant(until, "until") if until is not None else report.default_period()[1]
    start = (
        report.parse_instant(since, "since") if since is not None else end - report.DEFAULT_PERIOD
    )
    report.check_period(start, end)
    return start, end


@router.get("/report", response_model=Report)
def get_report(
    _staff: StaffDep,
    pool: PoolDep,
    experiment: Annotated[
        str | None,
        Query(
            pattern=f"^{NAME.pattern}$",
            max_length=63,
            description="the experiment's name; absent: everyone, without comparison",
        ),
    ] = None,
    since: Since = None,
    until: Until = None,
) -> Report:
    """The loop's figures over [since, until): per variant of the experiment (its exposed
    users) or for everyone (``tous``): funnel, rates, differences with intervals, the
    sample-ratio check, the winner if any and a French verdict, daily series, sign-up cohorts,
    coverage of communes. 404 for an unknown experiment, 422 for a bad period."""
    start, end = _period(since, until)
    with pool.connection() as conn:
        found = experiments.get(conn, experiment) if experiment is not None else None
        return report.build_report(conn, found, start, end)


@router.get("/areas", response_model=list[AreaRate])
def get_areas(
    _staff: StaffDep,
    pool: PoolDep,
    level: Annotated[
        Literal["commune", "epci"], Query(description="commune (INSEE code) or epci (SIREN)")
    ] = "commune",
    since: Since = None,
    until: Until = None,
) -> list[AreaRate]:
    """Participation rate per commune or EPCI with at least one placed user, over [since,
    until): users, engaged users, users who took part after a click, rate. 422 for a bad
    level or period."""
    start, end = _period(since, until)
    with pool.connection() as conn:
        return report.areas(conn, level, start, end)
