"""The orchestrator end to end on simulated data: routing, windows vs DuckDB, incidents,
idempotent replays, batch-size independence, scenarios, dry-run and sink failures."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import duckdb
import polars as pl
import pytest

from chrono.core.errors import TransientError
from chrono.sensors.config import RouteConfig, SensorPipelineConfig
from chrono.sensors.model import METRICS
from chrono.sensors.orchestrator import SensorOrchestrator
from chrono.sensors.outputs import latest_windows, read_stream
from chrono.sensors.scenarios import ScenarioStore
from chrono.sensors.simulate import simulate
from chrono.sensors.sources import SourceConfig
from chrono.storage.buckets import open_bucket


def make_config(tmp: Path, db: Path, **overrides: Any) -> SensorPipelineConfig:
    return SensorPipelineConfig(
        data_dir=str(tmp / "data"), source=SourceConfig(kind="sqlite", path=str(db)),
        **overrides,
    )


def stream(cfg: SensorPipelineConfig, bucket: str, name: str) -> pl.DataFrame:
    return read_stream(open_bucket(cfg.bucket_spec(bucket).url), name)


def duckdb_windows(readings: pl.DataFrame, size_s: int = 60) -> pl.DataFrame:
    """The reference: one GROUP BY over all the valid readings."""
    aggs = ", ".join(
        f"avg({m}) AS {m}_mean, min({m}) AS {m}_min, max({m}) AS {m}_max, "
        f"stddev_samp({m}) AS {m}_std" for m in METRICS
    )
    con = duckdb.connect()
    con.register("r", readings.select("sensor_id", "timestamp", *METRICS).to_arrow())
    return con.sql(
        f"SELECT sensor_id, to_timestamp(floor(epoch(CAST(timestamp AS TIMESTAMPTZ)) / {size_s})"
        f" * {size_s}) AS window_start, count(*) AS count, {aggs} FROM r GROUP BY ALL"
        " ORDER BY window_start, sensor_id"
    ).pl()


def assert_windows_equal(got: pl.DataFrame, want: pl.DataFrame) -> None:
    got = got.with_columns(pl.col("window_start").dt.convert_time_zone("UTC"))
    want = want.with_columns(pl.col("window_start").dt.cast_time_unit("us")
                             .dt.convert_time_zone("UTC"))
    joined = want.join(got, on=["sensor_id", "window_start"], how="full", suffix="_got")
    assert joined.height == want.height == got.height
    assert (joined["count"] == joined["count_got"]).all()
    for m in METRICS:
        for stat in ("mean", "min", "max", "std"):
            col = f"{m}_{stat}"
            a, b = joined[col].to_numpy(), joined[f"{col}_got"].to_numpy()
            both_null = pl.Series(a).is_null() & pl.Series(b).is_null()
            diff = (pl.Series(a) - pl.Series(b)).abs() <= 1e-9 * (1 + pl.Series(a).abs())
            assert (both_null | diff.fill_null(False)).all(), col


@pytest.fixture(scope="module")
def simulated(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    folder = tmp_path_factory.mktemp("sim")
    summary = simulate(folder / "sensor_data.db", sensors=10, minutes=30, seed=3)
    return summary.db_path, json.loads(summary.truth_path.read_text())


@pytest.fixture(scope="module")
def full_run(simulated: tuple[Path, dict[str, Any]],
             tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    db, truth = simulated
    tmp = tmp_path_factory.mktemp("run")
    cfg = make_config(tmp, db, batch_size=1000)
    summary = SensorOrchestrator(cfg).run(once=True)
    return {"cfg": cfg, "summary": summary, "truth": truth, "db": db, "tmp": tmp}


def test_every_reading_lands_in_exactly_one_of_valid_and_error(full_run: dict[str, Any]) -> None:
    cfg, truth, counts = full_run["cfg"], full_run["truth"], full_run["summary"].counts
    assert counts["processed"] == truth["rows"]
    assert counts["valid"] + counts["invalid"] == counts["processed"]
    valid = stream(cfg, "schematized", "schematized")
    errors = stream(cfg, "error", "errors")
    assert valid.height == counts["valid"] and errors.height == counts["invalid"]
    assert set(valid["id"]).isdisjoint(set(errors["id"]))
    expected_bad = {int(i) for i in truth["invalid"]} | {int(i) for i in truth["duplicates"]}
    assert set(errors["id"]) == expected_bad
    assert counts["duplicates"] == len(truth["duplicates"])
    rules = {row["id"]: {e["rule_id"] for e in row["errors"]}
             for row in errors.iter_rows(named=True)}
    for rid, expected in truth["invalid"].items():
        assert set(expected) <= rules[int(rid)], rid
    for rid in truth["duplicates"]:
        assert rules[int(rid)] == {"duplicate_reading"}
    assert set(errors["spec_version"]) == {"2.0.0"}


def test_records_keep_fields_and_carry_lineage(full_run: dict[str, Any]) -> None:
    valid = stream(full_run["cfg"], "schematized", "schematized")
    assert {"id", "timestamp", "sensor_id", "temperature", "location"} <= set(valid.columns)
    assert not any(c.startswith("_") for c in valid.columns)
    lineage = valid["lineage"].struct.unnest()
    assert set(lineage.columns) >= {"node_id", "job_id", "execution_id", "processing_time",
                                    "pipeline_version", "spec_version"}
    assert lineage["execution_id"].unique().to_list() == [full_run["summary"].run_id]
    archived = stream(full_run["cfg"], "archival", "schematized")
    assert sorted(archived["id"]) == sorted(valid["id"])
    raw = stream(full_run["cfg"], "raw", "raw")
    assert raw.height == full_run["truth"]["rows"]


def test_windows_equal_duckdb_reference(full_run: dict[str, Any]) -> None:
    valid = stream(full_run["cfg"], "schematized", "schematized")
    windows = latest_windows(stream(full_run["cfg"], "aggregated", "windows"))
    assert_windows_equal(windows, duckdb_windows(valid))
    assert {"window_end", "location", "version", "final"} <= set(windows.columns)


def test_one_notification_per_incident(full_run: dict[str, Any]) -> None:
    cfg, truth = full_run["cfg"], full_run["truth"]
    lines = [json.loads(x) for x in cfg.queue_file.read_text().splitlines()]
    assert len(lines) == len(truth["incidents"]) == full_run["summary"].counts["notifications"]
    got = sorted(sorted(r["id"] for r in n["readings"]) for n in lines)
    want = sorted(sorted(i["reading_ids"]) for i in truth["incidents"])
    assert got == want
    assert all(n["notification_id"] and n["location"] and n["job_ids"] for n in lines)


def test_rerun_adds_nothing(full_run: dict[str, Any]) -> None:
    cfg = full_run["cfg"]
    before = {p: p.read_bytes() for p in cfg.data_path.rglob("*.parquet")}
    queue = cfg.queue_file.read_text()
    summary = SensorOrchestrator(cfg).run(once=True)
    assert summary.counts["processed"] == 0
    assert cfg.queue_file.read_text() == queue
    after = {p: p.read_bytes() for p in cfg.data_path.rglob("*.parquet")}
    assert after.keys() == before.keys()


def test_replay_after_lost_checkpoint_overwrites_instead_of_duplicating(
    full_run: dict[str, Any], tmp_path: Path,
) -> None:
    db = full_run["db"]
    cfg = make_config(tmp_path, db, batch_size=1000)
    SensorOrchestrator(cfg).run(once=True)
    files = sorted(p.relative_to(cfg.data_path) for p in cfg.data_path.rglob("*.parquet"))
    queue = cfg.queue_file.read_text()
    (cfg.state_dir / "checkpoints.db").unlink()  # as if killed before the first commit
    SensorOrchestrator(cfg).run(once=True)
    assert sorted(p.relative_to(cfg.data_path)
                  for p in cfg.data_path.rglob("*.parquet")) == files
    assert cfg.queue_file.read_text() == queue  # the ledger suppressed every re-send
    windows = latest_windows(stream(cfg, "aggregated", "windows"))
    valid = stream(cfg, "schematized", "schematized")
    assert_windows_equal(windows, duckdb_windows(valid))


@pytest.mark.parametrize("batch_size", [1, 7, 500, 1_000_000])
def test_windows_do_not_depend_on_batch_size(batch_size: int, tmp_path: Path) -> None:
    summary = simulate(tmp_path / "small.db", sensors=3, minutes=6, seed=5)
    cfg = make_config(tmp_path, summary.db_path, batch_size=batch_size)
    SensorOrchestrator(cfg).run(once=True)
    valid = stream(cfg, "schematized", "schematized")
    assert_windows_equal(latest_windows(stream(cfg, "aggregated", "windows")),
                         duckdb_windows(valid))


def test_dry_run_writes_nothing(simulated: tuple[Path, dict[str, Any]], tmp_path: Path) -> None:
    cfg = make_config(tmp_path, simulated[0])
    summary = SensorOrchestrator(cfg, dry_run=True).run(once=True)
    assert summary.status == "dry_run"
    assert summary.counts["processed"] == simulated[1]["rows"]
    assert summary.planned and summary.would_notify
    assert not cfg.data_path.exists()


def test_scenarios_switch_outputs(simulated: tuple[Path, dict[str, Any]], tmp_path: Path) -> None:
    cfg = make_config(tmp_path, simulated[0])
    ScenarioStore(cfg.scenario_store_path).set(["raw"], by="tester")
    summary = SensorOrchestrator(cfg).run(once=True)
    assert summary.scenarios == ("raw",)
    assert (cfg.data_path / "raw").is_dir()
    for absent in ("schematized", "error", "archival", "aggregated"):
        assert not (cfg.data_path / absent).exists()
    assert not cfg.queue_file.exists()
    execution = ScenarioStore(cfg.scenario_store_path).executions(1)[0]
    assert execution.status == "ok" and execution.counts["processed"] == summary.counts[
        "processed"]


def test_failing_sink_is_reported_and_batch_not_committed(
    simulated: tuple[Path, dict[str, Any]], tmp_path: Path,
) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where a bucket folder should be")
    routes = [RouteConfig(name="archival", stream="schematized", bucket="archival"),
              RouteConfig(name="lake", stream="windows", bucket=str(blocker))]
    cfg = make_config(tmp_path, simulated[0], routes=routes, sink_retries=1)
    orchestrator = SensorOrchestrator(cfg)
    orchestrator.writer.backoff_s = 0.0
    with pytest.raises(TransientError) as err:
        orchestrator.run(once=True)
    assert "lake" in str(err.value)
    assert orchestrator.summary.status == "failed"
    # The batch's checkpoint waits for its writes: the failure stops the run at that commit
    # (the next batch may have been under way meanwhile, with its own failed write).
    assert orchestrator.writer.sinks["lake"].failures >= 1
    assert orchestrator.writer.sinks["archival"].files >= 1
    assert not (cfg.state_dir / "checkpoints.db").exists()  # nothing committed: retried later


def test_scenario_change_is_picked_up_between_cycles(
    simulated: tuple[Path, dict[str, Any]], tmp_path: Path,
) -> None:
    cfg = make_config(tmp_path, simulated[0], batch_size=500)
    store = ScenarioStore(cfg.scenario_store_path)
    store.set(["raw"], by="night-shift")
    orchestrator = SensorOrchestrator(cfg)
    assert orchestrator.cycle()
    assert not (cfg.data_path / "schematized").exists()
    store.set(["raw", "schematized"], by="day-shift")  # as `chrono scenarios set` would
    assert orchestrator.cycle()
    valid = stream(cfg, "schematized", "schematized")
    first_batch = pl.concat(pl.read_parquet(p) for p in (cfg.data_path / "raw").rglob(
        "part-000000000000-000000000499.parquet"))
    assert 0 < valid.height <= 500
    assert set(valid["id"]).isdisjoint(first_batch["id"])  # only the second batch
    assert len(stream(cfg, "raw", "raw")) == 1000
    orchestrator.source.close()
