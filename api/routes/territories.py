"""Territories: locate a point, a commune and its chain, what concerns a commune."""

from __future__ import annotations

from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Query, Response

from api.deps import Cursor, Insee, LonLatDep, PageLimit, PoolDep, SettingsDep, ViewerDep
from api.pages import GeoJSONResponse, page_response
from api.problems import documented, not_found
from contracts.api import CommuneDetail, ProjectCollection
from contracts.errors import OutsideFrance
from contracts.territories import Location, PlaceList
from contracts.values import Integer
from geo_engine import pools
from geo_engine.catalog import queries as project_queries
from geo_engine.territories.locate import locate_async
from geo_engine.territories.places import places_async

router = APIRouter(prefix="/v1/territories", tags=["territories"], responses=documented(422))


@router.get("/locate", responses={200: {"model": Location}, **documented(404)})
async def locate(point: LonLatDep, db: PoolDep) -> dict[str, Any]:
    """The commune, EPCI, département and région of a point (as `geo-engine geo locate`)."""
    location = await pools.read(db, lambda conn: locate_async(conn, point.lat, point.lon))
    if location is None:
        raise OutsideFrance(f"no French commune at lat {point.lat}, lon {point.lon}")
    return location.as_json_dict()


@router.get("/places", response_model=PlaceList)
async def places(
    q: Annotated[
        str, Query(min_length=1, max_length=100, description="a commune's name or postal code")
    ],
    db: PoolDep,
    limit: Annotated[int, Query(ge=1, le=20, description="at most 20 communes"), Integer] = 5,
) -> PlaceList:
    """Communes matching `q` (case, accents, hyphens and apostrophes ignored; or a postal code),
    best first, each with a point inside it: what the map's search field goes to."""
    found = await pools.read(db, lambda conn: places_async(conn, q, limit))
    return PlaceList(places=found)


@router.get(
    "/communes/{insee}",
    response_model=CommuneDetail,
    responses=documented(404),
)
async def commune(
    insee: Insee,
    db: PoolDep,
    geometry: Annotated[bool, Query(description="include the outline as GeoJSON")] = False,
) -> Response:
    """A commune with its EPCI, département and région.

    The code of an arrondissement municipal (Paris 75101-75120, Lyon 69381-69389, Marseille
    13201-13216) answers its commune, naming the arrondissement in `arrondissement`."""
    text = await project_queries.commune(db, insee, geometry)
    if text is None:
        raise not_found(f"commune {insee}")
    return Response(text, media_type="application/json")


@router.get(
    "/communes/{insee}/projects",
    response_model=ProjectCollection,
    response_class=GeoJSONResponse,
    responses=documented(401, 404),
)
async def commune_projects(
    insee: Insee,
    db: PoolDep,
    viewer: ViewerDep,
    settings: SettingsDep,
    limit: PageLimit = 100,
    cursor: Cursor = None,
) -> Response:
    """Every project that concerns the commune through the hierarchy, in id order, paginated.

    An arrondissement municipal's code lists what concerns its commune."""
    found = await project_queries.commune(db, insee, False)
    if found is None:
        raise not_found(f"commune {insee}")
    code = str(orjson.loads(found)["code"])
    return await page_response(
        lambda after: project_queries.commune_projects(db, code, after, limit, viewer.user_id),
        cursor,
        viewer,
        settings,
    )
