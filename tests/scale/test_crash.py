"""Crash safety of ``chrono schedule --execute``: a run killed with SIGKILL at any moment, then
run again with the same command, ends with the database and artifacts of an uninterrupted run.

Kills land at named crash points (``CHRONO_CRASH_AT=<point>:<n>``, see
:mod:`chrono.core.crashpoints`: the n-th pass of one process sends SIGKILL to the whole process
group, as ``kill -9`` of the run would), spread over the schedule, the group workers and every
global phase, plus seeded random SIGKILLs of the process group from outside. Each run starts
in its own session, so the kill takes the coordinator, its group processes, their extraction
pools (and a dask run's local workers) together, and nothing else.

What "equal" means, and what is left out of it (and why):

* every table of the database: its row count and a hash of its rows, sorted. Left out: the
  ``runs`` columns ``run_id``, ``started_at``, ``finished_at``, ``steps`` (timings) and
  ``counts`` (the re-run's own tallies) and ``artifact_dir`` (each case has its own folder);
  ``runs`` is a log of finished runs, so its rows are compared as a set and counted apart
  (one; two when a random kill landed after the killed run recorded itself, both succeeded);
  ``files.outcome``/``reason`` count ``skipped artifact_exists`` as ``processed``: a re-run
  reuses what the killed run extracted, exactly as a ``chrono run`` re-run does, and says so.
* every key of the artifact bucket with a hash of its bytes. Left out: ``chrono.db`` (compared
  table by table above), ``report.*`` and ``runs/<run id>.json`` (named by or holding run ids
  and timings), ``groups/<N>/extracted.ndjson`` (per-schedule commit markers: how many there are
  depends on what the re-run's schedule still held; instead every group of the final schedule
  must be committed). In artifact JSON the top-level ``seconds`` (extraction time) is dropped,
  and ``inventory/extracted.ndjson`` gets the same outcome reading as ``files``; in its rows
  and in those of ``inventory/files.ndjson`` ``group`` is dropped (the file's group in the
  latest schedule, ``-1`` when that schedule left it out as done).
* no ``.tmp-*`` or ``.spool-*`` file anywhere under the buckets and the work dir, and no
  private group folder left in the work dir.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import random
import signal
import subprocess
import sys
import time
import zipfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from chrono.core.crashpoints import CRASH_ENV
from chrono.db import schema
from chrono.evidence.sample.pdfs import text_pdf
from chrono.scale.schedule import group_entries, load_groups
from chrono.scale.worker import group_committed
from chrono.storage.local import TEMP_PREFIXES, LocalBucket
from tests.scale.conftest import EML, tiny_production, tiny_volume

RUN_TIMEOUT_S = 120
KILL_SEED = 20250302
BATCH_SIZE = 6
"""Files per group: three groups, run one after the other by one group process."""
UPLOAD_CHUNK_ROWS = 3
"""Rows per upload transaction: several file chunks and event batches to land between."""
VOLATILE_COLUMNS = {
    "runs": {"run_id", "started_at", "finished_at", "steps", "counts", "artifact_dir"},
}
REUSED = ("skipped", "artifact_exists")
"""A content the killed run extracted, which the re-run reuses: the same as processed."""


def _require_posix() -> None:
    if not hasattr(signal, "SIGKILL") or not hasattr(os, "killpg"):
        if os.environ.get("CI") == "true":
            pytest.fail("SIGKILL and process groups are needed (CI must run on POSIX)")
        pytest.skip("SIGKILL not available")


# ------------------------------------------------------------------------------ the production
def small_production(root: Path) -> Path:
    """Emails (one a repeat), an mbox, a call log, a contact list, notes, a Concordance volume,
    a zip holding an email and a note, and a born-digital PDF: 16 files, no OCR."""
    tiny_production(root, emails=4)
    tiny_volume(root, "VOL001")
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as archive:
        archive.writestr("inner/a.eml", EML.format(n=20))
        archive.writestr("inner/b.txt", "Meeting moved to 2025-03-10 at 09:00.\n")
    (root / "bundle.zip").write_bytes(buf.getvalue())
    (root / "box.mbox").write_text("".join(
        "From MAILER-DAEMON Mon Mar  3 10:00:00 2025\n"
        + EML.format(n=30 + i).replace("\r\n", "\n") + "\n" for i in range(3)))
    (root / "contacts.csv").write_text(
        "Name,Phone,Email\nJane Doe,+1 555 521 5554,jane@example.com\n"
        "Bob Roe,555-201-7788,bob@example.org\n")
    (root / "memo.pdf").write_bytes(text_pdf(
        [["Memo dated March 5, 2025.", "Call Bob at 555-201-7788."]], "Memo",
        datetime(2025, 3, 5, tzinfo=UTC)))
    return root


@dataclass(frozen=True)
class Setup:
    production: Path
    config: Path


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Setup:
    _require_posix()
    base = tmp_path_factory.mktemp("crash")
    config = base / "chrono.yaml"
    config.write_text(f"evidence:\n  upload_chunk_rows: {UPLOAD_CHUNK_ROWS}\n")
    return Setup(small_production(base / "production"), config)


# ------------------------------------------------------------------------------------ running
def command(case: Path, setup: Setup, mode: str) -> list[str]:
    return [sys.executable, "-m", "chrono.cli.main", "schedule", "--mode", mode,
            "--source-bucket", str(setup.production), "--inventory-bucket", str(case / "inv"),
            "--artifact-bucket", str(case / "art"), "--report-bucket", str(case / "rep"),
            "--work-dir", str(case / "work"), "--minimum-batch-size", str(BATCH_SIZE),
            "--workers", "1", "--config", str(setup.config), "--quiet", "--execute"]


def launch(case: Path, setup: Setup, mode: str, crash_at: str | None = None
           ) -> subprocess.Popen[bytes]:
    """The run in a session of its own: its process group is the run and nothing else."""
    case.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if k not in (CRASH_ENV, "CHRONO_CONFIG")}
    if crash_at is not None:
        env[CRASH_ENV] = crash_at
    with (case / "log.txt").open("ab") as log:
        return subprocess.Popen(command(case, setup, mode), cwd=case, env=env,
                                stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                start_new_session=True)


def log_tail(case: Path) -> str:
    return (case / "log.txt").read_text(errors="replace")[-3000:]


def wait_gone(proc: subprocess.Popen[bytes]) -> int:
    """Wait for the run to end, then for every process of its group (pool workers, the
    forkserver, dask workers) to be gone, so the re-run never races a survivor."""
    try:
        rc = proc.wait(timeout=RUN_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        raise
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            os.killpg(proc.pid, 0)
        except ProcessLookupError:
            return rc
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    pytest.fail("processes of the killed run outlived it")


def run_to_end(case: Path, setup: Setup, mode: str) -> float:
    started = time.monotonic()
    rc = wait_gone(launch(case, setup, mode))
    assert rc == 0, log_tail(case)
    return time.monotonic() - started


# --------------------------------------------------------------------------------- comparing
def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def _reading(outcome: str | None, reason: str | None) -> tuple[str | None, str | None]:
    return ("processed", None) if (outcome, reason) == REUSED else (outcome, reason)


def table_digests(db: Path) -> dict[str, tuple[int, str]]:
    """Per table: (row count, sha256 of its sorted rows without volatile columns)."""
    engine = schema.make_engine(f"sqlite:///{db}")
    digests = {}
    try:
        with engine.connect() as conn:
            for table in schema.metadata.sorted_tables:
                skip = VOLATILE_COLUMNS.get(table.name, set())
                rows = []
                for row in conn.execute(select(table)).mappings():
                    kept = {k: v for k, v in row.items() if k not in skip}
                    if table.name == "files":
                        kept["outcome"], kept["reason"] = _reading(kept["outcome"],
                                                                   kept["reason"])
                    rows.append(_canonical(kept))
                if table.name == "runs":
                    rows = list(set(rows))  # counted apart: see assert_same_as_reference
                rows.sort()
                digests[table.name] = (
                    len(rows), hashlib.sha256("\n".join(rows).encode()).hexdigest())
    finally:
        engine.dispose()
    return digests


def _compared_key(key: str) -> bool:
    top = key.split("/", 1)[0]
    return not (key.startswith("chrono.db") or key.startswith("report.")
                or top in ("runs", "groups"))


def _artifact_digest(key: str, data: bytes) -> str:
    if key.startswith("artifacts/"):
        artifact = json.loads(data)
        artifact.pop("seconds", None)
        data = _canonical(artifact).encode()
    elif key in ("inventory/files.ndjson", "inventory/extracted.ndjson"):
        rows = []
        for line in data.decode().splitlines():
            row = json.loads(line)
            del row["group"]  # the file's group in the latest schedule
            if "outcome" in row:
                row["outcome"], row["reason"] = _reading(row["outcome"], row["reason"])
            rows.append(_canonical(row))
        data = "\n".join(rows).encode()
    return hashlib.sha256(data).hexdigest()


def artifact_digests(art: Path) -> dict[str, str]:
    bucket = LocalBucket(art)
    return {key: _artifact_digest(key, bucket.get_bytes(key))
            for key in bucket.list() if _compared_key(key)}


@dataclass(frozen=True)
class Snapshot:
    tables: dict[str, tuple[int, str]]
    artifacts: dict[str, str]
    runs: list[str]
    """Status of each row of ``runs``."""


def snapshot(case: Path) -> Snapshot:
    engine = schema.make_engine(f"sqlite:///{case / 'art' / 'chrono.db'}")
    try:
        with engine.connect() as conn:
            runs = [r.status for r in conn.execute(select(schema.runs.c.status))]
    finally:
        engine.dispose()
    return Snapshot(table_digests(case / "art" / "chrono.db"), artifact_digests(case / "art"),
                    runs)


def leftovers(case: Path) -> list[str]:
    """Temp and spool files under the case folder, and private group folders in the work dir."""
    found = [p.relative_to(case).as_posix() for p in case.rglob("*")
             if p.name.startswith(TEMP_PREFIXES)]
    groups = case / "work" / "groups"
    if groups.is_dir():
        found += [p.relative_to(case).as_posix() for p in groups.iterdir()]
    return sorted(found)


@dataclass(frozen=True)
class Reference:
    snapshot: Snapshot
    seconds: float


@pytest.fixture(scope="module")
def reference(setup: Setup, tmp_path_factory: pytest.TempPathFactory) -> Reference:
    case = tmp_path_factory.mktemp("reference")
    seconds = run_to_end(case, setup, "local")
    snap = snapshot(case)
    assert snap.runs == ["succeeded"]
    assert snap.tables["events"][0] > 3 * UPLOAD_CHUNK_ROWS  # several event batches
    assert snap.tables["files"][0] > 3 * UPLOAD_CHUNK_ROWS  # several file chunks
    assert snap.tables["persons"][0] > 0 and snap.tables["person_devices"][0] > 0
    assert leftovers(case) == []
    return Reference(snap, seconds)


def assert_same_as_reference(case: Path, reference: Reference, *, runs: int = 1) -> None:
    snap = snapshot(case)
    assert snap.tables == reference.snapshot.tables
    assert snap.artifacts.keys() == reference.snapshot.artifacts.keys()
    assert snap.artifacts == reference.snapshot.artifacts
    # The killed run never recorded itself, unless a random kill landed after that.
    assert set(snap.runs) == {"succeeded"} and 1 <= len(snap.runs) <= runs
    assert leftovers(case) == []
    for line in load_groups(str(case / "inv" / "groups.ndjson")):
        assert group_committed(LocalBucket(case / "art"), line["group"], group_entries(line))
    report = json.loads((case / "rep" / "report.json").read_text())
    assert report["status"] == "succeeded"


# ------------------------------------------------------------------------------------ the kills
@dataclass(frozen=True)
class KillPoint:
    at: str
    """``<point>:<n>`` for CHRONO_CRASH_AT."""
    temp_in: str = ""
    """The bucket folder that must hold a temp file right after this kill, if any."""


@dataclass(frozen=True)
class KillCase:
    """Kills in a row: each re-run (the same command) is killed at the next point, the last
    re-run goes to the end; consecutive crashes must not compound."""

    kills: tuple[KillPoint, ...]

    @property
    def id(self) -> str:
        return "+".join(k.at.replace(":", "-") for k in self.kills)


LOCAL_CASES = [
    # files.ndjson written to its temp name, not renamed.
    KillCase((KillPoint("bucket.replace:1", "inv"),)),
    # files.ndjson written, groups.ndjson not; then the re-run's pool worker mid-group, before
    # it writes its second artifact.
    KillCase((KillPoint("schedule.groups:1"), KillPoint("worker.extract:2"))),
    # A group publishing its artifacts: the third one linked to its temp name.
    KillCase((KillPoint("publish.replace:3", "art"),)),
    # Every artifact of the first group published, its marker not.
    KillCase((KillPoint("group.published:1"),)),
    # Between groups: the first group's marker written, the others to come.
    KillCase((KillPoint("group.committed:1"),)),
    # Merge: files.ndjson saved, extracted.ndjson not; then mid-events (five files' events
    # written, the others' not).
    KillCase((KillPoint("merge.inventory:1"), KillPoint("events.file:5"))),
    # Upload between two committed chunks of file rows, then between two event batches.
    KillCase((KillPoint("upload.files:2"), KillPoint("upload.batch:2"))),
    # Inside the third event batch's transaction: identifiers and events sent, participants not.
    KillCase((KillPoint("upload.in_batch:3"),)),
    # After each identity step's transaction, before the next step.
    KillCase((KillPoint("dedupe:1"), KillPoint("persons:1"), KillPoint("devices:1"),
              KillPoint("mapping:1"))),
    # Every step done, the ledger and the report not written.
    KillCase((KillPoint("report:1"),)),
]


def kill_and_rerun(case: Path, setup: Setup, mode: str, kills: KillCase) -> None:
    for point in kills.kills:
        rc = wait_gone(launch(case, setup, mode, crash_at=point.at))
        assert rc == -signal.SIGKILL, f"the run was not killed at {point.at}:\n{log_tail(case)}"
        assert not (case / "rep" / "report.json").exists()
        if point.temp_in:
            assert any(p.name.startswith(TEMP_PREFIXES) for p in (case / point.temp_in).rglob("*"))
    run_to_end(case, setup, mode)


def test_kill_points_cover_the_run() -> None:
    points = {k.at.partition(":")[0] for c in LOCAL_CASES for k in c.kills}
    assert len(points) >= 10


@pytest.mark.parametrize("kills", LOCAL_CASES, ids=[c.id for c in LOCAL_CASES])
def test_killed_local_run_then_rerun_equals_uninterrupted(
    kills: KillCase, setup: Setup, reference: Reference, tmp_path: Path
) -> None:
    kill_and_rerun(tmp_path, setup, "local", kills)
    assert_same_as_reference(tmp_path, reference)


@pytest.mark.parametrize("draw", [0, 1])
def test_random_sigkill_of_the_process_group(
    draw: int, setup: Setup, reference: Reference, tmp_path: Path
) -> None:
    # Seeded: the same two moments every time, one in each half of the run.
    share = random.Random(KILL_SEED + draw).uniform(0.1, 0.35) + 0.25 * draw
    proc = launch(tmp_path, setup, "local")
    time.sleep(share * reference.seconds)
    killed_alive = proc.poll() is None
    os.killpg(proc.pid, signal.SIGKILL)
    rc = wait_gone(proc)
    assert killed_alive and rc == -signal.SIGKILL, "the run ended before the kill"
    run_to_end(tmp_path, setup, "local")
    assert_same_as_reference(tmp_path, reference, runs=2)


def test_killed_dask_run_then_rerun_equals_uninterrupted(
    setup: Setup, reference: Reference, tmp_path: Path
) -> None:
    # In a Dask worker's group task: its extraction pool's first file, then (re-run) the group
    # published but not committed. The kill takes the local cluster's workers with the client.
    kills = KillCase((KillPoint("worker.extract:1"), KillPoint("group.published:1")))
    kill_and_rerun(tmp_path, setup, "dask", kills)
    assert_same_as_reference(tmp_path, reference)
