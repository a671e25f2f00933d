"""Anomaly incidents per location and their delivery, at most once, to a queue file and/or SQS.

**Incident rule** (the simulator's ground truth follows the same rule). Per location, anomalous
readings are taken in ``(event time, id)`` order, but only once the watermark has passed them
(``event_time <= watermark``); younger ones wait in the state, so the result does not depend on
arrival order within the watermark delay. An incident *opens* when ``threshold`` readings fall
within ``window_s`` (``t_k - t_{k-threshold+1} <= window_s``); it holds those readings and every
further reading at that location within ``window_s`` of the incident's previous one (chaining).
It *closes*, and becomes one :class:`Notification`, once ``watermark > last + window_s`` (or at
:func:`flush_incidents`). After a close, anomalies at that location with
``event_time <= last + cooldown_s`` open nothing: they are dropped and counted as ``suppressed``.
Readings that can no longer reach ``threshold`` are dropped once ``watermark > t + window_s``
(``expired``); readings that arrive after the watermark already passed them are dropped as
``late``. The state is therefore bounded by the watermark delay plus one window per location.

**Ids and delivery.** A notification's id is ``stable_id("notification", location, first id,
first timestamp)``, so replays and restarts give the same ids. :func:`deliver` claims each id in a
SQLite :class:`NotificationLedger` (committed before any send) and skips ids claimed before: a
crash between claim and send loses that notification rather than sending it twice.
"""

from __future__ import annotations

import io
import json
import logging
import os
import sqlite3
import struct
import time
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar, Protocol

import numpy as np
import polars as pl
from pydantic import Field

from chrono.core.config import StrictModel
from chrono.core.errors import ChronoError, ConfigError, TerminalError, TransientError
from chrono.core.logging import log_event
from chrono.evidence.context import stable_id
from chrono.sensors.model import ANOMALOUS, EVENT_TIME, LINEAGE, SEQ

_US = 1_000_000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MAGIC = b"chrono-incidents\n"
_FORMAT = 1
_SORT = [EVENT_TIME, "id"]


class NotificationConfig(StrictModel):
    """When anomalous readings make an incident, and where its notification goes."""

    threshold: int = Field(default=3, ge=1)
    """Anomalous readings at one location within ``window_s`` that open an incident."""
    window_s: int = Field(default=60, ge=0)
    """Seconds that ``threshold`` readings must fall within; also an incident's chaining gap."""
    cooldown_s: int = Field(default=300, ge=0)
    """Seconds after an incident's last reading during which anomalies at that location open no
    new incident (they are counted as suppressed)."""
    queue_file: str | None = None
    """JSON-lines queue file; the orchestrator defaults it to ``<data_dir>/notifications.jsonl``."""
    sqs_queue_url: str | None = None
    """SQS queue URL to send notifications to (FIFO queues end in ``.fifo``); unset: no SQS."""
    sqs_endpoint_url: str | None = None
    """SQS endpoint (e.g. a local moto or LocalStack); unset: the AWS endpoint of ``region``."""
    region: str = "us-east-1"
    """AWS region of the SQS queue."""
    max_readings: int = Field(default=500, ge=1)
    """Most readings carried in one notification; ``reading_count`` still counts all of them."""


# --------------------------------------------------------------------------------- notifications
@dataclass(frozen=True)
class Notification:
    """One closed incident: where, when, how many readings, and the readings themselves."""

    notification_id: str
    location: str
    first_seen: datetime
    last_seen: datetime
    reading_count: int
    readings: list[dict[str, Any]]
    """Public columns of the incident's readings (``lineage`` included), JSON-safe, sorted by
    (event time, id); at most ``max_readings`` of them."""
    job_ids: list[str]
    """Distinct ``lineage.job_id`` values over all the incident's readings, sorted."""
    lineage: dict[str, Any] | None
    """Lineage of the first reading, if readings carry lineage."""

    def to_json(self) -> dict[str, Any]:
        """The message body: JSON-safe, ``notification_id`` first."""
        return {
            "notification_id": self.notification_id,
            "location": self.location,
            "first_seen": self.first_seen.isoformat(),
            "last_seen": self.last_seen.isoformat(),
            "reading_count": self.reading_count,
            "readings": self.readings,
            "job_ids": self.job_ids,
            "lineage": self.lineage,
        }

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> Notification:
        """Read back a body written by :meth:`to_json` (queue consumers, tests)."""
        return cls(
            notification_id=body["notification_id"],
            location=body["location"],
            first_seen=datetime.fromisoformat(body["first_seen"]),
            last_seen=datetime.fromisoformat(body["last_seen"]),
            reading_count=int(body["reading_count"]),
            readings=list(body["readings"]),
            job_ids=list(body["job_ids"]),
            lineage=body.get("lineage"),
        )


@dataclass(frozen=True)
class _Incident:
    """An incident being assembled: a summary plus the first ``max_readings`` readings."""

    notification_id: str
    location: str
    first_us: int
    last_us: int
    count: int
    readings: tuple[dict[str, Any], ...]
    job_ids: tuple[str, ...]

    def notification(self) -> Notification:
        lineage = self.readings[0].get(LINEAGE) if self.readings else None
        return Notification(
            notification_id=self.notification_id,
            location=self.location,
            first_seen=_from_us(self.first_us),
            last_seen=_from_us(self.last_us),
            reading_count=self.count,
            readings=list(self.readings),
            job_ids=list(self.job_ids),
            lineage=lineage if isinstance(lineage, dict) else None,
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "notification_id": self.notification_id, "location": self.location,
            "first_us": self.first_us, "last_us": self.last_us, "count": self.count,
            "readings": list(self.readings), "job_ids": list(self.job_ids),
        }

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> _Incident:
        return cls(obj["notification_id"], obj["location"], int(obj["first_us"]),
                   int(obj["last_us"]), int(obj["count"]), tuple(obj["readings"]),
                   tuple(obj["job_ids"]))


def _from_us(us: int) -> datetime:
    return _EPOCH + timedelta(microseconds=us)


def _to_us(moment: datetime) -> int:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return (moment - _EPOCH) // timedelta(microseconds=1)


def _json_rows(rows: pl.DataFrame) -> list[dict[str, Any]]:
    """Public columns as JSON-safe dicts; polars' JSON writer turns times into ISO strings and
    NaN into null, so the result round-trips through any JSON encoder."""
    public = rows.select([c for c in rows.columns if not c.startswith("_")])
    if public.is_empty():
        return []
    text = public.write_ndjson().strip()
    return list(json.loads("[" + text.replace("\n", ",") + "]"))


# ---------------------------------------------------------------------------------- the state
class IncidentState:
    """Per-location pending anomalous readings, open incidents and the last incident's end.

    Immutable in use: :func:`detect_incidents` and :func:`flush_incidents` return a new state.
    Counters (``suppressed``, ``late``, ``expired``) are totals since the state was created.
    """

    def __init__(
        self,
        *,
        watermark_us: int | None,
        buffer: pl.DataFrame,
        open_incidents: dict[str, _Incident],
        last_end_us: dict[str, int],
        suppressed: int = 0,
        late: int = 0,
        expired: int = 0,
    ) -> None:
        self._watermark_us = watermark_us
        self._buffer = buffer
        self._open = open_incidents
        self._last_end = last_end_us
        self.suppressed = suppressed
        """Anomalies dropped because they fell in a location's cooldown."""
        self.late = late
        """Anomalies dropped because they arrived after the watermark had passed them."""
        self.expired = expired
        """Anomalies dropped because they can no longer take part in any incident."""

    @classmethod
    def empty(cls) -> IncidentState:
        """No readings, no incidents, no watermark."""
        return cls(watermark_us=None, buffer=pl.DataFrame(), open_incidents={}, last_end_us={})

    @property
    def watermark(self) -> datetime | None:
        """Largest watermark applied so far (UTC); None before the first one."""
        return None if self._watermark_us is None else _from_us(self._watermark_us)

    @property
    def pending_count(self) -> int:
        """Readings held: waiting for the watermark, or released but not yet in an incident."""
        return self._buffer.height

    @property
    def open_count(self) -> int:
        """Incidents opened but not yet closed."""
        return len(self._open)

    def to_bytes(self) -> bytes:
        """Magic, header length, JSON header, then the held readings as Parquet.

        Readings are sorted by (event time, id) and JSON keys are sorted, so equal states give
        equal bytes.
        """
        header = {
            "format": _FORMAT,
            "watermark_us": self._watermark_us,
            "suppressed": self.suppressed,
            "late": self.late,
            "expired": self.expired,
            "last_end_us": self._last_end,
            "open": [self._open[loc].to_json() for loc in sorted(self._open)],
        }
        head = json.dumps(header, sort_keys=True, separators=(",", ":")).encode("utf-8")
        body = io.BytesIO()
        _canonical(self._buffer).write_parquet(body, compression="zstd", statistics=False)
        return _MAGIC + struct.pack(">Q", len(head)) + head + body.getvalue()

    @classmethod
    def from_bytes(cls, b: bytes) -> IncidentState:
        """Restore a state written by :meth:`to_bytes`."""
        start = len(_MAGIC) + 8
        if not b.startswith(_MAGIC) or len(b) < start:
            raise TerminalError("incident_state_corrupt", "incident state has no valid header")
        (size,) = struct.unpack(">Q", b[len(_MAGIC):start])
        try:
            header = json.loads(b[start:start + size])
            buffer = pl.read_parquet(io.BytesIO(b[start + size:]))
        except (ValueError, pl.exceptions.PolarsError, OSError) as exc:
            raise TerminalError(
                "incident_state_corrupt", f"incident state unreadable ({type(exc).__name__})"
            ) from None
        if not isinstance(header, dict) or header.get("format") != _FORMAT:
            found = header.get("format") if isinstance(header, dict) else None
            raise TerminalError(
                "incident_state_version",
                f"incident state format {found} is not {_FORMAT}; delete the state folder to "
                "start fresh",
            )
        try:
            incidents = [_Incident.from_json(o) for o in header["open"]]
            return cls(
                watermark_us=header["watermark_us"],
                buffer=buffer,
                open_incidents={i.location: i for i in incidents},
                last_end_us={k: int(v) for k, v in header["last_end_us"].items()},
                suppressed=int(header["suppressed"]),
                late=int(header["late"]),
                expired=int(header["expired"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise TerminalError(
                "incident_state_corrupt", f"incident state header incomplete ({type(exc).__name__})"
            ) from None


def _canonical(buffer: pl.DataFrame) -> pl.DataFrame:
    if buffer.is_empty() or not set(_SORT) <= set(buffer.columns):
        return buffer
    return buffer.sort(_SORT)


# ------------------------------------------------------------------------------ detection
def detect_incidents(
    state: IncidentState,
    anomalous: pl.DataFrame,
    watermark: datetime | None,
    config: NotificationConfig,
) -> tuple[list[Notification], IncidentState]:
    """Fold a batch of anomalous readings into ``state``; return the incidents that closed.

    ``anomalous``: valid readings with ``_event_time`` (rows with ``_anomalous`` false, if that
    column is present, are ignored). ``watermark``: the pipeline's watermark after this batch;
    None means none yet, so everything waits. The watermark never moves back.
    """
    return _advance(state, anomalous, watermark, config, final=False)


def flush_incidents(
    state: IncidentState, config: NotificationConfig
) -> tuple[list[Notification], IncidentState]:
    """End of input: release every held reading and close every open incident.

    The watermark moves to the latest event time held, so readings that arrive later at or before
    it count as late (as they would have if the watermark had got there by itself).
    """
    return _advance(state, pl.DataFrame(), None, config, final=True)


@dataclass
class _Outcome:
    """What the rule decided for one location, as index ranges into its released readings."""

    carried: tuple[int, bool] | None = None
    """Readings ``[0, end)`` chained onto the incident the state had open, and whether it closed."""
    incidents: list[tuple[int, int, bool]] = field(default_factory=list)
    """New incidents: readings ``[start, end)`` and whether the incident closed."""
    last_end_us: int | None = None
    keep_from: int = 0
    """Readings from here on stay pending."""
    suppressed: int = 0
    expired: int = 0


def _advance(
    state: IncidentState,
    anomalous: pl.DataFrame,
    watermark: datetime | None,
    config: NotificationConfig,
    *,
    final: bool,
) -> tuple[list[Notification], IncidentState]:
    before_us = state._watermark_us
    fresh = _prepare(anomalous)
    late = 0
    if before_us is not None and not fresh.is_empty():
        is_late = pl.col(EVENT_TIME).dt.epoch("us") <= before_us
        late = int(fresh.select(is_late.sum()).item())
        fresh = fresh.filter(~is_late)
    pool = _union(state._buffer, fresh)

    wm_us = before_us
    if watermark is not None:
        wm_us = _to_us(watermark) if wm_us is None else max(wm_us, _to_us(watermark))
    if final and not pool.is_empty():
        newest = int(pool.select(pl.col(EVENT_TIME).dt.epoch("us").max()).item())
        wm_us = newest if wm_us is None else max(wm_us, newest)

    if pool.is_empty():
        released, held = pool, pool
    elif final:
        released, held = pool, pool.clear()
    elif wm_us is None:
        released, held = pool.clear(), pool
    else:
        in_reach = pl.col(EVENT_TIME).dt.epoch("us") <= wm_us
        released, held = pool.filter(in_reach), pool.filter(~in_reach)

    # One sorted frame; each location is a contiguous run of it.
    spans: dict[str, tuple[int, int]] = {}
    t_all = np.empty(0, np.int64)
    if not released.is_empty():
        released = released.sort([_LOCATION_KEY, *_SORT])
        t_all = released[EVENT_TIME].dt.epoch("us").to_numpy()
        runs = released.select(_LOCATION_KEY.rle()).unnest(_LOCATION_KEY.meta.output_name())
        offset = 0
        for size, location in runs.iter_rows():
            spans[location] = (offset, size)
            offset += size

    builder = _IncidentBuilder(released, t_all, config.max_readings)
    last_end = dict(state._last_end)
    keep: list[np.ndarray] = []
    suppressed = expired = 0
    for location in sorted(set(spans) | set(state._open)):
        off, size = spans.get(location, (0, 0))
        carried = state._open.get(location)
        out = _advance_location(
            t_all[off:off + size], None if carried is None else carried.last_us,
            last_end.get(location), wm_us, final, config,
        )
        if carried is not None and out.carried is not None:
            builder.extend(carried, off, off + out.carried[0], closed=out.carried[1])
        for start, end, closed in out.incidents:
            builder.open(location, off + start, off + end, closed=closed)
        if out.last_end_us is not None:
            last_end[location] = out.last_end_us
        keep.append(np.arange(off + out.keep_from, off + size))
        suppressed += out.suppressed
        expired += out.expired
    closed_incidents, open_incidents = builder.build()

    if wm_us is not None:
        # A cooldown the watermark has passed can suppress nothing any more.
        cooldown_us = config.cooldown_s * _US
        last_end = {k: v for k, v in last_end.items() if v + cooldown_us >= wm_us}

    pending = released[np.concatenate(keep)] if keep else released.clear()
    new_state = IncidentState(
        watermark_us=wm_us,
        buffer=_canonical(_union(held, pending)),
        open_incidents=open_incidents,
        last_end_us=dict(sorted(last_end.items())),
        suppressed=state.suppressed + suppressed,
        late=state.late + late,
        expired=state.expired + expired,
    )
    notes = [i.notification() for i in
             sorted(closed_incidents, key=lambda i: (i.first_us, i.location))]
    level = logging.INFO if notes or suppressed or late or expired else logging.DEBUG
    log_event(
        "incidents_flushed" if final else "incidents_detected", level,
        notifications_count=len(notes), suppressed_count=suppressed, late_count=late,
        expired_count=expired, open_count=new_state.open_count,
        pending_count=new_state.pending_count,
    )
    return notes, new_state


_LOCATION_KEY = pl.col("location").fill_null("").cast(pl.String).alias("_location_key")


def _prepare(anomalous: pl.DataFrame) -> pl.DataFrame:
    """Keep the columns the state needs: public ones, event time and arrival order."""
    if anomalous.is_empty():
        return pl.DataFrame()
    missing = [c for c in (EVENT_TIME, "id", "location", "timestamp") if c not in anomalous.columns]
    if missing:
        raise TerminalError(
            "notify_missing_columns", f"anomalous readings lack column(s) {', '.join(missing)}"
        )
    frame = anomalous
    if ANOMALOUS in frame.columns:
        frame = frame.filter(pl.col(ANOMALOUS).fill_null(False))
    keep = [c for c in frame.columns if not c.startswith("_") or c in (EVENT_TIME, SEQ)]
    return frame.select(keep)


def _union(*frames: pl.DataFrame) -> pl.DataFrame:
    parts = [f for f in frames if not f.is_empty()]
    if not parts:
        return frames[0] if frames else pl.DataFrame()
    merged = parts[0] if len(parts) == 1 else pl.concat(parts, how="diagonal_relaxed")
    # Upstream deduplicates; a reading re-sent into the buffer must still count once.
    return merged.unique(subset=["id", EVENT_TIME, "location"], keep="first", maintain_order=True)


def _advance_location(
    t: np.ndarray,
    open_last_us: int | None,
    last_end_us: int | None,
    wm_us: int | None,
    final: bool,
    config: NotificationConfig,
) -> _Outcome:
    """Apply the incident rule to one location's released event times (sorted, in µs).

    ``open_last_us``: last reading of the incident the state holds open there, if any. Loops once
    per incident, not per reading: openings and chain ends are found by binary search.
    """
    win, cool, thr = config.window_s * _US, config.cooldown_s * _US, config.threshold
    n = len(t)
    # Reading breaks[j] + 1 cannot chain onto reading breaks[j].
    breaks = np.flatnonzero(np.diff(t) > win)
    # Readings k - thr + 1 .. k fall within the window for every k in opens.
    opens = np.empty(0, np.int64)
    if n >= thr:
        opens = np.flatnonzero(t[thr - 1:] - t[: n - thr + 1] <= win) + (thr - 1)
    out = _Outcome(last_end_us=last_end_us, keep_from=n)

    def chain_end(k: int) -> int:
        """Index one past the last reading chained onto reading ``k``."""
        j = int(np.searchsorted(breaks, k, side="left"))
        return int(breaks[j]) + 1 if j < breaks.size else n

    def closes(last_us: int, end: int) -> bool:
        # A later released reading already broke the chain, or none can join it any more.
        return end < n or final or (wm_us is not None and wm_us > last_us + win)

    i = 0
    if open_last_us is not None:
        end = 0 if n == 0 or t[0] - open_last_us > win else chain_end(0)
        last_us = int(t[end - 1]) if end else open_last_us
        closed = closes(last_us, end)
        out.carried = (end, closed)
        if not closed:
            return out
        out.last_end_us, i = last_us, end

    while i < n:
        # Readings inside the cooldown of the last incident may not start a new one.
        first_ok = i
        if out.last_end_us is not None:
            first_ok = max(i, int(np.searchsorted(t, out.last_end_us + cool, side="right")))
        out.suppressed += first_ok - i
        pos = int(np.searchsorted(opens, first_ok + thr - 1, side="left"))
        if pos == opens.size:
            if final:
                keep = n
            elif wm_us is None:
                keep = first_ok
            else:
                # A reading stays pending while one after the watermark could still join it.
                keep = max(first_ok, int(np.searchsorted(t, wm_us - win, side="left")))
            out.expired += keep - first_ok
            out.keep_from = keep
            return out
        start = int(opens[pos]) - thr + 1
        out.expired += start - first_ok
        end = chain_end(start + thr - 1)
        closed = closes(int(t[end - 1]), end)
        out.incidents.append((start, end, closed))
        if not closed:
            return out
        out.last_end_us, i = int(t[end - 1]), end
    return out


class _IncidentBuilder:
    """Turns index ranges of the released readings into incidents with a few bulk operations
    (one JSON encoding, one group-by for job ids) instead of one per incident."""

    def __init__(self, rows: pl.DataFrame, t: np.ndarray, cap: int) -> None:
        self._rows, self._t, self._cap = rows, t, cap
        self._asks: list[tuple[str, _Incident | None, int, int, bool]] = []

    def extend(self, incident: _Incident, start: int, end: int, *, closed: bool) -> None:
        self._asks.append((incident.location, incident, start, end, closed))

    def open(self, location: str, start: int, end: int, *, closed: bool) -> None:
        self._asks.append((location, None, start, end, closed))

    def build(self) -> tuple[list[_Incident], dict[str, _Incident]]:
        rows, t = self._rows, self._t
        takes = []
        for _, base, start, end, _ in self._asks:
            room = self._cap - (len(base.readings) if base is not None else 0)
            takes.append(max(0, min(end - start, room)))
        heads = [(ask[2], ask[2] + take) for ask, take in zip(self._asks, takes, strict=True)]
        shown = _json_rows(rows[_ranges(heads)])
        job_ids = self._job_ids()
        fresh = [a[2] for a in self._asks if a[1] is None]
        firsts = rows[fresh].select("id", "timestamp").rows() if fresh else []
        closed: list[_Incident] = []
        still_open: dict[str, _Incident] = {}
        at = first = 0
        for n, ((location, base, start, end, is_closed), take) in enumerate(
            zip(self._asks, takes, strict=True)
        ):
            readings = tuple(shown[at:at + take])
            at += take
            jobs = job_ids.get(n, ())
            if base is None:
                first_id, first_ts = firsts[first]
                first += 1
                incident = _Incident(
                    stable_id("notification", location, str(first_id), first_ts or ""),
                    location, int(t[start]), int(t[end - 1]), end - start, readings, jobs,
                )
            elif end > start:
                incident = replace(
                    base, last_us=int(t[end - 1]), count=base.count + end - start,
                    readings=base.readings + readings,
                    job_ids=tuple(sorted(set(base.job_ids) | set(jobs))),
                )
            else:
                incident = base
            if is_closed:
                closed.append(incident)
            else:
                still_open[location] = incident
        return closed, still_open

    def _job_ids(self) -> dict[int, tuple[str, ...]]:
        """Distinct ``lineage.job_id`` per ask, over all its readings."""
        rows = self._rows
        dtype = rows.schema.get(LINEAGE)
        if not isinstance(dtype, pl.Struct) or "job_id" not in [f.name for f in dtype.fields]:
            return {}
        spans = [(a[2], a[3]) for a in self._asks]
        idx = _ranges(spans)
        if not idx.size:
            return {}
        ask = np.repeat(np.arange(len(spans)), [end - start for start, end in spans])
        jobs = pl.DataFrame({
            "ask": ask,
            "job_id": rows[LINEAGE].struct.field("job_id").cast(pl.String).gather(idx),
        }).drop_nulls().unique().sort("ask", "job_id")
        grouped = jobs.group_by("ask", maintain_order=True).agg("job_id")
        return {ask_no: tuple(ids) for ask_no, ids in grouped.iter_rows()}


def _ranges(spans: list[tuple[int, int]]) -> np.ndarray:
    """Concatenated ``arange(start, end)`` of every span."""
    parts = [np.arange(start, end) for start, end in spans if end > start]
    return np.concatenate(parts) if parts else np.empty(0, np.int64)


# ------------------------------------------------------------------------------------ ledger
class NotificationLedger:
    """Which notifications were claimed and what each sink answered: a SQLite file.

    A claim is committed (synchronous=FULL) before the caller sends anything, so after a crash or
    a replay a claimed id is never sent again: at most once.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, isolation_level=None, timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS notification_claims ("
            " notification_id TEXT PRIMARY KEY, claimed_at TEXT NOT NULL)"
        )
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS notification_results ("
            " notification_id TEXT NOT NULL, sink TEXT NOT NULL, status TEXT NOT NULL,"
            " reason TEXT, attempts INTEGER NOT NULL, recorded_at TEXT NOT NULL,"
            " PRIMARY KEY (notification_id, sink))"
        )

    def claim(self, notification_id: str) -> bool:
        """True the first time ``notification_id`` is claimed (durably), False ever after."""
        try:
            cur = self._db.execute(
                "INSERT OR IGNORE INTO notification_claims VALUES (?, ?)",
                (notification_id, _now()),
            )
        except sqlite3.OperationalError as exc:
            raise TransientError(
                "ledger_busy", f"ledger claim failed ({type(exc).__name__})"
            ) from None
        return cur.rowcount == 1

    def claim_many(self, notification_ids: list[str]) -> set[str]:
        """The ids claimed now for the first time, all claims committed (durably) in one
        transaction: one fsync for a batch's notifications instead of one each."""
        fresh: set[str] = set()
        now = _now()
        try:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                for notification_id in notification_ids:
                    cur = self._db.execute(
                        "INSERT OR IGNORE INTO notification_claims VALUES (?, ?)",
                        (notification_id, now),
                    )
                    if cur.rowcount == 1:
                        fresh.add(notification_id)
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        except sqlite3.OperationalError as exc:
            raise TransientError(
                "ledger_busy", f"ledger claim failed ({type(exc).__name__})"
            ) from None
        return fresh

    def record_results(self, rows: list[tuple[str, str, str, str | None, int]]) -> None:
        """Store many (notification_id, sink, status, reason, attempts) in one transaction."""
        now = _now()
        with self._db:
            self._db.execute("BEGIN")
            self._db.executemany(
                "INSERT INTO notification_results VALUES (?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (notification_id, sink) DO UPDATE SET status=excluded.status,"
                " reason=excluded.reason, attempts=excluded.attempts,"
                " recorded_at=excluded.recorded_at",
                [(*row, now) for row in rows],
            )

    def record_result(
        self,
        notification_id: str,
        sink: str,
        status: str,
        reason: str | None = None,
        attempts: int = 1,
    ) -> None:
        """Store what ``sink`` answered (``sent`` or ``failed`` with a reason code)."""
        self._db.execute(
            "INSERT INTO notification_results VALUES (?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (notification_id, sink) DO UPDATE SET status=excluded.status,"
            " reason=excluded.reason, attempts=excluded.attempts,"
            " recorded_at=excluded.recorded_at",
            (notification_id, sink, status, reason, attempts, _now()),
        )

    def sent_ids(self) -> set[str]:
        """Ids that will not be sent again: every claimed id, whatever its sinks answered."""
        rows = self._db.execute("SELECT notification_id FROM notification_claims")
        return {row[0] for row in rows}

    def results(self, notification_id: str) -> dict[str, tuple[str, str | None, int]]:
        """Per sink: (status, reason, attempts) recorded for ``notification_id``."""
        rows = self._db.execute(
            "SELECT sink, status, reason, attempts FROM notification_results"
            " WHERE notification_id = ?", (notification_id,),
        )
        return {sink: (status, reason, attempts) for sink, status, reason, attempts in rows}

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> NotificationLedger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _now() -> str:
    return datetime.now(UTC).isoformat()


# ------------------------------------------------------------------------------------- sinks
class Sink(Protocol):
    """Somewhere a notification can go; ``send`` raises TransientError or TerminalError."""

    name: ClassVar[str]

    def send(self, n: Notification) -> None: ...


class LocalQueueSink:
    """A JSON-lines queue file: one line per notification, appended and fsync'd."""

    name: ClassVar[str] = "queue_file"

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def send(self, n: Notification) -> None:
        self.send_many([n])

    def send_many(self, notes: list[Notification]) -> None:
        """Append every note's line with one write and one fsync; on failure nothing of them
        stays in the file (the caller then retries them one by one)."""
        data = "".join(
            json.dumps(n.to_json(), ensure_ascii=False, separators=(",", ":")) + "\n"
            for n in notes
        ).encode("utf-8")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            created = not self.path.exists()
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        except OSError as exc:
            raise TransientError(
                "queue_file_unwritable", f"open failed ({type(exc).__name__})"
            ) from None
        try:
            size = os.fstat(fd).st_size
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view):]
                os.fsync(fd)
            except OSError as exc:
                # Cut a half-written line so the retry leaves the file parseable.
                os.ftruncate(fd, size)
                raise TransientError(
                    "queue_file_unwritable", f"append failed ({type(exc).__name__})"
                ) from None
        finally:
            os.close(fd)
        if created:
            _fsync_dir(self.path.parent)


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


SQS_MAX_BODY_BYTES = 256 * 1024 - 4096
"""Largest message body sent (SQS's 256 KiB limit, less room for the attributes)."""

_SQS_TRANSIENT_CODES = frozenset({
    "Throttling", "ThrottlingException", "RequestThrottled", "ServiceUnavailable",
    "InternalError", "InternalFailure", "RequestTimeout", "KmsThrottled",
    "AWS.SimpleQueueService.KmsThrottled",
})


class SqsSink:
    """An SQS queue; FIFO queues get the notification id as deduplication id."""

    name: ClassVar[str] = "sqs"

    def __init__(
        self, queue_url: str, endpoint_url: str | None = None, region: str = "us-east-1"
    ) -> None:
        self.queue_url = queue_url
        self.endpoint_url = endpoint_url
        self.region = region
        self.fifo = queue_url.endswith(".fifo")
        self._client: Any = None

    def _sqs(self) -> Any:
        if self._client is None:
            import boto3
            from botocore.config import Config

            # One attempt per call: deliver() owns retries, so they show in the ledger.
            self._client = boto3.client(
                "sqs", region_name=self.region, endpoint_url=self.endpoint_url,
                config=Config(retries={"total_max_attempts": 1}, connect_timeout=5,
                              read_timeout=20),
            )
        return self._client

    def send(self, n: Notification) -> None:
        from botocore.exceptions import (
            BotoCoreError,
            ClientError,
            HTTPClientError,
        )
        from botocore.exceptions import ConnectionError as BotoConnectionError

        params: dict[str, Any] = {
            "QueueUrl": self.queue_url,
            "MessageBody": sqs_body(n),
            "MessageAttributes": {
                "notification_id": {"DataType": "String", "StringValue": n.notification_id},
            },
        }
        if self.fifo:
            params["MessageDeduplicationId"] = n.notification_id
            # Group ids allow no spaces; a stable uuid keeps per-location order without that.
            params["MessageGroupId"] = stable_id("notification-group", n.location)
        try:
            self._sqs().send_message(**params)
        except ClientError as exc:
            error = exc.response.get("Error", {})
            code = str(error.get("Code", "unknown"))
            http = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
            if code in _SQS_TRANSIENT_CODES or http >= 500:
                raise TransientError("sqs_unavailable", f"SQS answered {code}") from None
            raise TerminalError("sqs_rejected", f"SQS answered {code}") from None
        except (BotoConnectionError, HTTPClientError) as exc:
            raise TransientError("sqs_unreachable", type(exc).__name__) from None
        except BotoCoreError as exc:
            raise TerminalError("sqs_client_error", type(exc).__name__) from None


def sqs_body(n: Notification, limit: int = SQS_MAX_BODY_BYTES) -> str:
    """The JSON body, with trailing readings left out when it would pass SQS's size limit
    (``reading_count`` still says how many there were)."""
    body = n.to_json()

    def encode(count: int) -> str:
        return json.dumps({**body, "readings": n.readings[:count]}, separators=(",", ":"))

    text = encode(len(n.readings))
    if len(text.encode("utf-8")) <= limit:
        return text
    lo, hi = 0, len(n.readings)
    while lo < hi:  # largest count that fits
        mid = (lo + hi + 1) // 2
        if len(encode(mid).encode("utf-8")) <= limit:
            lo = mid
        else:
            hi = mid - 1
    return encode(lo)


# ---------------------------------------------------------------------------------- delivery
@dataclass
class DeliveryReport:
    """What one :func:`deliver` call did."""

    sent: int = 0
    """Notifications newly claimed that reached at least one sink."""
    already_sent: int = 0
    """Notifications skipped because the ledger had claimed them before."""
    failed: dict[str, int] = field(default_factory=dict)
    """Per sink name: notifications that sink did not take (after retries)."""


BACKOFF_S = 0.05
"""Pause before the first retry; doubled before each next one (capped at 2 s)."""


def deliver(
    notifications: list[Notification],
    ledger: NotificationLedger,
    sinks: list[Sink],
    retries: int = 3,
) -> DeliveryReport:
    """Claim each notification in ``ledger``, then send it to every sink.

    Transient sink errors are retried up to ``retries`` more times; terminal ones are not. A
    sink's failure is recorded in the ledger and does not stop the other sinks. A claimed id is
    never sent again, even if every sink failed (at most once).
    """
    if not sinks:
        raise ConfigError(
            "notify_no_sink",
            "notification: no sink configured; set queue_file or sqs_queue_url",
        )
    report = DeliveryReport()
    fresh = ledger.claim_many([n.notification_id for n in notifications])
    claimed: list[Notification] = []
    taken: set[str] = set()
    for note in notifications:
        if note.notification_id not in fresh or note.notification_id in taken:
            report.already_sent += 1
            log_event("notification_skipped", notification_id=note.notification_id,
                      reason="already_claimed")
            continue
        claimed.append(note)
        taken.add(note.notification_id)
    reached = dict.fromkeys((n.notification_id for n in claimed), 0)
    results: list[tuple[str, str, str, str | None, int]] = []
    for sink in sinks:
        for note, (code, attempts) in zip(claimed, _send_all(sink, claimed, retries),
                                          strict=True):
            if code is None:
                results.append((note.notification_id, sink.name, "sent", None, attempts))
                reached[note.notification_id] += 1
            else:
                results.append((note.notification_id, sink.name, "failed", code, attempts))
                report.failed[sink.name] = report.failed.get(sink.name, 0) + 1
    if results:
        ledger.record_results(results)
    for note in claimed:
        count = reached[note.notification_id]
        if count:
            report.sent += 1
        log_event("notification_delivered", notification_id=note.notification_id,
                  sinks_count=count, failed=len(sinks) - count,
                  readings_count=note.reading_count)
    return report


def _send_all(sink: Sink, notes: list[Notification],
              retries: int) -> list[tuple[str | None, int]]:
    """Outcome per note: one batched send when the sink can (and it works), else one by one
    with retries."""
    send_many = getattr(sink, "send_many", None)
    if send_many is not None and len(notes) > 1:
        try:
            send_many(notes)
            return [(None, 1)] * len(notes)
        except (ChronoError, OSError):
            pass  # nothing of the batch was kept: fall back to one at a time
    return [_send(sink, note, retries) for note in notes]


def _send(sink: Sink, note: Notification, retries: int) -> tuple[str | None, int]:
    """Send once plus up to ``retries`` retries; (None, attempts) or (reason code, attempts)."""
    attempt = 0
    while True:
        attempt += 1
        try:
            sink.send(note)
            return None, attempt
        except (TransientError, OSError) as exc:
            code = exc.code if isinstance(exc, ChronoError) else type(exc).__name__
            if attempt > retries:
                log_event("notification_sink_failed", logging.WARNING,
                          notification_id=note.notification_id, sink_id=sink.name, code=code,
                          attempt=attempt)
                return code, attempt
            log_event("notification_retry", logging.WARNING,
                      notification_id=note.notification_id, sink_id=sink.name, code=code,
                      attempt=attempt)
            time.sleep(min(BACKOFF_S * 2 ** (attempt - 1), 2.0))
        except ChronoError as exc:
            log_event("notification_sink_failed", logging.WARNING,
                      notification_id=note.notification_id, sink_id=sink.name, code=exc.code,
                      attempt=attempt)
            return exc.code, attempt
        except Exception as exc:  # a sink bug must not stop the other sinks
            log_event("notification_sink_failed", logging.ERROR,
                      notification_id=note.notification_id, sink_id=sink.name,
                      code=type(exc).__name__, attempt=attempt)
            return type(exc).__name__, attempt
