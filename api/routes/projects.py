"""Projects and contributions: nearby, in a box, one by id."""

from __future__ import annotations

from fastapi import APIRouter, Response

from api.deps import (
    BBoxDep,
    Cursor,
    LonLatDep,
    NearbyLimit,
    PageLimit,
    PoolDep,
    ProjectIdPath,
    ProjectIdQuery,
    RadiusM,
    SettingsDep,
    ViewerDep,
)
from api.pages import GeoJSONResponse, page_response
from api.problems import documented, not_found
from contracts.api import ContributionCollection, ProjectCollection, ProjectDetail
from geo_engine.catalog import queries as project_queries

router = APIRouter(prefix="/v1", tags=["projects"], responses=documented(401, 422))


@router.get(
    "/projects/nearby",
    response_model=ProjectCollection,
    response_class=GeoJSONResponse,
)
async def nearby(
    point: LonLatDep,
    db: PoolDep,
    viewer: ViewerDep,
    radius_m: RadiusM = 5_000,
    limit: NearbyLimit = 20,
) -> Response:
    """The nearest projects within `radius_m` metres, nearest first, with `distance_m`."""
    text = await project_queries.nearby_projects(
        db, point.lon, point.lat, radius_m, limit, viewer.user_id
    )
    return GeoJSONResponse(text)


@router.get(
    "/projects",
    response_model=ProjectCollection,
    response_class=GeoJSONResponse,
)
async def in_bbox(
    bbox: BBoxDep,
    db: PoolDep,
    viewer: ViewerDep,
    settings: SettingsDep,
    limit: PageLimit = 100,
    cursor: Cursor = None,
) -> Response:
    """Projects placed inside a bounding box, in id order, one page at a time."""
    return await page_response(
        lambda after: project_queries.projects_in_bbox(db, bbox, after, limit, viewer.user_id),
        cursor,
        viewer,
        settings,
    )


@router.get(
    "/projects/{project_id}",
    response_model=ProjectDetail,
    response_class=GeoJSONResponse,
    responses=documented(404),
)
async def project(project_id: ProjectIdPath, db: PoolDep, viewer: ViewerDep) -> Response:
    """One project with its scope. A project you may not see answers exactly like a missing one."""
    text = await project_queries.project(db, project_id, viewer.user_id)
    if text is None:
        raise not_found(f"project {project_id}")
    return GeoJSONResponse(text)


@router.get(
    "/contributions/nearby",
    response_model=ContributionCollection,
    response_class=GeoJSONResponse,
)
async def contributions_nearby(
    point: LonLatDep,
    db: PoolDep,
    viewer: ViewerDep,
    radius_m: RadiusM = 1_000,
    limit: NearbyLimit = 20,
    project_id: ProjectIdQuery = None,
) -> Response:
    """The nearest contributions on participatory maps, nearest first, with `distance_m`."""
    text = await project_queries.nearby_contributions(
        db, point.lon, point.lat, radius_m, limit, viewer.user_id, project_id
    )
    return GeoJSONResponse(text)
