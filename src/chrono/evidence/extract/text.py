"""Plain-text and Word (docx) extractor, plus the encoding and OOXML-zip guards sheets share.

Plain text is decoded after encoding detection (BOM, then strict UTF-8, then charset-normalizer,
ties broken toward cp1252) and kept as one page. A docx is read from ``word/document.xml`` with
defusedxml, streamed and size-capped; its paragraphs are joined with newlines.

Reason codes raised here (see README, "Reason codes"):

* ``bad_encoding``  -- no encoding decodes the bytes cleanly: not UTF-8, charset-normalizer finds
  no candidate, or the decoded sample is over 10% control characters (binary data).
* ``xml_entities``  -- an XML part declares a DOCTYPE or ENTITY (XXE / billion laughs guard).
* ``limit_size``    -- a zip member (or all members together) is over the size limits.
* ``limit_ratio``   -- a zip member over 1 MiB expands more than ``max_compression_ratio``.
* ``limit_entries`` -- the zip holds more than ``max_archive_entries`` members.
* ``encrypted``     -- a zip member is encrypted.
* ``corrupt``       -- not a readable zip, or ``word/document.xml`` is missing or malformed.

Warnings: ``text_truncated`` -- the text was cut at :data:`MAX_TEXT_CHARS`.
"""

from __future__ import annotations

import codecs
import io
import unicodedata
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any
from xml.etree.ElementTree import ParseError

import charset_normalizer
from defusedxml import DefusedXmlException
from defusedxml import ElementTree as SafeET

from chrono.core.errors import FileRejected, LimitExceeded
from chrono.evidence.extract.base import ExtractContext, Extractor, SourceFile, register
from chrono.evidence.model import Artifact, Page
from chrono.evidence.timeparse import parse_when

MAX_TEXT_CHARS = 5_000_000
"""Most characters kept from one text file or docx (the rest is dropped with a warning)."""
ENCODING_SAMPLE_BYTES = 1 << 20
"""Bytes given to charset-normalizer (the head of the file, plus a window at the first
non-UTF-8 byte)."""
MAX_CONTROL_RATIO = 0.10
"""Share of control characters (other than tab/newline/form feed) above which decoded bytes are
treated as binary, not text."""
PREFERRED_CODECS = ("cp1252", "latin_1", "iso8859_15")
"""Codecs chosen when charset-normalizer rates several candidates exactly alike."""
RATIO_FLOOR_BYTES = 1 << 20
"""Zip members smaller than this are never refused for their compression ratio: small XML parts
legitimately compress very well."""
CORE_XML_MAX_BYTES = 1 << 20

_BOMS: tuple[tuple[bytes, str], ...] = (
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
_DTD_MARKERS: tuple[bytes, ...] = tuple(
    marker.encode(codec) for marker in ("<!doctype", "<!entity")
    for codec in ("utf-8", "utf-16-le", "utf-16-be")
)
_W = "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}"
_DCTERMS_CREATED = "{http://purl.org/dc/terms/}created"
_DC_TITLE = "{http://purl.org/dc/elements/1.1/}title"
_CHUNK = 1 << 16


# --- encodings -----------------------------------------------------------------------------


def control_ratio(text: str) -> float:
    """Share of control characters in ``text``, not counting tab, newline, CR and form feed."""
    if not text:
        return 0.0
    controls = sum(
        1 for ch in text if ch not in "\t\n\r\f\v" and unicodedata.category(ch) == "Cc"
    )
    return controls / len(text)


def _first_utf8_error(fh: IO[bytes], head: bytes) -> int | None:
    """Offset of the first byte that is not valid UTF-8 (``None`` when the whole file is)."""
    decoder = codecs.getincrementaldecoder("utf-8")("strict")
    offset = 0
    chunk = head
    while chunk:
        try:
            decoder.decode(chunk, final=False)
        except UnicodeDecodeError as exc:
            return offset + max(exc.start, 0)
        offset += len(chunk)
        chunk = fh.read(_CHUNK * 16)
    try:
        decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        return offset
    return None


def detect_encoding(path: Path) -> str:
    """Name the codec that decodes ``path``: BOM, strict UTF-8, else charset-normalizer.

    Raises ``bad_encoding`` when nothing decodes the bytes as text.
    """
    with path.open("rb") as fh:
        head = fh.read(ENCODING_SAMPLE_BYTES)
        for bom, codec in _BOMS:
            if head.startswith(bom):
                return codec
        error_at = _first_utf8_error(fh, head)
        sample = head
        if error_at is not None and error_at >= len(head):
            # The head is clean: give the detector the bytes around the first bad one too.
            fh.seek(max(error_at - _CHUNK, 0))
            sample = head + b"\n" + fh.read(2 * _CHUNK)
    if error_at is None:
        text = head.decode("utf-8", errors="ignore")
        if control_ratio(text) <= MAX_CONTROL_RATIO:
            return "utf-8"
    matches = charset_normalizer.from_bytes(sample)
    match = matches.best()
    if match is None:
        raise FileRejected("bad_encoding", "no text encoding decodes the bytes")
    match = _prefer_common(match, list(matches))
    if control_ratio(str(match)) > MAX_CONTROL_RATIO:
        raise FileRejected("bad_encoding", "decoded text is mostly control characters")
    return str(match.encoding)


def _prefer_common(best: Any, matches: list[Any]) -> Any:
    """Break a tie between equally plausible single-byte codecs toward the common ones.

    Short Western European samples decode equally well as cp1252, cp1250, cp1257...; the
    detector then picks arbitrarily. Legacy exports are overwhelmingly cp1252 (or Latin-1).
    """
    tied = {
        m.encoding: m for m in matches
        if abs(m.chaos - best.chaos) < 0.01 and abs(m.coherence - best.coherence) < 0.01
    }
    for codec in PREFERRED_CODECS:
        if codec in tied:
            return tied[codec]
    return best


def open_text(path: Path, encoding: str) -> IO[str]:
    """Open ``path`` for strict decoding; a later bad byte raises ``UnicodeDecodeError``."""
    return open(path, encoding=encoding, errors="strict", newline="")


def read_bounded_text(path: Path, encoding: str, max_chars: int) -> tuple[str, bool]:
    """Decode at most ``max_chars`` characters; returns ``(text, truncated)``."""
    try:
        with open_text(path, encoding) as fh:
            text = fh.read(max_chars + 1)
    except UnicodeDecodeError:
        raise FileRejected("bad_encoding", f"bytes not valid {encoding}") from None
    truncated = len(text) > max_chars
    return text[:max_chars].replace("\x00", ""), truncated


# --- OOXML zips ----------------------------------------------------------------------------


class BoundedReader(io.RawIOBase):
    """A read-only stream that raises ``limit_size`` after ``limit`` bytes."""

    def __init__(self, raw: IO[bytes], limit: int) -> None:
        self._raw = raw
        self._limit = limit
        self.count = 0

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        want = _CHUNK if size is None or size < 0 else min(size, 1 << 22)
        data = self._raw.read(want)
        self.count += len(data)
        if self.count > self._limit:
            raise LimitExceeded("limit_size", f"zip member over {self._limit} bytes")
        return data

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


def check_member(info: zipfile.ZipInfo, ctx: ExtractContext) -> None:
    """Refuse an encrypted member or one whose declared size breaks the limits."""
    limits = ctx.limits
    if info.flag_bits & 0x1:
        raise FileRejected("encrypted", "zip member is encrypted")
    if info.file_size > limits.max_file_bytes:
        raise LimitExceeded("limit_size", f"zip member {info.file_size} bytes")
    if (
        info.file_size > RATIO_FLOOR_BYTES
        and info.file_size > max(info.compress_size, 1) * limits.max_compression_ratio
    ):
        raise LimitExceeded("limit_ratio", f"zip member ratio over {limits.max_compression_ratio}")


def open_ooxml(path: Path, ctx: ExtractContext) -> zipfile.ZipFile:
    """Open an OOXML package as a zip, refusing too many members."""
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise FileRejected("corrupt", f"not a readable zip ({type(exc).__name__})") from None
    if len(archive.infolist()) > ctx.limits.max_archive_entries:
        archive.close()
        raise LimitExceeded("limit_entries", f"{len(archive.infolist())} zip members")
    return archive


def scan_ooxml_parts(path: Path, ctx: ExtractContext) -> None:
    """Read every member of an OOXML zip once, bounded, before a parser sees it.

    Refuses DOCTYPE/ENTITY declarations (``xml_entities``), members over the size or ratio
    limits, and a package whose members add up to more than ``max_archive_total_bytes``. Sizes
    are counted on the decompressed bytes, so a lying zip header does not get through.
    """
    limits = ctx.limits
    total = 0
    with open_ooxml(path, ctx) as archive:
        for info in archive.infolist():
            if info.is_dir():
                continue
            check_member(info, ctx)
            total += _scan_member(archive, info, limits.max_file_bytes)
            if total > limits.max_archive_total_bytes:
                raise LimitExceeded("limit_size", f"zip members over {total} bytes")


def _scan_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, cap: int) -> int:
    overlap = max(len(m) for m in _DTD_MARKERS) - 1
    tail = b""
    size = 0
    try:
        with archive.open(info) as member:
            while chunk := member.read(_CHUNK):
                size += len(chunk)
                if size > cap:
                    raise LimitExceeded("limit_size", f"zip member over {cap} bytes")
                window = tail + chunk.lower()
                if any(marker in window for marker in _DTD_MARKERS):
                    raise FileRejected("xml_entities", "XML part declares a DOCTYPE or ENTITY")
                tail = window[-overlap:]
    except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError) as exc:
        raise FileRejected("corrupt", f"zip member unreadable ({type(exc).__name__})") from None
    return size


# --- docx ----------------------------------------------------------------------------------


def _paragraph_text(paragraph: Any) -> str:
    parts: list[str] = []
    for node in paragraph.iter():
        if node.tag == f"{_W}t" and node.text:
            parts.append(node.text)
        elif node.tag == f"{_W}tab":
            parts.append("\t")
        elif node.tag in (f"{_W}br", f"{_W}cr"):
            parts.append("\n")
    return "".join(parts)


def iter_docx_paragraphs(stream: IO[bytes]) -> Iterator[str]:
    """Yield the text of each ``w:p`` in document order, streaming (bounded memory)."""
    for _event, element in SafeET.iterparse(stream, events=("end",), forbid_dtd=True):
        if element.tag == f"{_W}p":
            yield _paragraph_text(element)
            element.clear()


def read_docx(path: Path, ctx: ExtractContext) -> tuple[str, bool, dict[str, Any]]:
    """Return ``(text, truncated, metadata)`` for a docx."""
    metadata: dict[str, Any] = {}
    with open_ooxml(path, ctx) as archive:
        try:
            info = archive.getinfo("word/document.xml")
        except KeyError:
            raise FileRejected("corrupt", "docx has no word/document.xml") from None
        check_member(info, ctx)
        lines: list[str] = []
        used = 0
        truncated = False
        try:
            with archive.open(info) as raw:
                stream = BoundedReader(raw, ctx.limits.max_file_bytes)
                for paragraph in iter_docx_paragraphs(io.BufferedReader(stream)):
                    if used + len(paragraph) > MAX_TEXT_CHARS:
                        lines.append(paragraph[: MAX_TEXT_CHARS - used])
                        truncated = True
                        break
                    lines.append(paragraph)
                    used += len(paragraph) + 1
            metadata.update(_core_properties(archive, ctx))
        except DefusedXmlException:
            raise FileRejected("xml_entities", "docx XML declares a DOCTYPE or ENTITY") from None
        except ParseError:
            raise FileRejected("corrupt", "docx XML is malformed") from None
        except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError) as exc:
            detail = f"docx member unreadable ({type(exc).__name__})"
            raise FileRejected("corrupt", detail) from None
    return "\n".join(lines), truncated, metadata


def _core_properties(archive: zipfile.ZipFile, ctx: ExtractContext) -> dict[str, Any]:
    try:
        info = archive.getinfo("docProps/core.xml")
    except KeyError:
        return {}
    check_member(info, ctx)
    with archive.open(info) as raw:
        data = raw.read(CORE_XML_MAX_BYTES + 1)
    if len(data) > CORE_XML_MAX_BYTES:
        raise LimitExceeded("limit_size", f"core.xml over {CORE_XML_MAX_BYTES} bytes")
    root = SafeET.fromstring(data, forbid_dtd=True)
    found: dict[str, Any] = {}
    created = root.findtext(_DCTERMS_CREATED)
    if created:
        when = parse_when(created.strip(), default_tz=ctx.config.default_timezone)
        if when:
            found["created"] = when
    title = root.findtext(_DC_TITLE)
    if title and title.strip():
        found["title"] = title.strip()[:500]
    return found


# --- extractor -----------------------------------------------------------------------------


@register
class TextExtractor(Extractor):
    """Plain text (any encoding) and Word docx, each as one page of text."""

    NAME = "text"
    KINDS = ("text", "docx")

    def extract(self, source: SourceFile, ctx: ExtractContext) -> Artifact:
        artifact = self.new_artifact(source)
        if source.kind == "docx":
            text, truncated, metadata = read_docx(source.path, ctx)
            artifact.metadata.update(metadata)
        else:
            encoding = detect_encoding(source.path)
            text, truncated = read_bounded_text(source.path, encoding, MAX_TEXT_CHARS)
            artifact.metadata["encoding"] = encoding
        if truncated:
            ctx.warn("text_truncated")
        artifact.pages.append(Page(number=1, text=text, method="text_layer"))
        artifact.metadata["page_count"] = 1
        return artifact
