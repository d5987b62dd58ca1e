"""Organisations, members, projects and contributions as imports and the API write them.

One JSON object per line in the ``*.jsonl`` imports; the same models are the API's request bodies.
"""

from __future__ import annotations

import re
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from contracts.spaces import Space as Space  # re-exported: the catalogue speaks of them
from contracts.spaces import Tool as Tool
from contracts.themes import Theme
from contracts.users import INSEE_CODE, Home
from contracts.values import Integer, Label, LongText, Number, OptionalLabel

Id = Annotated[int, Field(ge=1, le=2**63 - 1), Integer]


class OrganisationKind(StrEnum):
    COMMUNE = "commune"
    EPCI = "epci"
    DEPARTEMENT = "departement"
    REGION = "region"
    PARLEMENTAIRE = "parlementaire"
    ASSOCIATION = "association"
    ENTREPRISE = "entreprise"
    SYNDICAT = "syndicat"


class Role(StrEnum):
    ADMIN = "admin"
    AGENT = "agent"
    MEMBER = "member"


class Visibility(StrEnum):
    PUBLIC = "public"
    PRIVATE = "private"


class Status(StrEnum):
    UPCOMING = "upcoming"
    OPEN = "open"
    CLOSED = "closed"
    RESULTS = "results"


class Level(StrEnum):
    """Territory levels a scope or an organisation's home can name."""

    COMMUNE = "commune"
    # A municipal arrondissement of Paris (75101-75120), Lyon (69381-69389) or Marseille
    # (13201-13216): it concerns its commune too.
    ARRONDISSEMENT = "arrondissement"
    EPCI = "epci"
    DEPARTEMENT = "departement"
    REGION = "region"


# Why a project concerns a place, from the narrowest reason to the widest: the words of the SQL
# functions project_candidates and project_audience (migrations/sql/0003_*.sql).
ConcernLevel = Literal[
    "commune", "arrondissement", "epci", "area", "radius", "departement", "region", "national"
]
CONCERN_LEVELS: tuple[ConcernLevel, ...] = get_args(ConcernLevel)

CODE_PATTERNS: dict[Level, str] = {
    Level.COMMUNE: INSEE_CODE,
    Level.ARRONDISSEMENT: r"^(751(0[1-9]|1[0-9]|20)|6938[1-9]|132(0[1-9]|1[0-6]))$",
    Level.EPCI: r"^[0-9]{9}$",
    Level.DEPARTEMENT: r"^([0-9]{2,3}|2[AB])$",
    Level.REGION: r"^[0-9]{2}$",
}


class TerritoryRef(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    level: Level
    code: str = Field(min_length=2, max_length=9)

    @model_validator(mode="after")
    def _code_shape(self) -> TerritoryRef:
        if not re.fullmatch(CODE_PATTERNS[self.level], self.code):
            raise ValueError(f"{self.code!r} is not a {self.level.value} code")
        return self


# A point as every record gives it: {"lon": …, "lat": …}, checked in range.
Point = Home


class NationalScope(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: Literal["national"]


class TerritoriesScope(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: Literal["territories"]
    territories: list[TerritoryRef] = Field(min_length=1, max_length=500)

    @field_validator("territories")
    @classmethod
    def _distinct(cls, value: list[TerritoryRef]) -> list[TerritoryRef]:
        if len(set(value)) != len(value):
            raise ValueError("a territory is listed more than once")
        return value


class AreaScope(BaseModel):
    """A drawn area: a GeoJSON Polygon or MultiPolygon in lon/lat (checked by PostGIS)."""

    model_config = ConfigDict(extra="forbid")
    kind: Literal["area"]
    geometry: dict[str, object]

    @field_validator("geometry")
    @classmethod
    def _polygonal(cls, value: dict[str, object]) -> dict[str, object]:
        if value.get("type") not in ("Polygon", "MultiPolygon"):
            raise ValueError("the area must be a GeoJSON Polygon or MultiPolygon")
        if not isinstance(value.get("coordinates"), list):
            raise ValueError("the area has no coordinates list")
        return value


class RadiusScope(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: Literal["radius"]
    center: Point
    radius_m: Annotated[float, Field(gt=0, le=200_000), Number]


Scope = Annotated[
    NationalScope | TerritoriesScope | AreaScope | RadiusScope, Field(discriminator="kind")
]


class OrganisationRecord(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: Id
    kind: OrganisationKind
    name: Label
    territory: TerritoryRef | None = None


class MemberRecord(BaseModel):
    model_config = ConfigDict(extra="forbid")
    organisation_id: Id
    user_id: Id
    role: Role = Role.MEMBER


class ProjectRecord(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: Id
    organisation_id: Id
    space: Space
    tool: Tool
    title: Label
    description: LongText = ""
    themes: list[Theme] = Field(default_factory=list, max_length=len(Theme))
    visibility: Visibility = Visibility.PUBLIC
    status: Status = Status.OPEN
    opens_at: datetime | None = None
    closes_at: datetime | None = None
    results_at: datetime | None = None
    scope: Scope
    location: Point | None = None

    @field_validator("opens_at", "closes_at", "results_at")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("give a time zone (e.g. 2026-03-01T09:00:00+01:00)")
        return value

    @model_validator(mode="after")
    def _dates_in_order(self) -> ProjectRecord:
        dates = [("opens_at", self.opens_at), ("closes_at", self.closes_at)]
        dates.append(("results_at", self.results_at))
        given = [(n, d) for n, d in dates if d is not None]
        for (first, a), (second, b) in zip(given, given[1:], strict=False):
            if b < a:
                raise ValueError(f"{second} is before {first}")
        if len(set(self.themes)) != len(self.themes):
            raise ValueError("a theme is listed more than once")
        return self


class ProjectWrite(ProjectRecord):
    """The API's body for a project: the same record, its ``id`` optional. Without an id the
    engine creates the project and assigns one; with an id it updates that project, which
    must be one of the organisation's (see ``geo_engine/writes.py`` for the rule)."""

    id: Id | None = None  # type: ignore[assignment]  # optional here, required in imports


class ContributionRecord(BaseModel):
    """A point placed on a participatory map (``carte_participative``) project."""

    model_config = ConfigDict(extra="forbid")
    id: Id
    project_id: Id
    category: Label
    title: OptionalLabel = ""
    location: Point
    author_id: Id | None = None


class ContributionWrite(ContributionRecord):
    """The API's body for a contribution: ``id`` optional as in :class:`ProjectWrite`; with
    one, it updates a contribution of the caller's own."""

    id: Id | None = None  # type: ignore[assignment]  # optional here, required in imports
