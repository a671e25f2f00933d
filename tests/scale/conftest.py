"""Shared fixtures of the scale-out tests: one sample production and one ``chrono run`` of it."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

EML = (
    "From: Jane Doe <jane@example.com>\r\nTo: Bob Roe <bob@example.org>\r\n"
    "Subject: Quarterly numbers {n}\r\nDate: Mon, 3 Mar 2025 10:{n:02d}:00 -0500\r\n"
    "Message-ID: <abc{n}@example.com>\r\n\r\nSee attached.\r\n"
)
CSV = (
    "Date/Time (UTC),Calling Number,Called Number,Duration (s),Call Type\n"
    "2025-03-03 14:05:09,+1 (555) 521-5554,555-201-7788,65,Voice\n"
    "2025-03-04 09:00:00,15552017788,+1 555 521 5554,12,Voice\n"
)


def cli(*args: str, cwd: Path, timeout: int = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "chrono.cli.main", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=timeout)


def exported(db: str, cwd: Path, kind: str = "events") -> list[str]:
    """``chrono export KIND --db DB`` lines, sorted."""
    proc = cli("export", kind, "--db", db, cwd=cwd)
    assert proc.returncode == 0, proc.stderr
    return sorted(proc.stdout.splitlines())


@dataclass(frozen=True)
class Sample:
    production: Path
    passwords: Path


@dataclass(frozen=True)
class Reference:
    """``chrono run`` of the sample: its artifact folder and exported events."""

    artifact_dir: Path
    events: list[str]
    persons: list[str]


@pytest.fixture(scope="session")
def sample(tmp_path_factory: pytest.TempPathFactory) -> Sample:
    """The sample production (``chrono sample evidence DIR --size small --seed 11``)."""
    from chrono.evidence.sample import generate_production

    out = tmp_path_factory.mktemp("sample")
    generate_production(out, size="small", seed=11)
    return Sample(out / "production", out / "passwords.txt")


@pytest.fixture(scope="session")
def reference(sample: Sample, tmp_path_factory: pytest.TempPathFactory) -> Reference:
    art = tmp_path_factory.mktemp("reference") / "art"
    proc = cli("run", str(sample.production), str(art), "--quiet", "--workers", "2",
               "--password-file", str(sample.passwords), cwd=art.parent)
    assert proc.returncode == 0, proc.stderr
    db = f"sqlite:///{art / 'chrono.db'}"
    return Reference(art, exported(db, art.parent), exported(db, art.parent, "persons"))


def tiny_production(root: Path, emails: int = 6) -> Path:
    """A few emails, a call log and notes: cheap to extract, several groups at batch size 2."""
    (root / "mail").mkdir(parents=True)
    for n in range(emails):
        (root / "mail" / f"m{n}.eml").write_text(EML.format(n=n))
    (root / "copy").mkdir()
    (root / "copy" / "m0-again.eml").write_text(EML.format(n=0))
    (root / "calls.csv").write_text(CSV)
    (root / "notes.txt").write_text("Plain notes without dates.\n")
    return root


def bucket_args(tmp: Path, source: Path | str, **extra: str) -> list[str]:
    """The four bucket flags (folders under ``tmp``) plus a private work dir."""
    args = ["--source-bucket", str(source), "--inventory-bucket", str(tmp / "inv"),
            "--artifact-bucket", str(tmp / "art"), "--report-bucket", str(tmp / "rep"),
            "--work-dir", str(tmp / "work")]
    for flag, value in extra.items():
        args += [f"--{flag.replace('_', '-')}", value]
    return args


def tiny_volume(root: Path, name: str = "VOL001") -> Path:
    """A Concordance volume: a DAT (þ quotes, DC4 separators) covering two TEXT files, with
    the natives beside them."""
    q, sep = "\u00fe", "\x14"
    header = ["BEGBATES", "CUSTODIAN", "SUBJECT", "DATESENT", "TEXTPATH", "NATIVEPATH"]
    rows = []
    for n in (1, 2):
        bates = f"TNY00000{n}"
        (root / name / "TEXT" / "0001").mkdir(parents=True, exist_ok=True)
        (root / name / "NATIVES" / "0001").mkdir(parents=True, exist_ok=True)
        (root / name / "TEXT" / "0001" / f"{bates}.txt").write_text(
            f"Memo {n}: the shipment was delivered and signed.\n")
        (root / name / "NATIVES" / "0001" / f"{bates}.eml").write_text(EML.format(n=40 + n))
        rows.append([bates, "Doe, Jane", f"Shipment {n}", f"03/0{n}/2025",
                     f"TEXT\\0001\\{bates}.txt", f"NATIVES\\0001\\{bates}.eml"])
    lines = [sep.join(f"{q}{cell}{q}" for cell in row) for row in [header, *rows]]
    (root / name / "DATA").mkdir(parents=True, exist_ok=True)
    (root / name / "DATA" / f"{name}.dat").write_text("\r\n".join(lines) + "\r\n",
                                                      encoding="utf-8")
    return root / name
