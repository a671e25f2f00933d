"""PII-safe logging: structured events with opaque ids and counts only.

Log calls go through :func:`log_event`, which accepts only scalar fields whose *names* are on an
allow-list (ids, counts, sizes, codes, timings). Anything else is dropped and counted, so evidence
content can never reach a log line by accident: there is no free-form message argument.
"""

from __future__ import annotations

import json
import logging
import sys
from typing import Any

LOGGER_NAME = "chrono"

_ALLOWED_SUFFIXES = (
    "_id", "_ids", "_count", "_bytes", "_s", "_ms", "_code", "_kind", "_step", "_status",
    "_index", "_version", "_per_s",
)
_ALLOWED_NAMES = frozenset(
    {
        "event", "step", "status", "code", "kind", "count", "total", "size", "workers",
        "run_id", "file_id", "sha256", "group", "attempt", "seconds", "pages", "records",
        "events", "rows", "inserted", "skipped", "failed", "processed", "duplicates", "mode",
        "extractor", "reason", "phase", "children", "depth", "version", "db_dialect",
    }
)


def _allowed(name: str) -> bool:
    return name in _ALLOWED_NAMES or name.endswith(_ALLOWED_SUFFIXES)


def _safe_value(value: Any) -> Any:
    if isinstance(value, bool | int | float) or value is None:
        return value
    if isinstance(value, str):
        # Codes and ids are short tokens; anything long or spaced is treated as content.
        if len(value) <= 80 and " " not in value and "@" not in value:
            return value
        return "<redacted>"
    return f"<{type(value).__name__}>"


def get_logger() -> logging.Logger:
    return logging.getLogger(LOGGER_NAME)


def log_event(event: str, level: int = logging.INFO, **fields: Any) -> None:
    """Log one structured event. Field names outside the allow-list are dropped."""
    safe = {k: _safe_value(v) for k, v in fields.items() if _allowed(k)}
    dropped = len(fields) - len(safe)
    if dropped:
        safe["dropped_fields_count"] = dropped
    get_logger().log(level, json.dumps({"event": event, **safe}, sort_keys=True, default=str))


def configure_logging(level: str = "INFO", path: str | None = None) -> None:
    """Send Chrono's JSON log lines to stderr (and a file when ``path`` is given)."""
    logger = get_logger()
    logger.handlers.clear()
    logger.setLevel(level.upper())
    logger.propagate = False
    fmt = logging.Formatter("%(asctime)s %(levelname)s %(message)s")
    stream = logging.StreamHandler(sys.stderr)
    stream.setFormatter(fmt)
    logger.addHandler(stream)
    if path:
        handler = logging.FileHandler(path, encoding="utf-8")
        handler.setFormatter(fmt)
        logger.addHandler(handler)
