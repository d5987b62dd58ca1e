"""The hottest reads of the map, nearby, bounding box and cached public tiles, answered
without FastAPI's machinery when their request is plainly well formed.

:class:`HotReads` is a pure ASGI middleware in front of the routes. A ``GET`` of
``/v1/projects/nearby`` or ``/v1/projects`` whose query string holds only the route's own
parameters, each given once and valid for the same parsers and bounds as the route's
(``contracts.values`` for numbers, :func:`api.deps.bbox`, :func:`api.cursors.decode`,
:func:`api.auth.viewer_from_token`), is answered here: the same SQL, the same bytes, the
same headers. Anything else (a missing, repeated, unknown or out-of-bounds parameter, a bad
token or cursor, another method) goes on to the FastAPI route untouched, so every error answer
is the route's own, byte for byte, and the OpenAPI document still describes both.

A ``GET`` of a public layer's tile (``/v1/tiles/{projects|communes|epcis}/z/x/y.mvt``, plain
decimal numbers, no query string, no token or a valid one) that the process's tile cache holds
is answered here with the route's headers (``ETag``, ``Cache-Control``, 304 on a matching
``If-None-Match``); a miss goes to the route, which reads the tile and fills the cache. Only
tiles the route itself stored can be served, so their coordinates were already checked.

Why: FastAPI's dependency resolution, pydantic validation of each query parameter and the
Starlette request/exception layers cost about as much CPU per request as the statement itself
(bench/README.md, section "http").
"""

from __future__ import annotations

import logging
import math
import re
from typing import Any
from urllib.parse import parse_qsl

import psycopg
from fastapi.security.utils import get_authorization_scheme_param
from psycopg_pool import AsyncConnectionPool, PoolTimeout
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from api import cursors
from api.auth import ANONYMOUS, Viewer, viewer_from_token
from api.deps import MAX_NEARBY, MAX_PAGE, MAX_RADIUS_M, bbox_of
from api.pages import GeoJSONResponse, page_response
from api.problems import problem_for
from api.routes.tiles import MVT, public_tile_headers
from api.tile_cache import TileCache, matches
from contracts.errors import EngineError
from contracts.values import parse_int, parse_number
from geo_engine.catalog import queries
from geo_engine.pools import connection_lost, database_unavailable
from geo_engine.settings import ApiSettings

log = logging.getLogger("api")

NEARBY = "/v1/projects/nearby"
BBOX = "/v1/projects"
TILES = "/v1/tiles/"
_NEARBY_PARAMS = frozenset({"lat", "lon", "radius_m", "limit"})
_BBOX_PARAMS = frozenset({"bbox", "limit", "cursor"})
# Public layers only; numbers as the route would read them, without leading zeros (ASCII
# digits: `re`'s \d would take other scripts' digits).
_TILE = re.compile(
    r"/v1/tiles/(projects|communes|epcis)"
    r"/(0|[1-9][0-9]?)/(0|[1-9][0-9]{0,8})/(0|[1-9][0-9]{0,8})\.mvt"
)
_MAX_CURSOR = 200
_MAX_BBOX = 200


class _NotPlain(Exception):
    """The request is not a plainly valid one: the FastAPI route answers it."""


def _number(text: str, low: float, high: float, *, above_low: bool = False) -> float:
    try:
        value = parse_number(text)
    except ValueError:
        raise _NotPlain from None
    if not math.isfinite(value) or value > high or value < low or (above_low and value == low):
        raise _NotPlain
    return value


def _integer(text: str, low: int, high: int) -> int:
    try:
        value = parse_int(text)
    except ValueError:
        raise _NotPlain from None
    if not low <= value <= high:
        raise _NotPlain
    return value


def _query(scope: Scope, allowed: frozenset[str]) -> dict[str, str]:
    """The query parameters, decoded as Starlette does; each known and given once."""
    pairs = parse_qsl(scope["query_string"].decode("latin-1"), keep_blank_values=True)
    params = dict(pairs)
    if len(params) != len(pairs) or not params.keys() <= allowed:
        raise _NotPlain
    return params


def _viewer(scope: Scope, settings: ApiSettings) -> Viewer:
    """As ``api.deps.viewer`` reads it; any header it would refuse is left to the route."""
    found = [value for name, value in scope["headers"] if name == b"authorization"]
    if not found:
        return ANONYMOUS
    if len(found) > 1:
        raise _NotPlain
    scheme, token = get_authorization_scheme_param(found[0].decode("latin-1"))
    if scheme.lower() != "bearer" or not token:
        raise _NotPlain
    try:
        return viewer_from_token(token, settings.jwt_secret.get_secret_value())
    except EngineError:
        raise _NotPlain from None


def _header(scope: Scope, name: bytes) -> str | None:
    """The first value of header ``name`` (lower case), as Starlette's ``headers.get``."""
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return None


def _cached_tile(scope: Scope, cache: TileCache, path: str, settings: ApiSettings) -> Response:
    found = _TILE.fullmatch(path)
    if found is None or scope["query_string"]:
        raise _NotPlain
    _viewer(scope, settings)  # a token the route would refuse is the route's to answer
    layer, z, x, y = found.groups()
    tile = cache.peek(layer, int(z), int(x), int(y))
    if tile is None:
        raise _NotPlain
    headers = public_tile_headers(cache.settings, tile.etag)
    if matches(_header(scope, b"if-none-match"), tile.etag):
        return Response(status_code=304, headers=headers)
    return Response(tile.data, media_type=MVT, headers=headers)


async def _nearby(pool: AsyncConnectionPool, params: dict[str, str], viewer: Viewer) -> Response:
    if "lat" not in params or "lon" not in params:
        raise _NotPlain
    lat = _number(params["lat"], -90, 90)
    lon = _number(params["lon"], -180, 180)
    radius_m = _number(params.get("radius_m", "5000"), 0, MAX_RADIUS_M, above_low=True)
    limit = _integer(params.get("limit", "20"), 1, MAX_NEARBY)
    text = await queries.nearby_projects(pool, lon, lat, radius_m, limit, viewer.user_id)
    return GeoJSONResponse(text)


async def _bbox(
    pool: AsyncConnectionPool, params: dict[str, str], viewer: Viewer, settings: ApiSettings
) -> Response:
    text = params.get("bbox")
    cursor = params.get("cursor")
    if text is None or len(text) > _MAX_BBOX or (cursor is not None and len(cursor) > _MAX_CURSOR):
        raise _NotPlain
    try:
        box = bbox_of(text)
        cursors.decode(cursor, viewer.user_id, settings.jwt_secret.get_secret_value())
    except EngineError:
        raise _NotPlain from None
    limit = _integer(params.get("limit", "100"), 1, MAX_PAGE)
    return await page_response(
        lambda after: queries.projects_in_bbox(pool, box, after, limit, viewer.user_id),
        cursor,
        viewer,
        settings,
    )


class HotReads:
    """Pure ASGI middleware: answers plainly valid nearby and bbox requests itself (see the
    module's docstring); every other request goes to ``app`` unchanged."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path") if scope["type"] == "http" else None
        if path is None or scope["method"] != "GET":
            await self.app(scope, receive, send)
            return
        state: Any = scope["app"].state
        settings: ApiSettings = state.api_settings
        if path.startswith(TILES):
            try:
                response = _cached_tile(scope, state.tile_cache, path, settings)
            except _NotPlain:
                await self.app(scope, receive, send)
                return
            await response(scope, receive, send)
            return
        if path not in (NEARBY, BBOX):
            await self.app(scope, receive, send)
            return
        try:
            viewer = _viewer(scope, settings)
            if path == NEARBY:
                response = await _nearby(state.pool, _query(scope, _NEARBY_PARAMS), viewer)
            else:
                params = _query(scope, _BBOX_PARAMS)
                response = await _bbox(state.pool, params, viewer, settings)
        except _NotPlain:
            await self.app(scope, receive, send)
            return
        except EngineError as exc:  # Unavailable from the pool: as the app's handler answers
            response = problem_for(exc)
        except (psycopg.OperationalError, PoolTimeout) as exc:
            if not connection_lost(exc):
                raise
            log.warning("database unreachable: %s", exc)
            response = problem_for(database_unavailable())
        await response(scope, receive, send)
