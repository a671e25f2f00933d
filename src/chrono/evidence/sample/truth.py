"""Ground-truth bookkeeping for the sample production (serialised to ``truth.json``).

Sources are strings: a path relative to the output folder (``production/...``), optionally
followed by ``#``-separated locators inside that file, outermost first:

- ``#row:N``        1-based spreadsheet/CSV row (header and preamble rows count, as a sheet shows);
- ``#page:N``       1-based page of a PDF or multi-page TIFF;
- ``#msg:N``        0-based message of an mbox;
- ``#bates:ABC…``   a Concordance DAT row, by BEGBATES;
- ``#entry:NAME``   an archive entry (``a.zip#entry:inner.zip#entry:mail.eml``);
- ``#attachment:NAME`` an email attachment, by file name.

Identity traps (namesakes, address spellings, clock-skewed calls, forwards) are listed under
``traps`` so scoring can check each one; see :meth:`TruthBook.traps_json`.
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
class SkewTrap:
    """A call shown by a carrier CDR at its true time and by a phone export ``skew_s`` off."""

    id: str
    event: TruthEvent
    skew_s: int
    reference_source: str = ""
    """The CDR row (true time)."""
    skewed_source: str = ""
    """The phone-export row whose clock is ``skew_s`` seconds off."""


@dataclass
class ForwardTrap:
    """A forward ("Fwd: ...") quoting an earlier email: two events, not duplicates."""

    id: str
    forward: TruthEvent
    original: TruthEvent


@dataclass
class TruthBook:
    """Collects events, documents and hostile files while the plan is built."""

    cast: Cast
    events: list[TruthEvent] = field(default_factory=list)
    documents: list[dict[str, Any]] = field(default_factory=list)
    hostile: list[dict[str, Any]] = field(default_factory=list)
    skews: list[SkewTrap] = field(default_factory=list)
    forwards: list[ForwardTrap] = field(default_factory=list)

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

    def add_skew(self, event: TruthEvent, skew_s: int) -> SkewTrap:
        trap = SkewTrap(f"skew-{len(self.skews) + 1}", event, skew_s)
        self.skews.append(trap)
        return trap

    def add_forward(self, forward: TruthEvent, original: TruthEvent) -> None:
        self.forwards.append(ForwardTrap(f"forward-{len(self.forwards) + 1}", forward, original))

    def traps_json(self) -> dict[str, list[dict[str, Any]]]:
        """The ``traps`` object of truth.json."""
        cast = self.cast
        for trap in self.skews:
            placed = {trap.reference_source, trap.skewed_source}
            if "" in placed or set(trap.event.sources) != placed:
                raise ValueError(f"{trap.id} is not exactly one CDR row and one export row")
        return {
            "namesakes": [
                {"id": f"namesake-{group.removeprefix('ng-')}", "group": group,
                 "persons": [p.id for p in members]}
                for group, members in cast.namesake_groups.items()
            ],
            "spellings": [
                {"id": f"spelling-{n}", "person": p.id,
                 "identifiers": _identifiers(p.emails, p.phones)}
                for n, p in enumerate(cast.spelling_people, start=1)
            ],
            "clock_skew": [
                {"id": t.id, "event": t.event.id, "skew_s": t.skew_s,
                 "sources": [t.reference_source, t.skewed_source]}
                for t in self.skews
            ],
            "forwards": [
                {"id": t.id, "event": t.forward.id, "original": t.original.id}
                for t in self.forwards
            ],
        }

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
                 "identifiers": _identifiers(p.emails, p.phones),
                 "namesake_group": p.namesake_group,
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
            "traps": self.traps_json(),
            "hostile": self.hostile,
            "canaries": canaries,
            "files": files,
        }


def _identifiers(emails: list[str], phones: list[str]) -> list[dict[str, str]]:
    return ([{"kind": "email", "value": e} for e in emails]
            + [{"kind": "phone", "value": n} for n in phones])
