"""Vector tiles from the layers' SQL functions (migrations/sql/0002_tiles.sql,
0009_epci_tiles.sql, 0010_private_tiles.sql).

Public layers (``projects``, ``communes``, ``epcis``) are the same for every caller, whatever
their token: they come from the process's cache (api/tile_cache.py) with a strong ``ETag``
(``If-None-Match`` answers 304) and ``Cache-Control: public``, for browsers and a CDN.
A member's private projects come only from ``projects-private``: read live for that viewer,
never cached, ``Cache-Control: private, no-store``.
"""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Request, Response

from api.deps import PoolDep, TileDep, ViewerDep
from api.problems import documented
from api.tile_cache import TileCache, matches
from contracts.errors import Unauthenticated
from geo_engine.catalog import queries as project_queries
from geo_engine.settings import TileCacheSettings

router = APIRouter(prefix="/v1/tiles", tags=["tiles"])
MVT = "application/vnd.mapbox-vector-tile"
PRIVATE = "projects-private"


def public_tile_headers(settings: TileCacheSettings, etag: str) -> dict[str, str]:
    """A public tile's caching headers: anyone (a browser, a CDN) may keep it
    ``tile_max_age_s``, then revalidate it by its strong ``etag``."""
    return {"Cache-Control": f"public, max-age={settings.tile_max_age_s}", "ETag": etag}


@router.get(
    "/{layer}/{z}/{x}/{y}.mvt",
    response_class=Response,
    responses={
        200: {
            "content": {MVT: {"schema": {"type": "string", "format": "binary"}}},
            "description": "a Mapbox Vector Tile",
        },
        304: {"description": "the tile named by If-None-Match has not changed (public layers)"},
        **documented(401, 422),
    },
)
async def tile(
    request: Request,
    layer: Literal["projects", "communes", "epcis", "projects-private"],
    coords: TileDep,
    db: PoolDep,
    viewer: ViewerDep,
) -> Response:
    """`communes`: département outlines below zoom 9, commune outlines from 9 (`code` = INSEE).
    `epcis`: EPCI outlines at every zoom (`code` = SIREN).
    `projects`: the public projects, the same for every caller: clusters with a count
    (`project_clusters`) and single projects below zoom 16 (one feature per 1/64-tile cell),
    contributions from 14; `ETag`, `Cache-Control: public`.
    `projects-private` (a bearer token needed, else 401): the same layers over only the private
    projects the caller may see, never cached (`Cache-Control: private, no-store`)."""
    z, x, y = coords
    if layer == PRIVATE:
        if viewer.anonymous:
            raise Unauthenticated(
                "the projects-private layer holds a member's private projects: "
                "send 'Authorization: Bearer <token>'",
                headers={"WWW-Authenticate": "Bearer"},
            )
        data = await project_queries.tile(db, PRIVATE, z, x, y, viewer.user_id)
        return Response(
            data,
            media_type=MVT,
            headers={"Cache-Control": "private, no-store", "Vary": "Authorization"},
        )
    cache: TileCache = request.app.state.tile_cache
    settings: TileCacheSettings = cache.settings
    found = await cache.get(layer, z, x, y, lambda: project_queries.tile(db, layer, z, x, y))
    headers = public_tile_headers(settings, found.etag)
    if matches(request.headers.get("if-none-match"), found.etag):
        return Response(status_code=304, headers=headers)
    return Response(found.data, media_type=MVT, headers=headers)
