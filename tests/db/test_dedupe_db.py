"""run_dedupe marks copies in the database, keeps every row, and re-runs change nothing."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from sqlalchemy import select, update

from chrono.core.config import DedupeConfig
from chrono.db.load import count_rows
from chrono.db.schema import events, make_engine, participants
from chrono.evidence.context import EvidenceRun
from chrono.evidence.dedupe import find_duplicates, run_dedupe
from chrono.evidence.events import events_for_artifact
from chrono.evidence.export import iter_records
from chrono.evidence.extraction import Outcome
from chrono.evidence.inventory import FileEntry
from chrono.evidence.model import Artifact, Page, Participant, Record
from chrono.evidence.upload import upload

Direction = Literal["incoming", "outgoing"]
BODY = "Hi Bob,\n\nThe Q1 numbers are attached.\nPlease review before Thursday.\n\nJane"
PRINTED = """\
From: Jane Doe <jane.doe@example.com>
Sent: Monday, March 3, 2025 10:15 AM
To: Bob Roe <bob@example.org>
Subject: Q1 budget review

Hi Bob,
The Q1 numbers are attached.
Please review before Thursday.
"""
PEOPLE = [Participant(role="from", kind="email", value="jane.doe@example.com", name="Jane Doe"),
          Participant(role="to", kind="email", value="bob@example.org", name="Bob Roe")]


def _email(locator: str, **fields: Any) -> Record:
    values: dict[str, Any] = {"start": "2025-03-03T10:15:37+00:00", "participants": PEOPLE,
                              "subject": "Q1 budget review", "body": BODY}
    return Record(type="email", locator=locator, **(values | fields))


def _call(row: int, start: str, zone: str, direction: Direction, duration: float,
          parties: list[Participant]) -> Record:
    return Record(type="call", locator=f"row:{row}", row=row, start=start, timezone=zone,
                  direction=direction, duration_s=duration, participants=parties)


FILES: list[tuple[str, str, list[Record], list[str]]] = [
    ("mail/q1.eml", "eml", [_email("msg:0", message_id="<q1@example.com>")], []),
    ("VOL001/DATA/VOL001.dat", "dat",
     [_email("row:1", row=1, start="2025-03-03 10:15", body=" ".join(BODY.split()))], []),
    ("docs/print.pdf", "pdf", [], [PRINTED]),
    ("phone/carrier_calls.csv", "csv", [
        _call(2, "2025-03-03T14:05:09", "UTC", "outgoing", 65, [
            Participant(role="caller", kind="phone", value="+1 (555) 521-5554"),
            Participant(role="callee", kind="phone", value="555-201-7788")]),
        _call(3, "2025-03-03T16:00:00", "UTC", "outgoing", 65, [
            Participant(role="caller", kind="phone", value="+1 (555) 521-5554"),
            Participant(role="callee", kind="phone", value="555-201-7788")]),
    ], []),
    # The callee's phone export, in local time, 40 s off the carrier's clock.
    ("phone/export.xlsx", "xlsx", [
        _call(5, "2025-03-03T09:05:49", "America/New_York", "incoming", 66, [
            Participant(role="caller", kind="phone", value="15555215554", name="Jane"),
            Participant(role="callee", kind="phone", value="(555) 201-7788")]),
    ], []),
]


def _load(tmp_path: Path, db_url: str) -> dict[str, dict[str, Any]]:
    run = EvidenceRun(source_dir=tmp_path, artifact_dir=tmp_path / "out", db_url=db_url,
                      show_progress=False)
    entries, evs = [], []
    for number, (path, kind, records, pages) in enumerate(FILES):
        sha = f"{number:x}" * 64
        entry = FileEntry(file_id=f"f{number}", path=path, sha256=sha, size=10, kind=kind,
                          family_id=f"fam{number}")
        artifact = Artifact(sha256=sha, kind=kind, extractor="test", status="processed",
                            records=records,
                            pages=[Page(number=n, text=t, method="text_layer")
                                   for n, t in enumerate(pages, 1)])
        entries.append(entry)
        evs.extend(events_for_artifact(entry, artifact, "UTC", "US"))
    upload(run, entries, {e.file_id: Outcome("processed") for e in entries}, evs)
    return {f"{e['source']['path']}#{e['source']['locator']}": e for e in evs}


def _marks(db_url: str) -> dict[str, tuple[str | None, str | None]]:
    engine = make_engine(db_url)
    with engine.connect() as conn:
        rows = conn.execute(select(events.c.event_id, events.c.duplicate_of,
                                   events.c.duplicate_reason)).all()
    engine.dispose()
    return {r.event_id: (r.duplicate_of, r.duplicate_reason) for r in rows}


def test_run_dedupe_marks_copies_and_reruns_update_nothing(tmp_path: Path, db_url: str) -> None:
    loaded = _load(tmp_path, db_url)
    eml = loaded["mail/q1.eml#msg:0"]["id"]
    dat = loaded["VOL001/DATA/VOL001.dat#row:1"]["id"]
    pdf = loaded["docs/print.pdf#page:1"]["id"]
    cdr = loaded["phone/carrier_calls.csv#row:2"]["id"]
    later_call = loaded["phone/carrier_calls.csv#row:3"]["id"]
    export = loaded["phone/export.xlsx#row:5"]["id"]
    call_survivor, call_copy = (export, cdr) if export < cdr else (cdr, export)
    engine = make_engine(db_url)

    first = run_dedupe(engine)
    assert first == {
        "events": 6, "duplicates": 3, "groups": 2, "chained_groups": 0, "updated": 3,
        "by_reason:call_match": 1, "by_reason:email_loadfile": 1, "by_reason:email_print": 1,
    }
    expected = {
        eml: (None, None), dat: (eml, "email_loadfile"), pdf: (eml, "email_print"),
        call_survivor: (None, None), call_copy: (call_survivor, "call_match"),
        later_call: (None, None),
    }
    assert _marks(db_url) == expected
    # The database gives find_duplicates the same events the files did.
    assert {m.event_id: (m.duplicate_of, m.reason) for m in find_duplicates(loaded.values())} \
        == {k: v for k, v in expected.items() if v[0] is not None}

    second = run_dedupe(engine)
    assert second["updated"] == 0 and second["duplicates"] == 3
    # Every copy's provenance is reachable from the survivor in the export.
    exported = {r["id"]: r for r in iter_records(engine, "events")}
    assert [(c["id"], c["reason"], c["path"]) for c in exported[eml]["duplicates"]] == sorted(
        [(dat, "email_loadfile", "VOL001/DATA/VOL001.dat"), (pdf, "email_print",
                                                              "docs/print.pdf")])
    assert exported[dat]["duplicate_of"] == eml and exported[dat]["duplicates"] == []
    assert exported[pdf]["duplicate_reason"] == "email_print"
    assert count_rows(engine, events) == 6 and count_rows(engine, participants) == 12

    # A stale mark (an earlier run, other settings) is cleared; a changed setting unmarks.
    with engine.begin() as conn:
        conn.execute(update(events).where(events.c.event_id == later_call)
                     .values(duplicate_of=cdr, duplicate_reason="call_match"))
    assert run_dedupe(engine)["updated"] == 1
    assert _marks(db_url) == expected
    strict = run_dedupe(engine, DedupeConfig(call_time_tolerance_s=10))
    assert strict["updated"] == 1 and strict["duplicates"] == 2
    assert _marks(db_url)[call_copy] == (None, None)
    assert count_rows(engine, events) == 6
    engine.dispose()
