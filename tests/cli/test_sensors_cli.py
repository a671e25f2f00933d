"""`chrono sensors`, `chrono scenarios` and `chrono buckets` through real subprocesses.

Every command runs as ``python -m chrono.cli.main ...`` in a scratch folder, with no
``CHRONO_DATA`` / ``CHRONO_PIPELINE_CONFIG`` in the environment, so the built-in defaults
(``./sensor_data.db`` in, ``./chrono-data/`` out) are what is exercised. Output is read at Rich's
non-terminal width (pinned to 80 columns), the narrowest a user piping to a file gets.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import typer.main
import yaml

from chrono.cli.main import app
from chrono.sensors.config import BUCKET_NAMES
from chrono.sensors.orchestrator import COUNTER_NAMES
from chrono.sensors.scenarios import SCENARIOS

DB = "sensor_data.db"
TRUTH = f"{DB}.truth.json"
Proc = subprocess.CompletedProcess[str]
Ran = tuple[Path, Proc]
"""A folder and the command that ran in it."""
SIMULATE = ("sensors", "simulate", "--db", DB, "--sensors", "5", "--minutes", "10", "--seed", "1")


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("CHRONO_DATA", "CHRONO_PIPELINE_CONFIG", "FORCE_COLOR")}
    env.update(COLUMNS="80", NO_COLOR="1")
    return env


def cli(*args: str, cwd: Path) -> Proc:
    return subprocess.run([sys.executable, "-m", "chrono.cli.main", *args], cwd=cwd, env=_env(),
                          capture_output=True, text=True, timeout=120)


def flat(text: str) -> str:
    """Text with Rich's line wrapping undone (words joined by single spaces)."""
    return " ".join(text.split())


def assert_readable_failure(proc: Proc, *needles: str) -> None:
    """Exit 2, every needle in stderr (wrapping undone), and no traceback."""
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr
    message = flat(proc.stderr)
    for needle in needles:
        assert needle in message, (needle, message)


def table_rows(text: str) -> list[list[str]]:
    """Body rows of the Rich tables in ``text``, one list of cell texts per row.

    A line whose first cell is empty continues the row above it (a folded cell), so its cells
    are appended to that row's without a separator.
    """
    rows: list[list[str]] = []
    for line in text.splitlines():
        if not line.startswith("│"):
            continue
        cells = [c.strip() for c in line.split("│")[1:-1]]
        if rows and not cells[0]:
            rows[-1] = [a + b for a, b in zip(rows[-1], cells, strict=True)]
        else:
            rows.append(cells)
    return rows


# ----------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def simulated(tmp_path_factory: pytest.TempPathFactory) -> Ran:
    """A folder where `sensors simulate` ran once: the database, its truth file, the call."""
    folder = tmp_path_factory.mktemp("simulated")
    proc = cli(*SIMULATE, cwd=folder)
    assert proc.returncode == 0, proc.stderr
    return folder, proc


@pytest.fixture(scope="module")
def truth(simulated: Ran) -> dict[str, int]:
    counts: dict[str, int] = json.loads((simulated[0] / TRUTH).read_text())["counts"]
    return counts


@pytest.fixture
def workdir(simulated: Ran, tmp_path: Path) -> Path:
    """A fresh folder holding only a copy of the simulated database and its truth file."""
    for name in (DB, TRUTH):
        shutil.copy(simulated[0] / name, tmp_path / name)
    return tmp_path


@pytest.fixture(scope="module")
def json_run(simulated: Ran, tmp_path_factory: pytest.TempPathFactory) -> Ran:
    """A folder where `sensors run --once --json --quiet` ran over the simulated database."""
    folder = tmp_path_factory.mktemp("json_run")
    for name in (DB, TRUTH):
        shutil.copy(simulated[0] / name, folder / name)
    proc = cli("sensors", "run", "--once", "--json", "--quiet", cwd=folder)
    assert proc.returncode == 0, proc.stderr
    return folder, proc


# ----------------------------------------------------------------------------- sensors
def test_simulate_writes_db_and_truth_then_refuses_to_overwrite(
    simulated: Ran, truth: dict[str, int],
) -> None:
    folder, first = simulated
    assert (folder / DB).stat().st_size > 0
    assert truth["rows"] == truth["valid"] + truth["invalid"] + truth["duplicates"] > 0
    assert f"wrote {truth['rows']} readings to {DB}" in flat(first.stderr)
    before = (folder / DB).read_bytes()

    again = cli(*SIMULATE, cwd=folder)
    assert_readable_failure(again, "simulate_db_exists", "--overwrite")
    assert (folder / DB).read_bytes() == before


def test_run_once_json_uses_defaults_and_matches_truth(
    json_run: Ran, truth: dict[str, int],
) -> None:
    folder, proc = json_run
    assert "sensor run" not in proc.stderr  # --quiet: no live table
    summary = json.loads(proc.stdout)
    assert summary["status"] == "ok" and summary["error_code"] is None
    assert tuple(summary["scenarios"]) == SCENARIOS
    counts = summary["counts"]
    assert set(COUNTER_NAMES) <= set(counts)
    assert counts["processed"] == truth["rows"]
    assert counts["valid"] == truth["valid"]
    assert counts["invalid"] == truth["invalid"] + truth["duplicates"]
    assert counts["duplicates"] == truth["duplicates"]
    assert counts["notifications"] == truth["incidents"] > 0
    assert counts["notifications_suppressed"] == 0

    data = folder / "chrono-data"
    for name in BUCKET_NAMES:
        assert any(p.is_file() for p in (data / name).rglob("*")), f"bucket {name} is empty"
    queued = (data / "notifications.jsonl").read_text().splitlines()
    assert len(queued) == truth["incidents"]
    assert (data / "state" / "runs" / f"{summary['run_id']}.json").is_file()


def test_run_once_table_shows_every_counter_and_live_table(
    workdir: Path, json_run: Ran,
) -> None:
    expected = json.loads(json_run[1].stdout)["counts"]
    proc = cli("sensors", "run", "--once", cwd=workdir)
    assert proc.returncode == 0, proc.stderr
    assert "sensor run" in proc.stdout and "(ok)" in proc.stdout
    for name in COUNTER_NAMES:
        row = re.search(rf"^│ {re.escape(name)} +│ +(\d+) │$", proc.stdout, re.MULTILINE)
        assert row is not None, f"no row for counter {name}"
        assert int(row.group(1)) == expected[name], name
    # The live table on stderr ends on the finished run, not on the last cycle's frame.
    assert "sensor run" in proc.stderr and "(ok)" in proc.stderr
    live = {r[0]: r[1] for r in table_rows(proc.stderr)}
    assert live["windows"] == str(expected["windows"])


def test_run_dry_run_prints_plan_and_creates_nothing(workdir: Path, truth: dict[str, int]) -> None:
    proc = cli("sensors", "run", "--once", "--dry-run", cwd=workdir)
    assert proc.returncode == 0, proc.stderr
    assert "…" not in proc.stdout  # no key or bucket elided at 80 columns
    _, plan_text = proc.stdout.split("dry run: would write")
    as_json = cli("sensors", "run", "--once", "--dry-run", "--json", "--quiet", cwd=workdir)
    assert as_json.returncode == 0, as_json.stderr
    summary = json.loads(as_json.stdout)
    assert summary["status"] == "dry_run"
    planned = summary["planned"]
    assert {p["sink"] for p in planned} == set(BUCKET_NAMES)
    assert table_rows(plan_text) == [
        [p["sink"], p["bucket_url"], p["key"], str(p["rows"])] for p in planned
    ]
    notify = re.findall(r"^would notify (\S+)$", proc.stdout, re.MULTILINE)
    assert notify == summary["would_notify"] and len(notify) == truth["incidents"]
    assert sorted(p.name for p in workdir.iterdir()) == sorted([DB, TRUTH])


def test_bacalhau_job_renders_yaml_that_runs_the_orchestrator(tmp_path: Path) -> None:
    proc = cli("sensors", "bacalhau-job", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    job = yaml.safe_load(proc.stdout)
    tasks: list[dict[str, Any]] = job["Tasks"]
    engine = next(t["Engine"] for t in tasks if t["Engine"]["Type"] == "docker")
    argv = [*engine["Params"]["Entrypoint"], *engine["Params"]["Parameters"]]
    assert argv[:3] == ["chrono", "sensors", "run"] and "--once" in argv
    config_path = argv[argv.index("--config") + 1]
    assert config_path.endswith("/pipeline.yaml")

    out = cli("sensors", "bacalhau-job", "--out", "job.yaml", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "job.yaml").read_text() == proc.stdout
    assert out.stdout == ""


# ----------------------------------------------------------------------------- scenarios
def test_scenarios_get_set_history_and_readable_failures(tmp_path: Path) -> None:
    default = cli("scenarios", "get", cwd=tmp_path)
    assert default.returncode == 0, default.stderr
    assert default.stdout.split() == list(SCENARIOS)

    changed = cli("scenarios", "set", "raw", "schematized", "--by", "alice", cwd=tmp_path)
    assert changed.returncode == 0, changed.stderr
    assert changed.stdout.split() == ["raw", "schematized"]
    got = cli("scenarios", "get", cwd=tmp_path)
    assert got.stdout.split() == ["raw", "schematized"]
    assert "set by alice" in got.stderr

    history = cli("scenarios", "history", "--limit", "1", cwd=tmp_path)
    assert history.returncode == 0, history.stderr
    rows = table_rows(history.stdout)
    assert len(rows) == 1
    assert rows[0][2] == "alice" and rows[0][3] == "raw schematized"

    unknown = cli("scenarios", "set", "raw", "bogus", "--by", "bob", cwd=tmp_path)
    assert_readable_failure(unknown, "scenario_unknown", "bogus", "notification")
    no_author = cli("scenarios", "set", "raw", cwd=tmp_path)
    assert_readable_failure(no_author, "Missing option '--by'")
    assert cli("scenarios", "get", cwd=tmp_path).stdout.split() == ["raw", "schematized"]


def test_scenarios_stats_json_counts_the_run(
    json_run: Ran, truth: dict[str, int],
) -> None:
    proc = cli("scenarios", "stats", "--json", cwd=json_run[0])
    assert proc.returncode == 0, proc.stderr
    stats = json.loads(proc.stdout)
    assert stats["executions"]["total"] == stats["executions"]["ok"] == 1
    assert stats["scenario_runs"] == dict.fromkeys(SCENARIOS, 1)
    assert stats["totals"]["processed"] == truth["rows"]
    assert stats["last_execution"]["run_id"] == json.loads(json_run[1].stdout)["run_id"]


# ----------------------------------------------------------------------------- buckets
def test_buckets_create_dry_run_then_create_then_exists(tmp_path: Path) -> None:
    plan = cli("buckets", "create", "--dry-run", cwd=tmp_path)
    assert plan.returncode == 0, plan.stderr
    assert "bucket plan (dry run)" in plan.stdout
    rows = {r[0]: r for r in table_rows(plan.stdout)}
    assert set(rows) == set(BUCKET_NAMES)
    for name, row in rows.items():
        assert row[1] == f"chrono-data/{name}" and row[2] == "create_folder"
    assert list(tmp_path.iterdir()) == []

    created = cli("buckets", "create", cwd=tmp_path)
    assert created.returncode == 0, created.stderr
    assert {r[0]: r[2] for r in table_rows(created.stdout)} == dict.fromkeys(
        BUCKET_NAMES, "create_folder")
    for name in BUCKET_NAMES:
        assert (tmp_path / "chrono-data" / name).is_dir()

    again = cli("buckets", "create", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert {r[0]: r[2] for r in table_rows(again.stdout)} == dict.fromkeys(BUCKET_NAMES, "exists")


# ----------------------------------------------------------------------------- help and config
def _commands() -> list[tuple[tuple[str, ...], list[str], list[str]]]:
    """(command path, option names, subcommand names) of every sensors/scenarios/buckets command,
    read from the app itself so a new option cannot slip past the help test."""
    root: Any = typer.main.get_command(app)
    found: list[tuple[tuple[str, ...], list[str], list[str]]] = []
    for noun in ("sensors", "scenarios", "buckets"):
        group = root.commands[noun]
        found.append(((noun,), [], sorted(group.commands)))
        for verb, command in sorted(group.commands.items()):
            options = [opt for p in command.params if p.param_type_name == "option"
                       for opt in (*p.opts, *p.secondary_opts)]
            undocumented = [p.name for p in command.params if not p.help]
            assert not undocumented, f"{noun} {verb}: no help for {undocumented}"
            found.append(((noun, verb), options, []))
    return found


@pytest.mark.parametrize(("command", "options", "subcommands"), _commands(),
                         ids=lambda v: " ".join(v) if isinstance(v, tuple) else None)
def test_help_mentions_every_option(command: tuple[str, ...], options: list[str],
                                    subcommands: list[str], tmp_path: Path) -> None:
    proc = cli(*command, "--help", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "Usage" in proc.stdout
    for name in options:
        assert re.search(rf"(?<![\w-]){re.escape(name)}(?![\w-])", proc.stdout), name
    for name in subcommands:  # listed in the Commands panel, with a summary
        assert re.search(rf"^│ {re.escape(name)} +\w", proc.stdout, re.MULTILINE), name
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(("text", "command", "needles"), [
    ("batch_sise: 5\n", ("sensors", "run", "--once"),
     ("key 'batch_sise'", "fix: remove it or correct its spelling")),
    ("batch_size: 0\n", ("buckets", "create"),
     ("key 'batch_size'", "greater than or equal to 1", "fix: choose a value")),
], ids=["unknown-key", "bad-value"])
def test_bad_pipeline_yaml_fails_readably(text: str, command: tuple[str, ...],
                                          needles: tuple[str, ...], tmp_path: Path) -> None:
    (tmp_path / "pipeline.yaml").write_text(text)
    proc = cli(*command, cwd=tmp_path)  # found as ./pipeline.yaml, no --config needed
    assert_readable_failure(proc, "config_invalid", "pipeline.yaml:", *needles)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pipeline.yaml"]


def test_bad_log_level_fails_readably(tmp_path: Path) -> None:
    level = cli("sensors", "run", "--once", "--log-level", "loud", cwd=tmp_path)
    assert_readable_failure(level, "--log-level", "loud")
    assert list(tmp_path.iterdir()) == []
