"""What the participatory map and the platform ask: nearby, in a box, what concerns a commune.

Every query reads projects through ``visible_projects(viewer)`` (migrations/sql), the one place
that decides who sees a private project. Answers are JSON built by PostgreSQL, returned as text
so the API does not parse and re-encode them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import psycopg

from geo_engine.db import load_sql

NEARBY_PROJECTS = load_sql("geo_engine.queries", "nearby_projects.sql")
NEARBY_CONTRIBUTIONS = load_sql("geo_engine.queries", "nearby_contributions.sql")
PROJECTS_IN_BBOX = load_sql("geo_engine.queries", "projects_in_bbox.sql")
COMMUNE_PROJECTS = load_sql("geo_engine.queries", "commune_projects.sql")
PROJECT = load_sql("geo_engine.queries", "project.sql")
COMMUNE = load_sql("geo_engine.queries", "commune.sql")


@dataclass(frozen=True)
class Page:
    """Features (JSON texts) in id order; ``last_id`` is set when another page follows."""

    features: list[str]
    last_id: int | None


async def _text(
    conn: psycopg.AsyncConnection, query: str, params: Mapping[str, object]
) -> str | None:
    cur = await conn.execute(query, params, prepare=True)
    row = await cur.fetchone()
    return None if row is None else str(row[0])


async def _page(
    conn: psycopg.AsyncConnection, query: str, params: Mapping[str, object], limit: int
) -> Page:
    cur = await conn.execute(query, params, prepare=True)
    rows = await cur.fetchall()
    more = len(rows) > limit
    rows = rows[:limit]
    return Page([r[1] for r in rows], rows[-1][0] if more else None)


async def nearby_projects(
    conn: psycopg.AsyncConnection,
    lon: float,
    lat: float,
    radius_m: float,
    limit: int,
    viewer: int | None,
) -> str:
    """A FeatureCollection of the nearest visible projects, nearest first."""
    params = {"lon": lon, "lat": lat, "radius_m": radius_m, "limit": limit, "viewer": viewer}
    return await _text(conn, NEARBY_PROJECTS, params) or ""


async def nearby_contributions(
    conn: psycopg.AsyncConnection,
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
    return await _text(conn, NEARBY_CONTRIBUTIONS, params) or ""


async def projects_in_bbox(
    conn: psycopg.AsyncConnection,
    bbox: tuple[float, float, float, float],
    after: int,
    limit: int,
    viewer: int | None,
) -> Page:
    minlon, minlat, maxlon, maxlat = bbox
    params = {
        "minlon": minlon,
        "minlat": minlat,
        "maxlon": maxlon,
        "maxlat": maxlat,
        "after": after,
        "limit": limit,
        "viewer": viewer,
    }
    return await _page(conn, PROJECTS_IN_BBOX, params, limit)


async def commune_projects(
    conn: psycopg.AsyncConnection, code: str, after: int, limit: int, viewer: int | None
) -> Page:
    params = {"code": code, "after": after, "limit": limit, "viewer": viewer}
    return await _page(conn, COMMUNE_PROJECTS, params, limit)


async def project(conn: psycopg.AsyncConnection, project_id: int, viewer: int | None) -> str | None:
    """The project as a Feature, or None when it is missing or hidden from the viewer."""
    return await _text(conn, PROJECT, {"id": project_id, "viewer": viewer})


async def commune(conn: psycopg.AsyncConnection, code: str, geometry: bool) -> str | None:
    return await _text(conn, COMMUNE, {"code": code, "geometry": geometry})


async def tile(
    conn: psycopg.AsyncConnection, layer: str, z: int, x: int, y: int, viewer: int | None
) -> bytes:
    """A Mapbox Vector Tile from the layer's SQL function (migrations/sql/0002_tiles.sql)."""
    if layer == "projects":
        cur = await conn.execute(
            "SELECT projects_tile(%s, %s, %s, %s)", (z, x, y, viewer), prepare=True
        )
    else:
        cur = await conn.execute("SELECT communes_tile(%s, %s, %s)", (z, x, y), prepare=True)
    row = await cur.fetchone()
    return bytes(row[0]) if row and row[0] is not None else b""
