"""The sensor pipeline's checkpoint: source cursor, window state and incident state, per source.

All three are committed in one SQLite transaction after a batch's outputs are written, so a run
killed at any point restarts from the last whole batch: outputs of a half-done batch are simply
written again under the same keys.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

_SCHEMA = """
CREATE TABLE IF NOT EXISTS checkpoints (
    source TEXT PRIMARY KEY,
    cursor TEXT NOT NULL,
    windows BLOB NOT NULL,
    incidents BLOB NOT NULL,
    batches INTEGER NOT NULL,
    fingerprint TEXT NOT NULL,
    updated_at TEXT NOT NULL
)
"""


@dataclass(frozen=True)
class Checkpoint:
    cursor: dict[str, Any] | None
    windows: bytes | None
    incidents: bytes | None
    batches: int
    fingerprint: str | None


EMPTY = Checkpoint(None, None, None, 0, None)


class CheckpointStore:
    """One SQLite file holding the last committed checkpoint of every source."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def _connect(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, timeout=30)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute(_SCHEMA)
        return conn

    def load(self, source: str) -> Checkpoint:
        if not self.path.is_file():
            return EMPTY
        conn = self._connect()
        try:
            row = conn.execute(
                "SELECT cursor, windows, incidents, batches, fingerprint FROM checkpoints"
                " WHERE source = ?", (source,),
            ).fetchone()
        finally:
            conn.close()
        if row is None:
            return EMPTY
        return Checkpoint(json.loads(row[0]), bytes(row[1]), bytes(row[2]), row[3], row[4])

    def commit(
        self, source: str, cursor: dict[str, Any], windows: bytes, incidents: bytes,
        batches: int, fingerprint: str,
    ) -> None:
        conn = self._connect()
        try:
            with conn:
                conn.execute(
                    "INSERT INTO checkpoints VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT(source) DO"
                    " UPDATE SET cursor=excluded.cursor, windows=excluded.windows,"
                    " incidents=excluded.incidents, batches=excluded.batches,"
                    " fingerprint=excluded.fingerprint, updated_at=excluded.updated_at",
                    (source, json.dumps(cursor, sort_keys=True), windows, incidents, batches,
                     fingerprint, datetime.now(UTC).isoformat()),
                )
        finally:
            conn.close()
