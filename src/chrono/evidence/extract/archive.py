"""Archive extractor: zip (ZipCrypto, WinZip AES), 7z, tar/tgz/tbz/txz and bare gzip/bzip2/xz.

Every regular-file entry becomes a child stored content-addressed with ``ctx.store_child``, so an
entry name never becomes a path on disk. Nested archives are not opened here: they are children,
and the pipeline extracts them in turn (``ctx.store_child`` enforces the nesting depth). Entries are
streamed in chunks; no entry is read whole into memory.

Reason codes. A code is an entry-level warning when other entries were extracted, and the file's
failure reason (the most specific one, in this order) when no entry was:

- ``unsupported_encryption``: PKWARE strong encryption, an encrypted zip central directory, or an
  unknown zip encryption method.
- ``password_required``: an encrypted entry or archive, and no passwords were given.
- ``wrong_password``: none of the given passwords opens the entry or archive (for 7z, whose
  encryption carries no check value, also a decryption that fails for every password).
- ``corrupt_archive``: unreadable archive or entry: bad headers, CRC mismatch, bad AES MAC,
  truncated or undecodable stream.
- ``unsupported_compression``: a zip entry compressed with a method the reader lacks (deflate64,
  PPMd...).
- ``limit_ratio``: an entry expands past ``max_compression_ratio`` times its compressed size
  (declared sizes checked up front, streamed bytes enforced while copying); for 7z and
  compressed tar/gzip/bzip2/xz the ratio applies to the whole stream. Outputs under 1 MiB are
  never ratio bombs.
- ``path_traversal``: an entry name that is absolute, has a drive letter, or a ``..`` part (either
  slash); the entry is not stored.
- ``link_refused``: a symlink, hardlink, device or FIFO entry; not stored.

Warning only:

- ``duplicate_entry``: an entry name seen twice; both are stored.

File failures only:

- ``unsupported_rar``: a RAR archive (no well-kept reader without an external binary).
- ``limit_entries``: more entries than ``max_archive_entries``.
- ``limit_size``: more uncompressed bytes, declared or streamed, than ``max_archive_total_bytes``.
- ``limit_depth``: the archive sits too deep for its entries to be stored.
"""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import os
import re
import stat
import struct
import tarfile
import tempfile
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, ClassVar, Protocol, cast

import py7zr
import pyzipper
from py7zr.io import Py7zIO, WriterFactory

from chrono.core.errors import ChronoError, FileRejected, LimitExceeded, WrongFormat
from chrono.evidence.extract.base import ExtractContext, Extractor, SourceFile, register
from chrono.evidence.model import Artifact, Child

RATIO_FLOOR_BYTES = 1 << 20
"""Outputs up to this size are never treated as compression bombs (small text compresses well)."""

CHUNK = 1 << 20

# Most specific first: the failure reason of an archive whose every entry was refused.
_SPECIFICITY = (
    "unsupported_encryption",
    "password_required",
    "wrong_password",
    "corrupt_archive",
    "unsupported_compression",
    "limit_ratio",
    "path_traversal",
    "link_refused",
)

# What a decompressor or archive reader raises on damaged data (bz2 and gzip raise OSError).
_DECODE_ERRORS: tuple[type[BaseException], ...] = (
    pyzipper.BadZipFile,
    tarfile.TarError,
    zlib.error,
    lzma.LZMAError,
    EOFError,
    OSError,
    ValueError,
    struct.error,
)

_ZIP_FLAG_ENCRYPTED = 0x1
_ZIP_FLAG_STRONG_ENCRYPTION = 0x40
_ZIP_FLAG_UTF8 = 0x800
_ZIP_FLAG_CD_ENCRYPTED = 0x2000
_ZIP_METHOD_AES = 99
_DRIVE = re.compile(r"^[A-Za-z]:")


class _CorruptStream(Exception):
    """The archive's bytes could not be decoded (raised through ``store_child``)."""


class _SpoolFailed(Exception):
    """Our own 7z spooling failed (disk, not data): carried through py7zr's broad handlers."""

    def __init__(self, original: Exception) -> None:
        super().__init__(type(original).__name__)
        self.original = original


@dataclass
class _Tally:
    """What happened to the entries of one archive."""

    entries: int = 0
    encrypted: bool = False
    children: list[Child] = field(default_factory=list)
    refusals: list[str] = field(default_factory=list)
    seen_names: set[str] = field(default_factory=set)

    def refuse(self, ctx: ExtractContext, code: str) -> None:
        self.refusals.append(code)
        ctx.warn(code)

    def add_child(self, ctx: ExtractContext, name: str, child: Child) -> None:
        if name in self.seen_names:
            ctx.warn("duplicate_entry")
        self.seen_names.add(name)
        self.children.append(child)


class _Budget:
    """Uncompressed bytes streamed out of one archive, against ``max_archive_total_bytes``."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0

    def take(self, count: int) -> None:
        self.used += count
        if self.used > self.limit:
            raise LimitExceeded("limit_size", f"archive expands past {self.limit} bytes")


class _Meter:
    """Counts one stream's output against the archive budget and an optional ratio cap."""

    def __init__(self, budget: _Budget, ratio_cap: int | None) -> None:
        self.budget = budget
        self.ratio_cap = ratio_cap
        self.count = 0

    def take(self, count: int) -> None:
        self.count += count
        if self.ratio_cap is not None and self.count > self.ratio_cap:
            raise LimitExceeded("limit_ratio", f"stream expands past {self.ratio_cap} bytes")
        self.budget.take(count)


class _Readable(Protocol):
    def read(self, size: int = ..., /) -> bytes: ...


class _GuardedReader:
    """A read-only stream that meters its output and turns decode errors into `_CorruptStream`."""

    def __init__(self, stream: _Readable, meter: _Meter | None = None) -> None:
        self._stream = stream
        self._meter = meter

    def read(self, size: int = -1) -> bytes:
        try:
            data = self._stream.read(CHUNK if size is None or size < 0 else size)
        except _DECODE_ERRORS as exc:
            raise _CorruptStream(type(exc).__name__) from None
        if self._meter is not None:
            self._meter.take(len(data))
        return data

    def as_io(self) -> IO[bytes]:
        """This reader, typed as the stream ``store_child`` and ``tarfile`` accept."""
        return cast(IO[bytes], self)


def _ratio_cap(compressed: int, ratio: float) -> int:
    return max(int(compressed * ratio), RATIO_FLOOR_BYTES)


def is_unsafe_entry_name(name: str) -> bool:
    """True for names that would escape an extraction folder: absolute, drive letter, ``..``."""
    posix = name.replace("\\", "/")
    if posix.startswith("/") or _DRIVE.match(posix):
        return True
    return ".." in posix.split("/")


@register
class ArchiveExtractor(Extractor):
    """Lists and streams archive entries into content-addressed children."""

    NAME: ClassVar[str] = "archive"
    KINDS: ClassVar[tuple[str, ...]] = ("zip", "7z", "tar", "gzip", "bzip2", "xz", "rar")

    def extract(self, source: SourceFile, ctx: ExtractContext) -> Artifact:
        if source.kind == "rar":
            raise WrongFormat("unsupported_rar", "RAR archives are not supported")
        depth = max(ctx.depth, source.depth)
        if depth + 1 > ctx.limits.max_nesting_depth:
            raise LimitExceeded("limit_depth", f"depth {depth + 1}")
        tally = _Tally()
        budget = _Budget(ctx.limits.max_archive_total_bytes)
        if source.kind == "zip":
            _read_zip(source, ctx, tally, budget)
        elif source.kind == "7z":
            _read_7z(source, ctx, tally, budget)
        elif source.kind == "tar":
            with open(source.path, "rb") as raw:
                _read_tar(_GuardedReader(raw, _Meter(budget, None)), ctx, tally)
        else:
            _read_compressed(source, ctx, tally, budget)
        return self._finish(source, tally)

    def _finish(self, source: SourceFile, tally: _Tally) -> Artifact:
        if tally.refusals and not tally.children:
            code = next(c for c in _SPECIFICITY + tuple(tally.refusals) if c in tally.refusals)
            raise FileRejected(code, f"{len(tally.refusals)} of {tally.entries} entries refused")
        artifact = self.new_artifact(source)
        artifact.children = tally.children
        artifact.metadata = {
            "entries": tally.entries,
            "extracted": len(tally.children),
            "refused": len(tally.refusals),
            "encrypted": tally.encrypted,
        }
        return artifact


# --- zip ---------------------------------------------------------------------------------------


def _read_zip(source: SourceFile, ctx: ExtractContext, tally: _Tally, budget: _Budget) -> None:
    limits = ctx.limits
    try:
        archive = pyzipper.AESZipFile(source.path)
    except NotImplementedError:
        raise FileRejected("corrupt_archive", "unsupported zip layout") from None
    except (*_DECODE_ERRORS, pyzipper.LargeZipFile) as exc:
        raise FileRejected("corrupt_archive", type(exc).__name__) from None
    with archive:
        infos = archive.infolist()
        tally.entries = len(infos)
        if len(infos) > limits.max_archive_entries:
            raise LimitExceeded(
                "limit_entries", f"{len(infos)} entries > {limits.max_archive_entries}"
            )
        declared = sum(info.file_size for info in infos)
        if declared > limits.max_archive_total_bytes:
            raise LimitExceeded(
                "limit_size", f"{declared} bytes declared > {limits.max_archive_total_bytes}"
            )
        tally.encrypted = any(info.flag_bits & _ZIP_FLAG_ENCRYPTED for info in infos)
        passwords = tuple(p.encode("utf-8") for p in ctx.passwords)
        for info in infos:
            code = _zip_entry(archive, info, passwords, ctx, tally, budget)
            if code is not None:
                tally.refuse(ctx, code)


def _zip_entry(
    archive: pyzipper.AESZipFile,
    info: Any,
    passwords: tuple[bytes, ...],
    ctx: ExtractContext,
    tally: _Tally,
    budget: _Budget,
) -> str | None:
    """Store one zip entry as a child; return the refusal code, or None when stored or skipped."""
    if info.is_dir():
        return None
    name = zip_entry_name(info)
    if is_unsafe_entry_name(name):
        return "path_traversal"
    if stat.S_ISLNK(info.external_attr >> 16):
        return "link_refused"
    if info.flag_bits & (_ZIP_FLAG_STRONG_ENCRYPTION | _ZIP_FLAG_CD_ENCRYPTED) or (
        info.compress_type == _ZIP_METHOD_AES
    ):
        return "unsupported_encryption"
    cap = _ratio_cap(info.compress_size, ctx.limits.max_compression_ratio)
    if info.file_size > cap:
        return "limit_ratio"
    encrypted = bool(info.flag_bits & _ZIP_FLAG_ENCRYPTED)
    if encrypted and not passwords:
        return "password_required"
    failure = "wrong_password"
    for password in passwords if encrypted else (None,):
        try:
            stream = archive.open(info, pwd=password)
        except RuntimeError:  # pyzipper: the password check value does not match
            continue
        except NotImplementedError:
            return "unsupported_compression"
        except _DECODE_ERRORS:
            return "corrupt_archive"
        try:
            with stream:
                reader = _GuardedReader(stream, _Meter(budget, cap)).as_io()
                child = ctx.store_child(name, reader, "archive_entry", max_bytes=cap)
        except _CorruptStream:
            # A wrong ZipCrypto password passes the 1-byte check 1 time in 256; try the others.
            failure = "corrupt_archive"
            continue
        except LimitExceeded as exc:
            if exc.code != "limit_ratio":
                raise
            return "limit_ratio"
        tally.add_child(ctx, name, child)
        return None
    return failure


def zip_entry_name(info: Any) -> str:
    """The entry's name, for a name without the UTF-8 flag: the Info-ZIP Unicode Path field when
    present, else the raw bytes as UTF-8 when valid, else CP437 (the zip default; never fails)."""
    name: str = info.filename
    if info.flag_bits & _ZIP_FLAG_UTF8:
        return name
    try:
        raw = info.orig_filename.encode("cp437")
    except UnicodeEncodeError:
        return name
    unicode_path = _unicode_path_field(info.extra, raw)
    if unicode_path is not None:
        return unicode_path
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return name


_UNICODE_PATH_FIELD = 0x7075


def _unicode_path_field(extra: bytes, raw_name: bytes) -> str | None:
    """The UTF-8 name of an Info-ZIP Unicode Path extra field, if it matches ``raw_name``."""
    offset = 0
    while offset + 4 <= len(extra):
        field_id, size = struct.unpack_from("<HH", extra, offset)
        data = extra[offset + 4 : offset + 4 + size]
        offset += 4 + size
        if field_id != _UNICODE_PATH_FIELD or len(data) < 5 or data[0] != 1:
            continue
        (name_crc,) = struct.unpack_from("<L", data, 1)
        if name_crc != zlib.crc32(raw_name):
            return None  # the header name was changed after the field was written
        try:
            return data[5:].decode("utf-8")
        except UnicodeDecodeError:
            return None
    return None


# --- 7z ----------------------------------------------------------------------------------------


class _SpoolWriter(Py7zIO):
    """Receives one 7z entry from py7zr into a temp file, then stores it as a child on close.

    py7zr calls ``close`` only after the entry's CRC matched, so a child is never a broken entry.
    """

    def __init__(self, name: str, factory: _SpoolFactory) -> None:
        self._name = name
        self._factory = factory
        try:
            fd, spool = tempfile.mkstemp(dir=factory.ctx.artifact_dir, prefix=".spool-")
        except OSError as exc:
            raise _SpoolFailed(exc) from None
        self._path = Path(spool)
        self._file = os.fdopen(fd, "w+b")
        self._size = 0

    def write(self, s: bytes | bytearray) -> int:
        self._factory.meter.take(len(s))
        self._size += len(s)
        try:
            return self._file.write(s)
        except OSError as exc:
            raise _SpoolFailed(exc) from None

    def read(self, size: int | None = None) -> bytes:
        return self._file.read(-1 if size is None else size)

    def seek(self, offset: int, whence: int = 0) -> int:
        return self._file.seek(offset, whence)

    def flush(self) -> None:
        self._file.flush()

    def size(self) -> int:
        return self._size

    def close(self) -> None:
        if self._file.closed:
            return
        self._file.seek(0)
        try:
            child = self._factory.ctx.store_child(self._name, self._file, "archive_entry")
        except OSError as exc:
            raise _SpoolFailed(exc) from None
        self._factory.children.append(child)
        self.discard()

    def discard(self) -> None:
        self._file.close()
        self._path.unlink(missing_ok=True)


class _SpoolFactory(WriterFactory):
    def __init__(self, ctx: ExtractContext, meter: _Meter) -> None:
        self.ctx = ctx
        self.meter = meter
        self.children: list[Child] = []
        self.writers: list[_SpoolWriter] = []

    def create(self, filename: str) -> Py7zIO:
        writer = _SpoolWriter(filename, self)
        self.writers.append(writer)
        return writer

    def discard_all(self) -> None:
        for writer in self.writers:
            writer.discard()


@contextmanager
def _open_7z(path: Path, password: str | None) -> Iterator[py7zr.SevenZipFile]:
    # A file object (not a path) keeps py7zr single-threaded, so children are stored in order.
    with open(path, "rb") as raw, py7zr.SevenZipFile(raw, password=password) as archive:
        yield archive


@dataclass
class _Plan7z:
    """The entries of a 7z archive: those to extract and the refusal codes of the others."""

    entries: int
    wanted: list[str]
    refused: list[str]


def _read_7z(source: SourceFile, ctx: ExtractContext, tally: _Tally, budget: _Budget) -> None:
    plan: _Plan7z | None = None
    try:
        with _open_7z(source.path, None) as archive:
            plan = _plan_7z(archive, source, ctx)
            encrypted = archive.needs_password()
    except py7zr.PasswordRequired:  # the header itself is encrypted
        encrypted = True
    except ChronoError:
        raise
    except Exception as exc:  # py7zr raises arbitrary built-in errors on damaged headers
        raise FileRejected("corrupt_archive", type(exc).__name__) from None
    tally.encrypted = encrypted
    if plan is not None and not encrypted:
        ok = _extract_7z(source, ctx, plan, tally, budget, None)
        _record_7z(ctx, tally, plan, ok)
        return
    if not ctx.passwords:
        raise FileRejected("password_required", "encrypted 7z archive")
    for password in ctx.passwords:
        candidate = plan
        if candidate is None:
            try:
                with _open_7z(source.path, password) as archive:
                    candidate = _plan_7z(archive, source, ctx)
            except ChronoError:
                raise
            except Exception:  # a wrong password decrypts the header into garbage
                continue
        ok = _extract_7z(source, ctx, candidate, tally, budget, password)
        if ok or tally.children:  # something decrypted: the password is right
            _record_7z(ctx, tally, candidate, ok)
            return
    raise FileRejected("wrong_password", f"{len(ctx.passwords)} passwords tried")


def _plan_7z(archive: py7zr.SevenZipFile, source: SourceFile, ctx: ExtractContext) -> _Plan7z:
    """Check the entry count and declared sizes, and choose the entries to extract."""
    limits = ctx.limits
    files = list(archive.files)
    if len(files) > limits.max_archive_entries:
        raise LimitExceeded("limit_entries", f"{len(files)} entries > {limits.max_archive_entries}")
    declared = sum(f.uncompressed for f in files if not f.is_directory)
    if declared > limits.max_archive_total_bytes:
        raise LimitExceeded(
            "limit_size", f"{declared} bytes declared > {limits.max_archive_total_bytes}"
        )
    if declared > _ratio_cap(source.size, limits.max_compression_ratio):
        raise LimitExceeded("limit_ratio", f"{declared} bytes declared from {source.size}")
    plan = _Plan7z(entries=len(files), wanted=[], refused=[])
    for f in files:
        if f.is_directory:
            continue
        if is_unsafe_entry_name(f.filename):
            plan.refused.append("path_traversal")
        elif f.is_symlink or f.is_junction or f.is_socket:
            plan.refused.append("link_refused")
        else:
            plan.wanted.append(f.filename)
    return plan


def _extract_7z(
    source: SourceFile,
    ctx: ExtractContext,
    plan: _Plan7z,
    tally: _Tally,
    budget: _Budget,
    password: str | None,
) -> bool:
    """Extract the planned entries; True when all were read, False when decoding failed."""
    meter = _Meter(budget, _ratio_cap(source.size, ctx.limits.max_compression_ratio))
    factory = _SpoolFactory(ctx, meter)
    ctx.artifact_dir.mkdir(parents=True, exist_ok=True)
    try:
        if plan.wanted:
            with _open_7z(source.path, password) as archive:
                archive.extract(targets=plan.wanted, factory=factory)
        return True
    except ChronoError:
        raise
    except _SpoolFailed as exc:
        raise exc.original from None
    except Exception:  # a wrong password or damaged data: py7zr raises many built-in errors
        return False
    finally:
        factory.discard_all()
        tally.children.extend(factory.children)


def _record_7z(ctx: ExtractContext, tally: _Tally, plan: _Plan7z, ok: bool) -> None:
    tally.entries = plan.entries
    if len(set(plan.wanted)) < len(plan.wanted):
        ctx.warn("duplicate_entry")
    for code in plan.refused:
        tally.refuse(ctx, code)
    if not ok:
        tally.refuse(ctx, "corrupt_archive")


# --- tar and bare compressed streams -----------------------------------------------------------

_OPENERS: dict[str, Callable[[Path], io.BufferedIOBase]] = {
    "gzip": gzip.GzipFile,
    "bzip2": bz2.BZ2File,
    "xz": lzma.LZMAFile,
}

# Suffix of a compressed file -> suffix of what it holds (".tgz" holds a ".tar").
_STRIPPED_SUFFIXES = {
    ".gz": "", ".gzip": "", ".z": "", ".bz2": "", ".bz": "", ".bzip2": "", ".xz": "",
    ".tgz": ".tar", ".taz": ".tar", ".tbz": ".tar", ".tbz2": ".tar", ".tb2": ".tar",
    ".txz": ".tar",
}


def decompressed_name(name: str) -> str:
    """Name of the stream inside a compressed file: ``notes.txt.gz`` -> ``notes.txt``."""
    stem, suffix = os.path.splitext(name)
    replacement = _STRIPPED_SUFFIXES.get(suffix.lower())
    if replacement is None or not stem:
        return name
    return stem + replacement


def _holds_tar(opener: Callable[[Path], io.BufferedIOBase], path: Path) -> bool:
    """True when the decompressed stream starts with a valid tar header block."""
    with opener(path) as stream:
        try:
            block = stream.read(tarfile.BLOCKSIZE)
        except _DECODE_ERRORS as exc:
            raise FileRejected("corrupt_archive", type(exc).__name__) from None
    try:
        tarfile.TarInfo.frombuf(block, tarfile.ENCODING, "surrogateescape")
    except tarfile.HeaderError:
        return False
    return True


def _read_compressed(
    source: SourceFile, ctx: ExtractContext, tally: _Tally, budget: _Budget
) -> None:
    """A gzip/bzip2/xz file: a compressed tar, or one compressed stream (one child)."""
    opener = _OPENERS[source.kind]
    meter = _Meter(budget, _ratio_cap(source.size, ctx.limits.max_compression_ratio))
    if _holds_tar(opener, source.path):
        with opener(source.path) as stream:
            _read_tar(_GuardedReader(stream, meter), ctx, tally)
        return
    tally.entries = 1
    with opener(source.path) as stream:
        try:
            child = ctx.store_child(
                decompressed_name(source.name), _GuardedReader(stream, meter).as_io(),
                "archive_entry", max_bytes=meter.ratio_cap,
            )
        except _CorruptStream as exc:
            raise FileRejected("corrupt_archive", str(exc)) from None
    tally.children.append(child)


def _read_tar(reader: _GuardedReader, ctx: ExtractContext, tally: _Tally) -> None:
    """Stream a tar (already decompressed and metered by ``reader``), one member at a time."""
    try:
        with tarfile.open(fileobj=reader.as_io(), mode="r|") as archive:
            _read_tar_members(archive, ctx, tally)
    except (tarfile.TarError, _CorruptStream) as exc:  # not even a first header
        raise FileRejected("corrupt_archive", type(exc).__name__) from None


def _read_tar_members(archive: tarfile.TarFile, ctx: ExtractContext, tally: _Tally) -> None:
    limit = ctx.limits.max_archive_entries
    while True:
        try:
            member = archive.next()
        except (tarfile.TarError, _CorruptStream):
            tally.refuse(ctx, "corrupt_archive")
            return
        if member is None:
            return
        tally.entries += 1
        if tally.entries > limit:
            raise LimitExceeded("limit_entries", f"more than {limit} entries")
        code = _tar_member(archive, member, ctx, tally)
        if code is not None:
            tally.refuse(ctx, code)
        if code == "corrupt_archive":  # the stream is broken: nothing after it is readable
            return


def _tar_member(
    archive: tarfile.TarFile, member: tarfile.TarInfo, ctx: ExtractContext, tally: _Tally
) -> str | None:
    """Store one tar member as a child; return the refusal code, or None when stored or skipped."""
    if member.isdir():
        return None
    if is_unsafe_entry_name(member.name):
        return "path_traversal"
    if member.issym() or member.islnk() or member.isdev():
        return "link_refused"
    if not member.isreg():
        return None
    stream = archive.extractfile(member)
    if stream is None:
        return None
    try:
        with stream:
            child = ctx.store_child(member.name, _GuardedReader(stream).as_io(), "archive_entry")
    except _CorruptStream:
        return "corrupt_archive"
    tally.add_child(ctx, member.name, child)
    return None
