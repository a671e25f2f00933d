"""Ground-truth bookkeeping for the sample production (serialised to ``truth.json``).

Sources are strings: a path relative to the output folder (``production/...``), optionally
followed by ``#``-separated locators inside that file, outermost first:

- ``#row:N``        1-based spreadsheet/CSV row (header and preamble rows count, as a sheet shows);
- ``#page:N``       1-based page of a PDF or multi-page TIFF;
- ``#msg:N``        0-based message of an mbox;
- ``#bates:ABC…``   a Concordance DAT row, by BEGBATES;
- ``#entry:NAME``   an archive entry (``a.zip#entry:inner.zip#entry:mail.eml``);
- ``#attachment:NAME`` an email attachment, by file name.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from chrono.evidence.sample.people import Cast


@dataclass
class TruthEvent:
    """One logical email, call or message, with every file or record that shows it."""

    id: str
    type: str
    start: datetime
    participants: list[tuple[str, str, str]]
    """(role, kind, value) with value lower-case (emails) or E.164 (phones)."""
    sources: list[str] = field(default_factory=list)

    def add_source(self, source: str) -> None:
        if source not in self.sources:
            self.sources.append(source)


@dataclass
class TruthBook:
    """Collects events, documents and hostile files while the plan is built."""

    cast: Cast
    events: list[TruthEvent] = field(default_factory=list)
    documents: list[dict[str, Any]] = field(default_factory=list)
    hostile: list[dict[str, Any]] = field(default_factory=list)

    def new_event(
        self, type_: str, start: datetime, participants: list[tuple[str, str, str]]
    ) -> TruthEvent:
        event = TruthEvent(
            id=f"t-{len(self.events) + 1:06d}", type=type_,
            start=start.astimezone(UTC).replace(microsecond=0), participants=participants,
        )
        self.events.append(event)
        return event

    def add_document(self, path: str, type_: str, pages: int, **extra: Any) -> None:
        self.documents.append({"path": path, "type": type_, "pages": pages, **extra})

    def add_hostile(self, path: str, expected: str, reason: str, **extra: Any) -> None:
        self.hostile.append({"path": path, "expected": expected, "reason": reason, **extra})

    def to_json(self, seed: int, size: str, canaries: list[str], files: int) -> dict[str, Any]:
        cast = self.cast
        events = self.events
        orphans = [e.id for e in events if not e.sources]
        if orphans:
            raise ValueError(f"{len(orphans)} planned events were never placed in a file")
        return {
            "seed": seed,
            "size": size,
            "default_timezone": "UTC",
            "events": [
                {
                    "id": e.id,
                    "type": e.type,
                    "start": e.start.strftime("%Y-%m-%dT%H:%M:%SZ"),
                    "participants": [
                        {"role": role, "kind": kind, "value": value,
                         "person": cast.person_of(kind, value)}
                        for role, kind, value in e.participants
                    ],
                    "sources": e.sources,
                }
                for e in events
            ],
            "documents": self.documents,
            "persons": [
                {"id": p.id, "name": p.name, "emails": p.emails, "phones": p.phones,
                 "timezone": p.timezone, "custodian": p.folder or None}
                for p in cast.people
            ],
            "devices": [
                {"id": f"d-{i + 1:03d}", "kind": "phone", "value": p.phone, "owner": p.id}
                for i, p in enumerate(cast.custodians)
            ],
            "duplicates": [
                {"event": e.id, "sources": e.sources}
                for e in events
                if len(e.sources) > 1
            ],
            "hostile": self.hostile,
            "canaries": canaries,
            "files": files,
        }
