"""Person-device mapping (step ``mapping``): which person uses which device, and how sure we are.

Evidence kinds gathered for a (person, device) pair:

* ``identifier`` -- an identifier of the device is in the person's cluster (weight 0.5 x the
  link's score; the entry carries that ``score``);
* ``custodian``  -- the person owns the phone export or carrier record the device appears in as
  owner (:func:`chrono.evidence.persons.find_owners`), or the IMEI named by an owner's call or
  message (0.9);
* ``contact``    -- a contact entry lists the device's number or address for the person (0.6);
* ``header_pair`` -- an email header shows the address with a display name that matches the
  person's name (0.5);
* ``caller_id``  -- a call or message shows the number with a name that matches the person's
  name (0.4);
* ``signature``  -- the number appears in the body (before any quoted text, first
  :data:`SIGNATURE_SCAN_CHARS` characters) of an email the person sent (0.4); at most
  :data:`MAX_SIGNATURE_EMAILS` emails per sender are scanned.

A name matches when its rapidfuzz ``token_sort_ratio`` with the person's name (case and
punctuation ignored) is at least ``IdentityConfig.name_threshold``.

Confidence: each kind k with n_k sightings has strength ``s_k = 1 - (1 - w_k) ** min(n_k, 3)``
(repeated sightings help, up to three), and ``confidence = 1 - prod_k (1 - s_k)``, rounded to 4
places. Pairs below ``IdentityConfig.min_mapping_confidence`` are not stored. A person seen once
with a phone number (identifier, score 1) has 0.5; adding a caller-ID name makes it 0.7.

Evidence is stored as ``[{"kind", "events": [...], "files": [...], "count": n}]`` (at most 20
ids of each, sorted; ``identifier`` entries add ``score``), in the order of :data:`WEIGHTS`.
Links point at the device the evidence names; a manually merged device keeps its own links and
its ``merged_into`` says where it went.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from math import prod
from typing import Any

import phonenumbers
from rapidfuzz import fuzz
from sqlalchemy import delete, select
from sqlalchemy.engine import Connection, Engine

from chrono.core.config import IdentityConfig
from chrono.db import schema
from chrono.db.load import chunked, insert_ignore
from chrono.evidence.devices import clean_identifier, iter_event_imeis
from chrono.evidence.identifiers import normalize_identifier
from chrono.evidence.model import Artifact
from chrono.evidence.persons import KEY_KINDS, find_owners
from chrono.evidence.upload import identifier_id

WEIGHTS: dict[str, float] = {
    "custodian": 0.9, "contact": 0.6, "header_pair": 0.5, "identifier": 0.5,
    "caller_id": 0.4, "signature": 0.4,
}
"""Weight of one sighting of each evidence kind (the ``identifier`` weight is scaled by the
identifier's link score)."""
MAX_SIGHTINGS_COUNTED = 3
MAX_EVIDENCE = 20
SIGNATURE_SCAN_CHARS = 4_000
MAX_SIGNATURE_EMAILS = 200
"""Emails per sender whose bodies are scanned for numbers (the first by event id)."""
INSERT_CHUNK_ROWS = 5000
HEADER_ROLES = ("from", "to", "cc", "bcc", "reply_to")
COMM_TYPES = ("call", "message")

_PUNCTUATION = re.compile(r"[^\w]+")
# A cheap test before the (slow) phonenumbers matcher: some run of at least seven digits.
_DIGIT_RUN = re.compile(r"\d(?:[\s().\-/]{0,3}\d){6,}")
# Where quoted or forwarded text starts: a phone number below it is somebody else's.
_QUOTE_START = re.compile(
    r"^(?:>|-{2,}\s*(?:original|forwarded) message|on .{1,200} wrote:|from:\s)",
    re.IGNORECASE | re.MULTILINE,
)


@dataclass
class Sightings:
    """Evidence of one kind for one (person, device) pair."""

    events: set[str] = field(default_factory=set)
    files: set[str] = field(default_factory=set)
    count: int = 0
    score: float = 0.0

    def add(self, event: str | None = None, file: str | None = None, count: int = 1) -> None:
        if event:
            self.events.add(event)
        if file:
            self.files.add(file)
        self.count += count


def strength(kind: str, count: int, score: float = 1.0) -> float:
    weight = WEIGHTS[kind] * (score if kind == "identifier" else 1.0)
    return 1 - (1 - weight) ** min(max(count, 1), MAX_SIGHTINGS_COUNTED)


def confidence_of(evidence: Sequence[dict[str, Any]]) -> float:
    """Combined confidence of stored evidence entries (see the module docstring)."""
    misses = [1 - strength(e["kind"], int(e.get("count", 1)), float(e.get("score", 1.0)))
              for e in evidence]
    return round(1 - prod(misses), 4)


def _entry(kind: str, s: Sightings) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "kind": kind, "events": sorted(s.events)[:MAX_EVIDENCE],
        "files": sorted(s.files)[:MAX_EVIDENCE], "count": s.count,
    }
    if kind == "identifier":
        entry["score"] = round(s.score, 6)
    return entry


def combine_links(rows: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """One link from several links of the same device (used when persons are merged)."""
    merged: dict[str, Sightings] = {}
    for row in rows:
        for e in row["evidence"]:
            s = merged.setdefault(e["kind"], Sightings())
            s.add(count=int(e.get("count", 0)))
            s.events.update(e.get("events", []))
            s.files.update(e.get("files", []))
            s.score = max(s.score, float(e.get("score", 0.0)))
    evidence = [_entry(k, merged[k]) for k in WEIGHTS if k in merged]
    return {"confidence": confidence_of(evidence), "evidence": evidence}


def names_match(a: str | None, b: str | None, threshold: float) -> bool:
    """Token-sorted similarity, so ``Stone, Bob`` is ``Bob Stone``."""
    if not a or not b:
        return False
    a, b = _PUNCTUATION.sub(" ", a.casefold()), _PUNCTUATION.sub(" ", b.casefold())
    return fuzz.token_sort_ratio(a, b) / 100 >= threshold


def signature_text(body: str) -> str:
    """The part of an email body that the sender wrote: before any quote, bounded."""
    head = body[:SIGNATURE_SCAN_CHARS]
    quote = _QUOTE_START.search(head)
    return head[: quote.start()] if quote else head


def phones_in(text: str, region: str) -> list[str]:
    matches = phonenumbers.PhoneNumberMatcher(text, region,
                                              leniency=phonenumbers.Leniency.POSSIBLE)
    return sorted({phonenumbers.format_number(m.number, phonenumbers.PhoneNumberFormat.E164)
                   for m in matches})


class Collector:
    """Evidence per (person, device) and kind."""

    def __init__(self) -> None:
        self.pairs: dict[tuple[str, str], dict[str, Sightings]] = defaultdict(dict)

    def get(self, person: str, device: str, kind: str) -> Sightings:
        return self.pairs[(person, device)].setdefault(kind, Sightings())

    def rows(self, min_confidence: float) -> list[dict[str, Any]]:
        out = []
        for (person, device), kinds in sorted(self.pairs.items()):
            evidence = [_entry(k, kinds[k]) for k in WEIGHTS if k in kinds]
            confidence = confidence_of(evidence)
            if confidence >= min_confidence:
                out.append({"person_id": person, "device_id": device,
                            "confidence": confidence, "evidence": evidence})
        return out


@dataclass
class Lookups:
    person_of: dict[str, str]
    """identifier id -> person id"""
    device_of: dict[str, str]
    """identifier id -> device id"""
    person_name: dict[str, str | None]
    phone_devices: dict[str, list[str]]
    """E.164 -> phone device ids"""


def _lookups(conn: Connection) -> Lookups:
    pi, ch, ps, d = (schema.person_identifiers, schema.device_changes, schema.persons,
                     schema.devices)
    phone_devices: dict[str, list[str]] = defaultdict(list)
    for r in conn.execute(select(d.c.device_id, d.c.value).where(d.c.kind == "phone")
                          .order_by(d.c.device_id)):
        phone_devices[r.value].append(r.device_id)
    return Lookups(
        person_of={r.identifier_id: r.person_id for r in conn.execute(
            select(pi.c.identifier_id, pi.c.person_id))},
        device_of={r.identifier_id: r.device_id for r in conn.execute(
            select(ch.c.identifier_id, ch.c.device_id).where(ch.c.device_id.is_not(None)))},
        person_name={r.person_id: r.name for r in conn.execute(select(ps.c.person_id, ps.c.name))},
        phone_devices=dict(phone_devices),
    )


def _identifier_evidence(conn: Connection, look: Lookups, col: Collector) -> None:
    pi = schema.person_identifiers
    for r in conn.execute(select(pi).order_by(pi.c.identifier_id)):
        device = look.device_of.get(r.identifier_id)
        if device is None:
            continue
        s = col.get(r.person_id, device, "identifier")
        evidence = r.evidence or {}
        s.events.update(evidence.get("events", []))
        s.files.update(evidence.get("files", []))
        s.count += int(evidence.get("count", 1))
        s.score = max(s.score, float(r.score))


def _participant_evidence(
    conn: Connection, look: Lookups, col: Collector, owners: dict[str, set[str]],
    threshold: float,
) -> None:
    e, p = schema.events, schema.participants
    q = (select(p.c.event_id, p.c.role, p.c.identifier_id, p.c.name, e.c.type, e.c.file_id)
         .join(e, e.c.event_id == p.c.event_id).order_by(p.c.event_id, p.c.position))
    for r in conn.execute(q):
        person = look.person_of.get(r.identifier_id)
        device = look.device_of.get(r.identifier_id)
        if person is None or device is None:
            continue
        if r.type in COMM_TYPES and r.identifier_id in owners.get(r.file_id, ()):
            col.get(person, device, "custodian").add(r.event_id, r.file_id)
            continue
        if not names_match(r.name, look.person_name.get(person), threshold):
            continue
        if r.type == "email" and r.role in HEADER_ROLES:
            col.get(person, device, "header_pair").add(r.event_id)
        elif r.type in COMM_TYPES:
            col.get(person, device, "caller_id").add(r.event_id)


def _imei_evidence(conn: Connection, look: Lookups, col: Collector,
                   owners: dict[str, set[str]]) -> None:
    for event, file_id, imei in iter_event_imeis(conn):
        device = look.device_of.get(identifier_id("imei", imei))
        if device is None:
            continue
        for owner in sorted(owners.get(file_id, ())):
            person = look.person_of.get(owner)
            if person is not None:
                col.get(person, device, "custodian").add(event, file_id)


def _signature_evidence(conn: Connection, look: Lookups, col: Collector, region: str) -> None:
    e, p = schema.events, schema.participants
    q = (select(e.c.event_id, e.c.body, p.c.identifier_id)
         .join(p, p.c.event_id == e.c.event_id)
         .where(e.c.type == "email", p.c.role == "from", e.c.body.is_not(None))
         .order_by(e.c.event_id))
    scanned: dict[str, int] = defaultdict(int)
    for r in conn.execute(q):
        person = look.person_of.get(r.identifier_id)
        if person is None or scanned[person] >= MAX_SIGNATURE_EMAILS:
            continue
        scanned[person] += 1
        text = signature_text(r.body)
        if not _DIGIT_RUN.search(text):
            continue
        for phone in phones_in(text, region):
            for device in look.phone_devices.get(phone, ()):
                col.get(person, device, "signature").add(r.event_id)


def _contact_evidence(
    artifacts: Iterable[tuple[str, Artifact]], look: Lookups, col: Collector,
    config: IdentityConfig, region: str,
) -> None:
    for file_id, artifact in artifacts:
        for rec in artifact.records:
            if rec.type != "contact":
                continue
            ids = [
                identifier_id(part.kind, normalize_identifier(part.kind, part.value, region))
                for part in rec.participants
                if part.kind in KEY_KINDS
                and clean_identifier(part.kind, part.value, region, config).value is not None
            ]
            persons = sorted({look.person_of[i] for i in ids if i in look.person_of})
            devices = sorted({look.device_of[i] for i in ids if i in look.device_of})
            for person in persons:
                for device in devices:
                    col.get(person, device, "contact").add(file=file_id)


def run_mapping(
    engine: Engine, config: IdentityConfig | None = None,
    artifacts: Iterable[tuple[str, Artifact]] | None = None, region: str = "US",
) -> dict[str, int]:
    """Step ``mapping``: rebuild ``person_devices`` from the persons, devices and evidence."""
    config = config or IdentityConfig()
    col = Collector()
    with engine.begin() as conn:
        look = _lookups(conn)
        owners = find_owners(conn)
        _identifier_evidence(conn, look, col)
        _participant_evidence(conn, look, col, owners, config.name_threshold)
        _imei_evidence(conn, look, col, owners)
        _signature_evidence(conn, look, col, region)
        _contact_evidence(artifacts or (), look, col, config, region)
        rows = col.rows(config.min_mapping_confidence)
        conn.execute(delete(schema.person_devices))
        for chunk in chunked(rows, INSERT_CHUNK_ROWS):
            insert_ignore(conn, schema.person_devices, chunk)
    kinds: dict[str, int] = defaultdict(int)
    for row in rows:
        for e in row["evidence"]:
            kinds[e["kind"]] += 1
    return {
        "person_devices": len(rows),
        "pairs_below_threshold": len(col.pairs) - len(rows),
        **{f"links_with_{k}": kinds[k] for k in WEIGHTS},
    }
