"""The sample production's identity traps, read back with Chrono's own extractors: namesakes,
one person's address spellings and phones, a clock-skewed call and forwards quoting earlier
emails, each as truth.json's ``traps`` describes it.
"""

from __future__ import annotations

import email
import email.policy
import hashlib
import json
import re
from collections import Counter
from datetime import UTC, datetime, timedelta
from email.utils import parseaddr
from pathlib import Path
from typing import Any

import pytest

from chrono.core.config import EvidenceConfig
from chrono.evidence.events import events_for_artifact
from chrono.evidence.extract.base import ExtractContext, SourceFile, load_extractors, run_extractor
from chrono.evidence.identifiers import normalize_identifier
from chrono.evidence.inventory import FileEntry
from chrono.evidence.sample import generate_production, plan_production
from tests.acceptance.scoring import namesake_merges, score_duplicates, score_persons


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    out = tmp_path_factory.mktemp("traps")
    generate_production(out, size="small", seed=5)
    return out, json.loads((out / "truth.json").read_text(encoding="utf-8"))


def _extract(out: Path, rel: str, tmp: Path) -> tuple[Any, list[dict[str, Any]]]:
    """The artifact and events Chrono's pipeline gets from one file of the production."""
    load_extractors()
    path = out / rel
    kind = {".eml": "eml", ".csv": "csv", ".xlsx": "xlsx"}[path.suffix]
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    source = SourceFile(path=path, sha256=sha, size=path.stat().st_size, kind=kind,
                        name=path.name)
    artifact = run_extractor(source, ExtractContext(config=EvidenceConfig(),
                                                    artifact_dir=tmp / sha[:12]))
    assert artifact.status == "processed", artifact.reason
    entry = FileEntry(file_id=sha[:8], path=rel, sha256=sha, size=source.size, kind=kind,
                      family_id=sha[:8])
    return artifact, events_for_artifact(entry, artifact)


def _persons(truth: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {p["id"]: p for p in truth["persons"]}


def _events_with(truth: dict[str, Any], value: str) -> list[dict[str, Any]]:
    return [e for e in truth["events"] if any(p["value"] == value for p in e["participants"])]


def test_every_size_plans_every_trap() -> None:
    for size in ("small", "medium"):
        traps = plan_production(size, seed=3).truth["traps"]
        assert traps["namesakes"] and traps["spellings"]
        assert traps["clock_skew"] and traps["forwards"]
        assert all(t["skew_s"] in (40, -40) for t in traps["clock_skew"])
    medium = plan_production("medium", seed=3).truth["traps"]["namesakes"]
    assert max(len(t["persons"]) for t in medium) >= 3


def test_namesakes_share_the_name_and_nothing_else(small: tuple[Path, dict[str, Any]]) -> None:
    _, truth = small
    persons = _persons(truth)
    for trap in truth["traps"]["namesakes"]:
        members = [persons[pid] for pid in trap["persons"]]
        assert len(members) >= 2
        assert len({m["name"] for m in members}) == 1
        assert all(m["namesake_group"] == trap["group"] for m in members)
        domains = [e.partition("@")[2] for m in members for e in m["emails"]]
        assert len(domains) == len(set(domains)) == len(members)
        phones = [n for m in members for n in m["phones"]]
        assert len(phones) == len(set(phones))
        for member in members:
            kinds = {e["type"] for value in member["emails"] + member["phones"]
                     for e in _events_with(truth, value)}
            assert {"email", "call"} <= kinds, member["id"]
    grouped = {p["id"] for p in truth["persons"] if p["namesake_group"]}
    assert grouped == {pid for t in truth["traps"]["namesakes"] for pid in t["persons"]}


def test_persons_list_every_identifier(small: tuple[Path, dict[str, Any]]) -> None:
    _, truth = small
    seen: Counter[tuple[str, str]] = Counter()
    for person in truth["persons"]:
        listed = [(i["kind"], i["value"]) for i in person["identifiers"]]
        assert listed == ([("email", e) for e in person["emails"]]
                          + [("phone", n) for n in person["phones"]])
        seen.update(listed)
    assert max(seen.values()) == 1  # no identifier belongs to two people


def test_clustering_by_name_falls_into_the_namesake_trap(
    small: tuple[Path, dict[str, Any]],
) -> None:
    _, truth = small

    def export(key: str) -> list[dict[str, Any]]:
        clusters: dict[str, list[dict[str, Any]]] = {}
        for p in truth["persons"]:
            clusters.setdefault(p[key], []).extend(
                {"kind": i["kind"], "value": i["value"], "method": "test", "score": 1.0,
                 "evidence": {}} for i in p["identifiers"])
        return [{"id": k, "name": None, "identifiers": v, "devices": [], "merges": []}
                for k, v in clusters.items()]

    by_id, by_name = export("id"), export("name")
    assert score_persons(truth, by_id)[0] == 1.0
    assert namesake_merges(truth, by_id) == 0
    assert namesake_merges(truth, by_name) == len(truth["traps"]["namesakes"])
    assert score_persons(truth, by_name)[0] < 1.0


def test_spelling_person_writes_from_three_spellings_under_one_name(
    small: tuple[Path, dict[str, Any]], tmp_path: Path,
) -> None:
    out, truth = small
    persons = _persons(truth)
    for trap in truth["traps"]["spellings"]:
        person = persons[trap["person"]]
        emails = [i["value"] for i in trap["identifiers"] if i["kind"] == "email"]
        phones = [i["value"] for i in trap["identifiers"] if i["kind"] == "phone"]
        assert emails == person["emails"] and phones == person["phones"]
        assert len(emails) == 3 and len(phones) == 2
        assert len({e.partition("@")[2] for e in emails}) == 1
        first, last = (re.sub(r"[^a-z]", "", part.lower()) for part in person["name"].split())
        assert [e.partition("@")[0] for e in emails] == [f"{first}.{last}", f"{first}{last}",
                                                         f"{first[0]}{last}"]
        senders: dict[str, set[str | None]] = {}
        shown: set[str] = set()
        signed = False
        for event in truth["events"]:
            sources = [s for s in event["sources"] if s.endswith(".eml") and "#" not in s]
            sender = next(p for p in event["participants"] if p["role"] in ("from", "caller",
                                                                            "sender"))
            if event["type"] != "email" or sender["person"] != person["id"] or not sources:
                continue
            _, [got] = _extract(out, sources[0], tmp_path)
            from_ = next(p for p in got["participants"] if p["role"] == "from")
            senders.setdefault(from_["normalized"], set()).add(from_["name"])
            raw = email.message_from_bytes((out / sources[0]).read_bytes(),
                                           policy=email.policy.default)
            shown.add(parseaddr(str(raw["From"]))[1])
            signed = signed or phones[1][-4:] in re.sub(r"\D", "", got["body"] or "")
        assert set(emails) <= set(senders)
        assert all(names == {person["name"]} for names in senders.values())
        assert any(v != v.lower() for v in shown), "the capitalised display variant"
        assert signed, "a signature shows the second phone"


def test_contact_cards_tie_the_phones_and_keep_namesakes_apart(
    small: tuple[Path, dict[str, Any]], tmp_path: Path,
) -> None:
    out, truth = small
    persons = _persons(truth)
    cards: list[tuple[str | None, set[str]]] = []
    for path in sorted((out / "production").rglob("contacts.csv")):
        artifact, events = _extract(out, str(path.relative_to(out)), tmp_path)
        assert events == []  # contact rows are not communications
        for record in artifact.records:
            assert record.type == "contact"
            cards.append((record.participants[0].name,
                          {normalize_identifier(p.kind, p.value) for p in record.participants}))
    for trap in truth["traps"]["spellings"]:
        person = persons[trap["person"]]
        assert any(name == person["name"] and set(person["phones"]) <= ids
                   for name, ids in cards)
    for trap in truth["traps"]["namesakes"]:
        for pid in trap["persons"]:
            member = persons[pid]
            mine = set(member["emails"] + member["phones"])
            assert any(name == member["name"] and ids <= mine and ids for name, ids in cards)
        one_list = [(n, ids) for n, ids in cards if n == persons[trap["persons"][0]]["name"]]
        assert len({frozenset(ids) for _, ids in one_list}) >= 2


def test_skewed_call_is_one_event_with_a_cdr_and_an_export_source(
    small: tuple[Path, dict[str, Any]], tmp_path: Path,
) -> None:
    out, truth = small
    events = {e["id"]: e for e in truth["events"]}
    duplicates = {d["event"]: d["sources"] for d in truth["duplicates"]}
    for trap in truth["traps"]["clock_skew"]:
        event = events[trap["event"]]
        cdr, export = trap["sources"]
        assert sorted(event["sources"]) == sorted([cdr, export])
        assert sorted(duplicates[event["id"]]) == sorted([cdr, export])
        assert "carrier_calls" in cdr and "phone_export_calls" in export
        assert cdr.split("/")[2] != export.split("/")[2]  # two custodians' phones
        start = datetime.strptime(event["start"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
        numbers = {p["value"] for p in event["participants"]}
        copies = []
        for source, offset in ((cdr, 0), (export, trap["skew_s"])):
            rel, locator = source.split("#")
            _, extracted = _extract(out, rel, tmp_path)
            copy = next(e for e in extracted if e["source"]["locator"] == locator)
            assert {p["normalized"] for p in copy["participants"]} == numbers
            seen = datetime.strptime(copy["start"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
            assert seen - start == timedelta(seconds=offset)
            copies.append({**copy, "id": source})
        # The pair is a true duplicate for the scorer, at 40 s apart.
        copies[1]["duplicate_of"] = copies[0]["id"]
        assert score_duplicates({"events": [event]}, copies)[:2] == (1.0, 1.0)


def test_forwards_quote_their_original_and_are_their_own_events(
    small: tuple[Path, dict[str, Any]], tmp_path: Path,
) -> None:
    out, truth = small
    events = {e["id"]: e for e in truth["events"]}
    assert truth["traps"]["forwards"]
    for trap in truth["traps"]["forwards"]:
        forward, original = events[trap["event"]], events[trap["original"]]
        assert forward["id"] != original["id"]
        assert not set(forward["sources"]) & set(original["sources"])
        assert forward["start"] > original["start"]
        _, [fwd] = _extract(out, forward["sources"][0], tmp_path)
        orig_source = next(s for s in original["sources"] if s.endswith(".eml") and "#" not in s)
        _, [orig] = _extract(out, orig_source, tmp_path)
        assert fwd["subject"] in (f"Fwd: {orig['subject']}", f"FW: {orig['subject']}")
        body = fwd["body"] or ""
        assert "Forwarded message" in body or "Original Message" in body
        assert (orig["body"] or "").strip() in body
        forward_ids = {p["value"] for p in forward["participants"]}
        assert {p["normalized"] for p in fwd["participants"]} == forward_ids
        later = (datetime.fromisoformat(fwd["start"].replace("Z", "+00:00"))
                 - datetime.fromisoformat(orig["start"].replace("Z", "+00:00")))
        assert later > timedelta(minutes=10)
        # Marking the forward a copy of its original is a false duplicate pair.
        assert score_duplicates({"events": [forward, original]}, [orig, fwd])[0] == 1.0
        fwd["duplicate_of"] = orig["id"]
        assert score_duplicates({"events": [forward, original]}, [orig, fwd])[0] == 0.0
