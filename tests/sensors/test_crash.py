"""Crash safety end to end: ``chrono sensors run --once`` killed with SIGKILL at seeded random
points and restarted ends with the files, windows and notifications of an uninterrupted run.

Kill points are placed by watching the data folder of the child, not by the clock alone: a kill
aimed at batch ``b`` waits until that batch's raw file has been written by the running process,
then sleeps a random share of a batch's duration (measured on the uninterrupted run), so most kills
land mid-batch (outputs of the batch on disk, checkpoint not yet committed) and the others just
after a commit. One kill lands during start-up and one during the end-of-input flush. After each
kill the folder is classified (mid-batch, left a temp file, left a claimed-but-unconfirmed
notification) so the run's report says where the kills landed.
"""

from __future__ import annotations

import glob
import json
import os
import random
import re
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from chrono.sensors.model import LINEAGE
from chrono.sensors.outputs import latest_windows, read_stream
from chrono.sensors.simulate import simulate
from chrono.storage.local import TEMP_PREFIXES, LocalBucket
from tests.sensors.test_orchestrator import assert_windows_equal, duckdb_windows

SENSORS, MINUTES, ANOMALY_RATE, SIM_SEED = 30, 20, 0.2, 7
"""7272 readings, 6 planted incidents."""
BATCH_SIZE = 200
"""37 batches: many commit points to land between."""
BATCH_KILLS = 10
"""Kills aimed at distinct batches; plus one at start-up and one in the flush."""
KILL_SEED = 20250301
OUTPUT_BUCKETS = ("raw", "schematized", "error", "archival", "aggregated")
RUN_TIMEOUT_S = 120.0
POLL_S = 0.002
_PART = re.compile(r"part-(\d{12})-\d{12}\.")


def _require_sigkill() -> None:
    if not hasattr(signal, "SIGKILL"):
        if os.environ.get("CI") == "true":
            pytest.fail("SIGKILL is not available on this platform (CI must run on POSIX)")
        pytest.skip("SIGKILL not available")


# ------------------------------------------------------------------------- child processes
def write_config(folder: Path, db: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    config = folder / "pipeline.yaml"
    config.write_text(
        f"data_dir: {json.dumps(str(folder / 'data'))}\n"
        f"source:\n  kind: sqlite\n  path: {json.dumps(str(db))}\n"
        f"batch_size: {BATCH_SIZE}\n",
        encoding="utf-8",
    )
    return config


@dataclass
class Child:
    """One ``chrono sensors run --once`` process and when it was started."""

    proc: subprocess.Popen[bytes]
    started_ns: int
    started: float
    log: Path

    def tail(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")[-2000:]


def spawn(config: Path, log: Path) -> Child:
    env = {k: v for k, v in os.environ.items()
           if k not in ("CHRONO_DATA", "CHRONO_PIPELINE_CONFIG")}
    started_ns, started = time.time_ns(), time.monotonic()
    with log.open("ab") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "chrono.cli.main", "sensors", "run", "--once", "--quiet",
             "--config", str(config)],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err,
            cwd=config.parent, env=env,
        )
    return Child(proc, started_ns, started, log)


def finish(child: Child) -> float:
    """Wait for a run to end on its own; its wall time."""
    try:
        rc = child.proc.wait(timeout=RUN_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        child.proc.kill()
        child.proc.wait()
        pytest.fail(f"run did not finish in {RUN_TIMEOUT_S} s:\n{child.tail()}")
    assert rc == 0, f"run failed (rc={rc}):\n{child.tail()}"
    return time.monotonic() - child.started


def fresh(path: Path, child: Child) -> bool:
    """``path`` exists and was written by ``child`` (mtime after its start)."""
    try:
        return path.stat().st_mtime_ns >= child.started_ns
    except FileNotFoundError:
        return False


def wait_for(child: Child, pattern: str) -> bool:
    """Poll until a file matching ``pattern`` is written by ``child``; False if it exited."""
    deadline = time.monotonic() + RUN_TIMEOUT_S
    while time.monotonic() < deadline:
        if any(fresh(Path(p), child) for p in glob.glob(pattern)):
            return True
        if child.proc.poll() is not None:
            return False
        time.sleep(POLL_S)
    child.proc.kill()
    child.proc.wait()
    pytest.fail(f"no {pattern} after {RUN_TIMEOUT_S} s:\n{child.tail()}")


# ------------------------------------------------------------------------- reading the folder
def committed(data: Path) -> tuple[int, int]:
    """(next seq, batches) of the last committed checkpoint; (0, 0) before the first."""
    path = data / "state" / "checkpoints.db"
    if not path.is_file():
        return 0, 0
    conn = sqlite3.connect(path)
    try:
        row = conn.execute("SELECT cursor, batches FROM checkpoints").fetchone()
    except sqlite3.OperationalError:  # killed before the table was created
        row = None
    finally:
        conn.close()
    return (0, 0) if row is None else (int(json.loads(row[0]).get("seq", 0)), int(row[1]))


def output_files(data: Path) -> Iterator[Path]:
    for bucket in OUTPUT_BUCKETS:
        yield from (p for p in (data / bucket).rglob("*") if p.is_file())


def temp_files(data: Path) -> list[Path]:
    return [p for p in data.rglob("*") if p.name.startswith(TEMP_PREFIXES)]


def file_keys(data: Path) -> set[str]:
    return {p.relative_to(data).as_posix() for p in output_files(data)
            if not p.name.startswith(TEMP_PREFIXES)}


def unconfirmed_claims(data: Path) -> set[str]:
    """Notification ids claimed in the ledger with no sink result: killed between the claim and
    the result, so the send may or may not have happened (at-most-once delivery)."""
    path = data / "state" / "notifications.db"
    if not path.is_file():
        return set()
    conn = sqlite3.connect(path)
    try:
        rows = conn.execute(
            "SELECT notification_id FROM notification_claims WHERE notification_id NOT IN"
            " (SELECT notification_id FROM notification_results)"
        ).fetchall()
    except sqlite3.OperationalError:
        rows = []
    finally:
        conn.close()
    return {r[0] for r in rows}


def queue(data: Path) -> list[dict[str, Any]]:
    path = data / "notifications.jsonl"
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def stream(data: Path, bucket: str, name: str) -> pl.DataFrame:
    return read_stream(LocalBucket(data / bucket), name)


def without_lineage(frame: pl.DataFrame) -> pl.DataFrame:
    """Lineage names the run and its clock, the one thing a resumed run writes differently."""
    return frame.drop(LINEAGE, strict=False)


# ------------------------------------------------------------------------- the kill schedule
@dataclass(frozen=True)
class KillPoint:
    """Where to kill: ``batch`` None is start-up, -1 the flush; ``delay_s`` after the trigger."""

    batch: int | None
    delay_s: float


@dataclass
class Landing:
    """Where a kill landed, read from the folder after the process died."""

    point: KillPoint
    killed: bool
    committed_batches: int = 0
    mid_batch: bool = False
    temp_left: int = 0
    unconfirmed: set[str] = field(default_factory=set)

    def describe(self) -> str:
        where = {None: "start-up", -1: "flush"}.get(self.point.batch, f"batch {self.point.batch}")
        state = "exited first" if not self.killed else (
            "mid-batch" if self.mid_batch else "between batches")
        return (f"{where} +{self.point.delay_s * 1000:.0f} ms: {state}, "
                f"{self.committed_batches} committed, {self.temp_left} temp, "
                f"{len(self.unconfirmed)} unconfirmed claims")


def kill_schedule(rng: random.Random, batches: int, startup_s: float,
                  batch_s: float) -> list[KillPoint]:
    points = [KillPoint(None, rng.uniform(0.2, 1.0) * startup_s)]
    points += [KillPoint(b, rng.uniform(0.0, 1.0) * batch_s)
               for b in sorted(rng.sample(range(batches), BATCH_KILLS))]
    points.append(KillPoint(-1, rng.uniform(0.0, 0.02)))
    return points


def kill_at(config: Path, data: Path, point: KillPoint, log: Path) -> Landing:
    child = spawn(config, log)
    if point.batch is None:
        reached = True
    elif point.batch == -1:
        reached = wait_for(child, str(data / "aggregated" / "windows" / "*" / "part-flush-*"))
    else:
        first = point.batch * BATCH_SIZE
        reached = wait_for(child, str(data / "raw" / "readings" / "*" / f"part-{first:012d}-*"))
    if reached:
        time.sleep(point.delay_s)
    killed = child.proc.poll() is None
    if killed:
        child.proc.send_signal(signal.SIGKILL)
        child.proc.wait()
    else:
        finish(child)
    seq, batches = committed(data)
    uncommitted = [p for p in output_files(data) if fresh(p, child)
                   and (m := _PART.search(p.name)) and int(m.group(1)) >= seq]
    return Landing(point, killed, batches, bool(uncommitted), len(temp_files(data)),
                   unconfirmed_claims(data))


# ------------------------------------------------------------------------- the test
@pytest.fixture(scope="module")
def simulated(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    folder = tmp_path_factory.mktemp("crash-sim")
    summary = simulate(folder / "sensor_data.db", sensors=SENSORS, minutes=MINUTES,
                       anomaly_rate=ANOMALY_RATE, seed=SIM_SEED)
    return summary.db_path, json.loads(summary.truth_path.read_text())


@pytest.mark.slow
def test_kill_9_at_random_points_then_resume_matches_an_uninterrupted_run(
    simulated: tuple[Path, dict[str, Any]], tmp_path: Path,
) -> None:
    _require_sigkill()
    db, truth = simulated
    began = time.monotonic()

    # The uninterrupted run: the expected files, and the timings the kill points scale to.
    ref_config = write_config(tmp_path / "ref", db)
    ref = ref_config.parent / "data"
    child = spawn(ref_config, tmp_path / "ref.log")
    total_s = finish(child)
    raw_times = sorted(p.stat().st_mtime_ns for p in (ref / "raw").rglob("part-*"))
    startup_s = (raw_times[0] - child.started_ns) / 1e9
    batches = -(-int(truth["rows"]) // BATCH_SIZE)
    assert committed(ref)[1] == batches
    batch_s = (raw_times[-1] - raw_times[0]) / 1e9 / max(1, batches - 1)

    # The crashing run: killed at every point of the schedule, then run to completion.
    crash_config = write_config(tmp_path / "crash", db)
    crash = crash_config.parent / "data"
    schedule = kill_schedule(random.Random(KILL_SEED), batches, startup_s, batch_s)
    landings = [kill_at(crash_config, crash, point, tmp_path / "crash.log")
                for point in schedule]
    finish(spawn(crash_config, tmp_path / "crash.log"))
    report = "\n".join(landing.describe() for landing in landings)
    print(f"\nuninterrupted run {total_s:.1f} s (start-up {startup_s:.1f} s, "
          f"{batch_s * 1000:.0f} ms per batch); kills:\n{report}")

    killed = [landing for landing in landings if landing.killed]
    assert len(killed) >= 10, report
    assert sum(landing.mid_batch for landing in killed) >= 3, report
    assert committed(crash) == committed(ref)

    # Outputs: no temp files, the same keys, the same content but for lineage.
    assert temp_files(crash) == [] and temp_files(ref) == []
    keys = file_keys(ref)
    assert file_keys(crash) == keys
    for key in sorted(keys):
        got = without_lineage(pl.read_parquet(crash / key))
        want = without_lineage(pl.read_parquet(ref / key))
        assert got.equals(want), key

    # Every reading exactly once: raw, and split between schematized and error.
    conn = sqlite3.connect(db)
    try:
        ids = sorted(r[0] for r in conn.execute("SELECT id FROM sensor_readings"))
    finally:
        conn.close()
    assert sorted(stream(crash, "raw", "raw")["id"]) == ids
    valid = stream(crash, "schematized", "schematized")
    errors = stream(crash, "error", "errors")
    assert valid["id"].n_unique() == valid.height and errors["id"].n_unique() == errors.height
    assert sorted([*valid["id"], *errors["id"]]) == ids
    bad = {int(i) for i in truth["invalid"]} | {int(i) for i in truth["duplicates"]}
    assert set(errors["id"]) == bad

    # Windows: as in the uninterrupted run, and as one GROUP BY over the valid readings.
    windows = latest_windows(stream(crash, "aggregated", "windows"))
    ref_windows = latest_windows(stream(ref, "aggregated", "windows"))
    assert without_lineage(windows).equals(without_lineage(ref_windows))
    assert_windows_equal(windows, duckdb_windows(valid))

    # Notifications: never a duplicate; every truth incident once, unless a kill fell between
    # a ledger claim and the send (at most once), which leaves that claim unconfirmed.
    ref_notes, notes = queue(ref), queue(crash)
    want = {n["notification_id"]: sorted(r["id"] for r in n["readings"]) for n in ref_notes}
    assert sorted(want.values()) == sorted(sorted(i["reading_ids"]) for i in truth["incidents"])
    got_ids = [n["notification_id"] for n in notes]
    assert len(got_ids) == len(set(got_ids)), "a notification was sent twice"
    for note in notes:
        assert sorted(r["id"] for r in note["readings"]) == want[note["notification_id"]]
    lost = set(want) - set(got_ids)
    assert lost <= unconfirmed_claims(crash), lost
    if lost:
        print(f"lost at most-once: {sorted(lost)}")
    else:
        assert set(got_ids) == set(want)
    print(f"test wall time {time.monotonic() - began:.1f} s")
