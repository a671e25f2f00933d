"""Event generation: artifacts become email, call, message and document events.

Each event has a deterministic id, ``uuid5(sha256 of the file content + record locator)``, so a
re-run, or the same file found twice, never creates a second copy. Times are stored in UTC with
the original offset in minutes. Scanned or PDF pages that show a printed email header block become
email events too, as do load-file rows whose text is a printed email.
"""

from __future__ import annotations

from typing import Any

from chrono.evidence.context import stable_id
from chrono.evidence.identifiers import normalize_identifier
from chrono.evidence.inventory import FileEntry
from chrono.evidence.model import Artifact, Record
from chrono.evidence.printed_email import find_printed_email
from chrono.evidence.timeparse import to_utc

PAGE_KINDS = {"pdf", "tiff", "jpeg", "png", "gif", "bmp", "text", "docx"}
MAX_BODY_CHARS = 20_000
EVENT_TYPES = ("email", "call", "message", "document")


def event_id(sha256: str, locator: str) -> str:
    return stable_id("event", sha256, locator)


def _time_fields(start: str | None, zone: str | None, default_tz: str) -> dict[str, Any]:
    if not start:
        return {"start": None, "offset_minutes": None, "timezone": zone}
    try:
        utc, offset = to_utc(start, zone or default_tz)
    except (ValueError, OverflowError):
        return {"start": None, "offset_minutes": None, "timezone": zone}
    return {
        "start": utc.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "offset_minutes": offset,
        "timezone": zone,
    }


def _event(
    entry: FileEntry, rec: Record, etype: str, locator: str, default_tz: str, region: str
) -> dict[str, Any]:
    participants = [
        {
            "role": p.role, "kind": p.kind, "value": p.value, "name": p.name,
            "normalized": normalize_identifier(p.kind, p.value, region),
        }
        for p in rec.participants
    ]
    body = rec.body[:MAX_BODY_CHARS] if rec.body else None
    return {
        "id": event_id(entry.sha256, locator),
        "type": etype,
        **_time_fields(rec.start, rec.timezone, default_tz),
        "subject": rec.subject,
        "body": body,
        "duration_s": rec.duration_s,
        "direction": rec.direction,
        "message_id": rec.message_id,
        "participants": participants,
        "source": {
            "file_id": entry.file_id, "path": entry.path, "sha256": entry.sha256,
            "locator": locator, "page": rec.page, "row": rec.row, "bates": rec.bates,
        },
        "duplicate_of": None,
        "attributes": {k: v for k, v in rec.attributes.items() if _is_scalar(v)},
    }


def _is_scalar(value: Any) -> bool:
    return isinstance(value, str | int | float | bool) or value is None


def events_for_artifact(
    entry: FileEntry, artifact: Artifact, default_tz: str = "UTC", region: str = "US"
) -> list[dict[str, Any]]:
    """All events one processed artifact yields, in a stable order."""
    out: list[dict[str, Any]] = []
    for rec in artifact.records:
        if rec.type == "contact":
            continue
        if rec.type == "document":
            printed = find_printed_email(rec.body) if rec.body else None
            if printed is not None:
                printed.page, printed.row, printed.bates = rec.page, rec.row, rec.bates
                out.append(_event(entry, printed, "email", f"{rec.locator}:printed",
                                  default_tz, region))
            elif rec.start:
                out.append(_event(entry, rec, "document", rec.locator, default_tz, region))
            continue
        out.append(_event(entry, rec, rec.type, rec.locator, default_tz, region))
    if artifact.kind in PAGE_KINDS:
        for page in artifact.pages:
            printed = find_printed_email(page.text)
            if printed is not None:
                printed.page = page.number
                out.append(_event(entry, printed, "email", f"page:{page.number}",
                                  default_tz, region))
        created = artifact.metadata.get("created")
        if created:
            doc = Record(
                type="document", locator="document", start=str(created),
                subject=artifact.metadata.get("title"),
            )
            out.append(_event(entry, doc, "document", "document", default_tz, region))
    return out
