"""Typed dependencies: each parses one thing, bounds it, and refuses it with a clear message.

The bounds are the API's promise that no request becomes a slow query: over them is 422.
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
from api.problems import ApiProblem
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
            raise ApiProblem(
                401,
                "invalid bearer token: use the header 'Authorization: Bearer <token>'",
                headers={"WWW-Authenticate": 'Bearer error="invalid_request"'},
            )
        return ANONYMOUS
    api: ApiSettings = request.app.state.api_settings
    secret = api.jwt_secret.get_secret_value()
    return viewer_from_token(credentials.credentials, secret)


Lat = Annotated[
    float, Query(ge=-90, le=90, allow_inf_nan=False, description="latitude, WGS84 degrees")
]
Lon = Annotated[
    float, Query(ge=-180, le=180, allow_inf_nan=False, description="longitude, WGS84 degrees")
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
    parts = bbox.split(",")
    if len(parts) != 4:
        raise ApiProblem(422, "bbox: give four numbers: minlon,minlat,maxlon,maxlat")
    try:
        minlon, minlat, maxlon, maxlat = (float(p) for p in parts)
    except ValueError:
        raise ApiProblem(422, f"bbox: {bbox!r} holds something that is not a number") from None
    for name, value, bound in (
        ("minlon", minlon, 180),
        ("minlat", minlat, 90),
        ("maxlon", maxlon, 180),
        ("maxlat", maxlat, 90),
    ):
        if not math.isfinite(value) or not -bound <= value <= bound:
            raise ApiProblem(422, f"bbox: {name} {value} is out of range [-{bound}, {bound}]")
    if minlon >= maxlon or minlat >= maxlat:
        raise ApiProblem(422, "bbox: min must be below max (minlon < maxlon, minlat < maxlat)")
    area = (maxlon - minlon) * (maxlat - minlat)
    if area > MAX_BBOX_DEG2:
        raise ApiProblem(
            422, f"bbox: {area:.2f} square degrees is larger than the {MAX_BBOX_DEG2:g} allowed"
        )
    return minlon, minlat, maxlon, maxlat


async def tile(
    z: Annotated[int, Path(ge=0, le=MAX_ZOOM, description=f"zoom, 0 to {MAX_ZOOM}")],
    x: Annotated[int, Path(ge=0, description="column, 0 to 2^z - 1")],
    y: Annotated[int, Path(ge=0, description="row, 0 to 2^z - 1")],
) -> tuple[int, int, int]:
    if x >= 2**z or y >= 2**z:
        raise ApiProblem(422, f"tile {z}/{x}/{y} does not exist: x and y must be below {2**z}")
    return z, x, y


PoolDep = Annotated[AsyncConnectionPool, Depends(pool)]
ViewerDep = Annotated[Viewer, Depends(viewer)]
SettingsDep = Annotated[ApiSettings, Depends(settings)]
LonLatDep = Annotated[LonLat, Depends(lon_lat)]
BBoxDep = Annotated[tuple[float, float, float, float], Depends(bbox)]
TileDep = Annotated[tuple[int, int, int], Depends(tile)]
RadiusM = Annotated[
    float, Query(gt=0, le=MAX_RADIUS_M, description=f"metres, at most {MAX_RADIUS_M}")
]
NearbyLimit = Annotated[int, Query(ge=1, le=MAX_NEARBY, description=f"at most {MAX_NEARBY}")]
PageLimit = Annotated[int, Query(ge=1, le=MAX_PAGE, description=f"at most {MAX_PAGE}")]
Cursor = Annotated[
    str | None, Query(max_length=200, description="next_cursor of the previous page")
]
Insee = Annotated[
    str,
    Path(
        pattern=r"^([0-9]{5}|2[AB][0-9]{3})$",  # ASCII digits: \d would take any script's
        description="INSEE code of a commune, or of an arrondissement municipal (Paris, Lyon,"
        " Marseille), which answers for its commune",
    ),
]
