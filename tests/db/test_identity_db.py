"""Persons, devices and mapping on SQLite and PostgreSQL: re-runs, corrections, audit, export."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.engine import Engine

from chrono.core.config import IdentityConfig
from chrono.db import schema
from chrono.evidence.context import EvidenceRun
from chrono.evidence.corrections import (
    CorrectionError,
    list_corrections,
    merge_devices,
    merge_persons,
    unmerge_device,
    unmerge_person,
)
from chrono.evidence.devices import device_id, run_devices
from chrono.evidence.events import events_for_artifact
from chrono.evidence.export import iter_records, write_records
from chrono.evidence.extraction import Outcome
from chrono.evidence.inventory import FileEntry
from chrono.evidence.mapping import run_mapping
from chrono.evidence.model import Artifact, Participant, Record
from chrono.evidence.persons import person_id_for, run_persons
from chrono.evidence.upload import identifier_id, upload

CANARY = "Zebulon Quickfire"
CANARY_EMAIL = "zeb.quickfire@example.com"
CANARY_PHONE = "+15555215554"
IMEI = "49-015420-323751-8"
BAD_IMEI = "490154203237519"


def _p(role: str, kind: str, value: str, name: str | None = None) -> Participant:
    return Participant(role=role, kind=kind, value=value, name=name)  # type: ignore[arg-type]


def _call(n: int, direction: str, other: Participant, owner_role: str, kind: str = "call",
          imei: str | None = None) -> Record:
    owner = _p(owner_role, "phone", "+1 (555) 521-5554", CANARY)
    fields: dict[str, Any] = {"type": kind, "direction": direction,
                              "attributes": {"IMEI": imei} if imei else {}}
    return Record(locator=f"row:{n}", row=n, start=f"2025-03-0{n % 9 + 1}T09:00:00",
                  timezone="America/New_York", duration_s=60 if kind == "call" else None,
                  participants=[other, owner] if owner_role in ("callee", "recipient")
                  else [owner, other], **fields)


def _email(n: int, sender: Participant, to: list[Participant], body: str = "Hello") -> Record:
    return Record(type="email", locator=f"msg:{n}", start=f"2025-03-0{n + 1}T10:00:00+00:00",
                  subject=f"Note {n}", body=body, message_id=f"<m{n}@example.com>",
                  participants=[sender, *to])


def production() -> list[tuple[FileEntry, Artifact]]:
    """A phone export, a mailbox and a contact list, with a canary name and junk callers."""
    export = Artifact(sha256="b" * 64, kind="csv", extractor="sheets", status="processed",
                      records=[
        _call(5, "outgoing", _p("callee", "phone", "555-201-7788", "Bob Stone"), "caller",
              imei=IMEI),
        _call(6, "incoming", _p("caller", "phone", "(555) 201-7788", "Bob Stone"), "callee",
              imei=BAD_IMEI),
        _call(7, "incoming", _p("caller", "phone", "611"), "callee"),
        _call(8, "missed", _p("caller", "handle", "Unknown"), "callee"),
        _call(9, "outgoing", _p("recipient", "phone", "+1 555 303 4455", "Carol Diaz"),
              "sender", kind="message"),
        _call(10, "incoming", _p("caller", "phone", "555-404-5566"), "callee"),
    ])
    bob = _p("to", "email", "bob@example.org", "Bob Stone")
    mail = Artifact(sha256="c" * 64, kind="mbox", extractor="email", status="processed",
                    records=[
        _email(0, _p("from", "email", "Zeb.Quickfire@Example.com", CANARY), [bob],
               body="See you there.\n--\nZebulon Quickfire\nCell +1 (555) 521-5554\n\n"
                    "On Monday, Bob Stone wrote:\n> call Carol at 555-303-4455"),
        _email(1, _p("from", "email", "bob@example.org", "Bob Stone"), [
            _p("to", "email", CANARY_EMAIL), _p("cc", "email", "carol@diaz.test", "Carol Diaz")]),
        _email(2, _p("from", "email", "chris.lee@acme.test", "Chris Lee"), [bob]),
        _email(3, _p("from", "email", "clee2@acme.test", "Chris Lee"), [bob]),
        _email(4, _p("from", "email", "dk@dana.test"), [bob]),
    ])
    contacts = Artifact(sha256="d" * 64, kind="csv", extractor="sheets", status="processed",
                        records=[
        Record(type="contact", locator="row:2", row=2, participants=[
            _p("participant", "phone", "555-404-5566", "Dana"),
            _p("participant", "email", "DK@dana.test", "Dana")]),
        Record(type="contact", locator="row:3", row=3, participants=[
            _p("participant", "phone", "555-201-7788", "Bob Stone"),
            _p("participant", "email", "bob@example.org", "Bob Stone")]),
    ])
    # A second export whose owner is known by name only.
    by_name = Artifact(sha256="e" * 64, kind="csv", extractor="sheets", status="processed",
                       records=[Record(
        type="message", locator="row:4", row=4, start="2025-03-09T10:00:00", body="hi",
        participants=[_p("owner", "name", "Bob Stone"),
                      _p("participant", "phone", "+1 555 303 4455")])])
    out = []
    for file_id, path, artifact in (("f-export", "phone/export.csv", export),
                                    ("f-export2", "phone/bob.csv", by_name),
                                    ("f-mail", "mail/box.mbox", mail),
                                    ("f-contacts", "phone/contacts.csv", contacts)):
        entry = FileEntry(file_id=file_id, path=path, sha256=artifact.sha256, size=100,
                          kind=artifact.kind, family_id=file_id)
        out.append((entry, artifact))
    return out


def build_identity_db(tmp_path: Path, db_url: str) -> list[tuple[str, Artifact]]:
    """Upload the production's events; returns the artifacts as the pipeline passes them."""
    run = EvidenceRun(source_dir=tmp_path, artifact_dir=tmp_path / "out", db_url=db_url,
                      show_progress=False)
    files = production()
    events = [ev for entry, artifact in files for ev in events_for_artifact(entry, artifact)]
    upload(run, [e for e, _ in files], {e.file_id: Outcome("processed") for e, _ in files},
           events)
    return [(entry.file_id, artifact) for entry, artifact in files]


def run_identity(engine: Engine, artifacts: list[tuple[str, Artifact]] | None,
                 config: IdentityConfig | None = None) -> dict[str, dict[str, int]]:
    return {
        "persons": run_persons(engine, config, artifacts),
        "devices": run_devices(engine, config),
        "mapping": run_mapping(engine, config, artifacts),
    }


DERIVED = (schema.persons, schema.person_identifiers, schema.devices, schema.device_changes,
           schema.person_devices)


def snapshot(engine: Engine) -> dict[str, list[tuple[Any, ...]]]:
    with engine.connect() as conn:
        return {
            t.name: sorted(
                tuple(json.dumps(v, sort_keys=True) if isinstance(v, dict | list) else v
                      for v in row)
                for row in conn.execute(select(t)))
            for t in DERIVED
        }


def export(engine: Engine, kind: str) -> list[dict[str, Any]]:
    buf = io.StringIO()
    write_records(iter_records(engine, kind), buf, "jsonl")
    return [json.loads(line) for line in buf.getvalue().splitlines()]


def person_of(engine: Engine, kind: str, value: str) -> str:
    pi = schema.person_identifiers
    with engine.connect() as conn:
        return str(conn.execute(select(pi.c.person_id).where(
            pi.c.identifier_id == identifier_id(kind, value))).scalar_one())


@pytest.fixture
def identity(tmp_path: Path, db_url: str) -> Iterator[tuple[Engine, list]]:
    artifacts = build_identity_db(tmp_path, db_url)
    engine = schema.make_engine(db_url)
    schema.ensure_schema(engine)
    yield engine, artifacts
    engine.dispose()


def test_persons_devices_and_mapping(identity: tuple[Engine, list]) -> None:
    engine, artifacts = identity
    counts = run_identity(engine, artifacts)
    assert counts["persons"]["contact_entries"] == 2

    zeb = person_of(engine, "phone", CANARY_PHONE)
    assert person_of(engine, "email", CANARY_EMAIL) == zeb  # same shown name, no conflict
    assert zeb == person_id_for(f"email:{CANARY_EMAIL}")
    assert person_of(engine, "phone", "+15552017788") == person_of(engine, "email",
                                                                   "bob@example.org")
    # Dana's phone and address meet only in the contact list (a one-word name never matches).
    assert person_of(engine, "phone", "+15554045566") == person_of(engine, "email",
                                                                   "dk@dana.test")
    # Two Chris Lees at one domain with incompatible addresses stay two people.
    assert person_of(engine, "email", "chris.lee@acme.test") != person_of(
        engine, "email", "clee2@acme.test")

    persons = {p["id"]: p for p in export(engine, "persons")}
    zeb_rec = persons[zeb]
    assert zeb_rec["name"] == CANARY and zeb_rec["origin"] == "auto"
    methods = {i["kind"]: i for i in zeb_rec["identifiers"]}
    assert methods["phone"]["evidence"]["count"] == 6  # on every row of the export
    assert methods["phone"]["evidence"]["events"]
    dana = persons[person_of(engine, "email", "dk@dana.test")]
    assert "f-contacts" in {f for i in dana["identifiers"] for f in i["evidence"]["files"]}
    # Junk callers belong to nobody.
    all_values = {i["value"] for p in persons.values() for i in p["identifiers"]}
    assert "611" not in all_values and "unknown" not in all_values

    devices = {d["id"]: d for d in export(engine, "devices")}
    phone = devices[device_id("phone", CANARY_PHONE)]
    assert phone["persons"][0]["id"] == zeb
    kinds = {e["kind"] for e in phone["persons"][0]["evidence"]}
    assert {"identifier", "custodian", "signature"} <= kinds
    assert phone["persons"][0]["confidence"] > 0.95
    # The number quoted below "... wrote:" is Carol's, not the sender's signature.
    carol_phone = devices[device_id("phone", "+15553034455")]
    assert zeb not in {p["id"] for p in carol_phone["persons"]}
    bob_phone = devices[device_id("phone", "+15552017788")]
    assert {"identifier", "caller_id", "contact"} <= {
        e["kind"] for e in bob_phone["persons"][0]["evidence"]}
    with engine.connect() as conn:
        changes = {r.identifier_id: r for r in conn.execute(select(schema.device_changes))}
    assert changes[identifier_id("phone", "611")].reason == "short_code"
    assert changes[identifier_id("handle", "unknown")].reason == "junk_value"
    assert all(r.reason for r in changes.values())
    assert changes[identifier_id("imei", BAD_IMEI)].reason == "invalid_imei"
    # The IMEI named on the owner's rows is the owner's handset.
    imei = devices[device_id("imei", "490154203237518")]
    assert imei["identifiers"][0]["action"] == "normalized"
    assert [(p["id"], p["evidence"][0]["kind"]) for p in imei["persons"]] == [(zeb, "custodian")]
    assert {d["kind"] for d in devices.values()} == {"phone", "email", "imei"}
    # A bare name attaches to the person whose name it matches.
    bob = person_of(engine, "email", "bob@example.org")
    assert person_of(engine, "name", "bob stone") == bob
    name_link = next(i for i in persons[bob]["identifiers"] if i["kind"] == "name")
    assert name_link["method"] == "name_match" and name_link["score"] == 1.0


def test_rerun_leaves_identical_rows(identity: tuple[Engine, list]) -> None:
    engine, artifacts = identity
    run_identity(engine, artifacts)
    first = snapshot(engine)
    assert all(first[t.name] for t in DERIVED)
    run_identity(engine, artifacts)
    assert snapshot(engine) == first


def test_without_contacts_the_contact_only_link_is_missing(identity: tuple[Engine, list]
                                                          ) -> None:
    engine, _ = identity
    run_identity(engine, None)
    assert person_of(engine, "phone", "+15554045566") != person_of(engine, "email",
                                                                   "dk@dana.test")


def test_thresholds_are_configurable(identity: tuple[Engine, list]) -> None:
    engine, artifacts = identity
    run_identity(engine, artifacts, IdentityConfig(min_mapping_confidence=0.99))
    with engine.connect() as conn:
        confidences = [r.confidence for r in conn.execute(select(schema.person_devices))]
    assert confidences and min(confidences) >= 0.99


def test_person_merge_and_unmerge_survive_reruns(identity: tuple[Engine, list]) -> None:
    engine, artifacts = identity
    run_identity(engine, artifacts)
    a = person_of(engine, "email", "chris.lee@acme.test")
    b = person_of(engine, "email", "clee2@acme.test")
    merged = merge_persons(engine, [b, a], "analyst-1")
    assert merged.target_ids == [b, a] and merged.at.tzinfo is not None
    # Visible right away, without a re-run.
    one = person_of(engine, "email", "chris.lee@acme.test")
    assert one == person_of(engine, "email", "clee2@acme.test")
    record = next(p for p in export(engine, "persons") if p["id"] == one)
    assert record["origin"] == "manual"
    assert [m["action"] for m in record["merges"]] == ["merge"]
    assert record["merges"][0]["by"] == "analyst-1"
    immediate = snapshot(engine)["persons"]

    run_identity(engine, artifacts)
    assert person_of(engine, "email", "chris.lee@acme.test") == person_of(
        engine, "email", "clee2@acme.test") == one
    assert snapshot(engine)["persons"] == immediate

    undone = unmerge_person(engine, one, "analyst-2")
    assert len(undone.identifier_groups) == 2
    assert person_of(engine, "email", "chris.lee@acme.test") != person_of(
        engine, "email", "clee2@acme.test")
    run_identity(engine, artifacts)
    assert person_of(engine, "email", "chris.lee@acme.test") != person_of(
        engine, "email", "clee2@acme.test")

    # A person formed automatically is split into its identifiers, and stays split.
    zeb = person_of(engine, "phone", CANARY_PHONE)
    unmerge_person(engine, zeb, "analyst-1")
    assert person_of(engine, "phone", CANARY_PHONE) != person_of(engine, "email", CANARY_EMAIL)
    run_identity(engine, artifacts)
    assert person_of(engine, "phone", CANARY_PHONE) != person_of(engine, "email", CANARY_EMAIL)
    assert {p["origin"] for p in export(engine, "persons")
            if p["id"] == person_of(engine, "phone", CANARY_PHONE)} == {"manual"}

    # ...until a later merge joins them again.
    merge_persons(engine, [person_of(engine, "phone", CANARY_PHONE),
                           person_of(engine, "email", CANARY_EMAIL)], "analyst-3")
    run_identity(engine, artifacts)
    assert person_of(engine, "phone", CANARY_PHONE) == person_of(engine, "email", CANARY_EMAIL)


def test_audit_log_is_append_only(identity: tuple[Engine, list]) -> None:
    engine, artifacts = identity
    run_identity(engine, artifacts)
    a = person_of(engine, "email", "chris.lee@acme.test")
    b = person_of(engine, "email", "clee2@acme.test")
    merge_persons(engine, [a, b], "u1")
    before = list_corrections(engine)
    unmerge_person(engine, person_of(engine, "email", "clee2@acme.test"), "u2")
    phone, email = device_id("phone", CANARY_PHONE), device_id("email", CANARY_EMAIL)
    merge_devices(engine, [phone, email], "u3")
    run_identity(engine, artifacts)
    after = list_corrections(engine)
    assert after[: len(before)] == before
    assert [(c.entity, c.action, c.by_user) for c in after] == [
        ("person", "merge", "u1"), ("person", "unmerge", "u2"), ("device", "merge", "u3")]
    assert [c.correction_id for c in after] == sorted(c.correction_id for c in after)
    assert all(c.at.tzinfo is not None for c in after)


def test_device_merge_and_unmerge_survive_reruns(identity: tuple[Engine, list]) -> None:
    engine, artifacts = identity
    run_identity(engine, artifacts)
    phone, email = device_id("phone", CANARY_PHONE), device_id("email", CANARY_EMAIL)
    merge_devices(engine, [phone, email], "analyst")
    devices = {d["id"]: d for d in export(engine, "devices")}
    assert devices[email]["merged_into"] == phone and devices[phone]["merged_into"] is None
    assert devices[email]["merges"][0]["action"] == "merge"
    run_identity(engine, artifacts)
    devices = {d["id"]: d for d in export(engine, "devices")}
    assert devices[email]["merged_into"] == phone
    with pytest.raises(CorrectionError) as exc:
        merge_devices(engine, [email, phone], "analyst")
    assert exc.value.code == "already_merged"

    unmerge_device(engine, email, "analyst")
    run_identity(engine, artifacts)
    assert all(d["merged_into"] is None for d in export(engine, "devices"))


def test_device_split_of_identifiers_that_clean_alike(identity: tuple[Engine, list]) -> None:
    engine, artifacts = identity
    # An identifier stored under another normaliser: it cleans to the same E.164 number.
    raw = identifier_id("phone", "555-521-5554")
    with engine.begin() as conn:
        conn.execute(schema.identifiers.insert().values(
            identifier_id=raw, kind="phone", value="555-521-5554"))
    run_identity(engine, artifacts)
    phone = device_id("phone", CANARY_PHONE)
    record = next(d for d in export(engine, "devices") if d["id"] == phone)
    assert {(i["value"], i["action"]) for i in record["identifiers"]} == {
        (CANARY_PHONE, "kept"), ("555-521-5554", "merged")}
    unmerge_device(engine, phone, "analyst")
    run_identity(engine, artifacts)
    with engine.connect() as conn:
        row = conn.execute(select(schema.device_changes).where(
            schema.device_changes.c.identifier_id == raw)).one()
    assert row.device_id != phone and row.reason == "manual_unmerge"


def test_errors_name_ids_never_pii(identity: tuple[Engine, list],
                                   caplog: pytest.LogCaptureFixture) -> None:
    engine, artifacts = identity
    caplog.set_level(logging.DEBUG)
    run_identity(engine, artifacts)
    missing = "00000000-0000-0000-0000-000000000000"
    with pytest.raises(CorrectionError) as exc:
        merge_persons(engine, [person_of(engine, "phone", CANARY_PHONE), missing], "u")
    assert exc.value.code == "person_unknown" and missing in str(exc.value)
    zeb = person_of(engine, "phone", CANARY_PHONE)
    unmerge_person(engine, zeb, "u")
    single = person_of(engine, "phone", CANARY_PHONE)
    with pytest.raises(CorrectionError) as exc:
        unmerge_person(engine, single, "u")
    assert exc.value.code == "nothing_to_unmerge" and single in str(exc.value)
    with pytest.raises(CorrectionError) as exc:
        merge_devices(engine, [device_id("phone", CANARY_PHONE)], "u")
    assert exc.value.code == "merge_needs_two"
    with pytest.raises(CorrectionError):
        merge_persons(engine, [zeb, single], "  ")
    text = str(exc.value) + caplog.text
    for pii in (CANARY, CANARY_EMAIL, CANARY_PHONE, "5555215554", "Quickfire"):
        assert pii not in text
