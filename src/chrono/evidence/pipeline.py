"""The evidence pipeline's steps, in the seed's order, and ``run_evidence`` to run them.

Seed order: inventory -> extraction -> events -> upload -> dedupe -> persons -> devices ->
mapping.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.engine import Engine

from chrono.core.crashpoints import crash_point
from chrono.core.logging import log_event
from chrono.core.steps import Pipeline, RunLedger
from chrono.db import schema
from chrono.db.load import insert_ignore
from chrono.evidence import inventory as inv
from chrono.evidence.context import EvidenceRun
from chrono.evidence.events import events_for_artifact
from chrono.evidence.extraction import Outcome, artifact_key, extract_all, load_artifact
from chrono.evidence.model import Artifact
from chrono.evidence.report import write_report

EVENTS_PREFIX = "events"
EXTRACTED_KEY = "inventory/extracted.ndjson"

pipeline: Pipeline[EvidenceRun] = Pipeline("evidence")


def _events_key(sha256: str) -> str:
    return f"{EVENTS_PREFIX}/{sha256[:2]}/{sha256}.ndjson"


@pipeline.step("inventory", outputs=(inv.FILES_KEY, inv.GROUPS_KEY))
def inventory_step(run: EvidenceRun) -> dict[str, Any]:
    """Hash and type every file under SOURCE_DIR; write files.ndjson and groups.ndjson."""
    entries = inv.build_inventory(run)
    groups = inv.assign_groups(entries, run.config.batch_size)
    inv.save_inventory(run, entries)
    run.bucket.put_lines(inv.GROUPS_KEY, groups)
    run.state["entries"] = entries
    return {"files": len(entries), "groups": len(groups),
            "bytes": sum(e.size for e in entries)}


def _entries(run: EvidenceRun) -> list[inv.FileEntry]:
    if "entries" not in run.state:
        entries = inv.load_inventory(run)
        if not entries:
            from chrono.core.errors import ConfigError

            raise ConfigError(
                "inventory_missing", "no inventory in ARTIFACT_DIR; run the inventory step first"
            )
        run.state["entries"] = entries
    return list(run.state["entries"])


@pipeline.step("extraction", inputs=(inv.FILES_KEY,), outputs=("artifacts/", EXTRACTED_KEY))
def extraction_step(run: EvidenceRun) -> dict[str, Any]:
    """Extract every unique file content into one artifact (process pool)."""
    counts = extract_all(run, _entries(run))
    run.bucket.put_lines(EXTRACTED_KEY, extracted_rows(run.state["entries"], run.state["outcomes"]))
    return counts


def extracted_rows(entries: list[inv.FileEntry], outcomes: dict[str, Outcome]
                   ) -> list[dict[str, Any]]:
    """The lines of ``inventory/extracted.ndjson``: every entry with its outcome and reason."""
    rows = []
    for e in entries:
        o = outcomes.get(e.file_id)
        rows.append({**e.to_dict(), "outcome": o.outcome if o else None,
                     "reason": o.reason if o else None})
    return rows


def _extracted(run: EvidenceRun) -> tuple[list[inv.FileEntry], dict[str, Outcome]]:
    if "outcomes" in run.state:
        return run.state["entries"], run.state["outcomes"]
    if not run.bucket.exists(EXTRACTED_KEY):
        from chrono.core.errors import ConfigError

        raise ConfigError(
            "extraction_missing", "no extraction results in ARTIFACT_DIR; run extraction first"
        )
    entries, outcomes = [], {}
    for row in run.bucket.get_lines(EXTRACTED_KEY):
        outcome, reason = row.pop("outcome"), row.pop("reason")
        entry = inv.FileEntry(**row)
        entries.append(entry)
        if outcome:
            outcomes[entry.file_id] = Outcome(outcome, reason)
    run.state["entries"], run.state["outcomes"] = entries, outcomes
    return entries, outcomes


def _canonical_processed(run: EvidenceRun) -> list[inv.FileEntry]:
    entries, outcomes = _extracted(run)
    return [
        e for e in entries
        if (o := outcomes.get(e.file_id)) is not None and (
            o.outcome == "processed" or (o.outcome == "skipped" and o.reason == "artifact_exists")
        )
    ]


@pipeline.step("events", inputs=("artifacts/",), outputs=(EVENTS_PREFIX + "/",))
def events_step(run: EvidenceRun) -> dict[str, Any]:
    """Turn artifacts into email, call, message and document events with deterministic ids."""
    bucket = run.bucket
    made = reused = 0
    todo = _canonical_processed(run)
    with run.progress("events", len(todo)) as advance:
        for e in todo:
            key = _events_key(e.sha256)
            if run.overwrite or not bucket.exists(key):
                events = events_for_artifact(
                    e, load_artifact(bucket, e.sha256), run.config.default_timezone,
                    run.config.default_region,
                )
                bucket.put_lines(key, events)
                crash_point("events.file")
                made += 1
            else:
                reused += 1
            advance()
    return {"files_with_events_written": made, "files_with_events_reused": reused}


@pipeline.step("upload", inputs=(EVENTS_PREFIX + "/",), outputs=("database",))
def upload_step(run: EvidenceRun) -> dict[str, Any]:
    """Load files and events into the database; re-runs add nothing."""
    from chrono.evidence.upload import upload

    entries, outcomes = _extracted(run)
    events: list[dict[str, Any]] = []
    seen: set[str] = set()
    for e in _canonical_processed(run):
        key = _events_key(e.sha256)
        if e.sha256 in seen or not run.bucket.exists(key):
            continue
        seen.add(e.sha256)
        events.extend(run.bucket.get_lines(key))
    counts = upload(run, entries, outcomes, events)
    counts["events_loaded"] = len(events)
    return counts


@pipeline.step("dedupe", inputs=("database",), outputs=("database",))
def dedupe_step(run: EvidenceRun) -> dict[str, Any]:
    """Mark the same email, call or message seen through several sources (never deleted)."""
    from chrono.evidence.dedupe import run_dedupe

    engine = _identity_engine(run)
    try:
        counts = run_dedupe(engine, run.config.dedupe)
        crash_point("dedupe")
        return counts
    finally:
        engine.dispose()


def _identity_engine(run: EvidenceRun) -> Engine:
    engine = schema.make_engine(run.db_url or "")
    schema.ensure_schema(engine)
    return engine


def _artifacts(run: EvidenceRun) -> Iterator[tuple[str, Artifact]]:
    """(file_id, artifact) of every processed file of this artifact folder, read lazily, once
    per content: contact lists and phone-export owners are in artifacts, not in events."""
    if "outcomes" not in run.state and not run.bucket.exists(EXTRACTED_KEY):
        return
    seen: set[str] = set()
    for e in _canonical_processed(run):
        if e.sha256 in seen or not run.bucket.exists(artifact_key(e.sha256)):
            continue
        seen.add(e.sha256)
        yield e.file_id, load_artifact(run.bucket, e.sha256)


@pipeline.step("persons", inputs=("database", "artifacts/"), outputs=("database",))
def persons_step(run: EvidenceRun) -> dict[str, Any]:
    """Cluster emails, phones, handles and names into persons, honouring manual corrections."""
    from chrono.evidence.persons import run_persons

    engine = _identity_engine(run)
    try:
        counts = run_persons(engine, run.config.identity, _artifacts(run),
                             run.config.default_region)
        crash_point("persons")
        return counts
    finally:
        engine.dispose()


@pipeline.step("devices", inputs=("database",), outputs=("database",))
def devices_step(run: EvidenceRun) -> dict[str, Any]:
    """Clean phones (E.164), IMEIs (Luhn), emails and handles; merge duplicates, drop junk."""
    from chrono.evidence.devices import run_devices

    engine = _identity_engine(run)
    try:
        counts = run_devices(engine, run.config.identity, run.config.default_region)
        crash_point("devices")
        return counts
    finally:
        engine.dispose()


@pipeline.step("mapping", inputs=("database", "artifacts/"), outputs=("database",))
def mapping_step(run: EvidenceRun) -> dict[str, Any]:
    """Link persons to the devices they use, with evidence and a confidence."""
    from chrono.evidence.mapping import run_mapping

    engine = _identity_engine(run)
    try:
        counts = run_mapping(engine, run.config.identity, _artifacts(run),
                             run.config.default_region)
        crash_point("mapping")
        return counts
    finally:
        engine.dispose()


def run_evidence(run: EvidenceRun, steps: list[str] | None = None,
                 pipe: Pipeline[EvidenceRun] | None = None) -> RunLedger:
    """Run the selected steps (all by default, in seed order) and write the run report.

    ``pipe`` swaps in another pipeline of the same steps (the scale-out run's global phases).
    """
    pipe = pipe or pipeline
    names = pipe.select(steps)
    if run.skip_event_generation:
        names = [s for s in names if s.name != "events"]
    ledger = RunLedger(
        run_id=run.run_id, pipeline="evidence", started_at=datetime.now(UTC).isoformat()
    )
    run.artifact_dir.mkdir(parents=True, exist_ok=True)
    log_event("run_start", run_id=run.run_id, workers=run.workers)
    try:
        ledger.steps = pipe.run(run, [s.name for s in names])
        ledger.status = "succeeded"
    except BaseException:
        ledger.status = "failed"
        raise
    finally:
        ledger.finished_at = datetime.now(UTC).isoformat()
        crash_point("report")
        run.bucket.put_json(f"runs/{run.run_id}.json", ledger.to_dict())
        write_report(run, ledger)
        _record_run(run, ledger)
        log_event("run_done", run_id=run.run_id, status=ledger.status)
    return ledger


def _record_run(run: EvidenceRun, ledger: RunLedger) -> None:
    if not any(s.name == "upload" for s in ledger.steps):
        return
    engine = schema.make_engine(run.db_url or "")
    schema.ensure_schema(engine)
    data = ledger.to_dict()
    with engine.begin() as conn:
        insert_ignore(conn, schema.runs, [{
            "run_id": run.run_id, "pipeline": "evidence", "status": ledger.status,
            "started_at": datetime.fromisoformat(ledger.started_at),
            "finished_at": datetime.fromisoformat(ledger.finished_at or ledger.started_at),
            "steps": data["steps"], "counts": run.state.get("report_counts", {}),
            "artifact_dir": str(run.artifact_dir),
        }])
    engine.dispose()


__all__ = ["artifact_key", "extracted_rows", "pipeline", "run_evidence"]
