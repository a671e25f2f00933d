"""A filled Chrono world for the web tests: an evidence run, identity tables and a sensor run.

Everything is made by Chrono's own functions: the evidence pipeline over a tiny production (a
call log, two copies of one email, a corrupt file), the identity test production uploaded
beside it, dedupe / persons / devices / mapping, and a simulated sensor fleet run once through
the orchestrator. Built once per module and database (SQLite, and PostgreSQL when reachable).
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from tests.conftest import ROOT, throwaway_database
from tests.db.test_identity_db import build_identity_db, run_identity

from chrono.db import schema
from chrono.evidence.context import EvidenceRun
from chrono.evidence.dedupe import run_dedupe
from chrono.evidence.pipeline import run_evidence
from chrono.sensors.config import SensorPipelineConfig
from chrono.sensors.orchestrator import RunSummary, SensorOrchestrator
from chrono.sensors.simulate import simulate
from chrono.sensors.sources import SourceConfig
from chrono.web import WebSettings

TOKEN = "test-token-" + "x" * 24
MAIL = ("From: Jane Roe <jane@example.com>\nTo: bob@example.org\nSubject: Budget review\n"
        "Date: Mon, 3 Mar 2025 10:00:00 +0000\nMessage-ID: <budget-1@example.com>\n{extra}\n"
        "Let us meet about the budget.\n")


@dataclass
class World:
    db_url: str
    root: Path
    settings: WebSettings
    evidence_run_id: str
    sensor: RunSummary


def _production(folder: Path) -> None:
    folder.mkdir(parents=True)
    (folder / "calls.csv").write_text(
        "Date,Time,From,To,Duration,Direction\n"
        "2025-03-03,09:05:09,+1 (555) 521-5554,555-201-7788,65,outgoing\n"
        "2025-03-04,10:15:00,555-201-7788,+1 (555) 521-5554,30,incoming\n", encoding="utf-8")
    (folder / "mail.eml").write_text(MAIL.format(extra=""), encoding="utf-8")
    # Same message seen through a second export: dedupe marks one event a copy of the other.
    (folder / "export" / "mail-copy.eml").parent.mkdir()
    (folder / "export" / "mail-copy.eml").write_text(MAIL.format(extra="X-Export: 2"),
                                                     encoding="utf-8")
    # Fixed bytes: random ones are now and then taken for a Concordance DAT (see the note).
    (folder / "blob.bin").write_bytes(bytes(range(256)) * 12)


def build_evidence(root: Path, db_url: str) -> str:
    """Run the evidence pipeline over the tiny production; returns the run id."""
    _production(root / "production")
    run = EvidenceRun(source_dir=root / "production", artifact_dir=root / "artifacts",
                      db_url=db_url, show_progress=False, workers=1)
    run_evidence(run)
    return run.run_id


def build_world(root: Path, db_url: str) -> World:
    # Extraction forks worker processes; forking a test process whose polars and server
    # threads already run can crash the child, so the pipeline runs in a fresh interpreter.
    done = subprocess.run(
        [sys.executable, "-c", "import sys; from pathlib import Path; "
         "from tests.web.conftest import build_evidence; "
         "print(build_evidence(Path(sys.argv[1]), sys.argv[2]))", str(root), db_url],
        cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    run_id = done.stdout.strip().splitlines()[-1]
    artifacts = build_identity_db(root / "identity", db_url)
    engine = schema.make_engine(db_url)
    run_dedupe(engine)
    run_identity(engine, artifacts)
    engine.dispose()

    sim = simulate(root / "sensor_data.db", sensors=4, minutes=20, seed=3)
    pipeline = SensorPipelineConfig(data_dir=str(root / "data"), batch_size=300,
                                    source=SourceConfig(kind="sqlite", path=str(sim.db_path)))
    summary = SensorOrchestrator(pipeline).run(once=True)
    settings = WebSettings(db_url=db_url, pipeline=pipeline, token=TOKEN)
    return World(db_url, root, settings, run_id, summary)


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def module_db_url(request: pytest.FixtureRequest,
                  tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Like ``db_url`` in tests/conftest.py, but one database per module (building the world
    takes seconds, so the API tests share it)."""
    with throwaway_database(request.param, tmp_path_factory.mktemp("webdb")) as url:
        yield url


@pytest.fixture(scope="module")
def world(module_db_url: str, tmp_path_factory: pytest.TempPathFactory) -> World:
    return build_world(tmp_path_factory.mktemp("world"), module_db_url)
