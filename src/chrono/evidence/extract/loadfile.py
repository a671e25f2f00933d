"""Load-file extractor: Concordance ``.dat`` metadata and Opticon ``.opt`` image cross-references.

A production volume ships a DAT (one row per document: bates numbers, metadata, paths to the
extracted text and the native file) and an OPT (one line per page image). Each DAT row becomes one
:class:`Record` (``email`` when the row carries email metadata, else ``document``) and one
:class:`Page` with the document's text, so the text is exportable. Paths in the DAT are resolved
against the volume and must stay inside it (the DAT's grandparent folder).

``artifact.metadata``:

* ``member_paths``: sorted absolute POSIX paths of the text and image files the DAT resolved; the
  pipeline treats them as covered by the load file and does not extract them again.
* ``natives``: sorted absolute POSIX paths of the native files (extracted by the pipeline).
* ``rows``, ``fields``, ``encoding``, ``separator``; ``images``/``documents`` for OPT files;
  ``warning_counts`` (each warning code is recorded once in ``warnings``, counted here).

Record attributes hold paths as written in the DAT (slashes normalised): ``text_path``,
``native_path``, ``image_paths``; plus ``custodian``, ``filename``, ``doctype``, ``endbates``,
``begattach``, ``endattach``, ``page_count`` when present.

Reason codes raised:

* ``corrupt_loadfile``: no header row with a known separator, or an OPT without image lines.
* ``limit_rows``: more data rows than ``limits.max_rows``.

Warnings recorded:

* ``field_truncated``: a field (or a linked text file) was longer than the limit and was cut.
* ``dat_bad_row``: a row had the wrong number of fields (padded or cut to the header and kept).
* ``dat_bad_date`` / ``dat_bad_timezone``: a date or time zone value could not be read.
* ``path_outside_volume``: a path pointed outside the volume and was refused.
* ``loadfile_missing_member``: a linked text, native or image file does not exist.
"""

from __future__ import annotations

import codecs
import contextlib
import csv
import re
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from charset_normalizer import from_bytes
from dateutil import parser as date_parser

from chrono.core.errors import FileRejected, LimitExceeded
from chrono.evidence.addresses import parse_addresses
from chrono.evidence.extract.base import ExtractContext, Extractor, SourceFile, register
from chrono.evidence.model import Artifact, Page, Participant, Record, Role

SAMPLE_BYTES = 1 << 20
"""Bytes read to detect an encoding."""
TEXT_FILE_FACTOR = 16
"""A linked text file is read up to ``limits.max_field_bytes * TEXT_FILE_FACTOR`` bytes."""

_BOMS = (
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)

# Canonical field -> normalised header spellings (lower case, letters and digits only).
FIELD_ALIASES: dict[str, tuple[str, ...]] = {
    "bates": ("begbates", "begdoc", "begno", "prodbeg", "batesbegin", "beginbates", "begprod",
              "prodbegbates", "startbates", "begdocid", "bates", "docid", "controlnumber"),
    "endbates": ("endbates", "enddoc", "endno", "prodend", "batesend", "endprod",
                 "prodendbates", "enddocid"),
    "begattach": ("begattach", "begattachment", "attachbeg", "begfamily", "begattachbates"),
    "endattach": ("endattach", "endattachment", "attachend", "endfamily", "endattachbates"),
    "custodian": ("custodian", "custodians", "allcustodians"),
    "filename": ("filename", "originalfilename", "docname", "documentname"),
    "doctype": ("doctype", "documenttype", "filetype", "fileext", "fileextension"),
    "native": ("nativepath", "nativelink", "nativefile", "nativefilepath", "native"),
    "text": ("textpath", "textlink", "textfile", "textfilepath", "extractedtext", "ocrpath",
             "text"),
    "page_count": ("pagecount", "pages", "numpages", "numberofpages"),
    "from": ("from", "emailfrom", "sender"),
    "to": ("to", "emailto", "recipients", "recipient"),
    "cc": ("cc", "emailcc"),
    "bcc": ("bcc", "emailbcc"),
    "subject": ("subject", "emailsubject"),
    "date_sent": ("datesent", "sentdate", "emaildatesent", "datetimesent", "sentdatetime"),
    "time_sent": ("timesent", "senttime", "emailtimesent"),
    "timezone": ("timezone", "tz", "timezonefield", "utcoffset"),
    "message_id": ("messageid", "internetmessageid", "emailmessageid"),
    "date_created": ("datecreated", "datecreate", "createdate", "createddate"),
    "time_created": ("timecreated", "createtime", "createdtime"),
    "date_modified": ("datelastmod", "lastmoddate", "datemodified", "modifieddate",
                      "datelastmodified"),
}
_EMAIL_HINTS = ("to", "cc", "bcc", "subject", "date_sent")
_OFFSET = re.compile(r"^(?:utc|gmt)?\s*([+-])(\d{1,2})(?::?(\d{2}))?$", re.IGNORECASE)
_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}")
_DRIVE = re.compile(r"^[A-Za-z]:")


@register
class LoadfileExtractor(Extractor):
    """Reads Concordance DAT load files (with their OPT) and standalone Opticon OPT files."""

    NAME = "loadfile"
    KINDS = ("dat", "opt")

    def extract(self, source: SourceFile, ctx: ExtractContext) -> Artifact:
        artifact = self.new_artifact(source)
        warnings: Counter[str] = Counter()
        if source.kind == "opt":
            lines = read_opt(source.path, ctx.config.loadfile.encoding)
            if not lines:
                raise FileRejected("corrupt_loadfile", "no image lines")
            artifact.metadata["images"] = len(lines)
            artifact.metadata["documents"] = sum(1 for line in lines if line.docbreak) or 1
        else:
            _read_dat(source.path, ctx, artifact, warnings)
        for code in warnings:
            ctx.warn(code)
        if warnings:
            artifact.metadata["warning_counts"] = dict(sorted(warnings.items()))
        return artifact


# --- text decoding ------------------------------------------------------------------------------


def detect_encoding(
    sample: bytes, forced: str | None = None, accept: Callable[[str], bool] | None = None
) -> str:
    """Encoding of a file from its first bytes: BOM, forced, utf-8, else detected (cp1252).

    ``accept`` checks the decoded sample (a DAT must show its quote and a separator); a detected
    encoding it rejects is replaced by cp1252, the usual encoding of non-Unicode load files.
    """
    for bom, name in _BOMS:
        if sample.startswith(bom):
            return name
    if forced:
        return forced
    try:
        sample.decode("utf-8")
        return "utf-8"
    except UnicodeDecodeError as exc:
        if exc.start > len(sample) - 4:  # a multi-byte character cut off by the sample
            return "utf-8"
    best = from_bytes(sample).best()
    if best is not None:
        decoded = sample.decode(best.encoding, errors="replace")
        if accept is None or accept(decoded):
            return best.encoding
    return "cp1252"


def read_text_file(path: Path, max_bytes: int, forced: str | None = None) -> tuple[str, bool]:
    """Text of a linked file, at most ``max_bytes`` read: (text, truncated)."""
    with path.open("rb") as handle:
        data = handle.read(max_bytes + 1)
    truncated = len(data) > max_bytes
    data = data[:max_bytes]
    encoding = detect_encoding(data[:SAMPLE_BYTES], forced)
    return data.decode(encoding, errors="replace"), truncated


# --- OPT ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class OptLine:
    """One page image of an Opticon file."""

    key: str
    path: str
    docbreak: bool
    pages: int | None


def read_opt(path: Path, forced: str | None = None) -> list[OptLine]:
    """Image lines ``KEY,VOLUME,PATH,DOCBREAK,FOLDERBREAK,BOXBREAK,PAGECOUNT`` of an OPT file."""
    with path.open("rb") as handle:
        encoding = detect_encoding(handle.read(SAMPLE_BYTES), forced)
    lines: list[OptLine] = []
    with path.open(encoding=encoding, errors="replace", newline="") as handle:
        for row in csv.reader(handle):
            if len(row) < 3 or not row[0].strip():
                continue
            count = row[6].strip() if len(row) > 6 else ""
            lines.append(OptLine(
                key=row[0].strip(), path=row[2].strip(),
                docbreak=len(row) > 3 and row[3].strip().upper() == "Y",
                pages=int(count) if count.isdigit() else None,
            ))
    return lines


def opt_documents(lines: list[OptLine]) -> tuple[dict[str, list[str]], dict[str, int]]:
    """Image paths per document (keyed by the first page's key) and each page key's position."""
    documents: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in lines:
        if line.docbreak or current is None:
            current = documents.setdefault(line.key, [])
        current.append(line.path)
    return documents, {line.key: i for i, line in enumerate(lines)}


# --- paths --------------------------------------------------------------------------------------


@dataclass
class VolumeResolver:
    """Resolves DAT/OPT paths relative to the volume; nothing outside ``boundary`` is returned."""

    dat_dir: Path
    boundary: Path
    warnings: Counter[str]
    _listings: dict[Path, dict[str, str]] = field(default_factory=dict)

    def resolve(self, written: str) -> Path | None:
        parts = _path_parts(written)
        if not parts:
            return None
        outside = False
        for base in (self.dat_dir, self.dat_dir.parent, self.dat_dir.parent.parent):
            variants = [parts]
            if len(parts) > 1 and parts[0].lower() == base.name.lower():
                variants.append(parts[1:])
            for variant in variants:
                candidate = (base.joinpath(*variant)).resolve()
                if not candidate.is_relative_to(self.boundary):
                    outside = True
                    continue
                found = candidate if candidate.is_file() else self._case_insensitive(variant, base)
                if found is not None:
                    return found
        self.warnings["path_outside_volume" if outside else "loadfile_missing_member"] += 1
        return None

    def _case_insensitive(self, parts: list[str], base: Path) -> Path | None:
        """Volumes made on Windows may differ in case from the DAT (``TEXT`` vs ``text``)."""
        current = base
        for part in parts:
            if part == "..":
                current = current.parent
                continue
            listing = self._listing(current)
            name = listing.get(part.lower())
            if name is None:
                return None
            current = current / name
        resolved = current.resolve()
        if resolved.is_relative_to(self.boundary) and resolved.is_file():
            return resolved
        return None

    def _listing(self, directory: Path) -> dict[str, str]:
        if directory not in self._listings:
            try:
                names = {p.name.lower(): p.name for p in directory.iterdir()}
            except OSError:
                names = {}
            self._listings[directory] = names
        return self._listings[directory]


def _path_parts(written: str) -> list[str]:
    text = _DRIVE.sub("", written.strip().replace("\\", "/"))
    return [p for p in text.split("/") if p not in ("", ".")]


def _find_opt(dat: Path) -> Path | None:
    """The OPT beside the DAT: same stem, else the only OPT in the folder."""
    siblings = [p for p in dat.parent.iterdir() if p.suffix.lower() == ".opt" and p.is_file()]
    same = [p for p in siblings if p.stem.lower() == dat.stem.lower()]
    if same:
        return same[0]
    return siblings[0] if len(siblings) == 1 else None


# --- DAT ----------------------------------------------------------------------------------------


@dataclass
class _DatContext:
    """What every row needs: the column map, limits, resolver and OPT documents."""

    columns: dict[str, int]
    names: list[str]
    ctx: ExtractContext
    resolver: VolumeResolver
    warnings: Counter[str]
    opt_docs: dict[str, list[str]]
    opt_index: dict[str, int]
    opt_lines: list[OptLine]
    members: set[str] = field(default_factory=set)
    natives: set[str] = field(default_factory=set)


def normalise_field_name(name: str) -> str:
    """``Beg Bates`` / ``BEG_BATES`` / ``BegBates`` -> ``begbates``."""
    return re.sub(r"[^0-9a-z]", "", name.lower())


def map_columns(names: list[str]) -> dict[str, int]:
    """Canonical field -> column index, using the first alias present (in alias order)."""
    index: dict[str, int] = {}
    for i, name in enumerate(names):
        index.setdefault(normalise_field_name(name), i)
    columns: dict[str, int] = {}
    for canonical, aliases in FIELD_ALIASES.items():
        for alias in aliases:
            if alias in index:
                columns[canonical] = index[alias]
                break
    return columns


def _read_dat(path: Path, ctx: ExtractContext, artifact: Artifact, warnings: Counter[str]) -> None:
    config = ctx.config.loadfile
    with path.open("rb") as raw:
        sample = raw.read(SAMPLE_BYTES)

    def shows_markup(text: str) -> bool:
        return config.quote in text and any(sep in text for sep in config.separators)

    encoding = detect_encoding(sample, config.encoding, shows_markup)
    with path.open(encoding=encoding, errors="replace", newline="") as handle:
        header_line = handle.readline().strip().lstrip("\ufeff")
    separator = next((s for s in config.separators if s in header_line), None)
    if separator is None and len(header_line) > 2 and header_line[0] == header_line[-1] == \
            config.quote:
        separator = config.separators[0]  # a one-column load file
    if separator is None:
        raise FileRejected("corrupt_loadfile", "no header row with a known separator")
    # csv refuses fields over its global limit; raise it (never lower it) to the file size cap
    # so long fields reach our own truncation instead of failing the whole file.
    csv.field_size_limit(max(csv.field_size_limit(), ctx.limits.max_file_bytes))

    dat_dir = path.parent.resolve()
    resolver = VolumeResolver(dat_dir, dat_dir.parent.parent, warnings)
    opt_path = _find_opt(path)
    opt_lines = read_opt(opt_path, config.encoding) if opt_path is not None else []
    opt_docs, opt_index = opt_documents(opt_lines)

    with path.open(encoding=encoding, errors="replace", newline="") as handle:
        rows = csv.reader(
            handle, delimiter=separator, quotechar=config.quote, doublequote=True, strict=False
        )
        header = next(rows, None)
        if not header or not any(h.strip() for h in header):
            raise FileRejected("corrupt_loadfile", "empty header row")
        names = [h.strip().lstrip("\ufeff") for h in header]
        dat = _DatContext(
            columns=map_columns(names), names=names, ctx=ctx, resolver=resolver,
            warnings=warnings, opt_docs=opt_docs, opt_index=opt_index, opt_lines=opt_lines,
        )
        for number, row in enumerate(_data_rows(rows), start=1):
            if number > ctx.limits.max_rows:
                raise LimitExceeded("limit_rows", f"over {ctx.limits.max_rows} rows")
            record = _row_record(row, number, dat)
            artifact.records.append(record)
            artifact.pages.append(Page(number=number, text=record.body or "", method="text_layer"))
    artifact.metadata.update({
        "rows": len(artifact.records),
        "fields": len(names),
        "encoding": encoding,
        "separator": f"U+{ord(separator):04X}",
        "opt": opt_path is not None,
        "member_paths": sorted(dat.members),
        "natives": sorted(dat.natives),
    })


def _data_rows(rows: Iterator[list[str]]) -> Iterator[list[str]]:
    for row in rows:
        if row and any(cell.strip() for cell in row):
            yield row


def _row_record(row: list[str], number: int, dat: _DatContext) -> Record:
    config = dat.ctx.config.loadfile
    if len(row) != len(dat.names):
        dat.warnings["dat_bad_row"] += 1
        row = (row + [""] * len(dat.names))[: len(dat.names)]
    values = [_clean_field(cell, config.newline, dat) for cell in row]

    def get(name: str) -> str:
        index = dat.columns.get(name)
        return values[index].strip() if index is not None else ""

    attributes: dict[str, Any] = {}
    for name in ("custodian", "filename", "doctype", "endbates", "begattach", "endattach"):
        if get(name):
            attributes[name] = get(name)
    body = _row_text(get("text"), dat, attributes)
    native = get("native")
    if native:
        attributes["native_path"] = "/".join(_path_parts(native))
        resolved = dat.resolver.resolve(native)
        if resolved is not None:
            dat.natives.add(resolved.as_posix())
    bates = get("bates") or None
    images = _row_images(bates, get("endbates"), dat)
    if images:
        attributes["image_paths"] = images
    page_count = get("page_count")
    if page_count.isdigit():
        attributes["page_count"] = int(page_count)
    elif images:
        attributes["page_count"] = len(images)

    is_email = bool(get("from")) and any(get(name) for name in _EMAIL_HINTS)
    zone_value = get("timezone")
    if is_email:
        start, zone = _row_time(get("date_sent"), get("time_sent"), zone_value, dat)
    else:
        start, zone = _row_time(get("date_created"), get("time_created"), zone_value, dat)
        if start is None:
            start, zone = _row_time(get("date_modified"), "", zone_value, dat)
    participants: list[Participant] = []
    if is_email:
        roles: tuple[Role, ...] = ("from", "to", "cc", "bcc")
        for role in roles:
            participants.extend(parse_addresses(get(role), role))
    return Record(
        type="email" if is_email else "document",
        locator=f"row:{number}",
        row=number,
        bates=bates,
        start=start,
        timezone=zone,
        participants=participants,
        subject=(get("subject") or None) if is_email else None,
        body=body,
        message_id=(get("message_id") or None) if is_email else None,
        attributes=attributes,
    )


def _clean_field(value: str, newline: str, dat: _DatContext) -> str:
    limit = dat.ctx.limits.max_field_bytes
    if len(value) * 4 > limit:
        encoded = value.encode("utf-8")
        if len(encoded) > limit:
            dat.warnings["field_truncated"] += 1
            value = encoded[:limit].decode("utf-8", errors="ignore")
    return value.replace(newline, "\n") if newline else value


def _row_text(value: str, dat: _DatContext, attributes: dict[str, Any]) -> str | None:
    """The document text: the linked text file, or the field itself when it is not a path."""
    if not value:
        return None
    looks_like_path = "\n" not in value and len(value) < 1024 and (
        value.lower().endswith(".txt") or "\\" in value or "/" in value
    )
    if not looks_like_path:
        return value
    attributes["text_path"] = "/".join(_path_parts(value))
    resolved = dat.resolver.resolve(value)
    if resolved is None:
        return None
    dat.members.add(resolved.as_posix())
    limit = dat.ctx.limits.max_field_bytes * TEXT_FILE_FACTOR
    text, truncated = read_text_file(resolved, limit, dat.ctx.config.loadfile.encoding)
    if truncated:
        dat.warnings["field_truncated"] += 1
    return text


def _row_images(bates: str | None, end_bates: str, dat: _DatContext) -> list[str]:
    """Image paths of the document starting at ``bates`` (to the next OPT document break)."""
    if not bates or not dat.opt_lines:
        return []
    written = dat.opt_docs.get(bates)
    if written is None and bates in dat.opt_index:
        start = dat.opt_index[bates]
        stop = dat.opt_index.get(end_bates, len(dat.opt_lines) - 1)
        written = []
        for line in dat.opt_lines[start: stop + 1]:
            if line.docbreak and written:
                break
            written.append(line.path)
    images = []
    for path in written or []:
        images.append("/".join(_path_parts(path)))
        resolved = dat.resolver.resolve(path)
        if resolved is not None:
            dat.members.add(resolved.as_posix())
    return images


def _row_time(
    date_value: str, time_value: str, zone_value: str, dat: _DatContext
) -> tuple[str | None, str | None]:
    """(ISO start, IANA zone) from date, time and time-zone fields of one row."""
    if not date_value:
        return None, None
    if ":" in date_value:
        time_value = ""  # the date field already carries the time
    text = f"{date_value} {time_value}".strip()
    iso = _ISO_DATE.match(text) is not None
    moment: datetime | None = None
    if iso:
        with contextlib.suppress(ValueError):
            moment = datetime.fromisoformat(text)
    if moment is None:
        try:
            moment = date_parser.parse(
                text, dayfirst=dat.ctx.config.sheets.dayfirst and not iso, yearfirst=iso
            )
        except (ValueError, OverflowError):
            dat.warnings["dat_bad_date"] += 1
            return None, None
    zone: str | None = None
    if zone_value and moment.tzinfo is None:
        offset = _fixed_offset(zone_value)
        if offset is not None:
            moment = moment.replace(tzinfo=offset)
        else:
            try:
                ZoneInfo(zone_value)
                zone = zone_value
            except (ZoneInfoNotFoundError, ValueError):
                dat.warnings["dat_bad_timezone"] += 1
    return moment.isoformat(), zone


def _fixed_offset(value: str) -> timezone | None:
    """``-0500``, ``+05:30``, ``UTC-5``, ``GMT``, ``Z`` -> a fixed offset; else ``None``."""
    cleaned = value.strip()
    if cleaned.upper() in ("UTC", "GMT", "Z"):
        return UTC
    match = _OFFSET.match(cleaned)
    if match is None:
        return None
    sign, hours, minutes = match.group(1), int(match.group(2)), int(match.group(3) or 0)
    if hours > 14 or minutes > 59:
        return None
    delta = timedelta(hours=hours, minutes=minutes)
    return timezone(-delta if sign == "-" else delta)

