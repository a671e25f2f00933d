"""``chrono export``: one record per line (JSON lines or CSV) from the timeline database.

The record formats are a contract other tools read; README "Export formats" documents them. The
``persons`` and ``devices`` records come from the identity steps (persons, devices, mapping) and
the manual corrections:

persons, one record per person, ordered by id::

    {"id": person_id, "name": str | null, "origin": "auto" | "manual",
     "identifiers": [{"id": identifier_id, "kind": "email"|"phone"|"handle"|"name",
                      "value": cleaned value (E.164, lower-case address; the stored value
                               before the devices step ran, and for names),
                      "method": link method, "score": 0-1,
                      "evidence": {"events": [...], "files": [...], "count": n}}],
     "devices": [{"id": device_id, "kind", "value": cleaned value, "merged_into": id | null,
                  "confidence": 0-1, "evidence": [{"kind", "events", "files", "count"}]}],
     "merges": [{"at": ISO 8601 UTC, "by": user, "action": "merge" | "unmerge",
                 "target_ids": [...]}]}

devices, one record per device, ordered by id::

    {"id": device_id, "kind": "phone"|"email"|"handle"|"imei", "value": cleaned value,
     "merged_into": device_id | null,
     "identifiers": [{"identifier_id", "value": stored value, "action": "kept"|"normalized"|
                      "merged", "reason": reason code}],
     "persons": [{"id": person_id, "confidence": 0-1, "evidence": [...]}],
     "merges": [...as above]}

``merges`` lists the corrections that touch the record: those that name its id, or whose
identifier groups hold one of its identifiers (ids change when corrections re-shape clusters;
identifier ids do not). Identifiers that the devices step dropped belong to no device; their
reasons are in the ``device_changes`` table.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from datetime import UTC
from typing import IO, Any

from sqlalchemy import func, select
from sqlalchemy.engine import Connection, Engine

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
        # Every copy's provenance stays reachable from the event that survived dedupe.
        copies: dict[str, list[dict[str, Any]]] = {}
        dup_q = select(e.c.event_id, e.c.duplicate_of, e.c.duplicate_reason, e.c.file_id,
                       e.c.path, e.c.locator, e.c.page, e.c.row, e.c.bates).where(
            e.c.duplicate_of.is_not(None)).order_by(e.c.duplicate_of, e.c.event_id)
        for dup in conn.execute(dup_q):
            copies.setdefault(dup.duplicate_of, []).append({
                "id": dup.event_id, "reason": dup.duplicate_reason, "file_id": dup.file_id,
                "path": dup.path, "locator": dup.locator, "page": dup.page, "row": dup.row,
                "bates": dup.bates,
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
                "duplicate_reason": row.duplicate_reason,
                "duplicates": copies.get(row.event_id, []),
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


def _merge_rows(conn: Connection, entity: str) -> list[dict[str, Any]]:
    c = schema.corrections
    rows = []
    for r in conn.execute(select(c).where(c.c.entity == entity).order_by(c.c.correction_id)):
        at = r.at if r.at.tzinfo else r.at.replace(tzinfo=UTC)
        rows.append({
            "record": {"at": at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                       "by": r.by_user, "action": r.action, "target_ids": list(r.target_ids)},
            "ids": set(r.target_ids),
            "identifiers": {i for g in r.identifier_groups for i in g},
        })
    return rows


def _touching(merges: list[dict[str, Any]], record_id: str, identifiers: set[str]
              ) -> list[dict[str, Any]]:
    return [m["record"] for m in merges
            if record_id in m["ids"] or m["identifiers"] & identifiers]


def iter_persons(engine: Engine) -> Iterator[dict[str, Any]]:
    ps, pi, i = schema.persons, schema.person_identifiers, schema.identifiers
    pd, d = schema.person_devices, schema.devices
    with engine.connect() as conn:
        merges = _merge_rows(conn, "person")
        idents: dict[str, list[dict[str, Any]]] = {}
        ch = schema.device_changes
        cleaned = func.coalesce(d.c.value, i.c.value)
        q = (select(pi.c.person_id, pi.c.identifier_id, i.c.kind, cleaned.label("value"),
                    pi.c.method, pi.c.score, pi.c.evidence)
             .join(i, i.c.identifier_id == pi.c.identifier_id)
             .outerjoin(ch, ch.c.identifier_id == pi.c.identifier_id)
             .outerjoin(d, d.c.device_id == ch.c.device_id)
             .order_by(pi.c.person_id, i.c.kind, cleaned, pi.c.identifier_id))
        for r in conn.execute(q):
            idents.setdefault(r.person_id, []).append({
                "id": r.identifier_id, "kind": r.kind, "value": r.value, "method": r.method,
                "score": r.score, "evidence": r.evidence,
            })
        devices: dict[str, list[dict[str, Any]]] = {}
        q = (select(pd.c.person_id, pd.c.device_id, d.c.kind, d.c.value, d.c.merged_into,
                    pd.c.confidence, pd.c.evidence)
             .join(d, d.c.device_id == pd.c.device_id)
             .order_by(pd.c.person_id, pd.c.confidence.desc(), pd.c.device_id))
        for r in conn.execute(q):
            devices.setdefault(r.person_id, []).append({
                "id": r.device_id, "kind": r.kind, "value": r.value,
                "merged_into": r.merged_into, "confidence": r.confidence,
                "evidence": r.evidence,
            })
        for r in conn.execute(select(ps).order_by(ps.c.person_id)):
            own = idents.get(r.person_id, [])
            yield {
                "id": r.person_id, "name": r.name, "origin": r.origin, "identifiers": own,
                "devices": devices.get(r.person_id, []),
                "merges": _touching(merges, r.person_id, {x["id"] for x in own}),
            }


def iter_devices(engine: Engine) -> Iterator[dict[str, Any]]:
    d, ch, i, pd = schema.devices, schema.device_changes, schema.identifiers, schema.person_devices
    with engine.connect() as conn:
        merges = _merge_rows(conn, "device")
        idents: dict[str, list[dict[str, Any]]] = {}
        q = (select(ch.c.device_id, ch.c.identifier_id, i.c.value, ch.c.action, ch.c.reason)
             .join(i, i.c.identifier_id == ch.c.identifier_id)
             .where(ch.c.device_id.is_not(None))
             .order_by(ch.c.device_id, ch.c.identifier_id))
        for r in conn.execute(q):
            idents.setdefault(r.device_id, []).append({
                "identifier_id": r.identifier_id, "value": r.value, "action": r.action,
                "reason": r.reason,
            })
        persons: dict[str, list[dict[str, Any]]] = {}
        q = select(pd).order_by(pd.c.device_id, pd.c.confidence.desc(), pd.c.person_id)
        for r in conn.execute(q):
            persons.setdefault(r.device_id, []).append({
                "id": r.person_id, "confidence": r.confidence, "evidence": r.evidence,
            })
        for r in conn.execute(select(d).order_by(d.c.device_id)):
            own = idents.get(r.device_id, [])
            yield {
                "id": r.device_id, "kind": r.kind, "value": r.value,
                "merged_into": r.merged_into, "identifiers": own,
                "persons": persons.get(r.device_id, []),
                "merges": _touching(merges, r.device_id, {x["identifier_id"] for x in own}),
            }


def iter_records(engine: Engine, kind: str) -> Iterator[dict[str, Any]]:
    if kind == "events":
        return iter_events(engine)
    if kind == "documents":
        return iter_documents(engine)
    if kind == "persons":
        return iter_persons(engine)
    if kind == "devices":
        return iter_devices(engine)
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
