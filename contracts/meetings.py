"""Public meetings of projects (réunion publique, atelier, balade urbaine), as the import reads
them (one JSON object per line) and as the API takes and answers them.

Times are aware datetimes (an offset or ``Z``); they are stored and answered in UTC and shown
to people in their own time zone. ``place`` is the address as people read it; ``location`` the
point on the map, when known.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from contracts.users import Home
from contracts.values import Integer, Label, check_text

Id = Annotated[int, Field(ge=1, le=2**63 - 1), Integer]
FIRST_YEAR, LAST_YEAR = 2000, 2099  # a typing error beyond, and far from datetime's limits
MAX_DURATION = timedelta(days=7)  # a meeting, not a season: longer is a typing error

# Same bounds as the table's checks (migration 0008, _meetings).
Title = Annotated[str, Field(min_length=1, max_length=200), AfterValidator(check_text)]
Place = Label


class MeetingKind(StrEnum):
    REUNION_PUBLIQUE = "reunion_publique"
    ATELIER = "atelier"
    BALADE_URBAINE = "balade_urbaine"


# How people read each kind (alerts, digests, the map, the .ics summary).
KIND_LABELS: dict[str, str] = {
    "reunion_publique": "Réunion publique",
    "atelier": "Atelier",
    "balade_urbaine": "Balade urbaine",
}


class MeetingWrite(BaseModel):
    """The API's body (``POST /v1/projects/{id}/meetings``, ``PUT /v1/meetings/{id}``): what
    the meeting is, where and when. ``ends_at`` after ``starts_at``, at most 7 days later."""

    model_config = ConfigDict(extra="forbid")
    kind: MeetingKind
    title: Title
    place: Place
    location: Home | None = None
    starts_at: datetime
    ends_at: datetime

    @field_validator("starts_at", "ends_at")
    @classmethod
    def _aware(cls, value: datetime) -> datetime:
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError("give a time zone (e.g. 2026-12-03T18:30:00+01:00)")
        if not FIRST_YEAR <= value.year <= LAST_YEAR:
            raise ValueError(f"give a year between {FIRST_YEAR} and {LAST_YEAR}")
        return value

    @model_validator(mode="after")
    def _in_order(self) -> MeetingWrite:
        if self.ends_at <= self.starts_at:
            raise ValueError("ends_at must be after starts_at")
        if self.ends_at - self.starts_at > MAX_DURATION:
            raise ValueError("a meeting lasts at most 7 days (ends_at - starts_at)")
        return self


class MeetingRecord(MeetingWrite):
    """One line of ``geo-engine meetings import``: a meeting with its id (created, or
    replaced when it exists and belongs to the same project) and its project."""

    id: Id
    project_id: Id


class MeetingView(BaseModel):
    """A meeting as the API answers it (times in UTC); ``cancelled_at`` is set once cancelled."""

    id: int
    project_id: int
    project_title: str
    kind: MeetingKind
    kind_label: str
    title: str
    place: str
    location: Home | None
    starts_at: datetime
    ends_at: datetime
    cancelled_at: datetime | None
    ics_url: str = Field(description="path of the meeting's iCalendar file")


class MeetingPointGeometry(BaseModel):
    type: Literal["Point"]
    coordinates: list[float] = Field(min_length=2, max_length=2, description="[lon, lat]")


class MeetingFeature(BaseModel):
    type: Literal["Feature"]
    id: int
    geometry: MeetingPointGeometry
    properties: MeetingView


class MeetingCollection(BaseModel):
    """Upcoming, not cancelled meetings with a location, for the map."""

    type: Literal["FeatureCollection"]
    features: list[MeetingFeature]
