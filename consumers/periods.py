"""Local periods and quiet hours: when a user's day, week, morning and night begin and end.

Pure functions of aware datetimes and IANA zone names (``zoneinfo``). Every schedule of the loop
is a wall-clock time in the user's own zone, turned into an instant here:

- a wall-clock time that does not exist (the hour skipped when clocks go forward, e.g. 02:30 in
  Paris on 2026-03-29) resolves to the first instant after the gap (03:00 CEST);
- a wall-clock time that exists twice (the hour repeated when clocks go back) resolves to its
  first occurrence, unless a later one is asked for (:func:`quiet_end` takes the first one after
  the instant it is given).

So a local day is 23, 24 or 25 hours long, a week 167 to 169, and consecutive periods tile time
with neither gap nor overlap: the end of one is the start of the next.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from functools import cache
from typing import Literal
from zoneinfo import ZoneInfo

from contracts.users import QuietHours, Weekday

Frequency = Literal["daily", "weekly"]
WEEKDAYS: tuple[Weekday, ...] = (
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
    "sunday",
)


@cache
def zone(name: str) -> ZoneInfo:
    """The zone of an IANA name (``ZoneInfoNotFoundError`` when unknown)."""
    return ZoneInfo(name)


def _require_aware(instant: datetime) -> None:
    if instant.tzinfo is None or instant.utcoffset() is None:
        raise ValueError(f"{instant.isoformat()} has no time zone: give an aware datetime")


def local_day(instant: datetime, tz: str) -> date:
    """The local date, in zone ``tz``, at ``instant`` (aware)."""
    _require_aware(instant)
    return instant.astimezone(zone(tz)).date()


def local_week(instant: datetime, tz: str) -> date:
    """The Monday of the ISO week, in zone ``tz``, containing ``instant`` (aware)."""
    day = local_day(instant, tz)
    return day - timedelta(days=day.weekday())


def period_start(frequency: Frequency, instant: datetime, tz: str) -> date:
    """The local period containing ``instant``: its day (daily) or its week's Monday (weekly)."""
    return local_day(instant, tz) if frequency == "daily" else local_week(instant, tz)


def _instants(day: date, wall: time, tz: str) -> list[datetime]:
    """The UTC instants at which the wall clock of ``tz`` reads ``day wall``: one, two (an
    overlap, in order) or none (a gap)."""
    z = zone(tz)
    found = []
    for fold in (0, 1):
        local = datetime.combine(day, wall, tzinfo=z).replace(fold=fold)
        utc = local.astimezone(UTC)
        back = utc.astimezone(z)
        if back.replace(tzinfo=None) == local.replace(tzinfo=None, fold=0) and utc not in found:
            found.append(utc)
    return sorted(found)


def _gap_end(day: date, wall: time, tz: str) -> datetime:
    """The first instant after the gap in which ``day wall`` falls (its transition)."""
    z = zone(tz)
    naive = datetime.combine(day, wall)
    # With the offsets before (fold=0) and after (fold=1) the gap, the wall time maps to two
    # instants that bracket the transition; bisect to the second.
    low = naive.replace(tzinfo=z, fold=1).astimezone(UTC)
    high = naive.replace(tzinfo=z, fold=0).astimezone(UTC)
    if low > high:
        low, high = high, low
    while high - low > timedelta(seconds=1):
        middle = low + (high - low) / 2
        middle = middle.replace(microsecond=0)
        if middle.astimezone(z).replace(tzinfo=None) >= naive:
            high = middle
        else:
            low = middle
    return high if low.astimezone(z).replace(tzinfo=None) < naive else low


def at_local(day: date, wall: time, tz: str) -> datetime:
    """The UTC instant at which it is ``day wall`` in ``tz``: the first occurrence of a
    repeated time, the first instant after a skipped one."""
    found = _instants(day, wall, tz)
    return found[0] if found else _gap_end(day, wall, tz)


def bounds(frequency: Frequency, start: date, tz: str) -> tuple[datetime, datetime]:
    """The UTC instants [start, end) of the local period beginning on ``start`` (a day, or a
    week from its Monday): local midnights, resolved as :func:`at_local` does."""
    days = 1 if frequency == "daily" else 7
    return at_local(start, time(0), tz), at_local(start + timedelta(days=days), time(0), tz)


def digest_due(
    frequency: Frequency, start: date, tz: str, hour: int, weekday: Weekday = "monday"
) -> datetime:
    """When the digest of the period beginning on ``start`` is due: ``hour`` o'clock local on
    that day (daily) or on ``weekday`` of that week (weekly)."""
    day = start if frequency == "daily" else start + timedelta(days=WEEKDAYS.index(weekday))
    return at_local(day, time(hour), tz)


def next_morning(instant: datetime, tz: str, hour: int) -> datetime:
    """The first instant at or after ``instant`` at which it is ``hour`` o'clock local."""
    day = local_day(instant, tz)
    due = at_local(day, time(hour), tz)
    return due if due >= instant else at_local(day + timedelta(days=1), time(hour), tz)


def next_weekday_morning(instant: datetime, tz: str, hour: int, weekday: Weekday) -> datetime:
    """The first instant at or after ``instant`` at which it is ``hour`` o'clock local on a
    ``weekday``."""
    day = local_day(instant, tz)
    ahead = (WEEKDAYS.index(weekday) - day.weekday()) % 7
    due = at_local(day + timedelta(days=ahead), time(hour), tz)
    return due if due >= instant else at_local(day + timedelta(days=ahead + 7), time(hour), tz)


def is_quiet(instant: datetime, tz: str, quiet: QuietHours) -> bool:
    """Whether the local wall clock at ``instant`` reads within [start, end) of ``quiet``
    (spanning midnight when start is after end; never when they are equal)."""
    _require_aware(instant)
    now = instant.astimezone(zone(tz)).time().replace(tzinfo=None)
    if quiet.start == quiet.end:
        return False
    if quiet.start < quiet.end:
        return quiet.start <= now < quiet.end
    return now >= quiet.start or now < quiet.end


def quiet_end(instant: datetime, tz: str, quiet: QuietHours) -> datetime:
    """When the quiet hours holding ``instant`` end: ``instant`` itself when it is not quiet,
    else the first instant after it at which the wall clock reads ``quiet.end`` (the first
    valid instant after it when that time is skipped that night)."""
    if not is_quiet(instant, tz, quiet):
        return instant
    day = local_day(instant, tz)
    for offset in (0, 1, 2):
        wall_day = day + timedelta(days=offset)
        found = [t for t in _instants(wall_day, quiet.end, tz) if t > instant]
        if not _instants(wall_day, quiet.end, tz):
            gap = _gap_end(wall_day, quiet.end, tz)
            found = [gap] if gap > instant else []
        if found:
            return found[0]
    raise AssertionError("a wall-clock time comes back within two days")  # pragma: no cover
