"""Person creation: observations, junk that must never link people, corrections as constraints."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from chrono.core.config import IdentityConfig
from chrono.db import schema
from chrono.evidence.context import EvidenceRun
from chrono.evidence.corrections import Correction
from chrono.evidence.events import events_for_artifact
from chrono.evidence.extraction import Outcome
from chrono.evidence.inventory import FileEntry
from chrono.evidence.model import Artifact, Participant, Record
from chrono.evidence.persons import (
    Observations,
    clean_name,
    contact_observations,
    identifier_key,
    person_constraints,
    run_persons,
)
from chrono.evidence.upload import identifier_id, upload

CONFIG = IdentityConfig()


def test_clean_name() -> None:
    assert clean_name("  Jane   Roe ", CONFIG) == "Jane Roe"
    assert clean_name("'Jane Roe'", CONFIG) == "Jane Roe"
    for junk in ("Unknown", "jane@example.com", "+1 555 521 5554", "J", "", None):
        assert clean_name(junk, CONFIG) is None


def test_identifier_key_uses_device_cleaning() -> None:
    assert identifier_key("phone", "555-521-5554", "US", CONFIG) == "phone:+15555215554"
    assert identifier_key("handle", "@Bob", "US", CONFIG) == "handle:bob"
    assert identifier_key("handle", "unknown", "US", CONFIG) is None
    assert identifier_key("phone", "611", "US", CONFIG) is None
    assert identifier_key("name", "jane roe", "US", CONFIG) is None


def test_contact_entries_become_one_group_each() -> None:
    artifact = Artifact(sha256="d" * 64, kind="csv", extractor="sheets", status="processed",
                        records=[
        Record(type="contact", locator="row:2", participants=[
            Participant(role="participant", kind="phone", value="555-404-5566", name="Dana K"),
            Participant(role="participant", kind="email", value="DK@dana.test", name="Dana K"),
            Participant(role="participant", kind="handle", value="unknown", name="Dana K")]),
        Record(type="contact", locator="row:3", participants=[
            Participant(role="participant", kind="name", value="Only A Name")]),
        Record(type="call", locator="row:4", participants=[
            Participant(role="caller", kind="phone", value="555-404-5566")]),
    ])
    obs = Observations()
    assert contact_observations([("f-c", artifact)], obs, CONFIG, "US") == 1
    frame = obs.frame()
    assert frame.height == 2  # the junk handle is left out, the name-only entry is not used
    assert set(frame["group"]) == {"contact:f-c:row:2"}
    assert set(frame["method"]) == {"contact"} and set(frame["evidence"]) == {"f-c"}
    assert sorted(v for v in frame["phone"] if v) == ["+15554045566"]
    assert sorted(v for v in frame["email"] if v) == ["dk@dana.test"]
    assert obs.files == {"f-c"}


def _c(n: int, action: str, groups: list[list[str]]) -> Correction:
    return Correction(n, datetime(2025, 1, n, tzinfo=UTC), "u", "person", action, [], groups)


KEY_OF = {"a1": "email:a@x.test", "a2": "phone:+15550000001", "b1": "email:b@y.test",
          "c1": "email:c@z.test", "n1": "ignored"}


def test_merge_must_links_every_key_of_every_group() -> None:
    constraints, touched = person_constraints([_c(1, "merge", [["a1", "a2"], ["b1"]])], KEY_OF)
    assert set(constraints.must_link) == {("email:a@x.test", "phone:+15550000001"),
                                          ("email:b@y.test", "phone:+15550000001")}
    assert not constraints.cannot_link
    assert touched == {"email:a@x.test", "phone:+15550000001", "email:b@y.test"}


def test_later_unmerge_wins_over_earlier_merge_and_back() -> None:
    merge = _c(1, "merge", [["a1", "a2"], ["b1"]])
    unmerge = _c(2, "unmerge", [["a1", "a2"], ["b1"]])
    constraints, _ = person_constraints([merge, unmerge], KEY_OF)
    assert set(constraints.must_link) == {("email:a@x.test", "phone:+15550000001")}
    assert set(constraints.cannot_link) == {("email:a@x.test", "email:b@y.test"),
                                            ("email:b@y.test", "phone:+15550000001")}
    again, _ = person_constraints([merge, unmerge, _c(3, "merge", [["a1"], ["b1"]])], KEY_OF)
    assert not again.cannot_link
    assert ("email:a@x.test", "email:b@y.test") in set(again.must_link)


def test_corrections_of_vanished_identifiers_are_ignored() -> None:
    constraints, touched = person_constraints(
        [_c(1, "unmerge", [["gone1"], ["gone2"]]), _c(2, "merge", [["a1"], ["gone3"]])], KEY_OF)
    assert not constraints.must_link and not constraints.cannot_link and not touched


def _upload(tmp_path: Path, db_url: str, records: list[Record]) -> None:
    run = EvidenceRun(source_dir=tmp_path, artifact_dir=tmp_path / "out", db_url=db_url,
                      show_progress=False)
    entry = FileEntry(file_id="f1", path="mail.mbox", sha256="a" * 64, size=1, kind="mbox",
                      family_id="f1")
    artifact = Artifact(sha256="a" * 64, kind="mbox", extractor="email", status="processed",
                        records=records)
    upload(run, [entry], {"f1": Outcome("processed")}, events_for_artifact(entry, artifact))


def _email(n: int, parts: list[Participant]) -> Record:
    return Record(type="email", locator=f"msg:{n}", start="2025-03-03T10:00:00+00:00",
                  participants=parts)


def test_junk_identifiers_never_join_two_people(tmp_path: Path, db_url: str) -> None:
    # Without cleanup "unknown" would be one handle shown as both names, and name matching
    # would pull Ann and Ben together through it.
    _upload(tmp_path, db_url, [
        _email(0, [Participant(role="from", kind="email", value="ann@alpha.test",
                               name="Ann Alpha"),
                   Participant(role="to", kind="handle", value="Unknown", name="Ann Alpha")]),
        _email(1, [Participant(role="from", kind="email", value="ben@beta.test",
                               name="Ben Beta"),
                   Participant(role="to", kind="handle", value="unknown", name="Ben Beta")]),
    ])
    engine = schema.make_engine(db_url)
    counts = run_persons(engine, CONFIG)
    assert counts["persons"] == 2
    pi = schema.person_identifiers
    with engine.connect() as conn:
        rows = {r.identifier_id: r.person_id for r in conn.execute(pi.select())}
    assert identifier_id("handle", "unknown") not in rows
    assert rows[identifier_id("email", "ann@alpha.test")] != rows[
        identifier_id("email", "ben@beta.test")]
    engine.dispose()


def test_name_threshold_is_configurable(tmp_path: Path, db_url: str) -> None:
    # A rare spelling of a common name (Jaro-Winkler 0.95) is a misspelling of it, so the
    # threshold alone decides whether the two addresses are one person.
    _upload(tmp_path, db_url, [
        *(_email(n, [Participant(role="from", kind="email", value="jr@one.test",
                                 name="Jonathan Rivers")]) for n in range(12)),
        _email(12, [Participant(role="from", kind="email", value="jriv@two.test",
                                name="Jonathon Rivers")]),
    ])
    engine = schema.make_engine(db_url)
    assert run_persons(engine, IdentityConfig(name_threshold=0.9))["persons"] == 1
    assert run_persons(engine, IdentityConfig(name_threshold=0.99))["persons"] == 2
    engine.dispose()
