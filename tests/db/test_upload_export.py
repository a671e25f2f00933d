"""Upload is idempotent and export gives back what went in, on SQLite and PostgreSQL."""

import io
import json
from pathlib import Path

from chrono.db.load import count_rows
from chrono.db.schema import events, make_engine, participants
from chrono.evidence.context import EvidenceRun
from chrono.evidence.devices import run_devices
from chrono.evidence.events import events_for_artifact
from chrono.evidence.export import iter_records, write_records
from chrono.evidence.extraction import Outcome
from chrono.evidence.inventory import FileEntry
from chrono.evidence.model import Artifact, Participant, Record
from chrono.evidence.upload import upload


def _fixture(tmp_path: Path, db_url: str) -> tuple[EvidenceRun, list[FileEntry], list[dict]]:
    run = EvidenceRun(source_dir=tmp_path, artifact_dir=tmp_path / "out", db_url=db_url,
                      show_progress=False)
    entry = FileEntry(file_id="f1", path="calls.csv", sha256="a" * 64, size=10, kind="csv",
                      family_id="fam1")
    artifact = Artifact(sha256="a" * 64, kind="csv", extractor="sheets", status="processed",
                        records=[
        Record(type="call", locator="row:1", row=1, start="2025-03-03T09:05:09",
               timezone="America/New_York", duration_s=65, direction="outgoing",
               participants=[
                   Participant(role="caller", kind="phone", value="+1 (555) 521-5554"),
                   Participant(role="callee", kind="phone", value="555-201-7788", name="Bob"),
               ]),
        Record(type="email", locator="msg:0", start="2015-11-29T08:45:18+01:00",
               subject="Hi", participants=[
                   Participant(role="from", kind="email", value="Jane@Example.com"),
                   Participant(role="to", kind="email", value="bob@example.org"),
               ]),
    ])
    evs = events_for_artifact(entry, artifact, "UTC", "US")
    return run, [entry], evs


def test_upload_twice_adds_nothing_and_export_round_trips(tmp_path: Path, db_url: str) -> None:
    run, entries, evs = _fixture(tmp_path, db_url)
    outcomes = {"f1": Outcome("processed")}
    first = upload(run, entries, outcomes, evs)
    assert first["events_added"] == 2 and first["files_added"] == 1
    second = upload(run, entries, outcomes, evs)
    assert second["events_added"] == 0 and second["files_added"] == 0
    engine = make_engine(db_url)
    assert count_rows(engine, events) == 2
    assert count_rows(engine, participants) == 4

    buf = io.StringIO()
    assert write_records(iter_records(engine, "events"), buf, "jsonl") == 2
    exported = [json.loads(line) for line in buf.getvalue().splitlines()]
    by_type = {e["type"]: e for e in exported}
    call = by_type["call"]
    assert call["start"] == "2025-03-03T14:05:09Z"  # 09:05 EST is 14:05 UTC
    assert call["offset_minutes"] == -300
    assert [p["normalized"] for p in call["participants"]] == ["+15555215554", "+15552017788"]
    assert call["source"] == {"file_id": "f1", "path": "calls.csv", "sha256": "a" * 64,
                              "locator": "row:1", "page": None, "row": 1, "bates": None}
    email = by_type["email"]
    assert email["start"] == "2015-11-29T07:45:18Z" and email["offset_minutes"] == 60
    assert email["participants"][0]["normalized"] == "jane@example.com"
    assert email["duplicate_of"] is None

    run_devices(engine)  # devices are the devices step's output
    csv_buf = io.StringIO()
    assert write_records(iter_records(engine, "devices"), csv_buf, "csv") == 4  # 2 phones, 2 emails
    assert "+15555215554" in csv_buf.getvalue()
    engine.dispose()
