"""End to end through the CLI on a generated production: recall, precision, idempotency,
accounting, hostile files and PII, on real Tesseract and a real database.

The size is ``CHRONO_ACCEPTANCE_SIZE``: ``medium`` (2,400+ files, about 4 minutes on 2 cores) by
default, as the acceptance criteria ask; ``small`` for a quick local run.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.acceptance.scoring import (
    namesake_merges,
    non_e164_phones,
    score_duplicates,
    score_events,
    score_persons,
)

SIZE = os.environ.get("CHRONO_ACCEPTANCE_SIZE", "medium")


def chrono(*args: str, cwd: Path, log: Path | None = None) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "chrono.cli.main", *args]
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=3000)
    if log is not None:
        with log.open("a") as fh:
            fh.write(proc.stderr)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


@pytest.fixture(scope="module")
def sample_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("sample")
    work = root / "cwd"
    work.mkdir()
    log = root / "chrono.log"
    chrono("sample", "evidence", str(root / "s"), "--size", SIZE, "--seed", "11", cwd=work)
    src, art = root / "s" / "production", root / "artifacts"
    before = {p: p.stat().st_mtime_ns for p in src.rglob("*")}
    rss_before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    first = chrono("run", str(src), str(art), "--password-file", str(root / "s" / "passwords.txt"),
                   "--quiet", "--log-level", "INFO", cwd=work, log=log)
    peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    db = f"sqlite:///{art / 'chrono.db'}"
    events = [json.loads(x) for x in chrono("export", "events", "--db", db, cwd=work).stdout
              .splitlines()]
    persons, devices = (
        [json.loads(x) for x in chrono("export", kind, "--db", db, cwd=work).stdout.splitlines()]
        for kind in ("persons", "devices")
    )
    return {
        "persons": persons, "devices": devices,
        "root": root, "work": work, "src": src, "art": art, "db": db, "log": log,
        "truth": json.loads((root / "s" / "truth.json").read_text()), "events": events,
        "report": json.loads((art / "report.json").read_text()), "first": first,
        "before": before, "peak_kib": max(peak_kib, rss_before),
    }


def test_recall_and_precision_against_truth(sample_run: dict[str, Any]) -> None:
    score = score_events(sample_run["truth"]["events"], sample_run["events"])
    detail = {"missed": score.missed[:5], "unmatched": score.unmatched[:5]}
    assert score.recall >= 0.99, detail
    assert score.precision >= 0.99, detail


def test_duplicates_found_across_sources(sample_run: dict[str, Any]) -> None:
    precision, recall, detail = score_duplicates(sample_run["truth"], sample_run["events"])
    assert precision >= 0.99 and recall >= 0.99, detail


def test_persons_clustered_and_namesakes_kept_apart(sample_run: dict[str, Any]) -> None:
    truth = sample_run["truth"]
    f1, detail = score_persons(truth, sample_run["persons"])
    assert f1 >= 0.98, detail
    assert namesake_merges(truth, sample_run["persons"]) == 0
    assert truth["traps"]["namesakes"] and truth["traps"]["spellings"]


def test_every_valid_phone_is_e164(sample_run: dict[str, Any]) -> None:
    assert sample_run["devices"] and sample_run["persons"]
    assert non_e164_phones(sample_run["devices"]) == []
    assert non_e164_phones(sample_run["persons"]) == []
    # every custodian's phone is a device mapped to its owner with some confidence
    owners = {d["value"]: d["owner"] for d in sample_run["truth"]["devices"]}
    person_of = {
        ident["value"]: p["id"] for p in sample_run["persons"] for ident in p["identifiers"]
    }
    mapped = {
        d["value"]: {link["id"] for link in d["persons"]} for d in sample_run["devices"]
    }
    for phone in owners:
        assert person_of.get(phone) in mapped.get(phone, set()), "custodian phone not mapped"


def test_every_file_is_accounted_for(sample_run: dict[str, Any]) -> None:
    report = sample_run["report"]
    counts = report["counts"]
    assert counts["inputs"] == (counts["processed"] + counts["skipped"] + counts["duplicate"]
                                + counts["failed"])
    top = [f for f in report["files"] if f["depth"] == 0]
    assert len(top) == sample_run["truth"]["files"]
    assert all(f["outcome"] != "failed" or f["reason"] for f in report["files"])


def test_hostile_files_fail_with_reasons(sample_run: dict[str, Any]) -> None:
    by_path = {f["path"]: f for f in sample_run["report"]["files"]}
    for h in sample_run["truth"]["hostile"]:
        rel = h["path"].removeprefix("production/")
        got = by_path[rel]
        assert got["outcome"] == h["expected"], (rel, got)
        if h["expected"] == "failed":
            assert got["reason"], rel


def test_nothing_written_outside_artifact_dir(sample_run: dict[str, Any]) -> None:
    src = sample_run["src"]
    after = {p: p.stat().st_mtime_ns for p in src.rglob("*")}
    assert after == sample_run["before"]
    assert list(sample_run["work"].iterdir()) == []
    assert sample_run["peak_kib"] < 1024 * 1024, "peak RSS over 1 GiB"


def test_no_pii_in_logs_or_errors(sample_run: dict[str, Any]) -> None:
    canaries = sample_run["truth"]["canaries"]
    assert canaries
    log_text = sample_run["log"].read_text() + sample_run["first"].stdout
    details = []
    for art in (sample_run["art"] / "artifacts").rglob("*.json"):
        data = json.loads(art.read_text())
        details.append(str(data.get("detail") or ""))
        details.extend(data.get("warnings") or [])
    reasons = [str(f["reason"] or "") for f in sample_run["report"]["files"]]
    haystack = "\n".join([log_text, *details, *reasons]).lower()
    assert '"event": "file_extracted"' in log_text  # the log really was captured
    for canary in canaries:
        assert canary.lower() not in haystack, "a canary leaked"
        digits = "".join(ch for ch in canary if ch.isdigit())
        if len(digits) >= 7:
            assert digits not in "".join(ch for ch in haystack if ch.isdigit() or ch == "\n")


def test_rerun_adds_nothing_and_overwrite_reprocesses(sample_run: dict[str, Any]) -> None:
    src, art, work, db = sample_run["src"], sample_run["art"], sample_run["work"], sample_run["db"]
    pw = str(sample_run["root"] / "s" / "passwords.txt")
    chrono("run", str(src), str(art), "--password-file", pw, "--quiet", cwd=work)
    report = json.loads((art / "report.json").read_text())
    assert report["counts"]["processed"] == 0
    upload = next(s for s in report["steps"] if s["name"] == "upload")
    assert upload["counts"]["events_added"] == 0 and upload["counts"]["files_added"] == 0
    extraction = next(s for s in report["steps"] if s["name"] == "extraction")
    assert extraction["counts"]["extracted"] == 0

    chrono("run", str(src), str(art), "--password-file", pw, "--quiet", "--steps", "upload",
           cwd=work)
    report = json.loads((art / "report.json").read_text())
    assert [s["name"] for s in report["steps"]] == ["upload"]

    events = chrono("export", "events", "--db", db, cwd=work).stdout.splitlines()
    assert len(events) == len(sample_run["events"])
