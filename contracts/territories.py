"""What ``locate`` answers, over the CLI and (later) HTTP."""

from __future__ import annotations

import math
from typing import Any

from pydantic import BaseModel

from contracts.errors import InvalidInput
from contracts.values import parse_number


class InvalidCoordinates(InvalidInput, ValueError):
    """A latitude or longitude that is not a finite number in range; the message says which.

    Also a ValueError, so that pydantic validators calling :func:`parse_coordinates` turn it
    into a validation error naming the field."""


def parse_coordinates(lat: object, lon: object) -> tuple[float, float]:
    """Validate a (lat, lon) pair given as numbers or strings, or say which value is wrong."""
    values = []
    for label, raw, bound in (("latitude", lat, 90.0), ("longitude", lon, 180.0)):
        try:
            # Text through the one strict parser (ASCII digits); numbers as they are.
            value = parse_number(raw) if isinstance(raw, str) else float(raw)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            raise InvalidCoordinates(f"{label} {raw!r} is not a number") from None
        if not math.isfinite(value):
            raise InvalidCoordinates(f"{label} {raw!r} is not a finite number")
        if not -bound <= value <= bound:
            raise InvalidCoordinates(f"{label} {value} is out of range [-{bound:g}, {bound:g}]")
        values.append(value)
    return values[0], values[1]


class CommuneRef(BaseModel):
    code: str
    name: str
    population: int


class EpciRef(BaseModel):
    code: str
    name: str
    xxl: bool
    members: int


class AreaRef(BaseModel):
    code: str
    name: str


class Location(BaseModel):
    """The territories a point belongs to; ``arrondissement`` only inside Paris."""

    commune: CommuneRef
    epci: EpciRef | None
    departement: AreaRef
    region: AreaRef
    arrondissement: AreaRef | None = None

    def as_json_dict(self) -> dict[str, Any]:
        """``epci`` is always present (null outside any EPCI); ``arrondissement`` only in Paris."""
        data = self.model_dump()
        if self.arrondissement is None:
            del data["arrondissement"]
        return data


class Place(BaseModel):
    """A commune a person named (by name or postal code), and a point inside it to search
    around: ``lon``/``lat`` in WGS84 degrees (a point on its surface, not its centroid)."""

    code: str
    name: str
    departement: str
    population: int
    lon: float
    lat: float


class PlaceList(BaseModel):
    """The communes matching a search, best first."""

    places: list[Place]
