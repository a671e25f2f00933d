"""The scenario store: settings and history, process-safe sharing, executions and stats."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import textwrap
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chrono.core.errors import ConfigError, TerminalError
from chrono.sensors.scenarios import (
    SCENARIOS,
    ScenarioStore,
    canonical_scenarios,
)


@pytest.fixture
def store(tmp_path: Path) -> ScenarioStore:
    return ScenarioStore(tmp_path / "state" / "scenarios.db")


def test_default_when_nothing_was_set(store: ScenarioStore) -> None:
    setting = store.get()
    assert setting.active == SCENARIOS
    assert (setting.set_by, setting.setting_id) == ("default", 0)
    assert setting.set_at.tzinfo is not None
    assert abs((datetime.now(UTC) - setting.set_at).total_seconds()) < 60
    assert store.history() == []


def test_custom_default_is_canonical(tmp_path: Path) -> None:
    store = ScenarioStore(tmp_path / "s.db", default=("lineage", "raw", "raw"))
    assert store.get().active == ("raw", "lineage")
    with pytest.raises(ConfigError):
        ScenarioStore(tmp_path / "t.db", default=("rawest",))


def test_set_get_and_history_newest_first(store: ScenarioStore) -> None:
    first = store.set(["raw"], by="alice")
    second = store.set(["lineage", "schematized", "lineage"], by="bob")
    third = store.set([], by="carol")
    assert second.active == ("schematized", "lineage")
    assert third.active == ()
    assert first.setting_id < second.setting_id < third.setting_id

    current = store.get()
    assert current == third
    assert [s.set_by for s in store.history()] == ["carol", "bob", "alice"]
    assert store.history()[1] == second
    assert [s.setting_id for s in store.history(limit=2)] == [third.setting_id, second.setting_id]
    assert store.history(limit=0) == []


def test_names_are_normalised() -> None:
    assert canonical_scenarios(["Multi-Destination", " raw "]) == ("raw", "multi_destination")
    assert canonical_scenarios(["notification,lineage", ""]) == ("lineage", "notification")
    assert canonical_scenarios(("raw",)) == ("raw",)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.sampled_from(SCENARIOS), max_size=12))
def test_any_order_with_duplicates_gives_the_canonical_set(names: list[str]) -> None:
    result = canonical_scenarios(names)
    assert set(result) == set(names)
    assert len(result) == len(set(result))
    assert list(result) == sorted(result, key=SCENARIOS.index)
    assert canonical_scenarios(list(reversed(names))) == result
    assert canonical_scenarios(list(result)) == result


def test_unknown_name_lists_the_valid_ones(store: ScenarioStore) -> None:
    with pytest.raises(ConfigError) as caught:
        store.set(["raw", "archive"], by="alice")
    err = caught.value
    assert err.code == "scenario_unknown"
    assert "'archive'" in err.detail
    for name in SCENARIOS:
        assert name in err.detail
    assert store.history() == []  # nothing stored on error


def test_many_unknown_names_stay_bounded(store: ScenarioStore) -> None:
    with pytest.raises(ConfigError) as caught:
        store.set([f"bogus{i}" * 20 for i in range(50)], by="alice")
    assert "(+47 more)" in caught.value.detail
    assert "notification" in caught.value.detail
    assert len(caught.value.detail) <= 200


@pytest.mark.parametrize("by", ["", "   "])
def test_who_is_required(store: ScenarioStore, by: str) -> None:
    with pytest.raises(ConfigError) as caught:
        store.set(["raw"], by=by)
    assert caught.value.code == "scenario_by_missing"
    assert store.history() == []


def test_two_stores_on_one_file_see_each_other(tmp_path: Path) -> None:
    path = tmp_path / "scenarios.db"
    cli, orchestrator = ScenarioStore(path), ScenarioStore(path)
    cli.set(["raw", "notification"], by="ops")
    assert orchestrator.get().active == ("raw", "notification")
    orchestrator.start_execution("run-1", orchestrator.get().active)
    cli.set(["raw"], by="ops")
    orchestrator.finish_execution("run-1", "ok", {"read": 5})
    assert cli.executions()[0].scenarios == ("raw", "notification")
    assert cli.executions()[0].status == "ok"
    assert orchestrator.get().active == ("raw",)
    assert [s.active for s in orchestrator.history()] == [("raw",), ("raw", "notification")]
    with closing(sqlite3.connect(path)) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_concurrent_processes_lose_no_change(tmp_path: Path) -> None:
    """Two CLI processes set scenarios while this one records executions, all at once."""
    path = tmp_path / "scenarios.db"
    store = ScenarioStore(path)
    script = textwrap.dedent(
        """
        import sys
        from pathlib import Path
        from chrono.sensors.scenarios import SCENARIOS, ScenarioStore
        store = ScenarioStore(Path(sys.argv[1]))
        for i in range(25):
            store.set([SCENARIOS[i % len(SCENARIOS)]], by=sys.argv[2])
            store.get()
        """
    )
    workers = [
        subprocess.Popen([sys.executable, "-c", script, str(path), who]) for who in ("p1", "p2")
    ]
    for i in range(25):
        store.start_execution(f"run-{i}", store.get().active)
        store.finish_execution(f"run-{i}", "ok", {"read": 2})
    assert [w.wait(timeout=60) for w in workers] == [0, 0]

    history = store.history(limit=100)
    assert len(history) == 50
    assert len({s.setting_id for s in history}) == 50
    assert sorted(s.set_by for s in history) == ["p1"] * 25 + ["p2"] * 25
    stats = store.stats()
    assert stats["changes"] == 50
    assert stats["executions"]["total"] == stats["executions"]["ok"] == 25
    assert stats["totals"] == {"read": 50}


def test_executions_and_stats(store: ScenarioStore) -> None:
    store.set(["raw", "schematized"], by="alice")
    store.set(["raw", "schematized", "notification"], by="bob")

    store.start_execution("r1", ("raw", "schematized"))
    store.finish_execution("r1", "ok", {"read": 100, "valid": 90, "invalid": 10})
    store.start_execution("r2", ("schematized", "raw", "notification"))
    store.finish_execution("r2", "failed", {"read": 40, "valid": 40})
    store.start_execution("r3", SCENARIOS)
    store.finish_execution("r3", "dry_run", {"read": 1000})
    store.start_execution("r4", ("raw",))  # still running

    runs = store.executions()
    assert [e.run_id for e in runs] == ["r4", "r3", "r2", "r1"]
    assert runs[0].status == "running" and runs[0].finished_at is None and runs[0].counts == {}
    assert runs[2].scenarios == ("raw", "schematized", "notification")
    assert runs[3].counts == {"read": 100, "valid": 90, "invalid": 10}
    assert runs[3].finished_at is not None and runs[3].finished_at >= runs[3].started_at
    assert [e.run_id for e in store.executions(limit=2)] == ["r4", "r3"]

    stats = store.stats()
    assert stats["current"] == ["raw", "schematized", "notification"]
    assert stats["set_by"] == "bob"
    assert datetime.fromisoformat(stats["set_at"]) == store.get().set_at
    assert stats["changes"] == 2
    assert stats["executions"] == {
        "total": 4, "running": 1, "ok": 1, "failed": 1, "dry_run": 1,
    }
    # Dry runs deliver nothing, so their counters stay out of the totals.
    assert stats["totals"] == {"invalid": 10, "read": 140, "valid": 130}
    assert stats["scenario_runs"] == {
        "raw": 4, "schematized": 3, "lineage": 1, "multi_destination": 1, "notification": 2,
    }
    assert stats["last_execution"]["run_id"] == "r4"
    assert stats["last_execution"]["status"] == "running"


def test_stats_on_an_empty_store(store: ScenarioStore) -> None:
    stats = store.stats()
    assert stats["current"] == list(SCENARIOS)
    assert stats["set_by"] == "default"
    assert stats["changes"] == 0
    assert stats["executions"]["total"] == 0
    assert stats["totals"] == {}
    assert set(stats["scenario_runs"].values()) == {0}
    assert stats["last_execution"] is None


def test_restarting_a_run_keeps_one_execution(store: ScenarioStore) -> None:
    store.start_execution("r1", ("raw",))
    started = store.executions()[0].started_at
    store.finish_execution("r1", "failed", {"read": 3})
    store.start_execution("r1", ("raw", "lineage"))
    again = store.executions()
    assert len(again) == 1
    assert (again[0].status, again[0].finished_at, again[0].started_at) == (
        "running", None, started,
    )
    assert again[0].scenarios == ("raw", "lineage")


def test_bad_finishes_are_refused(store: ScenarioStore) -> None:
    with pytest.raises(TerminalError) as caught:
        store.finish_execution("never", "ok", {})
    assert caught.value.code == "execution_unknown"
    store.start_execution("r1", ())
    for status in ("running", "done"):
        with pytest.raises(TerminalError) as caught:
            store.finish_execution("r1", status, {})
        assert caught.value.code == "execution_status"
    with pytest.raises(ConfigError):
        store.start_execution("r2", ("nope",))


def test_reopening_the_file_keeps_everything(tmp_path: Path) -> None:
    path = tmp_path / "scenarios.db"
    ScenarioStore(path).set(["lineage"], by="alice")
    created = ScenarioStore(path).get()
    assert (created.active, created.set_by) == (("lineage",), "alice")
    assert len(ScenarioStore(path).history()) == 1
