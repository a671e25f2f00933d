"""``chrono schedule`` alone: groups.ndjson, batch sizes, whole volumes, prefixes, skipping."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from chrono.core.errors import ConfigError
from chrono.evidence.context import stable_id
from chrono.scale import ScaleSettings, schedule
from chrono.scale.schedule import NOT_SCHEDULED
from tests.scale.conftest import ROOT, Reference, Sample, bucket_args, cli, tiny_volume


def settings(tmp: Path, source: Path, **kw: object) -> ScaleSettings:
    return ScaleSettings(
        source_url=str(source), inventory_url=str(tmp / "inv"),
        artifact_url=str(kw.pop("artifacts", tmp / "art")), report_url=str(tmp / "rep"),
        workers=2, show_progress=False, work_dir=str(tmp / "work"), **kw,  # type: ignore[arg-type]
    )


def lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_groups_hold_the_minimum_and_keep_volumes_whole(
    sample: Sample, reference: Reference, tmp_path: Path
) -> None:
    plan = schedule(settings(tmp_path, sample.production, minimum_batch_size=20))
    groups = lines(tmp_path / "inv" / "groups.ndjson")
    assert groups == plan.groups and len(groups) >= 3
    assert [g["group"] for g in groups] == list(range(len(groups)))
    assert all(g["file_count"] >= 20 for g in groups[:-1])
    assert all(g["file_count"] == len(g["files"]) for g in groups)
    paths = [f["path"] for g in groups for f in g["files"]]
    on_disk = sorted(p.relative_to(sample.production).as_posix()
                     for p in sample.production.rglob("*") if p.is_file())
    assert sorted(paths) == on_disk  # every file once

    volume_groups = {g["group"] for g in groups for f in g["files"]
                     if f["path"].startswith("VOL001/")}
    assert len(volume_groups) == 1  # DAT, TEXT, IMAGES and NATIVES together
    volume = next(g for g in groups if g["group"] in volume_groups)
    assert {f["path"].split("/")[1] for f in volume["files"] if f["path"].startswith("VOL001/")
            } == {"DATA", "TEXT", "IMAGES", "NATIVES"}

    # Same ids, hashes and kinds as chrono run's inventory of the same folder.
    ref = {r["path"]: r for r in lines(reference.artifact_dir / "inventory" / "files.ndjson")}
    for g in groups:
        assert g["source"] == str(sample.production)
        assert g["artifact_bucket"] == str(tmp_path / "art")
        for f in g["files"]:
            assert set(f) >= {"path", "size", "sha256", "kind", "family_id", "file_id"}
            assert f["file_id"] == stable_id("file", f["path"])
            for key in ("file_id", "sha256", "size", "kind", "family_id"):
                assert f[key] == ref[f["path"]][key]
    some = groups[0]["files"][0]
    assert some["sha256"] == hashlib.sha256(
        (sample.production / some["path"]).read_bytes()).hexdigest()
    files = lines(tmp_path / "inv" / "files.ndjson")
    assert {r["path"]: r["group"] for r in files} == {
        f["path"]: g["group"] for g in groups for f in g["files"]}


def test_prefixes_limit_the_sources(sample: Sample, tmp_path: Path) -> None:
    plan = schedule(settings(tmp_path, sample.production, minimum_batch_size=1000,
                             prefixes=("custodians/kofi", "VOL001/DATA/")))
    paths = sorted(e.path for e in plan.entries)
    assert paths and all(
        p.startswith("custodians/kofi_kettering/") or p.startswith("VOL001/DATA/") for p in paths)
    assert "VOL001/DATA/VOL001.dat" in paths
    assert any(p.startswith("custodians/kofi_kettering/mail/") for p in paths)
    assert len(plan.groups) == 1 and plan.files_scheduled == len(paths)
    with pytest.raises(ConfigError):
        schedule(settings(tmp_path, sample.production, prefixes=("../etc",)))


def _copy_results(reference: Reference, target: Path) -> Path:
    for sub in ("artifacts", "blobs", "inventory"):
        shutil.copytree(reference.artifact_dir / sub, target / sub)
    return target


def test_files_with_results_are_left_out(
    sample: Sample, reference: Reference, tmp_path: Path
) -> None:
    # Everything chrono run produced counts as done, load-file members included.
    plan = schedule(settings(tmp_path, sample.production, artifacts=reference.artifact_dir))
    assert plan.groups == [] and plan.entries
    assert all(r["group"] == NOT_SCHEDULED for r in lines(tmp_path / "inv" / "files.ndjson"))

    art = _copy_results(reference, tmp_path / "partial")
    rows = lines(art / "inventory" / "extracted.ndjson")
    top = [r for r in rows if not r["depth"]]
    by_sha: dict[str, int] = {}
    for r in top:
        by_sha[r["sha256"]] = by_sha.get(r["sha256"], 0) + 1
    lone = next(r for r in top if r["path"].startswith("custodians/")
                and r["path"].endswith(".eml") and by_sha[r["sha256"]] == 1
                and r["outcome"] == "processed")
    (art / "artifacts" / lone["sha256"][:2] / f"{lone['sha256']}.json").unlink()
    plan = schedule(settings(tmp_path, sample.production, artifacts=art))
    assert [f["path"] for g in plan.groups for f in g["files"]] == [lone["path"]]

    # Without the load file's artifact the whole volume is redone, never its members alone.
    dat = next(r for r in top if r["kind"] == "dat")
    (art / "artifacts" / dat["sha256"][:2] / f"{dat['sha256']}.json").unlink()
    plan = schedule(settings(tmp_path, sample.production, artifacts=art))
    scheduled = sorted(f["path"] for g in plan.groups for f in g["files"])
    volume = sorted(r["path"] for r in top if r["path"].startswith("VOL001/"))
    assert scheduled == sorted([*volume, lone["path"]])

    plan = schedule(settings(tmp_path, sample.production, artifacts=art, overwrite=True))
    assert plan.files_scheduled == len(top)


def test_repeated_load_file_is_marked(tmp_path: Path) -> None:
    prod = tmp_path / "prod"
    tiny_volume(prod, "VOL001")
    shutil.copytree(prod / "VOL001", prod / "VOL002")
    plan = schedule(settings(tmp_path, prod, minimum_batch_size=1))
    assert len(plan.groups) == 2
    marks = {f["path"]: f.get("duplicate_of") for g in plan.groups for f in g["files"]}
    assert marks["VOL002/DATA/VOL001.dat"] == stable_id("file", "VOL001/DATA/VOL001.dat")
    assert sum(1 for v in marks.values() if v) == 1


def test_seed_command_line_and_errors(sample: Sample, tmp_path: Path) -> None:
    from chrono.cli.schedule import seed_args

    assert seed_args(["--source_bucket", "s3://a", "--prefix", "x/", "y/",
                      "--execute_step_functions", "--password_file=p_q.txt", "--steps",
                      "events", "upload"]) == [
        "--source-bucket", "s3://a", "--prefix", "x/", "--prefix", "y/", "--execute",
        "--password-file=p_q.txt", "--steps", "events", "--steps", "upload"]
    args = bucket_args(tmp_path, sample.production)
    seed = ["--" + a[2:].replace("-", "_") if a.startswith("--") else a for a in args]
    proc = subprocess.run(
        [sys.executable, str(ROOT / "schedule_pipeline.py"), "--mode", "local", *seed,
         "--minimum_batch_size", "50", "--prefix", "custodians/", "VOL001/", "--quiet"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    groups = lines(tmp_path / "inv" / "groups.ndjson")
    assert groups and all(g["file_count"] >= 50 for g in groups[:-1])
    assert not (tmp_path / "art" / "groups").exists()  # scheduling only

    proc = cli("schedule", "--mode", "bogus", *args, cwd=tmp_path)
    assert proc.returncode == 2 and "mode_unknown" in proc.stderr
    assert "local" in proc.stderr and "dask" in proc.stderr
    proc = cli("schedule", *args, "--steps", "bogus", cwd=tmp_path)
    assert proc.returncode == 2 and "unknown step" in proc.stderr
    proc = cli("schedule", *bucket_args(tmp_path, tmp_path / "missing"), cwd=tmp_path)
    assert proc.returncode == 2 and "source_missing" in proc.stderr
    assert "Traceback" not in proc.stderr
