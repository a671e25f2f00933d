"""Read a date/time cell or string, plus an optional zone hint, into ISO 8601 with its offset.

Shared by the sheet, text and load-file readers and by event generation. The rules:

* An offset written in the value itself (``2025-03-03T14:05:09-05:00``, ``...Z``, ``... EST``)
  always wins.
* Otherwise the value is local time in ``tz_hint`` (an IANA name such as ``America/New_York``, or
  an offset such as ``+05:00``, ``UTC-5``, ``GMT+5:30``), else in ``default_tz``. An IANA zone is
  turned into the offset valid *at that instant*, so daylight saving time is honoured. A local
  time that does not exist (the spring-forward gap) or happens twice (the fall-back hour) is read
  with ``fold=0``: the offset in force before the transition (so 02:30 on a spring-forward day
  in New York becomes 03:30-04:00, and 01:30 on the fall-back day becomes 01:30-04:00).
* Values that are not a complete date (``"5"``, ``"Voice"``, a time with no date) give ``None``,
  never "today" filled in by the parser.

Numbers are read as Excel serial dates (1900 date system) when in Excel's range, as Unix epoch
seconds (10 digits) or milliseconds (13 digits) otherwise; epoch values are UTC.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, timezone, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from dateutil import parser as date_parser

__all__ = [
    "ParsedTime",
    "combine_date_time",
    "excel_serial_to_datetime",
    "parse_clock",
    "parse_time",
    "parse_when",
    "resolve_zone",
    "to_utc",
]

_EXCEL_EPOCH = datetime(1899, 12, 30)
_EXCEL_MAX_SERIAL = 2_958_466  # 9999-12-31
_MAX_VALUE_CHARS = 100
"""Longer strings are not dates; refusing them early keeps the parser's work bounded."""

_OFFSET = re.compile(
    r"^\s*(?:UTC|GMT|Z)?\s*(?P<sign>[+\-−])\s*(?P<hours>\d{1,2})(?::?(?P<minutes>\d{2}))?\s*$",
    re.IGNORECASE,
)
_UTC_NAMES = frozenset({"utc", "gmt", "z", "zulu", "etc/utc", "etc/gmt", "universal"})
_YEAR_FIRST = re.compile(r"^\s*\d{4}[-/.]\d{1,2}[-/.]\d{1,2}")
_EPOCH_DIGITS = re.compile(r"^\s*\d{10}(?:\d{3})?\s*$")

# North American abbreviations often printed by carrier and phone exports; dateutil leaves
# unknown abbreviations naive, which would silently drop the offset.
_ABBREVIATIONS: dict[str, int] = {
    "UTC": 0, "GMT": 0, "Z": 0,
    "EST": -5 * 3600, "EDT": -4 * 3600, "CST": -6 * 3600, "CDT": -5 * 3600,
    "MST": -7 * 3600, "MDT": -6 * 3600, "PST": -8 * 3600, "PDT": -7 * 3600,
    "BST": 3600, "CET": 3600, "CEST": 7200,
}


@dataclass(frozen=True)
class ParsedTime:
    """A parsed instant: ISO 8601 with offset, and the IANA zone used if the value was local."""

    iso: str
    zone: str | None
    """IANA zone applied to a value that carried no offset (``None`` when the offset was written
    in the value, or came from a fixed offset hint)."""


def resolve_zone(hint: str | None) -> tzinfo | None:
    """Turn ``'America/New_York'``, ``'UTC'``, ``'+05:00'``, ``'UTC-5'``... into a tzinfo.

    Returns ``None`` for an empty or unknown hint.
    """
    if hint is None:
        return None
    text = str(hint).strip()
    if not text or len(text) > 64:
        return None
    if text.lower() in _UTC_NAMES:
        return UTC
    match = _OFFSET.match(text)
    if match:
        hours = int(match["hours"])
        minutes = int(match["minutes"] or 0)
        if hours > 14 or minutes > 59:
            return None
        sign = -1 if match["sign"] in "-−" else 1
        return timezone(sign * timedelta(hours=hours, minutes=minutes))
    if "/" in text or text.isalpha():
        try:
            return ZoneInfo(text)
        except (ZoneInfoNotFoundError, ValueError, OSError):  # OSError: a folder such as 'America'
            return None
    return None


def excel_serial_to_datetime(serial: float) -> datetime | None:
    """Excel 1900-system serial day number to a naive datetime (``None`` out of range)."""
    if not 1 <= serial < _EXCEL_MAX_SERIAL:
        return None
    return _EXCEL_EPOCH + timedelta(days=serial)


def parse_clock(value: object) -> time | None:
    """Read a time of day (``9:05:09 AM``, ``14:05``, a ``time`` cell, an Excel day fraction)."""
    if isinstance(value, datetime):
        return value.time()
    if isinstance(value, time):
        return value
    if isinstance(value, timedelta):
        if timedelta(0) <= value < timedelta(days=1):
            return (datetime.min + value).time()
        return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        if 0 <= value < 1:
            return (datetime.min + timedelta(days=float(value))).time()
        return None
    text = str(value).strip()
    if not text or len(text) > _MAX_VALUE_CHARS or not any(c.isdigit() for c in text):
        return None
    try:
        first = date_parser.parse(text, default=datetime(1900, 1, 1))
        second = date_parser.parse(text, default=datetime(2000, 2, 2))
    except (ValueError, OverflowError):
        return None
    if first.date() != datetime(1900, 1, 1).date() or second.date() != date(2000, 2, 2):
        return None  # the value held a date as well: not a bare time
    return first.time()


def combine_date_time(date_value: object, time_value: object) -> str | None:
    """Join a separate date cell and time cell into one string :func:`parse_time` can read.

    Without a time cell the date cell is returned whole (it may hold a time of its own).
    """
    if date_value is None or date_value == "":
        return None
    has_clock = time_value is not None and time_value != ""
    if isinstance(date_value, int | float) and not isinstance(date_value, bool):
        converted = excel_serial_to_datetime(float(date_value))
        if converted is None:
            return None
        date_value = converted
    if isinstance(date_value, datetime):
        day_text = date_value.date().isoformat() if has_clock else date_value.isoformat(sep=" ")
    elif isinstance(date_value, date):
        day_text = date_value.isoformat()
    else:
        day_text = str(date_value).strip()
    if not has_clock:
        return day_text
    clock = parse_clock(time_value)
    if clock is None:
        return f"{day_text} {str(time_value).strip()}"
    return f"{day_text} {clock.isoformat()}"


def _parse_naive_or_aware(value: object, dayfirst: bool) -> datetime | None:
    """Parse ``value`` into a datetime that may or may not carry an offset."""
    if isinstance(value, datetime):
        return value
    if isinstance(value, date):
        return datetime.combine(value, time())
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return _from_number(float(value))
    text = str(value).strip()
    if not text or len(text) > _MAX_VALUE_CHARS or not any(c.isdigit() for c in text):
        return None
    if _EPOCH_DIGITS.match(text):
        return _from_number(float(text))
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        pass
    use_dayfirst = dayfirst and not _YEAR_FIRST.match(text)
    try:
        first = date_parser.parse(
            text, dayfirst=use_dayfirst, default=datetime(1900, 1, 1), tzinfos=_ABBREVIATIONS
        )
        second = date_parser.parse(
            text, dayfirst=use_dayfirst, default=datetime(2000, 2, 2), tzinfos=_ABBREVIATIONS
        )
    except (ValueError, OverflowError):
        return None
    if first.date() != second.date():
        return None  # year, month or day missing: the parser filled it in
    return first


def _from_number(number: float) -> datetime | None:
    if 1e9 <= number < 1e11:
        return datetime.fromtimestamp(number, tz=UTC)
    if 1e12 <= number < 1e14:
        return datetime.fromtimestamp(number / 1000, tz=UTC)
    return excel_serial_to_datetime(number)


def parse_time(
    value: object,
    tz_hint: str | None = None,
    default_tz: str = "UTC",
    dayfirst: bool = False,
) -> ParsedTime | None:
    """Parse ``value`` into a :class:`ParsedTime`; ``None`` when it is not a complete date."""
    if value is None:
        return None
    parsed = _parse_naive_or_aware(value, dayfirst)
    if parsed is None:
        return None
    if parsed.tzinfo is not None and parsed.utcoffset() is not None:
        return ParsedTime(iso=parsed.isoformat(), zone=None)
    zone_text = tz_hint if resolve_zone(tz_hint) is not None else default_tz
    zone = resolve_zone(zone_text) or UTC
    # Round-trip through UTC so a time in the spring-forward gap prints as the real local time.
    local = parsed.replace(tzinfo=zone, fold=0).astimezone(UTC).astimezone(zone)
    zone_name = str(zone_text).strip() if isinstance(zone, ZoneInfo) else None
    if zone is UTC:
        zone_name = "UTC"
    return ParsedTime(iso=local.isoformat(), zone=zone_name)


def parse_when(
    value: object,
    tz_hint: str | None = None,
    default_tz: str = "UTC",
    dayfirst: bool = False,
) -> str | None:
    """Parse a date/time cell or string into ISO 8601 *with* offset (``None`` if not a date)."""
    parsed = parse_time(value, tz_hint=tz_hint, default_tz=default_tz, dayfirst=dayfirst)
    return parsed.iso if parsed else None


def to_utc(iso: str, default_tz: str = "UTC") -> tuple[datetime, int]:
    """Return ``(instant in UTC, original offset in minutes)`` for an ISO 8601 string.

    A naive ``iso`` is read as local time in ``default_tz`` (DST-aware). Raises ``ValueError``
    for a string that is not ISO 8601.
    """
    parsed = datetime.fromisoformat(iso.strip().replace("Z", "+00:00"))
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        zone = resolve_zone(default_tz)
        if zone is None:
            raise ValueError("unknown default time zone")
        parsed = parsed.replace(tzinfo=zone, fold=0)
    offset = parsed.utcoffset()
    assert offset is not None
    return parsed.astimezone(UTC), int(offset.total_seconds() // 60)
