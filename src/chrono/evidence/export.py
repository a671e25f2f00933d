"""``chrono export``: one record per line (JSON lines or CSV) from the timeline database.

The record formats are a contract other tools read; README "Export formats" documents them.
``persons`` and ``devices`` are per-identifier views until the persons and devices steps exist:
one record per email/phone/handle identifier with the names seen beside it and its event count.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from typing import IO, Any

from sqlalchemy import func, select
from sqlalchemy.engine import Engine

from chrono.db import schema

KINDS = ("events", "documents", "persons", "devices")


def iter_events(engine: Engine) -> Iterator[dict[str, Any]]:
    e, p, i = schema.events, schema.participants, schema.identifiers
    with engine.connect() as conn:
        parts: dict[str, list[dict[str, Any]]] = {}
        q = select(p.c.event_id, p.c.position, p.c.role, i.c.kind, p.c.value, i.c.value.label(
            "normalized"), p.c.name).join(i, i.c.identifier_id == p.c.identifier_id).order_by(
            p.c.event_id, p.c.position)
        for row in conn.execute(q):
            parts.setdefault(row.event_id, []).append({
                "role": row.role, "kind": row.kind, "value": row.value,
                "normalized": row.normalized, "name": row.name,
            })
        for row in conn.execute(select(e).order_by(e.c.start_utc, e.c.event_id)):
            start = row.start_utc.strftime("%Y-%m-%dT%H:%M:%SZ") if row.start_utc else None
            yield {
                "id": row.event_id, "type": row.type, "start": start,
                "offset_minutes": row.offset_minutes, "timezone": row.timezone,
                "subject": row.subject, "duration_s": row.duration_s,
                "direction": row.direction, "message_id": row.message_id,
                "participants": parts.get(row.event_id, []),
                "source": {
                    "file_id": row.file_id, "path": row.path, "sha256": row.sha256,
                    "locator": row.locator, "page": row.page, "row": row.row, "bates": row.bates,
                },
                "duplicate_of": row.duplicate_of,
            }


def iter_documents(engine: Engine) -> Iterator[dict[str, Any]]:
    f = schema.files
    with engine.connect() as conn:
        for row in conn.execute(select(f).order_by(f.c.path)):
            yield {
                "id": row.file_id, "path": row.path, "sha256": row.sha256, "type": row.kind,
                "size": row.size, "page_count": row.page_count, "parent_id": row.parent_id,
                "outcome": row.outcome, "reason": row.reason, "text": row.text,
            }


def _iter_identifiers(engine: Engine, kinds: tuple[str, ...]) -> Iterator[dict[str, Any]]:
    p, i = schema.participants, schema.identifiers
    with engine.connect() as conn:
        names: dict[str, set[str]] = {}
        for row in conn.execute(
            select(p.c.identifier_id, p.c.name).where(p.c.name.is_not(None)).distinct()
        ):
            names.setdefault(row.identifier_id, set()).add(row.name)
        q = (
            select(i.c.identifier_id, i.c.kind, i.c.value,
                   func.count(func.distinct(p.c.event_id)).label("events"))
            .join(p, p.c.identifier_id == i.c.identifier_id)
            .where(i.c.kind.in_(kinds))
            .group_by(i.c.identifier_id, i.c.kind, i.c.value)
            .order_by(i.c.kind, i.c.value)
        )
        for row in conn.execute(q):
            yield {
                "id": row.identifier_id, "kind": row.kind, "value": row.value,
                "names": sorted(names.get(row.identifier_id, ())), "events": row.events,
            }


def iter_records(engine: Engine, kind: str) -> Iterator[dict[str, Any]]:
    if kind == "events":
        return iter_events(engine)
    if kind == "documents":
        return iter_documents(engine)
    if kind == "persons":
        return _iter_identifiers(engine, ("email", "phone", "name"))
    if kind == "devices":
        return _iter_identifiers(engine, ("phone", "handle"))
    raise ValueError(f"unknown export kind {kind}")


def write_records(records: Iterator[dict[str, Any]], out: IO[str], fmt: str) -> int:
    count = 0
    if fmt == "jsonl":
        for rec in records:
            out.write(json.dumps(rec, ensure_ascii=False) + "\n")
            count += 1
        return count
    writer: csv.DictWriter[str] | None = None
    for rec in records:
        flat = {k: json.dumps(v, ensure_ascii=False) if isinstance(v, dict | list) else v
                for k, v in rec.items()}
        if writer is None:
            writer = csv.DictWriter(out, fieldnames=list(flat))
            writer.writeheader()
        writer.writerow(flat)
        count += 1
    return count
