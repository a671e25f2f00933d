"""Person-device mapping: the confidence formula, signature scanning, thresholds."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from chrono.core.config import IdentityConfig
from chrono.db import schema
from chrono.evidence.context import EvidenceRun
from chrono.evidence.devices import device_id, run_devices
from chrono.evidence.events import events_for_artifact
from chrono.evidence.extraction import Outcome
from chrono.evidence.inventory import FileEntry
from chrono.evidence.mapping import (
    combine_links,
    confidence_of,
    names_match,
    phones_in,
    run_mapping,
    signature_text,
    strength,
)
from chrono.evidence.model import Artifact, Participant, Record
from chrono.evidence.persons import run_persons
from chrono.evidence.upload import upload


def test_strength_grows_with_sightings_up_to_three() -> None:
    assert strength("custodian", 1) == pytest.approx(0.9)
    assert strength("signature", 2) == pytest.approx(1 - 0.6 ** 2)
    assert strength("signature", 3) == strength("signature", 30)
    assert strength("identifier", 1, score=0.5) == pytest.approx(0.25)


def test_confidence_combines_kinds_as_independent_evidence() -> None:
    one = [{"kind": "identifier", "count": 1, "score": 1.0}]
    assert confidence_of(one) == 0.5
    two = [*one, {"kind": "caller_id", "count": 1}]
    assert confidence_of(two) == pytest.approx(1 - 0.5 * 0.6)
    assert confidence_of([]) == 0.0
    assert confidence_of(two) > confidence_of(one)


def test_combine_links_unions_evidence_by_kind() -> None:
    a = {"evidence": [{"kind": "identifier", "events": ["e2", "e1"], "files": [], "count": 2,
                       "score": 0.8}]}
    b = {"evidence": [{"kind": "identifier", "events": ["e3"], "files": ["f1"], "count": 1,
                       "score": 1.0},
                      {"kind": "custodian", "events": ["e3"], "files": ["f1"], "count": 1}]}
    combined = combine_links([a, b])
    assert [e["kind"] for e in combined["evidence"]] == ["custodian", "identifier"]
    ident = combined["evidence"][1]
    assert ident == {"kind": "identifier", "events": ["e1", "e2", "e3"], "files": ["f1"],
                     "count": 3, "score": 1.0}
    assert combined["confidence"] == confidence_of(combined["evidence"])


def test_signature_text_stops_at_quoted_text() -> None:
    body = "Thanks.\n--\nJane\nCell 555-521-5554\n\nOn Mon, Bob wrote:\n> 555-201-7788"
    assert phones_in(signature_text(body), "US") == ["+15555215554"]
    forwarded = "FYI\n-----Original Message-----\nFrom: x\nCall 555-201-7788"
    assert phones_in(signature_text(forwarded), "US") == []
    assert phones_in(signature_text("x" * 5000 + " 555-201-7788"), "US") == []


def test_names_match_uses_the_threshold() -> None:
    assert names_match("Stone, Bob", "bob stone", 0.99)  # token order and commas do not count
    assert names_match("Bob  Stone", "bob stone", 0.92)
    assert not names_match("Bob Stone", "Rob Stein", 0.92)
    assert not names_match(None, "Bob Stone", 0.5)


def _upload(tmp_path: Path, db_url: str, signatures: int) -> None:
    """Jane's emails carry a number in her signature; that number also calls once, nameless."""
    records = [
        Record(type="email", locator=f"msg:{n}", start=f"2025-03-0{n + 1}T10:00:00+00:00",
               body=f"Note {n}\n--\nJane Roe\nDesk +1 555 777 0101\n", participants=[
                   Participant(role="from", kind="email", value="jane@roe.test",
                               name="Jane Roe"),
                   Participant(role="to", kind="email", value="bob@example.org")])
        for n in range(signatures)
    ]
    records.append(Record(type="call", locator="row:9", start="2025-03-09T10:00:00",
                          participants=[
        Participant(role="caller", kind="phone", value="555-777-0101"),
        Participant(role="callee", kind="phone", value="555-201-7788")]))
    run = EvidenceRun(source_dir=tmp_path, artifact_dir=tmp_path / "out", db_url=db_url,
                      show_progress=False)
    entry = FileEntry(file_id="f1", path="mail.mbox", sha256="a" * 64, size=1, kind="mbox",
                      family_id="f1")
    artifact = Artifact(sha256="a" * 64, kind="mbox", extractor="email", status="processed",
                        records=records)
    upload(run, [entry], {"f1": Outcome("processed")}, events_for_artifact(entry, artifact))


def _jane_links(db_url: str, config: IdentityConfig) -> dict[str, float]:
    engine = schema.make_engine(db_url)
    run_persons(engine, config)
    run_devices(engine, config)
    run_mapping(engine, config)
    pi, pd = schema.person_identifiers, schema.person_devices
    with engine.connect() as conn:
        jane = conn.execute(select(pi.c.person_id).join(
            schema.identifiers, schema.identifiers.c.identifier_id == pi.c.identifier_id).where(
            schema.identifiers.c.value == "jane@roe.test")).scalar_one()
        links = {r.device_id: r.confidence for r in conn.execute(
            select(pd).where(pd.c.person_id == jane))}
    engine.dispose()
    return links


def test_one_signature_is_too_weak_two_are_enough(tmp_path: Path, db_url: str) -> None:
    desk = device_id("phone", "+15557770101")
    _upload(tmp_path / "one", db_url, signatures=1)
    assert desk not in _jane_links(db_url, IdentityConfig())


def test_repeated_signatures_link_the_number(tmp_path: Path, db_url: str) -> None:
    desk = device_id("phone", "+15557770101")
    _upload(tmp_path, db_url, signatures=2)
    links = _jane_links(db_url, IdentityConfig())
    assert links[desk] == pytest.approx(1 - 0.6 ** 2)
    assert links[device_id("email", "jane@roe.test")] > 0.5
    # A stricter threshold drops the signature-only link but keeps the strong one.
    strict = _jane_links(db_url, IdentityConfig(min_mapping_confidence=0.7))
    assert desk not in strict and device_id("email", "jane@roe.test") in strict
