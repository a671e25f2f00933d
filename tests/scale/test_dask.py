"""``chrono schedule --mode dask --execute``: the same timeline as ``chrono run``, re-runs add
nothing, committed groups are not redone, and daemonic external workers still get a pool."""

from __future__ import annotations

import json
import multiprocessing
from pathlib import Path

from chrono.scale import ScaleSettings, run_schedule
from tests.scale.conftest import Reference, Sample, bucket_args, cli, exported, tiny_production


def test_dask_mode_gives_the_same_events_as_chrono_run(
    sample: Sample, reference: Reference, tmp_path: Path
) -> None:
    args = [*bucket_args(tmp_path, sample.production), "--password-file", str(sample.passwords),
            "--minimum-batch-size", "20", "--quiet"]
    proc = cli("schedule", "--mode", "dask", *args, "--execute", "--workers", "2", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    db = f"sqlite:///{tmp_path / 'art' / 'chrono.db'}"
    assert exported(db, tmp_path) == reference.events
    assert exported(db, tmp_path, "persons") == reference.persons

    summaries = list((tmp_path / "rep" / "schedules").glob("*.json"))
    summary = json.loads(summaries[0].read_text())
    assert summary["mode"] == "dask" and len(summary["groups"]) >= 3
    assert {g["status"] for g in summary["groups"]} == {"done"}
    report = json.loads((tmp_path / "rep" / "report.json").read_text())
    ref_report = json.loads((reference.artifact_dir / "report.json").read_text())
    assert report["counts"] == ref_report["counts"]
    assert [s["name"] for s in report["steps"]] == [
        "merge", "events", "upload", "dedupe", "persons", "devices", "mapping"]

    # A group whose marker exists is not redone.
    marker = tmp_path / "art" / "groups" / "0" / "extracted.ndjson"
    before = marker.stat().st_mtime_ns
    again = cli("worker", "--groups", str(tmp_path / "inv" / "groups.ndjson"), "--index", "0",
                "--work-dir", str(tmp_path / "work"), cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    outcome = json.loads(again.stdout.splitlines()[-1])
    assert (outcome["status"], outcome["reason"]) == ("skipped", "committed")
    assert marker.stat().st_mtime_ns == before

    # Re-running schedules nothing and adds nothing.
    rerun = cli("schedule", "--mode", "dask", *args, "--execute", cwd=tmp_path)
    assert rerun.returncode == 0, rerun.stderr
    assert "0 in 0 groups" in " ".join(rerun.stderr.split())
    report = json.loads((tmp_path / "rep" / "report.json").read_text())
    upload = next(s for s in report["steps"] if s["name"] == "upload")
    assert upload["counts"]["events_added"] == 0 and upload["counts"]["files_added"] == 0
    assert exported(db, tmp_path) == reference.events


def _daemon() -> bool:
    return multiprocessing.current_process().daemon


def test_external_scheduler_with_daemon_workers(tmp_path: Path) -> None:
    from distributed import Client, LocalCluster

    prod = tiny_production(tmp_path / "prod")
    ref = cli("run", str(prod), str(tmp_path / "ref"), "--quiet", "--workers", "1",
              cwd=tmp_path)
    assert ref.returncode == 0, ref.stderr
    # Workers as `dask worker` starts them: daemons, which may not fork a process pool.
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster, Client(cluster) as client:
        assert all(client.run(_daemon).values())
        settings = ScaleSettings(
            source_url=str(prod), inventory_url=str(tmp_path / "inv"),
            artifact_url=str(tmp_path / "art"), report_url=str(tmp_path / "rep"),
            minimum_batch_size=3, scheduler=cluster.scheduler_address, workers=1,
            show_progress=False, work_dir=str(tmp_path / "work"),
        )
        result = run_schedule(settings, "dask", execute=True)
    assert len(result.groups) == 3 and not result.failed
    assert result.ledger is not None and result.ledger.status == "succeeded"
    assert exported(f"sqlite:///{tmp_path / 'art' / 'chrono.db'}", tmp_path) == exported(
        f"sqlite:///{tmp_path / 'ref' / 'chrono.db'}", tmp_path)
