"""Extractor protocol, registry and the base that enforces limits for every format.

An extractor turns one file's bytes into one :class:`~chrono.evidence.model.Artifact`. It declares
``NAME`` and the detected ``KINDS`` it reads, and registers itself once with :func:`register`
(a second extractor with the same name or kind is an error). Extractors never catch broad
exceptions themselves: :func:`run_extractor` turns a :class:`FileRejected` into a failed artifact
with its reason code, and any other exception into ``extractor_error`` with only the exception's
class name, so no content can leak through a message.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import tempfile
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, ClassVar

from chrono.core.config import EvidenceConfig, ExtractionLimits
from chrono.core.errors import FileRejected, LimitExceeded
from chrono.evidence.model import Artifact, Child

BLOB_DIR = "blobs"


@dataclass(frozen=True)
class SourceFile:
    """The file being extracted: where its bytes are and what inventory knows of it."""

    path: Path
    sha256: str
    size: int
    kind: str
    name: str
    """Original file name (a hint for humans; detection never relies on it)."""
    depth: int = 0
    """Container nesting depth: 0 for files under SOURCE_DIR, 1 for an entry of an archive..."""


@dataclass
class ExtractContext:
    """What an extractor may use besides the file: config, passwords, child storage."""

    config: EvidenceConfig
    artifact_dir: Path
    passwords: tuple[str, ...] = ()
    depth: int = 0
    warnings: list[str] = field(default_factory=list)

    @property
    def limits(self) -> ExtractionLimits:
        return self.config.limits

    def warn(self, code: str) -> None:
        """Record a non-fatal problem by reason code (never content)."""
        self.warnings.append(code)

    def check_pages(self, count: int) -> None:
        if count > self.limits.max_pages:
            raise LimitExceeded("limit_pages", f"{count} pages > {self.limits.max_pages}")

    def check_pixels(self, width: int, height: int) -> None:
        if width * height > self.limits.max_image_pixels:
            raise LimitExceeded(
                "limit_pixels", f"{width}x{height} > {self.limits.max_image_pixels} pixels"
            )

    def store_child(
        self, name: str, data: bytes | IO[bytes], relation: str, max_bytes: int | None = None
    ) -> Child:
        """Store a contained file's bytes content-addressed under ``blobs/`` and describe it.

        ``data`` may be bytes or a readable stream; streams are copied in chunks and cut off with
        ``limit_size`` past ``max_bytes``. The blob is written to a temp file and renamed, so a
        reader never sees a partial blob.
        """
        if self.depth + 1 > self.limits.max_nesting_depth:
            raise LimitExceeded("limit_depth", f"depth {self.depth + 1}")
        blob_root = self.artifact_dir / BLOB_DIR
        blob_root.mkdir(parents=True, exist_ok=True)
        digest = hashlib.sha256()
        size = 0
        fd, tmp_name = tempfile.mkstemp(dir=blob_root, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as out:
                if isinstance(data, bytes | bytearray):
                    chunks: Iterator[bytes] = iter([bytes(data)])
                else:
                    stream = data
                    chunks = iter(lambda: stream.read(1 << 20), b"")
                for chunk in chunks:
                    size += len(chunk)
                    if max_bytes is not None and size > max_bytes:
                        raise LimitExceeded("limit_size", f"entry over {max_bytes} bytes")
                    digest.update(chunk)
                    out.write(chunk)
            sha = digest.hexdigest()
            rel = Path(BLOB_DIR) / sha[:2] / sha
            final = self.artifact_dir / rel
            final.parent.mkdir(parents=True, exist_ok=True)
            if final.exists():
                os.unlink(tmp_name)
            else:
                os.replace(tmp_name, final)
        except BaseException:
            if os.path.exists(tmp_name):
                os.unlink(tmp_name)
            raise
        return Child(
            name=sanitize_entry_name(name), sha256=sha, size=size,
            relation=relation,  # type: ignore[arg-type]
            blob=rel.as_posix(),
        )


def sanitize_entry_name(name: str) -> str:
    """Make a contained file's name safe to show and to use as a relative path."""
    parts = [p for p in name.replace("\\", "/").split("/") if p not in ("", ".", "..")]
    cleaned = "/".join(p.replace("\x00", "") for p in parts)
    return cleaned[:255] or "unnamed"


class Extractor(ABC):
    """Reads one kind of file. Subclasses set NAME and KINDS and implement :meth:`extract`."""

    NAME: ClassVar[str]
    KINDS: ClassVar[tuple[str, ...]]

    @abstractmethod
    def extract(self, source: SourceFile, ctx: ExtractContext) -> Artifact:
        """Return the artifact for ``source``; raise :class:`FileRejected` for a bad file."""

    def new_artifact(self, source: SourceFile) -> Artifact:
        return Artifact(
            sha256=source.sha256, kind=source.kind, extractor=self.NAME, status="processed"
        )


_BY_NAME: dict[str, Extractor] = {}
_BY_KIND: dict[str, Extractor] = {}


def register(cls: type[Extractor]) -> type[Extractor]:
    """Class decorator: register an extractor once; a repeated name or kind raises."""
    if cls.NAME in _BY_NAME:
        raise ValueError(f"extractor {cls.NAME!r} registered twice")
    instance = cls()
    for kind in cls.KINDS:
        if kind in _BY_KIND:
            raise ValueError(f"kind {kind!r} claimed by {_BY_KIND[kind].NAME} and {cls.NAME}")
        _BY_KIND[kind] = instance
    _BY_NAME[cls.NAME] = instance
    return cls


def extractor_for(kind: str) -> Extractor | None:
    load_extractors()
    return _BY_KIND.get(kind)


def registered_kinds() -> list[str]:
    load_extractors()
    return sorted(_BY_KIND)


def load_extractors() -> None:
    """Import the extractor modules so they register (idempotent)."""
    from chrono.evidence.extract import registry  # noqa: F401


class _Timeout(BaseException):
    """Raised by SIGALRM; a BaseException so extractor code cannot swallow it."""


@contextmanager
def _time_limit(seconds: int) -> Iterator[None]:
    use_alarm = seconds > 0 and hasattr(signal, "SIGALRM")
    if use_alarm:
        try:
            previous = signal.signal(signal.SIGALRM, _raise_timeout)
        except ValueError:  # not the main thread: no alarm available
            use_alarm = False
    if use_alarm:
        signal.alarm(seconds)
    try:
        yield
    finally:
        if use_alarm:
            signal.alarm(0)
            signal.signal(signal.SIGALRM, previous)


def _raise_timeout(signum: int, frame: object) -> None:
    raise _Timeout()


def failed_artifact(source: SourceFile, extractor: str, code: str, detail: str) -> Artifact:
    return Artifact(
        sha256=source.sha256, kind=source.kind, extractor=extractor, status="failed",
        reason=code, detail=detail,
    )


def run_extractor(source: SourceFile, ctx: ExtractContext) -> Artifact:
    """Run the registered extractor for ``source.kind`` under the configured limits."""
    started = time.perf_counter()
    limits = ctx.config.limits
    extractor = extractor_for(source.kind)
    if source.kind == "empty" or source.size == 0:
        artifact = failed_artifact(source, "none", "empty_file", "0 bytes")
    elif extractor is None:
        artifact = failed_artifact(source, "none", "unsupported_format", f"kind {source.kind}")
    elif source.size > limits.max_file_bytes:
        artifact = failed_artifact(
            source, extractor.NAME, "limit_size", f"{source.size} bytes > {limits.max_file_bytes}"
        )
    else:
        try:
            with _time_limit(limits.max_seconds_per_file):
                artifact = extractor.extract(source, ctx)
        except _Timeout:
            artifact = failed_artifact(
                source, extractor.NAME, "limit_time", f"over {limits.max_seconds_per_file}s"
            )
        except FileRejected as exc:
            artifact = failed_artifact(source, extractor.NAME, exc.code, exc.detail)
        except MemoryError:
            artifact = failed_artifact(source, extractor.NAME, "limit_memory", "out of memory")
        except RecursionError:
            artifact = failed_artifact(source, extractor.NAME, "corrupt", "structure too deep")
        except Exception as exc:  # an extractor bug or a library choking on hostile input
            artifact = failed_artifact(
                source, extractor.NAME, "extractor_error", type(exc).__name__
            )
    artifact.warnings.extend(ctx.warnings)
    artifact.seconds = round(time.perf_counter() - started, 4)
    return artifact


def copy_to_temp(stream: IO[bytes], directory: Path) -> Path:
    """Spool a stream into a temp file inside ``directory`` (the run's own folder)."""
    directory.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=directory, prefix=".spool-")
    with os.fdopen(fd, "wb") as out:
        shutil.copyfileobj(stream, out, 1 << 20)
    return Path(name)
