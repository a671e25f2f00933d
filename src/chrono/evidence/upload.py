"""Upload step: files, events, identifiers and participants into the timeline database."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from chrono.db import schema
from chrono.db.load import chunked, count_rows, insert_ignore
from chrono.evidence.context import EvidenceRun, stable_id
from chrono.evidence.extraction import artifact_key, load_artifact
from chrono.evidence.inventory import FileEntry

MAX_TEXT_CHARS = 2_000_000


def identifier_id(kind: str, normalized: str) -> str:
    return stable_id("identifier", kind, normalized)


def file_rows(run: EvidenceRun, entries: list[FileEntry], outcomes: dict[str, Any]) -> Iterator[
    dict[str, Any]
]:
    bucket = run.bucket
    for e in entries:
        outcome = outcomes.get(e.file_id)
        page_count = text = extractor = None
        if e.kind != "link" and bucket.exists(artifact_key(e.sha256)):
            artifact = load_artifact(bucket, e.sha256)
            extractor = artifact.extractor
            page_count = artifact.metadata.get("page_count") or (len(artifact.pages) or None)
            text = artifact.text[:MAX_TEXT_CHARS] if artifact.pages else None
        yield {
            "file_id": e.file_id, "source_id": run.source_id, "path": e.path,
            "sha256": e.sha256, "size": e.size, "kind": e.kind, "parent_id": e.parent_id,
            "family_id": e.family_id, "depth": e.depth,
            "outcome": outcome.outcome if outcome else "unknown",
            "reason": outcome.reason if outcome else None,
            "page_count": page_count, "extractor": extractor, "text": text,
        }


def _parse_start(value: str | None) -> datetime | None:
    if not value:
        return None
    return datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)


def event_rows(events: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], ...]:
    ev_rows, id_rows, part_rows = [], {}, []
    for ev in events:
        src = ev["source"]
        ev_rows.append({
            "event_id": ev["id"], "type": ev["type"], "start_utc": _parse_start(ev["start"]),
            "offset_minutes": ev["offset_minutes"], "timezone": ev["timezone"],
            "subject": ev["subject"], "body": ev["body"], "duration_s": ev["duration_s"],
            "direction": ev["direction"], "message_id": ev["message_id"],
            "file_id": src["file_id"], "sha256": src["sha256"], "path": src["path"],
            "locator": src["locator"], "page": src["page"], "row": src["row"],
            "bates": src["bates"], "duplicate_of": ev["duplicate_of"],
            "duplicate_reason": None, "attributes": ev["attributes"],
        })
        for position, p in enumerate(ev["participants"]):
            ident = identifier_id(p["kind"], p["normalized"])
            id_rows[ident] = {"identifier_id": ident, "kind": p["kind"], "value": p["normalized"]}
            part_rows.append({
                "event_id": ev["id"], "position": position, "role": p["role"],
                "identifier_id": ident, "value": p["value"], "name": p["name"],
            })
    return ev_rows, list(id_rows.values()), part_rows


def upload(run: EvidenceRun, entries: list[FileEntry], outcomes: dict[str, Any],
           events: list[dict[str, Any]]) -> dict[str, int]:
    engine = schema.make_engine(run.db_url or "")
    schema.ensure_schema(engine)
    before = {t.name: count_rows(engine, t) for t in (schema.files, schema.events)}
    size = run.config.upload_chunk_rows
    with engine.begin() as conn:
        insert_ignore(conn, schema.sources, [
            {"source_id": run.source_id, "kind": "evidence", "root": str(run.source_dir)}
        ])
    with run.progress("upload", len(entries) + len(events)) as advance:
        for chunk in chunked(file_rows(run, entries, outcomes), size):
            with engine.begin() as conn:
                insert_ignore(conn, schema.files, chunk)
            advance(len(chunk))
        for i in range(0, len(events), size):
            batch = events[i : i + size]
            ev_rows, id_rows, part_rows = event_rows(batch)
            with engine.begin() as conn:
                insert_ignore(conn, schema.identifiers, id_rows)
                insert_ignore(conn, schema.events, ev_rows)
                insert_ignore(conn, schema.participants, part_rows)
            advance(len(batch))
    after = {t.name: count_rows(engine, t) for t in (schema.files, schema.events)}
    engine.dispose()
    return {
        "files_added": after["files"] - before["files"],
        "events_added": after["events"] - before["events"],
        "events_total": after["events"],
    }
