"""Shapes of the HTTP API's answers, for its OpenAPI document (the answers themselves are built
by PostgreSQL; tests check that they match these)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from contracts.catalog import ConcernLevel, Space, Status, Tool, Visibility
from contracts.territories import AreaRef, EpciRef


class PointGeometry(BaseModel):
    type: Literal["Point"]
    coordinates: list[float] = Field(min_length=2, max_length=2, description="[lon, lat]")


class ProjectProperties(BaseModel):
    id: int
    title: str
    tool: Tool
    space: Space
    status: Status
    visibility: Visibility
    organisation: str
    organisation_id: int
    themes: list[str]
    scope: Literal["national", "territories", "area", "radius"]
    opens_at: datetime | None
    closes_at: datetime | None
    results_at: datetime | None
    distance_m: float | None = Field(default=None, description="nearby only: metres away")
    concerns_via: ConcernLevel | None = Field(
        default=None, description="commune lists only: the narrowest reason"
    )


class ProjectFeature(BaseModel):
    type: Literal["Feature"]
    id: int
    geometry: PointGeometry | None = Field(description="null for a national project")
    properties: ProjectProperties


class ProjectDetailProperties(ProjectProperties):
    description: str
    territories: list[dict[str, Any]]
    area: dict[str, Any] | None = Field(description="GeoJSON MultiPolygon of an area or radius")
    radius_m: float | None


class ProjectDetail(BaseModel):
    type: Literal["Feature"]
    id: int
    geometry: PointGeometry | None
    properties: ProjectDetailProperties


class ProjectCollection(BaseModel):
    type: Literal["FeatureCollection"]
    features: list[ProjectFeature]
    next_cursor: str | None = Field(
        default=None, description="pass as `cursor` for the next page; absent on the last page"
    )


class ContributionProperties(BaseModel):
    id: int
    project_id: int
    category: str
    title: str
    created_at: datetime
    distance_m: float


class ContributionFeature(BaseModel):
    type: Literal["Feature"]
    id: int
    geometry: PointGeometry
    properties: ContributionProperties


class ContributionCollection(BaseModel):
    type: Literal["FeatureCollection"]
    features: list[ContributionFeature]


class ArrondissementRef(BaseModel):
    """An arrondissement municipal of Paris, Lyon or Marseille."""

    code: str
    name: str
    population: int
    postal_codes: list[str]


class CommuneDetail(BaseModel):
    code: str
    name: str
    population: int
    postal_codes: list[str]
    timezone: str = Field(description="IANA time zone of the commune")
    epci: EpciRef | None
    departement: AreaRef
    region: AreaRef
    arrondissement: ArrondissementRef | None = Field(
        description="the arrondissement municipal asked for by its code (the answer is then its"
        " commune); null when a commune code was asked for"
    )
    geometry: dict[str, Any] | None = Field(description="GeoJSON outline, with ?geometry=true")


class Problem(BaseModel):
    """RFC 9457 problem details."""

    type: str = "about:blank"
    title: str
    status: int
    detail: str
    errors: list[dict[str, Any]] | None = None


class Written(BaseModel):
    written: int = Field(description="rows created or changed (0 when nothing differed)")
    id: int | None = Field(
        default=None, description="the id of what was written (assigned by the engine on creation)"
    )
