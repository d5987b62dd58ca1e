"""Local periods and quiet hours, in the zones of France, across daylight-saving changes."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from consumers import periods
from contracts.users import QuietHours

ZONES = [
    "Europe/Paris",
    "America/Martinique",
    "America/Guadeloupe",
    "America/Cayenne",
    "Indian/Reunion",
    "Indian/Mayotte",
    "Pacific/Tahiti",
    "Pacific/Noumea",
    "America/Miquelon",
]
zones = st.sampled_from(ZONES)
instants = st.datetimes(
    min_value=datetime(2024, 1, 1), max_value=datetime(2030, 12, 31), timezones=st.just(UTC)
)
walls = st.times().map(lambda t: t.replace(microsecond=0))
frequencies = st.sampled_from(["daily", "weekly"])


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


# --- explicit DST days -----------------------------------------------------------------------


def test_paris_spring_day_is_23_hours_and_autumn_day_25() -> None:
    start, end = periods.bounds("daily", date(2026, 3, 29), "Europe/Paris")
    assert (start, end) == (utc(2026, 3, 28, 23), utc(2026, 3, 29, 22))
    assert end - start == timedelta(hours=23)
    start, end = periods.bounds("daily", date(2026, 10, 25), "Europe/Paris")
    assert (start, end) == (utc(2026, 10, 24, 22), utc(2026, 10, 25, 23))
    assert end - start == timedelta(hours=25)


def test_week_of_a_dst_change_is_167_hours() -> None:
    start, end = periods.bounds("weekly", date(2026, 3, 23), "Europe/Paris")
    assert end - start == timedelta(hours=167)
    start, end = periods.bounds("weekly", date(2026, 10, 19), "Europe/Paris")
    assert end - start == timedelta(hours=169)


def test_miquelon_has_dst_and_tahiti_has_none() -> None:
    # Saint-Pierre-et-Miquelon follows North America: 2026-03-08 is 23 hours long.
    start, end = periods.bounds("daily", date(2026, 3, 8), "America/Miquelon")
    assert end - start == timedelta(hours=23)
    start, end = periods.bounds("daily", date(2026, 3, 8), "Pacific/Tahiti")
    assert (start, end - start) == (utc(2026, 3, 8, 10), timedelta(hours=24))


def test_skipped_wall_time_resolves_to_the_end_of_the_gap() -> None:
    # 02:30 does not exist in Paris on 2026-03-29: the first valid instant is 03:00 CEST.
    assert periods.at_local(date(2026, 3, 29), time(2, 30), "Europe/Paris") == utc(2026, 3, 29, 1)
    # 02:30 exists twice on 2026-10-25: the first is 02:30 CEST.
    assert periods.at_local(date(2026, 10, 25), time(2, 30), "Europe/Paris") == utc(
        2026, 10, 25, 0, 30
    )


def test_quiet_end_in_a_gap_is_the_first_valid_instant() -> None:
    quiet = QuietHours(start=time(22), end=time(2, 30))
    at = utc(2026, 3, 28, 23, 30)  # 00:30 CET on the night clocks go forward
    assert periods.is_quiet(at, "Europe/Paris", quiet)
    end = periods.quiet_end(at, "Europe/Paris", quiet)
    assert end == utc(2026, 3, 29, 1)  # 03:00 CEST
    assert not periods.is_quiet(end, "Europe/Paris", quiet)
    assert periods.is_quiet(end - timedelta(seconds=1), "Europe/Paris", quiet)


def test_quiet_end_in_an_overlap_is_after_the_instant() -> None:
    quiet = QuietHours(start=time(22), end=time(2, 30))
    # 02:15 CET, the second time the clock reads 02:15 on 2026-10-25: quiet again by the wall
    # clock, until the second 02:30.
    at = utc(2026, 10, 25, 1, 15)
    assert periods.is_quiet(at, "Europe/Paris", quiet)
    assert periods.quiet_end(at, "Europe/Paris", quiet) == utc(2026, 10, 25, 1, 30)
    first = utc(2026, 10, 25, 0, 15)  # 02:15 CEST
    assert periods.quiet_end(first, "Europe/Paris", quiet) == utc(2026, 10, 25, 0, 30)


def test_default_quiet_hours_in_noumea_and_reunion() -> None:
    quiet = QuietHours()
    # 21:30 UTC is 08:30 in Nouméa (UTC+11): not quiet; 01:30 in Réunion (UTC+4): quiet.
    at = utc(2026, 6, 1, 21, 30)
    assert not periods.is_quiet(at, "Pacific/Noumea", quiet)
    assert periods.is_quiet(at, "Indian/Reunion", quiet)
    assert periods.quiet_end(at, "Indian/Reunion", quiet) == utc(2026, 6, 2, 4)


def test_equal_quiet_times_mean_none() -> None:
    quiet = QuietHours(start=time(8), end=time(8))
    assert not periods.is_quiet(utc(2026, 1, 1, 3), "Europe/Paris", quiet)


def test_next_mornings_and_weekdays() -> None:
    # Sunday 2026-03-29 06:00 UTC is 08:00 CEST: the morning itself.
    assert periods.next_morning(utc(2026, 3, 29, 6), "Europe/Paris", 8) == utc(2026, 3, 29, 6)
    assert periods.next_morning(utc(2026, 3, 29, 6, 1), "Europe/Paris", 8) == utc(2026, 3, 30, 6)
    assert periods.next_weekday_morning(
        utc(2026, 3, 29, 6, 1), "Pacific/Tahiti", 8, "wednesday"
    ) == utc(2026, 4, 1, 18)
    assert periods.digest_due("weekly", date(2026, 10, 19), "Europe/Paris", 8, "sunday") == (
        utc(2026, 10, 25, 7)
    )


def test_naive_instants_are_refused() -> None:
    with pytest.raises(ValueError, match="no time zone"):
        periods.local_day(datetime(2026, 1, 1), "Europe/Paris")


# --- properties ------------------------------------------------------------------------------


@given(instants, zones, frequencies)
def test_an_instant_lies_in_its_period(
    instant: datetime, tz: str, frequency: periods.Frequency
) -> None:
    start = periods.period_start(frequency, instant, tz)
    begin, end = periods.bounds(frequency, start, tz)
    assert begin <= instant < end
    assert periods.period_start(frequency, begin, tz) == start
    assert periods.period_start(frequency, end, tz) != start


@given(st.dates(min_value=date(2024, 1, 1), max_value=date(2030, 12, 31)), zones)
def test_consecutive_days_tile_time(day: date, tz: str) -> None:
    _, end = periods.bounds("daily", day, tz)
    start, _ = periods.bounds("daily", day + timedelta(days=1), tz)
    assert end == start
    assert timedelta(hours=23) <= end - periods.bounds("daily", day, tz)[0] <= timedelta(hours=25)


@given(st.dates(min_value=date(2024, 1, 1), max_value=date(2030, 12, 31)), walls, zones)
def test_at_local_reads_the_wall_time_or_the_first_after(day: date, wall: time, tz: str) -> None:
    at = periods.at_local(day, wall, tz)
    local = at.astimezone(periods.zone(tz)).replace(tzinfo=None)
    wanted = datetime.combine(day, wall)
    assert local >= wanted
    if local != wanted:  # a gap: one second earlier the clock was before the wanted time
        before = (at - timedelta(seconds=1)).astimezone(periods.zone(tz)).replace(tzinfo=None)
        assert before < wanted
        assert local - wanted <= timedelta(hours=1)


@given(instants, zones, walls, walls)
def test_quiet_hours_end_after_the_instant_and_are_not_quiet_then(
    instant: datetime, tz: str, start: time, end: time
) -> None:
    quiet = QuietHours(start=start, end=end)
    ends = periods.quiet_end(instant, tz, quiet)
    assert ends >= instant
    assert ends - instant <= timedelta(hours=25)
    assert not periods.is_quiet(ends, tz, quiet)
    if ends > instant:
        assert periods.is_quiet(instant, tz, quiet)
        assert periods.is_quiet(ends - timedelta(seconds=1), tz, quiet)


@given(instants, zones, st.integers(0, 23))
def test_next_morning_is_at_the_hour_within_a_day(instant: datetime, tz: str, hour: int) -> None:
    morning = periods.next_morning(instant, tz, hour)
    assert instant <= morning <= instant + timedelta(hours=25)
    local = morning.astimezone(periods.zone(tz))
    assert local.hour == hour or local.replace(tzinfo=None) > datetime.combine(
        local.date(), time(hour)
    )
