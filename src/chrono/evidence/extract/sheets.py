"""Spreadsheet and CSV extractor: call logs, message exports and contact lists become records.

Workbooks (xlsx, xls) are read with python-calamine, every worksheet; an xlsx package is first
scanned part by part (bounded) for DTD/ENTITY declarations and oversized members. CSV/TSV is
decoded after encoding detection and read with the ``csv`` module under a field-size limit.

Each sheet is read the same way: the header row is the row (among the first
:data:`HEADER_SCAN_ROWS`) whose cells best match ``config.sheets.header_map``; rows above it may be
a key/value preamble naming the device owner and a time zone. The columns found decide the
layout (``call_log``, ``message_export``, ``contact_list`` or ``unknown``), and each data row
becomes one :class:`~chrono.evidence.model.Record` located by ``row:<n>`` (CSV) or
``sheet:<s>:row:<n>`` (workbooks; ``s`` is the 1-based sheet position). ``n`` is the 1-based row
as a spreadsheet program numbers it, preamble and header included (for CSV: the CSV record
number, so a quoted multi-line field counts once), which is also how the sample generator's
``truth.json`` locates rows. Every sheet's cell text is kept as one page (page ``s``).

Times: an offset written in the cell wins; else a zone in the timestamp header (``Date/Time
(UTC)``), else a time-zone column, else the preamble's ``Time Zone``, else
``config.sheets.default_timezone``. ``Record.start`` always carries the offset valid at that
instant (see :mod:`chrono.evidence.timeparse`); ``Record.timezone`` names the IANA zone used.

Reason codes raised here (see README, "Reason codes"):

* ``limit_field``   -- a CSV field is over ``limits.max_field_bytes`` characters, or a physical
  line is over four times that (checked before the line is held in memory).
* ``limit_rows``    -- the file holds more than ``limits.max_rows`` rows (all sheets together).
* ``bad_encoding``  -- the CSV bytes decode under no encoding (see ``text.detect_encoding``).
* ``xml_entities``, ``limit_size``, ``limit_ratio``, ``limit_entries`` -- xlsx package guards
  (see :func:`chrono.evidence.extract.text.scan_ooxml_parts`).
* ``encrypted``     -- a password-protected workbook.
* ``corrupt``       -- calamine or the csv module cannot read the file.

Warnings: ``sheet_layout_unknown`` (a sheet kept as text only), ``time_unparsed`` (a row's time
could not be read; its record has no start), ``timezone_unknown`` (a time-zone cell or preamble
entry names no known zone), ``text_truncated`` (page text cut at :data:`MAX_SHEET_TEXT_CHARS`).
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from itertools import chain, islice
from pathlib import Path
from typing import IO, Any, Literal

import python_calamine

from chrono.core.config import EvidenceConfig
from chrono.core.errors import FileRejected, LimitExceeded
from chrono.evidence.extract.base import ExtractContext, Extractor, SourceFile, register
from chrono.evidence.extract.text import detect_encoding, open_text, scan_ooxml_parts
from chrono.evidence.model import Artifact, Page, Participant, Record, Role
from chrono.evidence.timeparse import combine_date_time, parse_time, resolve_zone

HEADER_SCAN_ROWS = 25
"""The header row is looked for among this many first rows of a sheet."""
LAYOUT_SAMPLE_ROWS = 50
"""Rows (from the top of a sheet) whose values help decide its layout."""
MIN_HEADER_FIELDS = 2
"""A row is a header only if its cells name at least this many distinct fields."""
MAX_SHEET_TEXT_CHARS = 5_000_000
"""Most characters of cell text kept as pages, all sheets of one file together."""
SNIFF_CHARS = 32 * 1024
"""Characters of a CSV given to ``csv.Sniffer`` (bounded: the sniffer's regexes backtrack)."""
DELIMITERS = ",;\t|"
"""Delimiters a CSV may use (the sniffer is told to consider only these)."""
LINE_FIELD_FACTOR = 4
"""A physical CSV line may be this many times ``max_field_bytes`` before it is refused."""

Layout = Literal["call_log", "message_export", "contact_list", "unknown"]
Direction = Literal["incoming", "outgoing", "missed", "unknown"]

# Fields the extractor understands besides the configurable ``header_map``: who a name column
# belongs to when a sheet has both from and to columns.
EXTRA_HEADERS: dict[str, list[str]] = {
    "from_name": ["from name", "caller name", "calling name", "calling party name", "sender name"],
    "to_name": ["to name", "callee name", "called name", "called party name", "recipient name"],
}

_OWNER_NUMBER_KEYS = frozenset({
    "deviceownernumber", "ownernumber", "devicenumber", "devicephonenumber", "ownerphone",
    "ownerphonenumber", "targetnumber", "subscribernumber", "msisdn", "phonenumber",
    "mynumber", "accountnumber",
})
_OWNER_NAME_KEYS = frozenset({
    "ownername", "deviceownername", "deviceowner", "owner", "subscribername", "subscriber",
    "custodian", "accountname", "accountholder", "name", "username",
})
_ZONE_KEYS = frozenset({"timezone", "tz", "utcoffset", "timezoneoffset", "zone"})

_DIRECTION_WORDS: dict[str, Direction] = {
    **dict.fromkeys(
        ("incoming", "in", "inbound", "received", "receive", "incomingcall", "mt", "terminating",
         "terminated", "inbox", "recv", "rcvd"), "incoming"),
    **dict.fromkeys(
        ("outgoing", "out", "outbound", "sent", "send", "dialed", "dialled", "outgoingcall", "mo",
         "originating", "originated", "outbox"), "outgoing"),
    **dict.fromkeys(
        ("missed", "missedcall", "rejected", "declined", "unanswered", "noanswer", "notanswered",
         "blocked"), "missed"),
}
_KIND_WORDS: dict[str, Literal["call", "message"]] = {
    **dict.fromkeys(
        ("call", "calls", "voice", "voicecall", "phonecall", "mobilecall", "audio", "audiocall",
         "videocall", "facetime", "phone"), "call"),
    **dict.fromkeys(
        ("text", "texts", "sms", "mms", "message", "messages", "textmessage", "imessage", "chat",
         "im", "rcs"), "message"),
}
_TZ_SUFFIX = re.compile(r"^(?P<base>.*?\S)\s*[(\[](?P<inner>[^()\[\]]{1,40})[)\]]\s*$")
_PHONE_CHARS = re.compile(r"^[+\d\s().\-/]+$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_DURATION_CLOCK = re.compile(r"^\s*(?:(\d+):)?(\d{1,2}):(\d{1,2}(?:\.\d+)?)\s*$")
_DURATION_SECONDS = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(?:s|sec|secs|seconds?)?\s*$", re.I)


# --- cells ---------------------------------------------------------------------------------


def cell_text(value: Any) -> str:
    """A cell as text: integral floats without ``.0``, dates in ISO form, NULs dropped."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value.replace("\x00", "").strip()
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, float):
        if value.is_integer() and abs(value) < 1e16:
            return str(int(value))
        return repr(value)
    if isinstance(value, datetime):
        return value.isoformat(sep=" ")
    if isinstance(value, date | time):
        return value.isoformat()
    if isinstance(value, timedelta):
        return cell_text(value.total_seconds())
    return str(value).strip()


def _norm(text: str) -> str:
    """Header/keyword comparison form: case-folded letters and digits only."""
    return "".join(ch for ch in text.casefold() if ch.isalnum())


def direction_of(value: Any) -> Direction | None:
    """``incoming``/``outgoing``/``missed`` for a direction cell, ``None`` if not a direction."""
    key = _norm(cell_text(value))
    if not key:
        return None
    if key in _DIRECTION_WORDS:
        return _DIRECTION_WORDS[key]
    for prefix in ("incoming", "outgoing", "missed"):
        if key.startswith(prefix):
            return _DIRECTION_WORDS[prefix]
    return None


def kind_of(value: Any) -> Literal["call", "message"] | None:
    """``call`` or ``message`` for an interaction-type cell (``Voice``, ``SMS``, ``text``...)."""
    return _KIND_WORDS.get(_norm(cell_text(value)))


def duration_of(value: Any) -> float | None:
    """Seconds from ``65``, ``65 s``, ``1:05``, ``0:01:05`` or a duration cell."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, time):
        seconds = value.hour * 3600 + value.minute * 60 + value.second
    elif isinstance(value, int | float):
        seconds = float(value)
    else:
        text = cell_text(value)
        clock = _DURATION_CLOCK.match(text)
        plain = _DURATION_SECONDS.match(text)
        if clock:
            seconds = int(clock[1] or 0) * 3600 + int(clock[2]) * 60 + float(clock[3])
        elif plain:
            seconds = float(plain[1])
        else:
            return None
    return seconds if seconds >= 0 else None


def identifier_kind(value: str) -> Literal["email", "phone", "handle"]:
    """``phone`` for phone-like values (5+ digits, no letters), ``email``, else ``handle``."""
    if _EMAIL.match(value):
        return "email"
    if _PHONE_CHARS.match(value) and sum(ch.isdigit() for ch in value) >= 5:
        return "phone"
    return "handle"


# --- header and preamble -------------------------------------------------------------------


@dataclass(frozen=True)
class Column:
    """Where a canonical field sits in a sheet, and the zone its header names, if any."""

    index: int
    zone: str | None = None


@dataclass
class SheetPlan:
    """What the top of a sheet says about how to read its rows."""

    header_row: int | None = None
    columns: dict[str, Column] = field(default_factory=dict)
    layout: Layout = "unknown"
    owner_number: str | None = None
    owner_name: str | None = None
    zone: str | None = None


class HeaderIndex:
    """Normalised header spelling -> canonical field, from the configured header map."""

    def __init__(self, header_map: dict[str, list[str]]) -> None:
        self._fields: dict[str, str] = {}
        for canonical, spellings in chain(header_map.items(), EXTRA_HEADERS.items()):
            for spelling in [canonical, *spellings]:
                self._fields.setdefault(_norm(spelling), canonical)

    def match(self, cell: Any) -> tuple[str, str | None] | None:
        """``(field, zone)`` for a header cell; ``zone`` from a suffix such as ``(UTC)``."""
        if not isinstance(cell, str):
            return None
        text = cell.strip()
        if not text or len(text) > 80:
            return None
        exact = self._fields.get(_norm(text))
        if exact:
            return exact, None
        suffixed = _TZ_SUFFIX.match(text)
        if suffixed:
            base = self._fields.get(_norm(suffixed["base"]))
            if base:
                inner = suffixed["inner"].strip()
                return base, inner if resolve_zone(inner) is not None else None
        return None

    def spellings_of(self, canonical: str) -> set[str]:
        """Normalised header spellings that mean ``canonical``."""
        return {key for key, name in self._fields.items() if name == canonical}

    def columns(self, row: list[Any]) -> dict[str, Column]:
        found: dict[str, Column] = {}
        for index, cell in enumerate(row):
            matched = self.match(cell)
            if matched and matched[0] not in found:
                found[matched[0]] = Column(index=index, zone=matched[1])
        return found


def find_header(rows: list[list[Any]], index: HeaderIndex) -> tuple[int | None, dict[str, Column]]:
    """The best-matching header row among the first rows (earliest wins a tie)."""
    best_row: int | None = None
    best: dict[str, Column] = {}
    for number, row in enumerate(rows[:HEADER_SCAN_ROWS]):
        columns = index.columns(row)
        if len(columns) >= MIN_HEADER_FIELDS and len(columns) > len(best):
            best_row, best = number, columns
    return best_row, best


def read_preamble(rows: list[list[Any]], plan: SheetPlan, index: HeaderIndex) -> None:
    """Take owner number/name and a time zone from key/value rows above the header."""
    zone_keys = _ZONE_KEYS | index.spellings_of("timezone")
    for row in rows:
        texts = [cell_text(c) for c in row if cell_text(c)]
        if len(texts) == 1 and ":" in texts[0]:
            texts = [part.strip() for part in texts[0].split(":", 1)]
        if len(texts) < 2 or not texts[1]:
            continue
        key, value = _norm(texts[0]), texts[1]
        if key in _OWNER_NUMBER_KEYS:
            plan.owner_number = value
        elif key in _OWNER_NAME_KEYS:
            if identifier_kind(value) == "phone" and plan.owner_number is None:
                plan.owner_number = value
            else:
                plan.owner_name = value
        elif key in zone_keys:
            plan.zone = value


def classify(columns: dict[str, Column], sample: list[list[Any]]) -> Layout:
    """Decide a sheet's layout from its columns and a few of its data rows."""
    has_time = "timestamp" in columns or "date" in columns
    # A "Type" column may hold call/SMS kinds rather than directions.
    kinds = _column_values(columns.get("kind"), sample, kind_of)
    kinds |= _column_values(columns.get("direction"), sample, kind_of)
    directions = _column_values(columns.get("direction"), sample, direction_of)
    has_party = any(f in columns for f in ("from", "to", "number"))
    if "duration" in columns or "call" in kinds:
        return "call_log"
    if "body" in columns or "message" in kinds:
        return "message_export"
    if has_time and has_party and directions & {"incoming", "outgoing", "missed"}:
        return "call_log"
    if not has_time and "name" in columns and ("number" in columns or "email" in columns):
        return "contact_list"
    return "unknown"


def _column_values(column: Column | None, rows: list[list[Any]], read: Any) -> set[str]:
    if column is None:
        return set()
    values = (read(row[column.index]) for row in rows if column.index < len(row))
    return {v for v in values if v}


# --- records -------------------------------------------------------------------------------


class RowReader:
    """Turns data rows of one sheet into records, given the sheet's plan."""

    def __init__(
        self, plan: SheetPlan, config: EvidenceConfig, ctx: ExtractContext, locator_prefix: str,
        page: int | None,
    ) -> None:
        self.plan = plan
        self.sheets = config.sheets
        self.ctx = ctx
        self.prefix = locator_prefix
        self.page = page
        self.zone_ok = plan.zone is None or resolve_zone(plan.zone) is not None
        if not self.zone_ok:
            _warn_once(ctx, "timezone_unknown")

    def cell(self, row: list[Any], name: str) -> Any:
        column = self.plan.columns.get(name)
        if column is None or column.index >= len(row):
            return None
        value = row[column.index]
        return None if value == "" else value

    def text(self, row: list[Any], name: str) -> str:
        return cell_text(self.cell(row, name))

    def record(self, row: list[Any], number: int) -> Record | None:
        if not any(cell_text(c) for c in row):
            return None
        locator = f"{self.prefix}row:{number}"
        if self.plan.layout == "contact_list":
            return self._contact(row, locator, number)
        kind = kind_of(self.cell(row, "kind")) or kind_of(self.cell(row, "direction"))
        if kind is None:
            has_body = bool(self.text(row, "body"))
            if self.plan.layout == "message_export" or (
                has_body and self.cell(row, "duration") is None
            ):
                kind = "message"
            else:
                kind = "call"
        start, zone = self._start(row)
        direction = direction_of(self.cell(row, "direction")) or "unknown"
        parties = self._parties(row, kind, direction)
        if start is None and not parties:
            return None  # a note or total line under the table, not a communication
        record = Record(
            type=kind, locator=locator, row=number, page=self.page, start=start, timezone=zone,
            direction=direction, participants=parties,
        )
        if kind == "call":
            record.duration_s = duration_of(self.cell(row, "duration"))
        else:
            record.body = self.text(row, "body") or None
        return record

    def _start(self, row: list[Any]) -> tuple[str | None, str | None]:
        stamp = self.cell(row, "timestamp")
        day = self.cell(row, "date")
        clock = self.cell(row, "time")
        column = self.plan.columns.get("timestamp") or self.plan.columns.get("date")
        hint = column.zone if column else None
        if hint is None:
            hint = self._zone_cell(row)
        if hint is None and self.zone_ok:
            hint = self.plan.zone
        candidates: list[Any] = []
        if stamp is not None:
            candidates.append(stamp)
        if day is not None:
            candidates.append(combine_date_time(day, clock if clock is not None else stamp))
        for value in candidates:
            parsed = parse_time(
                value, tz_hint=hint, default_tz=self.sheets.default_timezone,
                dayfirst=self.sheets.dayfirst,
            )
            if parsed is not None:
                return parsed.iso, parsed.zone
        if candidates:
            _warn_once(self.ctx, "time_unparsed")
        return None, None

    def _zone_cell(self, row: list[Any]) -> str | None:
        value = self.text(row, "timezone")
        if not value:
            return None
        if resolve_zone(value) is None:
            _warn_once(self.ctx, "timezone_unknown")
            return None
        return value

    def _parties(self, row: list[Any], kind: str, direction: Direction) -> list[Participant]:
        first: Role
        second: Role
        first, second = ("caller", "callee") if kind == "call" else ("sender", "recipient")
        other_role: Role
        owner_role: Role
        parties: list[Participant] = []
        columns = self.plan.columns
        if "from" in columns or "to" in columns:
            _add(parties, first, self.text(row, "from"), self.text(row, "from_name"))
            for value in self.text(row, "to").split(";"):
                _add(parties, second, value, self.text(row, "to_name"))
            return parties
        owner = self.text(row, "owner") or self.plan.owner_number or ""
        owner_name = self.plan.owner_name if not self.text(row, "owner") else None
        if direction in ("incoming", "missed"):
            other_role, owner_role = first, second
        elif direction == "outgoing":
            other_role, owner_role = second, first
        else:
            other_role, owner_role = "participant", "owner"
        _add(parties, other_role, self.text(row, "number"), self.text(row, "name"))
        if owner:
            _add(parties, owner_role, owner, owner_name or "")
        elif owner_name:  # known by name only (a preamble without a number)
            parties.append(Participant(role=owner_role, kind="name", value=owner_name))
        return parties

    def _contact(self, row: list[Any], locator: str, number: int) -> Record | None:
        name = self.text(row, "name")
        parties: list[Participant] = []
        for value in self.text(row, "number").split(";"):
            _add(parties, "participant", value, name)
        for value in self.text(row, "email").split(";"):
            _add(parties, "participant", value, name)
        if not parties and name:
            parties.append(Participant(role="participant", kind="name", value=name))
        if not parties:
            return None
        return Record(
            type="contact", locator=locator, row=number, page=self.page, participants=parties
        )


def _add(parties: list[Participant], role: Role, value: str, name: str) -> None:
    value = value.strip()
    if not value:
        return
    parties.append(Participant(
        role=role, kind=identifier_kind(value), value=value, name=name.strip() or None
    ))


def _warn_once(ctx: ExtractContext, code: str) -> None:
    if code not in ctx.warnings:
        ctx.warn(code)


# --- reading sheets ------------------------------------------------------------------------


@dataclass
class SheetSource:
    """One sheet's rows as an iterator; ``number`` is its 1-based position in the file."""

    number: int
    rows: Iterator[list[Any]]
    locator_prefix: str


class RowBudget:
    """Counts rows across all sheets of a file and refuses the file past ``max_rows``."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.count = 0

    def take(self, rows: Iterable[list[Any]]) -> Iterator[list[Any]]:
        for row in rows:
            self.count += 1
            if self.count > self.limit:
                raise LimitExceeded("limit_rows", f"more than {self.limit} rows")
            yield row


class PageText:
    """Cell text of each sheet, bounded for the whole file."""

    def __init__(self, limit: int) -> None:
        self.left = limit
        self.truncated = False

    def add(self, lines: list[str], row: list[Any]) -> None:
        if self.left <= 0:
            self.truncated = self.truncated or any(cell_text(c) for c in row)
            return
        line = "\t".join(cell_text(c) for c in row).rstrip("\t")
        if not line:
            return
        if len(line) + 1 > self.left:
            line = line[: self.left]
            self.truncated = True
        lines.append(line)
        self.left -= len(line) + 1


def read_sheet(
    sheet: SheetSource, ctx: ExtractContext, index: HeaderIndex, budget: RowBudget,
    text: PageText, artifact: Artifact, inherited: SheetPlan | None = None,
) -> SheetPlan:
    """Add one sheet's records and page to ``artifact``; return the plan it was read with.

    ``inherited`` carries the owner and zone of an earlier sheet's preamble: a workbook often
    states them once, on its first sheet.
    """
    rows = budget.take(sheet.rows)
    head = list(islice(rows, LAYOUT_SAMPLE_ROWS))
    plan = SheetPlan()
    if inherited is not None:
        plan.owner_number, plan.owner_name = inherited.owner_number, inherited.owner_name
        plan.zone = inherited.zone
    plan.header_row, plan.columns = find_header(head, index)
    lines: list[str] = []
    if plan.header_row is not None:
        read_preamble(head[: plan.header_row], plan, index)
        plan.layout = classify(plan.columns, head[plan.header_row + 1:])
    if plan.layout == "unknown":
        _warn_once(ctx, "sheet_layout_unknown")
        for row in chain(head, rows):
            text.add(lines, row)
    else:
        assert plan.header_row is not None
        for row in head[: plan.header_row + 1]:
            text.add(lines, row)
        reader = RowReader(plan, ctx.config, ctx, sheet.locator_prefix, sheet.number)
        first_data_row = plan.header_row + 2  # 1-based, after the header
        for number, row in enumerate(chain(head[plan.header_row + 1:], rows), first_data_row):
            text.add(lines, row)
            record = reader.record(row, number)
            if record is not None:
                artifact.records.append(record)
    artifact.pages.append(Page(number=sheet.number, text="\n".join(lines), method="text_layer"))
    return plan


def workbook_sheets(path: Path, ctx: ExtractContext) -> Iterator[SheetSource]:
    """Every worksheet of an xlsx/xls workbook, read with calamine."""
    try:
        workbook = python_calamine.CalamineWorkbook.from_path(str(path))
    except python_calamine.PasswordError:
        raise FileRejected("encrypted", "workbook is password-protected") from None
    except python_calamine.CalamineError as exc:
        raise FileRejected("corrupt", f"workbook unreadable ({type(exc).__name__})") from None
    with _closing(workbook):
        for position, meta in enumerate(workbook.sheets_metadata):
            if meta.typ != python_calamine.SheetTypeEnum.WorkSheet:
                continue
            try:
                sheet = workbook.get_sheet_by_index(position)
            except python_calamine.CalamineError as exc:
                raise FileRejected(
                    "corrupt", f"sheet unreadable ({type(exc).__name__})"
                ) from None
            if sheet.total_height > ctx.limits.max_rows:
                raise LimitExceeded("limit_rows", f"sheet of {sheet.total_height} rows")
            number = position + 1
            yield SheetSource(number, iter(sheet.iter_rows()), f"sheet:{number}:")


@contextmanager
def _closing(workbook: Any) -> Iterator[None]:
    try:
        yield
    finally:
        workbook.close()


@contextmanager
def csv_field_limit(limit: int) -> Iterator[None]:
    """Set the csv module's (process-wide) field limit for the duration of a read."""
    previous = csv.field_size_limit(limit)
    try:
        yield
    finally:
        csv.field_size_limit(previous)


def sniff_dialect(sample: str) -> type[csv.Dialect] | csv.Dialect:
    """The CSV dialect of a bounded sample (the sniffer's, else the most frequent delimiter)."""
    if "\n" in sample:
        sample = sample[: sample.rfind("\n") + 1]
    try:
        dialect = csv.Sniffer().sniff(sample, delimiters=DELIMITERS)
    except csv.Error:
        # Typically a preamble whose rows are shorter than the table's: take the candidate
        # delimiter seen most often, comma when none is.
        counts = {d: sample.count(d) for d in DELIMITERS}
        best = max(counts, key=lambda d: counts[d])

        class Fallback(csv.excel):
            delimiter = best if counts[best] else ","

        return Fallback
    if not dialect.quotechar:
        dialect.quotechar = '"'
    return dialect


def _bounded_lines(stream: IO[str], max_line: int) -> Iterator[str]:
    """Physical lines, refusing one longer than ``max_line`` before holding more of it."""
    while line := stream.readline(max_line):
        if len(line) >= max_line and not line.endswith(("\n", "\r")):
            raise LimitExceeded("limit_field", f"line over {max_line} characters")
        yield line


def csv_rows(stream: IO[str], max_field: int) -> Iterator[list[str]]:
    """Rows of a CSV text stream, with csv/decoding errors turned into reason codes."""
    sample = stream.read(SNIFF_CHARS)
    stream.seek(0)
    reader = csv.reader(
        _bounded_lines(stream, max_field * LINE_FIELD_FACTOR + 1), sniff_dialect(sample)
    )
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            if "field limit" in str(exc):
                raise LimitExceeded("limit_field", f"field over {max_field} characters") from None
            raise FileRejected("corrupt", "csv structure unreadable") from None
        yield [cell.replace("\x00", "") for cell in row]


def _decoding(rows: Iterator[list[str]], encoding: str) -> Iterator[list[str]]:
    try:
        yield from rows
    except UnicodeDecodeError:
        raise FileRejected("bad_encoding", f"bytes not valid {encoding}") from None


# --- extractor -----------------------------------------------------------------------------


@register
class SheetsExtractor(Extractor):
    """Call logs, message exports and contact lists from xlsx, xls and csv."""

    NAME = "sheets"
    KINDS = ("xlsx", "xls", "csv")

    def extract(self, source: SourceFile, ctx: ExtractContext) -> Artifact:
        artifact = self.new_artifact(source)
        index = HeaderIndex(ctx.config.sheets.header_map)
        budget = RowBudget(ctx.limits.max_rows)
        text = PageText(MAX_SHEET_TEXT_CHARS)
        layouts: list[Layout] = []
        if source.kind == "csv":
            encoding = detect_encoding(source.path)
            artifact.metadata["encoding"] = encoding
            max_field = ctx.limits.max_field_bytes
            with csv_field_limit(max_field), open_text(source.path, encoding) as stream:
                try:
                    rows = _decoding(csv_rows(stream, max_field), encoding)
                    plan = read_sheet(SheetSource(1, rows, ""), ctx, index, budget, text, artifact)
                except UnicodeDecodeError:  # raised while sniffing the first characters
                    raise FileRejected("bad_encoding", f"bytes not valid {encoding}") from None
            layouts.append(plan.layout)
        else:
            if source.kind == "xlsx":
                scan_ooxml_parts(source.path, ctx)
            inherited: SheetPlan | None = None
            for sheet in workbook_sheets(source.path, ctx):
                inherited = read_sheet(sheet, ctx, index, budget, text, artifact, inherited)
                layouts.append(inherited.layout)
        if text.truncated:
            _warn_once(ctx, "text_truncated")
        artifact.metadata.update(
            sheets=len(layouts), layouts=layouts, rows=budget.count, records=len(artifact.records),
            page_count=len(artifact.pages),
        )
        return artifact
