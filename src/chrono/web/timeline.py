"""Reads of the timeline database for the web app: paged events, histograms, event pages, runs.

Events page by keyset on ``(start_utc, event_id)`` (``ix_events_start`` serves the order), so
any page costs an index range scan of one page, whatever the table size. Events without a start
are paged apart (``undated``) on ``event_id``: NULLs sort differently in SQLite and PostgreSQL,
and a keyset over a nullable column would need both orders. Text search is a bounded
case-insensitive LIKE on subject and body.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import and_, func, literal_column, or_, select
from sqlalchemy.engine import Connection
from sqlalchemy.sql.elements import ColumnElement

from chrono.db import schema
from chrono.evidence.report import OUTCOMES

MAX_QUERY_CHARS = 100
MAX_PAGE = 500
SUBJECT_PREVIEW_CHARS = 160
MAX_BARS = 400
EVENT_TYPES = ("email", "call", "message", "document")


def as_utc(value: datetime | None) -> datetime | None:
    # SQLite gives naive datetimes back; every stored time is UTC.
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def iso(value: datetime | None) -> str | None:
    moment = as_utc(value)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ") if moment else None


def parse_day(text: str | None, end: bool = False) -> datetime | None:
    """``YYYY-MM-DD`` (or a full ISO time) as UTC; an end day includes the whole day."""
    if not text:
        return None
    text = text.strip()
    try:
        if len(text) == 10:
            day = date.fromisoformat(text)
            moment = datetime(day.year, day.month, day.day, tzinfo=UTC)
            return moment + timedelta(days=1) if end else moment
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError("dates are YYYY-MM-DD or ISO 8601 times") from None
    return as_utc(parsed)


@dataclass(frozen=True)
class EventFilters:
    """What the timeline shows; every field is optional."""

    person: str | None = None
    device: str | None = None
    type: str | None = None
    start: str | None = None
    """First day (YYYY-MM-DD), inclusive."""
    end: str | None = None
    """Last day (YYYY-MM-DD), inclusive."""
    q: str | None = None
    """Text searched in subject and body (at most :data:`MAX_QUERY_CHARS` characters)."""
    undated: bool = False
    """Show only the events without a start time."""
    duplicates: bool = True
    """Include events that dedupe marked as copies of another."""

    def query_args(self) -> dict[str, str]:
        out = {k: v for k, v in (("person", self.person), ("device", self.device),
                                 ("type", self.type), ("start", self.start), ("end", self.end),
                                 ("q", self.q)) if v}
        if self.undated:
            out["undated"] = "1"
        if not self.duplicates:
            out["duplicates"] = "0"
        return out


def _like_pattern(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _conditions(f: EventFilters) -> list[ColumnElement[bool]]:
    e, p = schema.events, schema.participants
    conds: list[ColumnElement[bool]] = []
    if f.type:
        conds.append(e.c.type == f.type)
    start, end = parse_day(f.start), parse_day(f.end, end=True)
    if f.undated:
        conds.append(e.c.start_utc.is_(None))
    else:
        conds.append(e.c.start_utc.is_not(None))
        if start is not None:
            conds.append(e.c.start_utc >= start)
        if end is not None:
            conds.append(e.c.start_utc < end)
    if not f.duplicates:
        conds.append(e.c.duplicate_of.is_(None))
    if f.person:
        pi = schema.person_identifiers
        conds.append(e.c.event_id.in_(
            select(p.c.event_id).join(pi, pi.c.identifier_id == p.c.identifier_id)
            .where(pi.c.person_id == f.person)))
    if f.device:
        ch, d = schema.device_changes, schema.devices
        members = select(d.c.device_id).where(or_(d.c.device_id == f.device,
                                                   d.c.merged_into == f.device))
        conds.append(e.c.event_id.in_(
            select(p.c.event_id).join(ch, ch.c.identifier_id == p.c.identifier_id)
            .where(ch.c.device_id.in_(members))))
    if f.q:
        pattern = _like_pattern(f.q.strip()[:MAX_QUERY_CHARS])
        conds.append(or_(e.c.subject.ilike(pattern, escape="\\"),
                         e.c.body.ilike(pattern, escape="\\")))
    return conds


def encode_cursor(start: str | None, event_id: str) -> str:
    raw = json.dumps([start, event_id], separators=(",", ":")).encode("utf-8")
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime | None, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        start, event_id = json.loads(raw)
        return parse_day(start) if start else None, str(event_id)
    except (ValueError, TypeError) as exc:
        raise ValueError("the page cursor is not valid") from exc


@dataclass
class EventPage:
    items: list[dict[str, Any]]
    next_cursor: str | None
    prev_cursor: str | None
    limit: int
    filters: EventFilters = field(default_factory=EventFilters)

    def to_dict(self) -> dict[str, Any]:
        return {"items": self.items, "next_cursor": self.next_cursor,
                "prev_cursor": self.prev_cursor, "limit": self.limit,
                "filters": self.filters.query_args()}


def page_events(conn: Connection, f: EventFilters, after: str | None = None,
                before: str | None = None, limit: int = 50) -> EventPage:
    """One page of the timeline after (or before) a cursor, in (start, id) order."""
    e = schema.events
    limit = max(1, min(int(limit), MAX_PAGE))
    conds = _conditions(f)
    cursor = after or before
    backwards = before is not None and after is None
    if cursor:
        c_start, c_id = decode_cursor(cursor)
        if f.undated or c_start is None:
            conds.append(e.c.event_id < c_id if backwards else e.c.event_id > c_id)
        elif backwards:
            conds.append(and_(e.c.start_utc <= c_start,
                              or_(e.c.start_utc < c_start, e.c.event_id < c_id)))
        else:
            # The >= bound alone is what an index range scan can use; the OR trims the ties.
            conds.append(and_(e.c.start_utc >= c_start,
                              or_(e.c.start_utc > c_start, e.c.event_id > c_id)))
    columns = [e.c.event_id] if f.undated else [e.c.start_utc, e.c.event_id]
    order: list[Any] = [c.desc() for c in columns] if backwards else list(columns)
    q = (select(e.c.event_id, e.c.type, e.c.start_utc, e.c.subject, e.c.direction,
                e.c.duration_s, e.c.duplicate_of, e.c.path, e.c.bates)
         .where(*conds).order_by(*order).limit(limit + 1))
    rows = list(conn.execute(q))
    more = len(rows) > limit
    rows = rows[:limit]
    if backwards:
        rows.reverse()
    parts = _participants(conn, [r.event_id for r in rows])
    items = [{
        "id": r.event_id, "type": r.type, "start": iso(r.start_utc),
        "subject": (r.subject or "")[:SUBJECT_PREVIEW_CHARS] or None,
        "direction": r.direction, "duration_s": r.duration_s,
        "duplicate_of": r.duplicate_of, "path": r.path, "bates": r.bates,
        "participants": parts.get(r.event_id, []),
    } for r in rows]
    keys = [encode_cursor(i["start"], i["id"]) for i in items]
    if backwards:
        next_cursor = keys[-1] if keys else None
        prev_cursor = keys[0] if keys and more else None
    else:
        next_cursor = keys[-1] if keys and more else None
        prev_cursor = keys[0] if keys and cursor else None
    return EventPage(items, next_cursor, prev_cursor, limit, f)


def _participants(conn: Connection, event_ids: list[str]) -> dict[str, list[dict[str, Any]]]:
    if not event_ids:
        return {}
    p, i = schema.participants, schema.identifiers
    out: dict[str, list[dict[str, Any]]] = {}
    q = (select(p.c.event_id, p.c.role, p.c.value, p.c.name, i.c.kind, p.c.identifier_id)
         .join(i, i.c.identifier_id == p.c.identifier_id)
         .where(p.c.event_id.in_(event_ids)).order_by(p.c.event_id, p.c.position))
    for r in conn.execute(q):
        out.setdefault(r.event_id, []).append({
            "role": r.role, "kind": r.kind, "value": r.value, "name": r.name,
            "identifier_id": r.identifier_id})
    return out


# ------------------------------------------------------------------ histogram
def _bucket_expr(conn: Connection, hourly: bool) -> ColumnElement[Any]:
    e = schema.events
    if conn.dialect.name == "postgresql":
        fmt = "YYYY-MM-DD HH24" if hourly else "YYYY-MM-DD"
        return func.to_char(e.c.start_utc.op("AT TIME ZONE")(literal_column("'UTC'")), fmt)
    # SQLite stores DateTime as 'YYYY-MM-DD HH:MM:SS.ffffff' text (UTC).
    return func.substr(e.c.start_utc, 1, 13 if hourly else 10)


def event_histogram(conn: Connection, f: EventFilters) -> dict[str, Any]:
    """Events per hour or day (week or month when days would be too many bars)."""
    e = schema.events
    if f.undated:
        return {"bucket": "day", "bars": [], "total": 0}
    conds = _conditions(f)
    low, high = conn.execute(select(func.min(e.c.start_utc), func.max(e.c.start_utc))
                             .where(*conds)).one()
    if low is None:
        return {"bucket": "day", "bars": [], "total": 0}
    low, high = as_utc(low), as_utc(high)
    assert low is not None and high is not None
    hourly = (high - low) <= timedelta(days=3)
    key = _bucket_expr(conn, hourly).label("k")
    counts: dict[str, int] = {}
    for k, n in conn.execute(select(key, func.count()).where(*conds).group_by(key)):
        counts[str(k)] = int(n)
    bucket = "hour" if hourly else "day"
    if not hourly and len(counts) > MAX_BARS:
        span_days = (high - low).days
        bucket = "week" if span_days / 7 <= MAX_BARS else "month"
        folded: dict[str, int] = {}
        for k, n in counts.items():
            day = date.fromisoformat(k[:10])
            if bucket == "week":
                label = (day - timedelta(days=day.weekday())).isoformat()
            else:
                label = day.isoformat()[:7] + "-01"
            folded[label] = folded.get(label, 0) + n
        counts = folded
    bars = [{"start": (k.replace(" ", "T") + ":00:00Z") if hourly else k, "count": n}
            for k, n in sorted(counts.items())]
    return {"bucket": bucket, "bars": bars, "total": sum(counts.values())}


# ------------------------------------------------------------------ one event
def event_detail(conn: Connection, event_id: str) -> dict[str, Any] | None:
    e = schema.events
    row = conn.execute(select(e).where(e.c.event_id == event_id)).first()
    if row is None:
        return None
    copies = [{
        "id": c.event_id, "reason": c.duplicate_reason, "path": c.path, "page": c.page,
        "row": c.row, "bates": c.bates, "locator": c.locator, "file_id": c.file_id,
    } for c in conn.execute(select(e).where(e.c.duplicate_of == event_id).order_by(e.c.event_id))]
    persons = _event_persons(conn, event_id)
    return {
        "id": row.event_id, "type": row.type, "start": iso(row.start_utc),
        "offset_minutes": row.offset_minutes, "timezone": row.timezone,
        "subject": row.subject, "body": row.body, "duration_s": row.duration_s,
        "direction": row.direction, "message_id": row.message_id,
        "participants": [{**p, "person_id": persons.get(p["identifier_id"])}
                         for p in _participants(conn, [event_id]).get(event_id, [])],
        "source": {"file_id": row.file_id, "path": row.path, "sha256": row.sha256,
                   "locator": row.locator, "page": row.page, "row": row.row,
                   "bates": row.bates},
        "duplicate_of": row.duplicate_of, "duplicate_reason": row.duplicate_reason,
        "duplicates": copies, "attributes": row.attributes or {},
    }


def _event_persons(conn: Connection, event_id: str) -> dict[str, str]:
    p, pi = schema.participants, schema.person_identifiers
    q = (select(p.c.identifier_id, pi.c.person_id)
         .join(pi, pi.c.identifier_id == p.c.identifier_id).where(p.c.event_id == event_id))
    return {r.identifier_id: r.person_id for r in conn.execute(q)}


def timeline_counts(conn: Connection) -> dict[str, int]:
    """Row counts for the dashboard (each a single COUNT)."""
    out = {}
    for t in (schema.events, schema.files, schema.persons, schema.devices, schema.runs):
        out[t.name] = int(conn.execute(select(func.count()).select_from(t)).scalar_one())
    return out


# ------------------------------------------------------------------ evidence runs
def _run_summary(r: Any) -> dict[str, Any]:
    return {"run_id": r.run_id, "kind": "evidence", "pipeline": r.pipeline,
            "status": r.status, "started_at": iso(r.started_at),
            "finished_at": iso(r.finished_at), "counts": r.counts or {}}


def evidence_runs(conn: Connection, limit: int = 200) -> list[dict[str, Any]]:
    r = schema.runs
    q = select(r).order_by(r.c.started_at.desc(), r.c.run_id).limit(limit)
    return [_run_summary(row) for row in conn.execute(q)]


def evidence_run(conn: Connection, run_id: str) -> dict[str, Any] | None:
    r = schema.runs
    row = conn.execute(select(r).where(r.c.run_id == run_id)).first()
    if row is None:
        return None
    steps = [{"name": s.get("name"), "seconds": s.get("seconds"), "status": s.get("status"),
              "counts": s.get("counts", {})} for s in (row.steps or [])]
    return {**_run_summary(row), "steps": steps, "artifact_dir": row.artifact_dir}


def run_files(conn: Connection, run: dict[str, Any], outcome: str | None, reason: str | None,
              offset: int, limit: int) -> dict[str, Any]:
    """Every file of an evidence run with its outcome and reason, filtered and paged.

    The run's ``report.json`` lists exactly that run's files; when it is gone (the artifact
    folder moved), the ``files`` table's outcomes stand in (``source`` says which)."""
    files: list[dict[str, Any]] | None = None
    report_path = Path(run["artifact_dir"] or "") / "report.json"
    if run.get("artifact_dir") and report_path.is_file():
        try:
            files = json.loads(report_path.read_text(encoding="utf-8")).get("files")
        except (OSError, ValueError):
            files = None
    source = "report"
    if files is None:
        source = "database"
        f = schema.files
        files = [{"file_id": x.file_id, "path": x.path, "kind": x.kind, "size": x.size,
                  "outcome": x.outcome, "reason": x.reason}
                 for x in conn.execute(select(f.c.file_id, f.c.path, f.c.kind, f.c.size,
                                              f.c.outcome, f.c.reason).order_by(f.c.path))]
    by_outcome: dict[str, int] = dict.fromkeys(OUTCOMES, 0)
    by_reason: dict[str, int] = {}
    for x in files:
        by_outcome[x["outcome"]] = by_outcome.get(x["outcome"], 0) + 1
        if x.get("reason"):
            by_reason[x["reason"]] = by_reason.get(x["reason"], 0) + 1
    chosen = [x for x in files if (not outcome or x["outcome"] == outcome)
              and (not reason or x.get("reason") == reason)]
    limit = max(1, min(limit, MAX_PAGE))
    return {
        "source": source, "total": len(files), "matched": len(chosen),
        "by_outcome": by_outcome, "by_reason": dict(sorted(by_reason.items())),
        "offset": offset, "limit": limit,
        "items": [{k: x.get(k) for k in ("file_id", "path", "kind", "size", "outcome",
                                          "reason")} for x in chosen[offset:offset + limit]],
    }
