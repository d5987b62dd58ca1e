"""What the participatory map and the platform ask: nearby, in a box, what concerns a commune.

Every query reads projects through ``visible_projects(viewer)`` (migrations/sql), the one place
that decides who sees a private project. Answers are JSON built by PostgreSQL, returned as text
so the API does not parse and re-encode them. Each function takes the pool and holds a
connection for its one statement only; a statement that met a connection broken by a database
restart runs once more on a fresh one (``pools.read``).
"""

from __future__ import annotations

import functools
import math
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg_pool import AsyncConnectionPool

from geo_engine import pools
from geo_engine.db import load_sql
from geo_engine.tile_keys import TileRead

NEARBY_PROJECTS = load_sql("geo_engine.catalog.sql", "nearby_projects.sql")
NEARBY_CONTRIBUTIONS = load_sql("geo_engine.catalog.sql", "nearby_contributions.sql")
PROJECTS_IN_BBOX = load_sql("geo_engine.catalog.sql", "projects_in_bbox.sql")
COMMUNE_PROJECTS = load_sql("geo_engine.catalog.sql", "commune_projects.sql")
PROJECT = load_sql("geo_engine.catalog.sql", "project.sql")
COMMUNE = load_sql("geo_engine.catalog.sql", "commune.sql")
# The WAL position, in bytes, that the server's next snapshot includes at least: on a hot
# standby the last record it replayed, on a primary the end of the last record inserted (past
# the commit of every transaction already visible). Read in a statement BEFORE the tile's: a
# statement's snapshot is taken when it starts, so one read in the tile's own statement could
# name a position replayed after the snapshot (a tile older than it says).
READ_POSITION = (
    "SELECT (CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn()"
    " ELSE pg_current_wal_insert_lsn() END - '0/0'::pg_lsn)::bigint"
)
PROJECTS_TILE = "SELECT projects_tile(%s, %s, %s, NULL)"


@dataclass(frozen=True)
class Page:
    """Features (JSON texts) in id order; ``last_id`` is set when another page follows."""

    features: list[str]
    last_id: int | None


async def _rows(
    pool: AsyncConnectionPool,
    query: str,
    params: Mapping[str, object] | tuple[object, ...],
    *,
    prepare: bool = True,
) -> list[tuple[Any, ...]]:

    async def run(conn: psycopg.AsyncConnection[Any]) -> list[tuple[Any, ...]]:
        cur = await conn.execute(query, params, prepare=prepare)
        return await cur.fetchall()

    return await pools.read(pool, run)


async def _text(pool: AsyncConnectionPool, query: str, params: Mapping[str, object]) -> str | None:
    rows = await _rows(pool, query, params)
    return str(rows[0][0]) if rows else None


async def _page(
    pool: AsyncConnectionPool,
    query: str,
    params: Mapping[str, object],
    limit: int,
    *,
    prepare: bool = True,
) -> Page:
    rows = await _rows(pool, query, params, prepare=prepare)
    more = len(rows) > limit
    rows = rows[:limit]
    return Page([r[1] for r in rows], rows[-1][0] if more else None)


# Web Mercator (EPSG:3857) is spherical Mercator on the WGS84 semi-major axis.
_MERCATOR_R = 6_378_137.0
_EWKB_POINT = struct.Struct("<BIIdd")  # little endian, type Point with an SRID, srid, x, y


def ewkb_point(x: float, y: float, srid: int) -> str:
    """A point as hex EWKB, which PostgreSQL reads as a geometry or geography value: a bound
    parameter the planner costs as a constant, where ``ST_Transform(ST_MakePoint(...))`` of
    parameters is costed per row (PostGIS declares ST_Transform at cost 10,000)."""
    return _EWKB_POINT.pack(1, 0x20000001, srid, x, y).hex()


def web_mercator(lon: float, lat: float) -> tuple[float, float]:
    """Metres in EPSG:3857 of a point in degrees (latitude within ±85.06°, Mercator's bound;
    the KNN only ranks candidates by it)."""
    lat = max(min(lat, 85.06), -85.06)
    return (
        _MERCATOR_R * math.radians(lon),
        _MERCATOR_R * math.log(math.tan(math.pi / 4 + math.radians(lat) / 2)),
    )


def _with_viewer(text: str, anonymous: bool) -> str:
    return text.replace("{viewer}", "NULL" if anonymous else "%(viewer)s")


# The bbox statement for an anonymous viewer (True) and for a signed-in one (False).
_BBOX_TEXTS = {anonymous: _with_viewer(PROJECTS_IN_BBOX, anonymous) for anonymous in (True, False)}


@functools.cache
def _nearby_text(limit: int, anonymous: bool) -> str:
    """The nearby statement for one limit (an int, bounded by the caller) and kind of viewer:
    see the header of nearby_projects.sql for why they are written into the text."""
    if not isinstance(limit, int) or not 1 <= limit <= 1_000:
        raise ValueError(f"limit {limit!r} is not an integer within 1-1000")
    text = NEARBY_PROJECTS.replace("{candidates}", str(2 * limit)).replace("{limit}", str(limit))
    return _with_viewer(text, anonymous)


def nearby_statement(
    lon: float, lat: float, radius_m: float, limit: int, viewer: int | None
) -> tuple[str, dict[str, object]]:
    """The nearby statement's text and parameters (nearby_projects.sql)."""
    params: dict[str, object] = {
        "mercator": ewkb_point(*web_mercator(lon, lat), 3857),
        "point": ewkb_point(lon, lat, 4326),
        "radius_m": radius_m,
    }
    if viewer is not None:
        params["viewer"] = viewer
    return _nearby_text(limit, viewer is None), params


async def nearby_projects(
    pool: AsyncConnectionPool,
    lon: float,
    lat: float,
    radius_m: float,
    limit: int,
    viewer: int | None,
) -> str:
    """A FeatureCollection of the nearest visible projects, nearest first."""
    text, params = nearby_statement(lon, lat, radius_m, limit, viewer)
    return await _text(pool, text, params) or ""


async def nearby_contributions(
    pool: AsyncConnectionPool,
    lon: float,
    lat: float,
    radius_m: float,
    limit: int,
    viewer: int | None,
    project_id: int | None = None,
) -> str:
    """A FeatureCollection of the nearest visible contributions, nearest first."""
    params = {
        "lon": lon,
        "lat": lat,
        "radius_m": radius_m,
        "limit": limit,
        "viewer": viewer,
        "project_id": project_id,
    }
    return await _text(pool, NEARBY_CONTRIBUTIONS, params) or ""


async def projects_in_bbox(
    pool: AsyncConnectionPool,
    bbox: tuple[float, float, float, float],
    after: int,
    limit: int,
    viewer: int | None,
) -> Page:
    minlon, minlat, maxlon, maxlat = bbox
    params: dict[str, object] = {
        "minlon": minlon,
        "minlat": minlat,
        "maxlon": maxlon,
        "maxlat": maxlat,
        "after": after,
        "limit": limit,
    }
    if viewer is not None:
        params["viewer"] = viewer
    return await _page(pool, _BBOX_TEXTS[viewer is None], params, limit)


async def commune_projects(
    pool: AsyncConnectionPool, code: str, after: int, limit: int, viewer: int | None
) -> Page:
    params = {"code": code, "after": after, "limit": limit, "viewer": viewer}
    # Never prepared: project_candidates is planned for the commune list it is given (its
    # branches for one commune and for thousands differ), and a generic plan, which a prepared
    # statement may switch to after five runs, took 3 s instead of 20-60 ms.
    return await _page(pool, COMMUNE_PROJECTS, params, limit, prepare=False)


async def project(pool: AsyncConnectionPool, project_id: int, viewer: int | None) -> str | None:
    """The project as a Feature, or None when it is missing or hidden from the viewer."""
    return await _text(pool, PROJECT, {"id": project_id, "viewer": viewer})


async def commune(pool: AsyncConnectionPool, code: str, geometry: bool) -> str | None:
    return await _text(pool, COMMUNE, {"code": code, "geometry": geometry})


async def tile(
    pool: AsyncConnectionPool, layer: str, z: int, x: int, y: int, viewer: int | None = None
) -> bytes:
    """A Mapbox Vector Tile from the layer's SQL function (migrations/sql/0002_tiles.sql,
    0009_epci_tiles.sql, 0010_private_tiles.sql): ``projects`` the public projects (the same
    for everyone), ``projects-private`` only the private projects ``viewer`` may see,
    ``communes``, ``epcis``. A ``projects`` tile is a :class:`TileRead` whose ``position``
    is the WAL position its snapshot includes (what the tile cache checks against the
    invalidations it received: consumers/tiles.py)."""
    if layer == "projects":
        return await _projects_tile(pool, z, x, y)
    if layer == "projects-private":
        rows = await _rows(pool, "SELECT private_projects_tile(%s, %s, %s, %s)", (z, x, y, viewer))
    elif layer == "epcis":
        rows = await _rows(pool, "SELECT epcis_tile(%s, %s, %s)", (z, x, y))
    else:
        rows = await _rows(pool, "SELECT communes_tile(%s, %s, %s)", (z, x, y))
    return bytes(rows[0][0]) if rows and rows[0][0] is not None else b""


async def _projects_tile(pool: AsyncConnectionPool, z: int, x: int, y: int) -> TileRead:

    async def run(conn: psycopg.AsyncConnection[Any]) -> TileRead:
        # One round trip: both statements pipelined, each with its own snapshot, in order.
        async with conn.pipeline():
            at = await conn.execute(READ_POSITION, prepare=True)
            tile = await conn.execute(PROJECTS_TILE, (z, x, y), prepare=True)
        position = await at.fetchone()
        data = await tile.fetchone()
        return TileRead(
            b"" if data is None or data[0] is None else bytes(data[0]),
            None if position is None or position[0] is None else int(position[0]),
        )

    return await pools.read(pool, run)
