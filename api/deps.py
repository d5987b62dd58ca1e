"""Typed dependencies: each parses one thing, bounds it, and refuses it with a clear message.

The bounds are the API's promise that no request becomes a slow query: over them is 422.
Every number of a query string or a path goes through one strict parser
(:func:`contracts.values.parse_number`, ASCII digits only), ``bbox`` as much as ``lat``.
Every dependency is ``async def``, even with nothing to await: FastAPI runs plain ``def``
dependencies in a thread pool, which cost more than the whole nearby query.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Path, Query, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from psycopg_pool import AsyncConnectionPool

from api.auth import ANONYMOUS, Viewer, viewer_from_token
from contracts.errors import Forbidden, InvalidInput, Unauthenticated
from contracts.users import INSEE_CODE
from contracts.values import Integer, Number, parse_number
from geo_engine.settings import ApiSettings

MAX_RADIUS_M = 50_000
MAX_NEARBY = 100
MAX_PAGE = 500
MAX_BBOX_DEG2 = 4.0  # about 200 km x 200 km in mainland France
MAX_ZOOM = 20


async def settings(request: Request) -> ApiSettings:
    api: ApiSettings = request.app.state.api_settings
    return api


async def pool(request: Request) -> AsyncConnectionPool:
    """The process's pool (autocommit connections: reads need no transaction). Queries take a
    connection for one statement; a generator dependency holding one per request costs more."""
    database: AsyncConnectionPool = request.app.state.pool
    return database


_bearer = HTTPBearer(auto_error=False, description="JWT (HS256): sub = user id, staff = bool")


async def viewer(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Viewer:
    if credentials is None:
        if request.headers.get("authorization"):
            raise Unauthenticated(
                "invalid bearer token: use the header 'Authorization: Bearer <token>'",
                headers={"WWW-Authenticate": 'Bearer error="invalid_request"'},
            )
        return ANONYMOUS
    api: ApiSettings = request.app.state.api_settings
    secret = api.jwt_secret.get_secret_value()
    return viewer_from_token(credentials.credentials, secret)


Lat = Annotated[
    float,
    Query(ge=-90, le=90, allow_inf_nan=False, description="latitude, WGS84 degrees"),
    Number,
]
Lon = Annotated[
    float,
    Query(ge=-180, le=180, allow_inf_nan=False, description="longitude, WGS84 degrees"),
    Number,
]


@dataclass(frozen=True)
class LonLat:
    lon: float
    lat: float


async def lon_lat(lat: Lat, lon: Lon) -> LonLat:
    return LonLat(lon=lon, lat=lat)


async def bbox(
    bbox: Annotated[
        str,
        Query(
            description=(
                f"minlon,minlat,maxlon,maxlat in WGS84 degrees; at most {MAX_BBOX_DEG2:g} "
                "square degrees"
            ),
            examples=["2.25,48.81,2.42,48.90"],
            max_length=200,
        ),
    ],
) -> tuple[float, float, float, float]:
    return bbox_of(bbox)


def bbox_of(text: str) -> tuple[float, float, float, float]:
    """``minlon,minlat,maxlon,maxlat`` in degrees, or InvalidInput saying what is wrong."""
    parts = text.split(",")
    if len(parts) != 4:
        raise InvalidInput("bbox: give four numbers: minlon,minlat,maxlon,maxlat")
    values = []
    for name, part in zip(("minlon", "minlat", "maxlon", "maxlat"), parts, strict=True):
        try:
            values.append(parse_number(part))
        except ValueError as exc:
            raise InvalidInput(f"bbox: {name} {exc}") from None
    minlon, minlat, maxlon, maxlat = values
    for name, value, bound in (
        ("minlon", minlon, 180),
        ("minlat", minlat, 90),
        ("maxlon", maxlon, 180),
        ("maxlat", maxlat, 90),
    ):
        if not math.isfinite(value) or not -bound <= value <= bound:
            raise InvalidInput(f"bbox: {name} {value} is out of range [-{bound}, {bound}]")
    if minlon >= maxlon or minlat >= maxlat:
        raise InvalidInput("bbox: min must be below max (minlon < maxlon, minlat < maxlat)")
    area = (maxlon - minlon) * (maxlat - minlat)
    if area > MAX_BBOX_DEG2:
        raise InvalidInput(
            f"bbox: {area:.2f} square degrees is larger than the {MAX_BBOX_DEG2:g} allowed"
        )
    return minlon, minlat, maxlon, maxlat


async def tile(
    z: Annotated[int, Path(ge=0, le=MAX_ZOOM, description=f"zoom, 0 to {MAX_ZOOM}"), Integer],
    x: Annotated[int, Path(ge=0, le=2**MAX_ZOOM - 1, description="column, 0 to 2^z - 1"), Integer],
    y: Annotated[int, Path(ge=0, le=2**MAX_ZOOM - 1, description="row, 0 to 2^z - 1"), Integer],
) -> tuple[int, int, int]:
    if x >= 2**z or y >= 2**z:
        raise InvalidInput(f"tile {z}/{x}/{y} does not exist: x and y must be below {2**z}")
    return z, x, y


PoolDep = Annotated[AsyncConnectionPool, Depends(pool)]
ViewerDep = Annotated[Viewer, Depends(viewer)]

# The growth dashboard's session (api/growth_page.py): a staff token kept in an HttpOnly,
# SameSite=Strict cookie, honoured for reads only, so no other site can make a browser change
# an experiment (CSRF) and no script of the page can read it.
STAFF_COOKIE = "geo_engine_staff"


async def staff(request: Request, found: ViewerDep) -> Viewer:
    """The viewer, who must be staff: 401 without a token (or with a wrong one), 403 with a
    token that is not staff's. The growth team's pages and API (``/growth``, ``/v1/growth``)."""
    if found.anonymous and request.method in ("GET", "HEAD"):
        cookie = request.cookies.get(STAFF_COOKIE)
        if cookie:
            found = viewer_from_token(
                cookie, request.app.state.api_settings.jwt_secret.get_secret_value()
            )
    if found.anonymous:
        raise Unauthenticated(
            "the growth pages are for staff: send 'Authorization: Bearer <staff token>'",
            headers={"WWW-Authenticate": 'Bearer realm="growth"'},
        )
    if not found.staff:
        raise Forbidden("the growth pages are for staff; this token is not a staff token")
    return found


StaffDep = Annotated[Viewer, Depends(staff)]
SettingsDep = Annotated[ApiSettings, Depends(settings)]
LonLatDep = Annotated[LonLat, Depends(lon_lat)]
BBoxDep = Annotated[tuple[float, float, float, float], Depends(bbox)]
TileDep = Annotated[tuple[int, int, int], Depends(tile)]
RadiusM = Annotated[
    float,
    Query(
        gt=0, le=MAX_RADIUS_M, allow_inf_nan=False, description=f"metres, at most {MAX_RADIUS_M}"
    ),
    Number,
]
NearbyLimit = Annotated[
    int, Query(ge=1, le=MAX_NEARBY, description=f"at most {MAX_NEARBY}"), Integer
]
PageLimit = Annotated[int, Query(ge=1, le=MAX_PAGE, description=f"at most {MAX_PAGE}"), Integer]
Cursor = Annotated[
    str | None, Query(max_length=200, description="next_cursor of the previous page")
]
Insee = Annotated[
    str,
    Path(
        pattern=INSEE_CODE,
        description="INSEE code of a commune, or of an arrondissement municipal (Paris, Lyon,"
        " Marseille), which answers for its commune",
    ),
]
MAX_ID = 2**63 - 1
ProjectIdPath = Annotated[int, Path(ge=1, le=MAX_ID, description="project id"), Integer]
OrganisationIdPath = Annotated[int, Path(ge=1, le=MAX_ID, description="organisation id"), Integer]
UserIdPath = Annotated[
    int, Path(ge=1, le=MAX_ID, description="user id (yours: your token's sub)"), Integer
]
ProjectIdQuery = Annotated[
    int | None, Query(ge=1, le=MAX_ID, description="only this map's contributions"), Integer
]
