"""Vector tiles from the layers' SQL functions (migrations/sql/0002_tiles.sql)."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Response

from api.deps import PoolDep, TileDep, ViewerDep
from api.problems import documented
from geo_engine.catalog import queries as project_queries

router = APIRouter(prefix="/v1/tiles", tags=["tiles"])
MVT = "application/vnd.mapbox-vector-tile"


@router.get(
    "/{layer}/{z}/{x}/{y}.mvt",
    response_class=Response,
    responses={
        200: {
            "content": {MVT: {"schema": {"type": "string", "format": "binary"}}},
            "description": "a Mapbox Vector Tile",
        },
        **documented(401, 422),
    },
)
async def tile(
    layer: Literal["projects", "communes", "epcis"],
    coords: TileDep,
    db: PoolDep,
    viewer: ViewerDep,
) -> Response:
    """`communes`: département outlines below zoom 9, commune outlines from 9 (`code` = INSEE).
    `epcis`: EPCI outlines at every zoom (`code` = SIREN).
    `projects`: clusters with a count below zoom 9, projects from 9, contributions from 12;
    only what the caller may see."""
    z, x, y = coords
    data = await project_queries.tile(db, layer, z, x, y, viewer.user_id)
    # Public tiles may be cached by anyone; a member's tile only by their own browser.
    cache = "public, max-age=60" if viewer.anonymous else "private, max-age=60"
    return Response(data, media_type=MVT, headers={"Cache-Control": cache, "Vary": "Authorization"})
