"""Date/time parsing into ISO 8601 with offsets: zones, DST transitions, Excel serials, garbage."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chrono.evidence.timeparse import (
    combine_date_time,
    parse_clock,
    parse_time,
    parse_when,
    resolve_zone,
    to_utc,
)

NY = "America/New_York"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        # 2025 spring forward in New York: 02:00 EST -> 03:00 EDT on 9 March.
        ("2025-03-09 01:59:59", "2025-03-09T01:59:59-05:00"),
        ("2025-03-09 03:00:00", "2025-03-09T03:00:00-04:00"),
        # 02:30 does not exist that day: read with the offset before the jump, printed as the
        # real wall-clock time of that instant.
        ("2025-03-09 02:30:00", "2025-03-09T03:30:00-04:00"),
        # 2025 fall back: 01:30 happens twice on 2 November; the first (EDT) is taken.
        ("2025-11-02 01:30:00", "2025-11-02T01:30:00-04:00"),
        ("2025-11-02 02:30:00", "2025-11-02T02:30:00-05:00"),
        ("2025-07-04 12:00:00", "2025-07-04T12:00:00-04:00"),
        ("2025-01-15 12:00:00", "2025-01-15T12:00:00-05:00"),
    ],
)
def test_new_york_dst_transitions(value: str, expected: str) -> None:
    assert parse_when(value, tz_hint=NY) == expected


def test_offset_in_value_beats_the_hint() -> None:
    assert parse_when("2025-03-03T14:05:09Z", tz_hint=NY) == "2025-03-03T14:05:09+00:00"
    assert parse_when("2025-03-03 14:05:09+05:30", tz_hint=NY) == "2025-03-03T14:05:09+05:30"
    assert parse_when("Mon, 3 Mar 2025 09:05:09 -0500") == "2025-03-03T09:05:09-05:00"
    assert parse_when("03/03/2025 9:05 AM EST", tz_hint="Europe/London") == (
        "2025-03-03T09:05:00-05:00"
    )
    parsed = parse_time("2025-03-03T14:05:09Z", tz_hint=NY)
    assert parsed is not None and parsed.zone is None


@pytest.mark.parametrize(
    ("hint", "expected"),
    [
        ("UTC", "2025-03-03T09:05:09+00:00"),
        ("+05:00", "2025-03-03T09:05:09+05:00"),
        ("UTC-5", "2025-03-03T09:05:09-05:00"),
        ("GMT+5:30", "2025-03-03T09:05:09+05:30"),
        ("-0330", "2025-03-03T09:05:09-03:30"),
        ("Europe/London", "2025-03-03T09:05:09+00:00"),
        ("Asia/Kolkata", "2025-03-03T09:05:09+05:30"),
        ("Not/AZone", "2025-03-03T09:05:09-08:00"),  # unknown hint: the default applies
    ],
)
def test_zone_hints(hint: str, expected: str) -> None:
    assert parse_when("2025-03-03 09:05:09", tz_hint=hint, default_tz="America/Los_Angeles") == (
        expected
    )


def test_zone_name_is_reported_for_local_values() -> None:
    parsed = parse_time("03/03/2025 9:05:09 AM", tz_hint=NY)
    assert parsed is not None
    assert (parsed.iso, parsed.zone) == ("2025-03-03T09:05:09-05:00", NY)
    fixed = parse_time("2025-03-03 09:05:09", tz_hint="+02:00")
    assert fixed is not None and fixed.zone is None


def test_dayfirst_applies_only_to_ambiguous_dates() -> None:
    assert parse_when("04/03/2025 10:00") == "2025-04-03T10:00:00+00:00"
    assert parse_when("04/03/2025 10:00", dayfirst=True) == "2025-03-04T10:00:00+00:00"
    # Year-first dates are never day-first.
    assert parse_when("2025-03-04", dayfirst=True) == "2025-03-04T00:00:00+00:00"
    assert parse_when("2025/03/04 10:00", dayfirst=True) == "2025-03-04T10:00:00+00:00"


@pytest.mark.parametrize("value", ["", "5", "Voice", "9:05:09 AM", "March", None, "x" * 500, True])
def test_incomplete_or_non_dates_give_none(value: object) -> None:
    assert parse_when(value) is None


def test_cells_and_numbers() -> None:
    assert parse_when(datetime(2025, 3, 3, 9, 5, 9), tz_hint=NY) == "2025-03-03T09:05:09-05:00"
    assert parse_when(date(2025, 3, 3)) == "2025-03-03T00:00:00+00:00"
    # Excel serial 45719.5 is 2025-03-03 12:00 (1900 date system).
    assert parse_when(45719.5) == "2025-03-03T12:00:00+00:00"
    # Unix epoch seconds and milliseconds are UTC whatever the hint.
    assert parse_when(1_700_000_000, tz_hint=NY) == "2023-11-14T22:13:20+00:00"
    assert parse_when("1700000000000") == "2023-11-14T22:13:20+00:00"
    aware = datetime(2025, 3, 3, 9, 0, tzinfo=timezone(timedelta(hours=2)))
    assert parse_when(aware, tz_hint=NY) == "2025-03-03T09:00:00+02:00"


def test_clock_and_combining_date_and_time() -> None:
    assert parse_clock("9:05:09 PM") == time(21, 5, 9)
    assert parse_clock(time(9, 5)) == time(9, 5)
    assert parse_clock(0.5) == time(12, 0)
    assert parse_clock("2025-03-03") is None
    assert parse_clock("hello") is None
    assert combine_date_time("03/03/2025", "9:05:09 AM") == "03/03/2025 09:05:09"
    assert combine_date_time(date(2025, 3, 3), time(9, 5, 9)) == "2025-03-03 09:05:09"
    assert combine_date_time(datetime(2025, 3, 3), timedelta(hours=9)) == "2025-03-03 09:00:00"
    assert combine_date_time(45719.5, None) == "2025-03-03 12:00:00"
    assert combine_date_time(datetime(2025, 3, 3, 9, 5), None) == "2025-03-03 09:05:00"
    assert combine_date_time(datetime(2025, 3, 3, 9, 5), "10:00") == "2025-03-03 10:00:00"
    assert combine_date_time("", "9:00") is None
    assert parse_when(combine_date_time("03/03/2025", "9:05:09 AM"), tz_hint=NY) == (
        "2025-03-03T09:05:09-05:00"
    )


def test_resolve_zone() -> None:
    assert resolve_zone("UTC") is UTC
    assert resolve_zone("Z") is UTC
    assert resolve_zone("America") is None  # a folder of the zone database, not a zone
    assert resolve_zone("../../etc/passwd") is None
    assert resolve_zone("UTC+15") is None
    assert resolve_zone("") is None
    assert resolve_zone(None) is None
    zone = resolve_zone("UTC−3")  # a real minus sign
    assert zone is not None
    assert zone.utcoffset(None) == timedelta(hours=-3)


def test_to_utc() -> None:
    assert to_utc("2025-07-01T12:00:00+05:30") == (datetime(2025, 7, 1, 6, 30, tzinfo=UTC), 330)
    assert to_utc("2025-03-09T01:30:00", NY) == (datetime(2025, 3, 9, 6, 30, tzinfo=UTC), -300)
    assert to_utc("2025-03-09T03:30:00", NY) == (datetime(2025, 3, 9, 7, 30, tzinfo=UTC), -240)
    assert to_utc("2025-03-03T14:05:09Z") == (datetime(2025, 3, 3, 14, 5, 9, tzinfo=UTC), 0)
    with pytest.raises(ValueError):
        to_utc("not a date")
    with pytest.raises(ValueError):
        to_utc("2025-03-03T10:00:00", "Not/AZone")


@given(
    st.datetimes(min_value=datetime(1971, 1, 1), max_value=datetime(2099, 12, 31)),
    st.integers(min_value=-14 * 60, max_value=14 * 60),
)
def test_aware_values_round_trip_to_the_same_instant(moment: datetime, minutes: int) -> None:
    aware = moment.replace(tzinfo=timezone(timedelta(minutes=minutes)))
    iso = parse_when(aware.isoformat(), tz_hint=NY)
    assert iso is not None
    instant, offset = to_utc(iso, "UTC")
    assert instant == aware
    assert offset == minutes


@given(st.datetimes(min_value=datetime(1971, 1, 1), max_value=datetime(2099, 12, 31)))
def test_local_values_keep_their_wall_clock_outside_gaps(moment: datetime) -> None:
    moment = moment.replace(microsecond=0)
    iso = parse_when(moment.isoformat(sep=" "), tz_hint=NY)
    assert iso is not None
    instant, offset = to_utc(iso, "UTC")
    local = instant.astimezone(timezone(timedelta(minutes=offset))).replace(tzinfo=None)
    # Identical except inside the one-hour spring-forward gap, which moves forward an hour.
    assert local - moment in (timedelta(0), timedelta(hours=1))
