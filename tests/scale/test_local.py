"""``--mode local``: the same timeline as ``chrono run``; a failed group is reported while the
others finish, and a re-run picks up only what is unfinished; limits hold inside a worker."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from chrono.core.config import EvidenceConfig, ExtractionLimits
from chrono.scale import (
    ScaleSettings,
    WorkerSettings,
    get_mode,
    process_group,
    run_global_phases,
    run_schedule,
)
from chrono.scale import schedule as make_schedule
from chrono.scale.worker import marker_key
from tests.scale.conftest import (
    Reference,
    Sample,
    bucket_args,
    cli,
    exported,
    tiny_production,
    tiny_volume,
)


def test_local_mode_gives_the_same_events_as_chrono_run(
    sample: Sample, reference: Reference, tmp_path: Path
) -> None:
    proc = cli("schedule", "--mode", "local", *bucket_args(tmp_path, sample.production),
               "--password-file", str(sample.passwords), "--minimum-batch-size", "30",
               "--workers", "2", "--execute", "--quiet", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    db = f"sqlite:///{tmp_path / 'art' / 'chrono.db'}"
    assert exported(db, tmp_path) == reference.events
    assert exported(db, tmp_path, "documents") == exported(
        f"sqlite:///{reference.artifact_dir / 'chrono.db'}", tmp_path, "documents")


def _settings(tmp: Path, prod: Path, minimum_batch_size: int = 2) -> ScaleSettings:
    return ScaleSettings(
        source_url=str(prod), inventory_url=str(tmp / "inv"), artifact_url=str(tmp / "art"),
        report_url=str(tmp / "rep"), minimum_batch_size=minimum_batch_size, workers=2,
        show_progress=False, work_dir=str(tmp / "work"),
    )


def test_failed_group_is_reported_and_rerun_finishes_it(tmp_path: Path) -> None:
    prod = tiny_production(tmp_path / "prod")
    tiny_volume(prod, "VOL001")
    shutil.copytree(prod / "VOL001", prod / "VOL002")  # a repeated volume, in another group
    settings = _settings(tmp_path, prod)
    plan = make_schedule(settings)
    victim = plan.groups[2]
    changed = prod / victim["files"][0]["path"]
    changed.write_text(changed.read_text() + "Changed after the schedule.\n")

    proc = cli("worker", "--groups", plan.groups_url, "--index", "2", "--work-dir",
               str(tmp_path / "work"), cwd=tmp_path)
    assert proc.returncode == 1
    assert json.loads(proc.stdout.splitlines()[-1])["reason"] == "source_changed"

    result = get_mode("local", settings).execute(plan)
    assert [(g.group, g.reason) for g in result.failed] == [(2, "source_changed")], result.failed
    assert {g.status for g in result.groups if g.group != 2} == {"done"}
    assert result.ledger is None  # the global phases wait for every group
    art = tmp_path / "art"
    assert not (art / marker_key(2)).exists()
    assert all((art / marker_key(g["group"])).exists() for g in plan.groups if g["group"] != 2)
    summary = json.loads(next((tmp_path / "rep" / "schedules").glob("*.json")).read_text())
    assert summary["failed_groups"] == [2] and summary["status"] == "failed"

    again = run_schedule(settings, "local", execute=True)
    redone = {f["path"] for g in again.schedule.groups for f in g["files"]}
    # Only the failed group's files without results (a copy of content that another group
    # extracted has its artifact already).
    assert changed.relative_to(prod).as_posix() in redone
    assert redone <= {f["path"] for f in victim["files"]}
    assert not again.failed and again.ledger is not None
    assert again.ledger.status == "succeeded"

    ref = cli("run", str(prod), str(tmp_path / "ref"), "--quiet", "--workers", "2",
              cwd=tmp_path)
    assert ref.returncode == 0, ref.stderr
    ref_db = f"sqlite:///{tmp_path / 'ref' / 'chrono.db'}"
    db = f"sqlite:///{art / 'chrono.db'}"
    assert exported(db, tmp_path) == exported(ref_db, tmp_path)
    report = json.loads((tmp_path / "rep" / "report.json").read_text())
    ref_report = json.loads((tmp_path / "ref" / "report.json").read_text())
    # Files the first execution extracted count as reused in the second, as in a chrono run
    # re-run; otherwise every outcome is the one chrono run gives.
    reused = {("skipped", "artifact_exists"): ("processed", None)}
    outcomes = {f["file_id"]: reused.get((f["outcome"], f["reason"]), (f["outcome"], f["reason"]))
                for f in report["files"]}
    assert outcomes == {f["file_id"]: (f["outcome"], f["reason"]) for f in ref_report["files"]}
    assert ("duplicate", "same_content") in outcomes.values()


def test_a_file_over_a_limit_fails_alone(tmp_path: Path) -> None:
    prod = tiny_production(tmp_path / "prod", emails=2)
    (prod / "notes.txt").write_text("Plain notes without dates.\n" * 40)
    config = EvidenceConfig(limits=ExtractionLimits(max_file_bytes=600))
    plan = make_schedule(_settings(tmp_path, prod, minimum_batch_size=100))
    outcome = process_group(plan.groups_url, 0, WorkerSettings(
        config=config, work_dir=str(tmp_path / "work")))
    assert outcome.status == "done" and outcome.files == 5
    rows = [json.loads(line) for line in
            (tmp_path / "art" / marker_key(0)).read_text().splitlines()]
    by_path = {r["path"]: (r["outcome"], r["reason"]) for r in rows}
    assert by_path["notes.txt"] == ("failed", "limit_size")
    assert by_path["mail/m1.eml"] == ("processed", None)


def test_merge_extracts_what_no_group_left(tmp_path: Path) -> None:
    prod = tiny_production(tmp_path / "prod")
    settings = _settings(tmp_path, prod)
    plan = make_schedule(settings)
    outcomes = get_mode("local", settings).run_groups(plan, lambda outcome: None)
    assert {o.status for o in outcomes} == {"done"}, outcomes
    # An artifact lost after its group committed: the merge extracts it again, here.
    lost = next(f for g in plan.groups for f in g["files"] if f["path"] == "calls.csv")
    (tmp_path / "art" / "artifacts" / lost["sha256"][:2] / f"{lost['sha256']}.json").unlink()
    ledger = run_global_phases(settings, plan)
    merge = next(s for s in ledger.steps if s.name == "merge")
    assert merge.counts["extracted_in_merge"] == 1
    ref = cli("run", str(prod), str(tmp_path / "ref"), "--quiet", "--workers", "2",
              cwd=tmp_path)
    assert ref.returncode == 0, ref.stderr
    assert exported(f"sqlite:///{tmp_path / 'art' / 'chrono.db'}", tmp_path) == exported(
        f"sqlite:///{tmp_path / 'ref' / 'chrono.db'}", tmp_path)
