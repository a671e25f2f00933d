"""Which sensor scenarios are switched on, who switched them, and what each execution did.

The five scenarios, and what each one switches on in a run:

``raw``
    Archive readings exactly as received (public columns only) to the ``raw`` bucket.
``schematized``
    Validate readings against the validation spec and write valid ones to the ``schematized``
    bucket, invalid ones (with their rule ids and the spec version) to the ``error`` bucket.
``lineage``
    Add the ``lineage`` struct (node, job, execution, processing time, pipeline and spec version)
    to every record the other scenarios write, and emit OpenLineage START/COMPLETE/FAIL events.
    On its own it writes no records: it enriches what the others write.
``multi_destination``
    Route valid readings to the ``archival`` bucket and their one-minute windows to the
    ``aggregated`` bucket (plus any named destinations in the config).
``notification``
    Raise an incident when a location shows enough anomalous readings within the window and send
    it, at most once, to the notification queue (SQS or the local queue file).

Dependencies: ``multi_destination`` and ``notification`` need validated readings (event time,
anomaly flag), so the orchestrator validates whenever any of ``schematized``,
``multi_destination`` or ``notification`` is active; ``schematized`` decides only whether the
valid/invalid split is *written*. ``lineage`` applies to whatever the others write.

:class:`ScenarioStore` keeps the active set in one SQLite file (WAL mode, a short connection per
call), so ``chrono scenarios set`` in one process and a running orchestrator in another see each
other's writes. Every change is appended to a history, never overwritten, and each execution
records the scenarios it ran with and its counters, which ``stats`` sums.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from chrono.core.errors import ConfigError, TerminalError
from chrono.core.logging import log_event

SCENARIOS: tuple[str, ...] = ("raw", "schematized", "lineage", "multi_destination", "notification")
"""Every scenario, in canonical order (the order settings are stored and shown in)."""

EXECUTION_STATUSES: tuple[str, ...] = ("running", "ok", "failed", "dry_run")
"""``running`` from :meth:`ScenarioStore.start_execution`; the others end an execution."""

SCHEMA_VERSION = 1
_BUSY_TIMEOUT_S = 30.0
_MAX_NAME_CHARS = 24

_SCHEMA = """
CREATE TABLE IF NOT EXISTS store_meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS scenario_settings (
    setting_id INTEGER PRIMARY KEY AUTOINCREMENT,
    active TEXT NOT NULL,
    set_by TEXT NOT NULL,
    set_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS executions (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id TEXT NOT NULL UNIQUE,
    scenarios TEXT NOT NULL,
    started_at TEXT NOT NULL,
    finished_at TEXT,
    status TEXT NOT NULL,
    counts TEXT NOT NULL DEFAULT '{}'
);
"""


@dataclass(frozen=True)
class ScenarioSetting:
    """One entry of the setting history (or the default when nothing was ever set)."""

    active: tuple[str, ...]
    """Active scenarios in canonical :data:`SCENARIOS` order."""
    set_by: str
    """Who set them (``default`` for the built-in default)."""
    set_at: datetime
    """When (UTC); for the default, when the store file was created."""
    setting_id: int
    """Increasing id of the change; 0 for the default."""


@dataclass(frozen=True)
class Execution:
    """One pipeline execution as the store recorded it."""

    run_id: str
    scenarios: tuple[str, ...]
    """Scenarios active for the whole execution (read once at its start)."""
    started_at: datetime
    finished_at: datetime | None
    """``None`` while running, or when the process died before finishing."""
    status: str
    """``running``, ``ok``, ``failed`` or ``dry_run``."""
    counts: dict[str, int]
    """Counters the execution reported when it finished (readings read, written, rejected...)."""

    def as_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "scenarios": list(self.scenarios),
            "started_at": self.started_at.isoformat(),
            "finished_at": self.finished_at.isoformat() if self.finished_at else None,
            "status": self.status,
            "counts": dict(self.counts),
        }


def canonical_scenarios(names: list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """Validate and normalise scenario names: deduped, in :data:`SCENARIOS` order.

    Case and surrounding spaces are ignored, ``-`` reads as ``_`` (``multi-destination``) and an
    item may hold several names separated by commas (``raw,lineage``).
    """
    if isinstance(names, str):
        names = [names]
    wanted: set[str] = set()
    unknown: list[str] = []
    for item in names:
        for part in str(item).split(","):
            name = part.strip().lower().replace("-", "_")
            if not name:
                continue
            if name in SCENARIOS:
                wanted.add(name)
            elif name not in unknown:
                unknown.append(name)
    if unknown:
        shown = ", ".join(f"'{n[:_MAX_NAME_CHARS]}'" for n in unknown[:3])
        more = f" (+{len(unknown) - 3} more)" if len(unknown) > 3 else ""
        raise ConfigError(
            "scenario_unknown",
            # The valid names come first so the bounded detail never cuts them off.
            f"valid scenarios are {', '.join(SCENARIOS)}; unknown: {shown}{more}",
        )
    return tuple(s for s in SCENARIOS if s in wanted)


def _now() -> datetime:
    return datetime.now(UTC)


def _parse_time(value: str) -> datetime:
    moment = datetime.fromisoformat(value)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


class ScenarioStore:
    """The active scenario set, its history and the execution log, in one SQLite file."""

    def __init__(self, path: Path, default: tuple[str, ...] = SCENARIOS) -> None:
        self.path = Path(path)
        self.default = canonical_scenarios(default)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as conn:
            conn.execute("BEGIN IMMEDIATE")
            # executescript would commit on its own; the schema goes in this transaction.
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    conn.execute(statement)
            conn.execute(
                "INSERT OR IGNORE INTO store_meta (key, value) VALUES ('created_at', ?)",
                (_now().isoformat(),),
            )
            conn.execute(
                "INSERT OR IGNORE INTO store_meta (key, value) VALUES ('schema_version', ?)",
                (str(SCHEMA_VERSION),),
            )
            conn.execute("COMMIT")

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        """A short-lived connection in autocommit mode; writers use ``BEGIN IMMEDIATE``.

        One connection per call keeps no lock or stale snapshot between calls, which is what lets
        a CLI process and the orchestrator share the file.
        """
        conn = sqlite3.connect(self.path, timeout=_BUSY_TIMEOUT_S, isolation_level=None)
        with closing(conn):
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            try:
                yield conn
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise

    def get(self) -> ScenarioSetting:
        """The latest setting, or the default (``set_by`` ``default``, id 0) when none exists."""
        with self._connect() as conn:
            return self._current(conn)

    def _current(self, conn: sqlite3.Connection) -> ScenarioSetting:
        row = conn.execute(
            "SELECT setting_id, active, set_by, set_at FROM scenario_settings "
            "ORDER BY setting_id DESC LIMIT 1"
        ).fetchone()
        if row is not None:
            return self._setting(row)
        created = conn.execute("SELECT value FROM store_meta WHERE key = 'created_at'").fetchone()
        return ScenarioSetting(self.default, "default", _parse_time(created[0]), 0)

    def set(self, names: list[str], by: str) -> ScenarioSetting:
        """Make ``names`` the active set (an empty list switches everything off); appends history.

        Raises :class:`ConfigError` for an unknown name (listing the valid ones) or an empty ``by``.
        """
        active = canonical_scenarios(names)
        who = (by or "").strip()
        if not who:
            raise ConfigError(
                "scenario_by_missing", "say who changes the scenarios: pass --by NAME (non-empty)"
            )
        at = _now()
        with self._connect() as conn:
            conn.execute("BEGIN IMMEDIATE")
            cursor = conn.execute(
                "INSERT INTO scenario_settings (active, set_by, set_at) VALUES (?, ?, ?)",
                (json.dumps(list(active)), who, at.isoformat()),
            )
            conn.execute("COMMIT")
        setting_id = int(cursor.lastrowid or 0)
        log_event("scenarios_set", setting_id=setting_id, count=len(active))
        return ScenarioSetting(active, who, at, setting_id)

    def history(self, limit: int = 10) -> list[ScenarioSetting]:
        """The last ``limit`` settings, newest first (the default is not part of the history)."""
        with self._connect() as conn:
            rows = conn.execute(
                "SELECT setting_id, active, set_by, set_at FROM scenario_settings "
                "ORDER BY setting_id DESC LIMIT ?",
                (max(0, int(limit)),),
            ).fetchall()
        return [self._setting(row) for row in rows]

    def start_execution(self, run_id: str, scenarios: tuple[str, ...]) -> None:
        """Record an execution as running; starting the same ``run_id`` again (a resumed run)
        marks it running again and keeps its original start time."""
        active = canonical_scenarios(scenarios)
        with self._connect() as conn:
            conn.execute("BEGIN IMMEDIATE")
            conn.execute(
                "INSERT INTO executions (run_id, scenarios, started_at, status) "
                "VALUES (?, ?, ?, 'running') "
                "ON CONFLICT (run_id) DO UPDATE SET scenarios = excluded.scenarios, "
                "status = 'running', finished_at = NULL",
                (run_id, json.dumps(list(active)), _now().isoformat()),
            )
            conn.execute("COMMIT")

    def finish_execution(self, run_id: str, status: str, counts: dict[str, int]) -> None:
        """End an execution with ``ok``, ``failed`` or ``dry_run`` and its counters."""
        if status not in EXECUTION_STATUSES or status == "running":
            raise TerminalError(
                "execution_status", f"status '{status[:20]}' is not one of ok, failed, dry_run"
            )
        clean = {str(k): int(v) for k, v in counts.items()}
        with self._connect() as conn:
            conn.execute("BEGIN IMMEDIATE")
            cursor = conn.execute(
                "UPDATE executions SET status = ?, finished_at = ?, counts = ? WHERE run_id = ?",
                (status, _now().isoformat(), json.dumps(clean, sort_keys=True), run_id),
            )
            conn.execute("COMMIT")
        if cursor.rowcount == 0:
            raise TerminalError(
                "execution_unknown", f"run {run_id[:64]} was never started; call start_execution"
            )
        log_event("scenario_execution_finished", run_id=run_id, status=status)

    def executions(self, limit: int = 10) -> list[Execution]:
        """The last ``limit`` executions, newest first."""
        with self._connect() as conn:
            rows = conn.execute(
                "SELECT run_id, scenarios, started_at, finished_at, status, counts "
                "FROM executions ORDER BY seq DESC LIMIT ?",
                (max(0, int(limit)),),
            ).fetchall()
        return [self._execution(row) for row in rows]

    def stats(self) -> dict[str, Any]:
        """Current setting, number of changes, executions by status, summed counters, runs per
        scenario and the last execution.

        ``totals`` sums the counters of ``ok`` and ``failed`` executions only: a dry run writes
        nothing, so counting it would overstate what the pipeline delivered.
        """
        with self._connect() as conn:
            # One read transaction so every figure comes from the same snapshot.
            conn.execute("BEGIN")
            current = self._current(conn)
            changes = conn.execute("SELECT COUNT(*) FROM scenario_settings").fetchone()[0]
            by_status = dict(
                conn.execute("SELECT status, COUNT(*) FROM executions GROUP BY status").fetchall()
            )
            totals = dict(
                conn.execute(
                    "SELECT c.key, SUM(c.value) FROM executions AS e, json_each(e.counts) AS c "
                    "WHERE e.status IN ('ok', 'failed') GROUP BY c.key ORDER BY c.key"
                ).fetchall()
            )
            per_scenario = dict(
                conn.execute(
                    "SELECT s.value, COUNT(*) FROM executions AS e, json_each(e.scenarios) AS s "
                    "GROUP BY s.value"
                ).fetchall()
            )
            last = conn.execute(
                "SELECT run_id, scenarios, started_at, finished_at, status, counts "
                "FROM executions ORDER BY seq DESC LIMIT 1"
            ).fetchone()
            conn.execute("COMMIT")
        return {
            "current": list(current.active),
            "set_by": current.set_by,
            "set_at": current.set_at.isoformat(),
            "changes": int(changes),
            "executions": {
                "total": int(sum(by_status.values())),
                **{status: int(by_status.get(status, 0)) for status in EXECUTION_STATUSES},
            },
            "totals": {str(k): int(v) for k, v in totals.items()},
            "scenario_runs": {s: int(per_scenario.get(s, 0)) for s in SCENARIOS},
            "last_execution": self._execution(last).as_dict() if last else None,
        }

    @staticmethod
    def _setting(row: tuple[Any, ...]) -> ScenarioSetting:
        setting_id, active, set_by, set_at = row
        return ScenarioSetting(tuple(json.loads(active)), set_by, _parse_time(set_at), setting_id)

    @staticmethod
    def _execution(row: tuple[Any, ...]) -> Execution:
        run_id, scenarios, started_at, finished_at, status, counts = row
        return Execution(
            run_id=run_id,
            scenarios=tuple(json.loads(scenarios)),
            started_at=_parse_time(started_at),
            finished_at=_parse_time(finished_at) if finished_at else None,
            status=status,
            counts={str(k): int(v) for k, v in json.loads(counts).items()},
        )
