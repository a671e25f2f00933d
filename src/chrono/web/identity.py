"""Reads of persons and devices for the web app: paged lists and one record with its evidence.

The record shapes follow ``chrono export persons`` / ``devices``
(:mod:`chrono.evidence.export`), restricted to one id so a page never reads the whole table.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.engine import Connection

from chrono.db import schema
from chrono.evidence.corrections import read_corrections
from chrono.web.timeline import MAX_PAGE, MAX_QUERY_CHARS, _like_pattern, iso


def _merges(conn: Connection, entity: str, record_id: str, identifiers: set[str]
            ) -> list[dict[str, Any]]:
    out = []
    for c in read_corrections(conn, entity):
        touched = {i for g in c.identifier_groups for i in g}
        if record_id in c.target_ids or touched & identifiers:
            out.append({"correction_id": c.correction_id, "at": iso(c.at), "by": c.by_user,
                        "action": c.action, "target_ids": list(c.target_ids)})
    return out


def list_persons(conn: Connection, q: str | None, offset: int, limit: int) -> dict[str, Any]:
    ps = schema.persons
    limit = max(1, min(limit, MAX_PAGE))
    conds = []
    if q:
        conds.append(or_(ps.c.name.ilike(_like_pattern(q.strip()[:MAX_QUERY_CHARS]),
                                         escape="\\"), ps.c.person_id == q.strip()))
    total = conn.execute(select(func.count()).select_from(ps).where(*conds)).scalar_one()
    rows = conn.execute(select(ps).where(*conds).order_by(
        ps.c.identifier_count.desc(), ps.c.person_id).offset(offset).limit(limit))
    items = [{"id": r.person_id, "name": r.name, "origin": r.origin,
              "identifier_count": r.identifier_count} for r in rows]
    return {"items": items, "total": int(total), "offset": offset, "limit": limit}


def person_detail(conn: Connection, person_id: str) -> dict[str, Any] | None:
    ps, pi, i = schema.persons, schema.person_identifiers, schema.identifiers
    d, ch, pd = schema.devices, schema.device_changes, schema.person_devices
    row = conn.execute(select(ps).where(ps.c.person_id == person_id)).first()
    if row is None:
        return None
    cleaned = func.coalesce(d.c.value, i.c.value)
    q = (select(pi.c.identifier_id, i.c.kind, cleaned.label("value"), pi.c.method, pi.c.score,
                pi.c.evidence)
         .join(i, i.c.identifier_id == pi.c.identifier_id)
         .outerjoin(ch, ch.c.identifier_id == pi.c.identifier_id)
         .outerjoin(d, d.c.device_id == ch.c.device_id)
         .where(pi.c.person_id == person_id).order_by(i.c.kind, cleaned))
    identifiers = [{"id": r.identifier_id, "kind": r.kind, "value": r.value, "method": r.method,
                    "score": r.score, "evidence": r.evidence} for r in conn.execute(q)]
    q2 = (select(pd.c.device_id, d.c.kind, d.c.value, d.c.merged_into, pd.c.confidence,
                 pd.c.evidence).join(d, d.c.device_id == pd.c.device_id)
          .where(pd.c.person_id == person_id).order_by(pd.c.confidence.desc(), pd.c.device_id))
    devices = [{"id": r.device_id, "kind": r.kind, "value": r.value,
                "merged_into": r.merged_into, "confidence": r.confidence,
                "evidence": r.evidence} for r in conn.execute(q2)]
    return {"id": row.person_id, "name": row.name, "origin": row.origin,
            "identifiers": identifiers, "devices": devices,
            "merges": _merges(conn, "person", person_id, {x["id"] for x in identifiers})}


def list_devices(conn: Connection, q: str | None, kind: str | None, offset: int, limit: int
                 ) -> dict[str, Any]:
    d = schema.devices
    limit = max(1, min(limit, MAX_PAGE))
    conds = []
    if kind:
        conds.append(d.c.kind == kind)
    if q:
        conds.append(or_(d.c.value.ilike(_like_pattern(q.strip()[:MAX_QUERY_CHARS]),
                                         escape="\\"), d.c.device_id == q.strip()))
    total = conn.execute(select(func.count()).select_from(d).where(*conds)).scalar_one()
    rows = conn.execute(select(d).where(*conds).order_by(d.c.kind, d.c.value, d.c.device_id)
                        .offset(offset).limit(limit))
    items = [{"id": r.device_id, "kind": r.kind, "value": r.value,
              "identifier_count": r.identifier_count, "merged_into": r.merged_into}
             for r in rows]
    return {"items": items, "total": int(total), "offset": offset, "limit": limit}


def device_detail(conn: Connection, device_id: str) -> dict[str, Any] | None:
    d, ch, i, pd, ps = (schema.devices, schema.device_changes, schema.identifiers,
                        schema.person_devices, schema.persons)
    row = conn.execute(select(d).where(d.c.device_id == device_id)).first()
    if row is None:
        return None
    q = (select(ch.c.identifier_id, i.c.kind, i.c.value, ch.c.action, ch.c.reason)
         .join(i, i.c.identifier_id == ch.c.identifier_id)
         .where(ch.c.device_id == device_id).order_by(ch.c.identifier_id))
    identifiers = [{"identifier_id": r.identifier_id, "kind": r.kind, "value": r.value,
                    "action": r.action, "reason": r.reason} for r in conn.execute(q)]
    q2 = (select(pd.c.person_id, ps.c.name, pd.c.confidence, pd.c.evidence)
          .outerjoin(ps, ps.c.person_id == pd.c.person_id)
          .where(pd.c.device_id == device_id).order_by(pd.c.confidence.desc(), pd.c.person_id))
    persons = [{"id": r.person_id, "name": r.name, "confidence": r.confidence,
                "evidence": r.evidence} for r in conn.execute(q2)]
    merged_here = [r.device_id for r in conn.execute(
        select(d.c.device_id).where(d.c.merged_into == device_id).order_by(d.c.device_id))]
    return {"id": row.device_id, "kind": row.kind, "value": row.value,
            "merged_into": row.merged_into, "merged_from": merged_here,
            "identifiers": identifiers, "persons": persons,
            "merges": _merges(conn, "device", device_id,
                              {x["identifier_id"] for x in identifiers})}


def corrections_list(conn: Connection, entity: str | None) -> list[dict[str, Any]]:
    return [{"correction_id": c.correction_id, "at": iso(c.at), "by": c.by_user,
             "entity": c.entity, "action": c.action, "target_ids": list(c.target_ids),
             "identifier_groups": c.identifier_groups}
            for c in reversed(read_corrections(conn, entity))]
