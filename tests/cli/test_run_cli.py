"""`chrono run`, `python run.py`, `chrono export` and `--help` on a tiny production."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

EML = (
    "From: Jane Doe <jane@example.com>\r\nTo: Bob Roe <bob@example.org>\r\n"
    "Subject: Quarterly numbers\r\nDate: Mon, 3 Mar 2025 10:15:00 -0500\r\n"
    "Message-ID: <abc123@example.com>\r\n\r\nSee attached.\r\n"
)
CSV = (
    "Date/Time (UTC),Calling Number,Called Number,Duration (s),Call Type\n"
    "2025-03-03 14:05:09,+1 (555) 521-5554,555-201-7788,65,Voice\n"
    "2025-03-04 09:00:00,15552017788,+1 555 521 5554,12,Voice\n"
)


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "chrono.cli.main", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=600)


@pytest.fixture
def production(tmp_path: Path) -> Path:
    src = tmp_path / "prod"
    (src / "mail").mkdir(parents=True)
    (src / "mail" / "a.eml").write_text(EML)
    (src / "copy").mkdir()
    (src / "copy" / "a-again.eml").write_text(EML)
    (src / "calls.csv").write_text(CSV)
    (src / "notes.txt").write_text("Plain notes without dates.\n")
    (src / "escape").symlink_to("/etc")
    return src


def _export(db: str, kind: str, cwd: Path) -> list[dict]:
    proc = cli("export", kind, "--db", db, cwd=cwd)
    assert proc.returncode == 0, proc.stderr
    return [json.loads(line) for line in proc.stdout.splitlines()]


def test_run_export_rerun_and_overwrite(production: Path, tmp_path: Path) -> None:
    art = tmp_path / "art"
    proc = cli("run", str(production), str(art), "--quiet", "--workers", "2", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    report = json.loads((art / "report.json").read_text())
    outcomes = {f["path"]: (f["outcome"], f["reason"]) for f in report["files"]}
    assert outcomes["copy/a-again.eml"] == ("processed", None)
    assert outcomes["mail/a.eml"] == ("duplicate", "same_content")
    assert outcomes["escape"] == ("failed", "symlink_refused")
    db = f"sqlite:///{art / 'chrono.db'}"
    events = _export(db, "events", tmp_path)
    assert sorted(e["type"] for e in events) == ["call", "call", "email"]
    email = next(e for e in events if e["type"] == "email")
    assert email["start"] == "2025-03-03T15:15:00Z" and email["offset_minutes"] == -300
    assert {p["role"] for p in email["participants"]} == {"from", "to"}
    docs = _export(db, "documents", tmp_path)
    assert {d["path"] for d in docs} >= {"calls.csv", "notes.txt", "mail/a.eml"}
    assert "Plain notes" in next(d for d in docs if d["path"] == "notes.txt")["text"]

    again = cli("run", str(production), str(art), "--quiet", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    report = json.loads((art / "report.json").read_text())
    assert report["counts"]["processed"] == 0
    assert len(_export(db, "events", tmp_path)) == 3

    over = cli("run", str(production), str(art), "--quiet", "--overwrite-existing", cwd=tmp_path)
    assert over.returncode == 0, over.stderr
    report = json.loads((art / "report.json").read_text())
    assert report["counts"]["processed"] == 3
    upload = next(s for s in report["steps"] if s["name"] == "upload")
    assert upload["counts"]["events_added"] == 0
    csv_out = cli("export", "events", "--db", db, "--format", "csv", cwd=tmp_path)
    assert csv_out.stdout.splitlines()[0].startswith("id,type,start")


def test_seed_command_line_and_steps(production: Path, tmp_path: Path) -> None:
    art = tmp_path / "art"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "run.py"), str(production), str(art), "--quiet",
         "--steps", "upload,inventory,extraction", "--overwrite_existing"],
        cwd=tmp_path, capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    report = json.loads((art / "report.json").read_text())
    assert [s["name"] for s in report["steps"]] == ["inventory", "extraction", "upload"]
    assert not (art / "events").exists()


def test_readable_errors(tmp_path: Path) -> None:
    proc = cli("run", str(tmp_path / "missing"), str(tmp_path / "a"), cwd=tmp_path)
    assert proc.returncode == 2 and "source_missing" in proc.stderr
    (tmp_path / "src").mkdir()
    proc = cli("run", str(tmp_path / "src"), str(tmp_path / "a"), "--steps", "bogus",
               cwd=tmp_path)
    assert proc.returncode == 2 and "unknown step" in proc.stderr
    assert "Traceback" not in proc.stderr
    secret = "s3cr3t-pw"
    for db in (f"sqlite:///{tmp_path}/no/such/folder/chrono.db",
               f"postgresql://postgres:{secret}@127.0.0.1:9/nowhere"):
        proc = cli("export", "events", "--db", db, cwd=tmp_path)
        assert proc.returncode == 2 and "database_unavailable" in proc.stderr, proc.stderr
        assert "Traceback" not in proc.stderr and secret not in proc.stderr


@pytest.mark.parametrize("args", [[], ["run"], ["export"], ["sample"], ["sample", "evidence"]])
def test_help_everywhere(args: list[str], tmp_path: Path) -> None:
    proc = cli(*args, "--help", cwd=tmp_path)
    assert proc.returncode == 0
    assert "Usage" in proc.stdout
