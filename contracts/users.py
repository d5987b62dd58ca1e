"""A user as the import reads it: one JSON object per line."""

from __future__ import annotations

from functools import cache
from typing import Annotated, Literal
from zoneinfo import available_timezones

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from contracts.territories import parse_coordinates
from contracts.themes import Theme
from contracts.values import Integer, Number

INSEE_CODE = r"^([0-9]{5}|2[AB][0-9]{3})$"  # ASCII digits: \d would take ٧٥٠٥٦
POSTAL_CODE = r"^[0-9]{5}$"


@cache
def _zones() -> frozenset[str]:
    return frozenset(available_timezones())


class Home(BaseModel):
    model_config = ConfigDict(extra="forbid")
    lon: Annotated[float, Number]
    lat: Annotated[float, Number]

    @model_validator(mode="after")
    def _in_range(self) -> Home:
        parse_coordinates(self.lat, self.lon)
        return self


class Notifications(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    email: bool = True
    push: bool = False
    frequency: Literal["immediate", "daily", "weekly", "never"] = "weekly"


class UserRecord(BaseModel):
    """Where the user lives is given by exactly one of ``home``, ``commune``, ``postal_code``."""

    model_config = ConfigDict(extra="forbid")
    id: Annotated[int, Field(ge=1, le=2**63 - 1), Integer]
    home: Home | None = None
    commune: str | None = Field(default=None, pattern=INSEE_CODE)
    postal_code: str | None = Field(default=None, pattern=POSTAL_CODE)
    interests: list[Theme] = Field(default_factory=list, max_length=len(Theme))
    notifications: Notifications = Field(default_factory=Notifications)
    timezone: str | None = None

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if value not in _zones():
            raise ValueError(f"unknown time zone {value!r} (use an IANA name like Europe/Paris)")
        return value

    @field_validator("interests")
    @classmethod
    def _distinct(cls, value: list[Theme]) -> list[Theme]:
        repeated = sorted({t.value for t in value if value.count(t) > 1})
        if repeated:
            raise ValueError(f"themes listed more than once: {', '.join(repeated)}")
        return value

    @model_validator(mode="after")
    def _one_place(self) -> UserRecord:
        given = [n for n in ("home", "commune", "postal_code") if getattr(self, n) is not None]
        if len(given) != 1:
            raise ValueError(
                "give exactly one of home, commune or postal_code"
                + (f" (got {', '.join(given)})" if given else "")
            )
        return self
