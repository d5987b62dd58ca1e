"""A user as the import reads it: one JSON object per line."""

from __future__ import annotations

from datetime import time
from enum import StrEnum
from functools import cache
from typing import Annotated, Literal
from zoneinfo import available_timezones

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from contracts.spaces import Space, Tool
from contracts.territories import parse_coordinates
from contracts.themes import Theme
from contracts.values import Integer, Number

INSEE_CODE = r"^([0-9]{5}|2[AB][0-9]{3})$"  # ASCII digits: \d would take ٧٥٠٥٦
POSTAL_CODE = r"^[0-9]{5}$"


# Names in the zone database that are no place's zone: "localtime" is whatever the server's
# /etc/localtime says, "Factory" a placeholder, "posixrules" a template.
NOT_ZONES = frozenset({"localtime", "Factory", "posixrules"})


@cache
def _zones() -> frozenset[str]:
    return frozenset(available_timezones()) - NOT_ZONES


class Home(BaseModel):
    model_config = ConfigDict(extra="forbid")
    lon: Annotated[float, Number]
    lat: Annotated[float, Number]

    @model_validator(mode="after")
    def _in_range(self) -> Home:
        parse_coordinates(self.lat, self.lon)
        return self


Frequency = Literal["instant", "daily", "weekly", "off"]
Weekday = Literal["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]
# The words of the first contract, still accepted on input and rewritten by migration 0008.
_LEGACY_FREQUENCIES = {"immediate": "instant", "never": "off"}


class QuietHours(BaseModel):
    """Local wall-clock times between which no alert is sent (held until ``end``); ``start``
    after ``end`` spans midnight (the default, 22:00–08:00); equal times mean none."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    start: time = time(22, 0)
    end: time = time(8, 0)

    @field_validator("start", "end")
    @classmethod
    def _wall_clock(cls, value: time) -> time:
        # In the user's own zone, whatever its offset that day: an offset here would mean
        # another zone, and half the year the wrong hour.
        if value.tzinfo is not None:
            raise ValueError("give a local time of day without offset, e.g. 22:00")
        return value


class Notifications(BaseModel):
    """How the retention loop reaches a user.

    ``frequency``: ``instant`` alerts (outside quiet hours, within the weekly budget, the
    rest in the next daily digest), a ``daily`` or ``weekly`` digest (on ``digest_weekday``),
    or ``off`` (the in-app inbox only). ``email`` is the mail channel; the inbox always is.
    ``muted_spaces``, ``muted_tools`` and ``muted_themes`` are what the user does not want to
    hear about (empty: everything)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    email: bool = True
    push: bool = False
    frequency: Frequency = "weekly"
    quiet_hours: QuietHours = QuietHours()
    digest_weekday: Weekday = "monday"
    muted_spaces: tuple[Space, ...] = Field(default=(), max_length=len(Space))
    muted_tools: tuple[Tool, ...] = Field(default=(), max_length=len(Tool))
    muted_themes: tuple[Theme, ...] = Field(default=(), max_length=len(Theme))

    @field_validator("frequency", mode="before")
    @classmethod
    def _legacy_words(cls, value: object) -> object:
        return _LEGACY_FREQUENCIES.get(value, value) if isinstance(value, str) else value

    @field_validator("muted_spaces", "muted_tools", "muted_themes")
    @classmethod
    def _no_repeats(cls, value: tuple[StrEnum, ...]) -> tuple[StrEnum, ...]:
        repeated = sorted({v.value for v in value if value.count(v) > 1})
        if repeated:
            raise ValueError(f"listed more than once: {', '.join(repeated)}")
        return value


def _known_zone(value: str | None) -> str | None:
    if value is None:
        return None
    if value not in _zones():
        raise ValueError(f"unknown time zone {value!r} (use an IANA name like Europe/Paris)")
    return value


def _distinct(value: list[Theme] | None) -> list[Theme] | None:
    if value is None:
        return None
    repeated = sorted({t.value for t in value if value.count(t) > 1})
    if repeated:
        raise ValueError(f"themes listed more than once: {', '.join(repeated)}")
    return value


PLACE_FIELDS = ("home", "commune", "postal_code")


def _places_given(model: BaseModel) -> list[str]:
    return [n for n in PLACE_FIELDS if getattr(model, n) is not None]


class UserRecord(BaseModel):
    """Where the user lives is given by exactly one of ``home``, ``commune``, ``postal_code``.

    The import's line and the body of ``POST /v1/users`` (register)."""

    model_config = ConfigDict(extra="forbid")
    id: Annotated[int, Field(ge=1, le=2**63 - 1), Integer]
    home: Home | None = None
    commune: str | None = Field(default=None, pattern=INSEE_CODE)
    postal_code: str | None = Field(default=None, pattern=POSTAL_CODE)
    interests: list[Theme] = Field(default_factory=list, max_length=len(Theme))
    notifications: Notifications = Field(default_factory=Notifications)
    timezone: str | None = None

    _zone = field_validator("timezone")(_known_zone)
    _themes = field_validator("interests")(_distinct)

    @model_validator(mode="after")
    def _one_place(self) -> UserRecord:
        given = _places_given(self)
        if len(given) != 1:
            raise ValueError(
                "give exactly one of home, commune or postal_code"
                + (f" (got {', '.join(given)})" if given else "")
            )
        return self


class UserPatch(BaseModel):
    """The body of ``PATCH /v1/users/{id}``: what changes, with the import's rules. A new
    place is at most one of ``home``, ``commune``, ``postal_code`` (a move); ``interests``,
    ``notifications`` and ``timezone`` replace the stored ones; an absent field is unchanged
    and ``"timezone": null`` returns to the commune's time zone."""

    model_config = ConfigDict(extra="forbid")
    home: Home | None = None
    commune: str | None = Field(default=None, pattern=INSEE_CODE)
    postal_code: str | None = Field(default=None, pattern=POSTAL_CODE)
    interests: list[Theme] | None = Field(default=None, max_length=len(Theme))
    notifications: Notifications | None = None
    timezone: str | None = None

    _zone = field_validator("timezone")(_known_zone)
    _themes = field_validator("interests")(_distinct)

    @model_validator(mode="after")
    def _at_most_one_place(self) -> UserPatch:
        given = _places_given(self)
        if len(given) > 1:
            raise ValueError(
                f"give at most one of home, commune or postal_code (got {', '.join(given)})"
            )
        for name in ("interests", "notifications"):
            if name in self.model_fields_set and getattr(self, name) is None:
                raise ValueError(f"{name} cannot be null (leave it out to keep it)")
        return self


class UserView(BaseModel):
    """A user as ``GET /v1/users/{id}`` shows them to themself or to staff. ``home`` is the
    stored, coarsened point (the exact one is never kept); ``candidates`` lists the communes
    of a shared postal code while the user has not chosen."""

    id: int
    commune: str | None
    commune_name: str | None
    arrondissement: str | None
    candidates: list[str] | None
    postal_code: str | None
    home: Home | None
    interests: list[str]
    notifications: Notifications
    timezone: str | None = Field(description="as the user chose it (null: their commune's)")
    effective_timezone: str | None = Field(description="the one alerts are timed by")
