"""One error base for Chrono; retryable vs terminal is part of the type.

Every error carries a machine-readable ``code`` (a reason code that lands in run reports) and a
bounded, PII-free ``detail``. Callers never put evidence content (names, emails, numbers, text)
into an error: only opaque ids, counts, sizes and library exception *class names*.
"""

from __future__ import annotations

from typing import ClassVar

MAX_DETAIL_CHARS = 200


def bounded(detail: str, limit: int = MAX_DETAIL_CHARS) -> str:
    """Trim a detail string so no message can carry a large payload."""
    detail = " ".join(detail.split())
    return detail if len(detail) <= limit else detail[: limit - 1] + "…"


class ChronoError(Exception):
    """Base of every error Chrono raises on purpose."""

    retryable: ClassVar[bool] = False
    default_code: ClassVar[str] = "error"

    def __init__(self, code: str | None = None, detail: str = "") -> None:
        self.code = code or self.default_code
        self.detail = bounded(detail)
        super().__init__(f"{self.code}: {self.detail}" if self.detail else self.code)


class TerminalError(ChronoError):
    """Retrying will not help: the input or the configuration is wrong."""


class TransientError(ChronoError):
    """May succeed on retry: a busy database, a network blip, a killed worker."""

    retryable = True
    default_code = "transient"


class ConfigError(TerminalError):
    """Configuration is invalid; ``detail`` names the file, the key and the fix."""

    default_code = "config_invalid"


class FileRejected(TerminalError):
    """One input file cannot be processed; the run records the reason and goes on.

    ``code`` is one of the reason codes documented in README ("Reason codes").
    """

    default_code = "rejected"


class LimitExceeded(FileRejected):
    """A safety limit (size, pages, pixels, ratio, entries, depth, time) was hit."""

    default_code = "limit_exceeded"


class WrongFormat(FileRejected):
    """"Not my format": the extractor cannot read this content at all."""

    default_code = "unsupported_format"
