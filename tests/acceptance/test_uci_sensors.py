"""The UCI occupancy corpus through the sensor CLI with ``examples/uci_occupancy``, checked
against DuckDB reading the same files itself.

Each of the three files (``datatraining.txt``, ``datatest.txt``, ``datatest2.txt``) runs once
through ``chrono sensors run --once`` with a CSV source and the spec written for the dataset, then
once more. The reference never goes through Chrono: DuckDB's own ``read_csv`` with the files'
real layout (a quoted row index the seven-name header does not name, then the seven columns).
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import duckdb
import polars as pl
import pytest

from chrono.sensors.config import load_pipeline_config
from chrono.sensors.outputs import latest_windows, read_stream
from chrono.sensors.spec import load_spec
from chrono.storage.local import LocalBucket

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "uci_occupancy"
CONFIG = EXAMPLE / "pipeline.yaml"
SPEC = EXAMPLE / "spec.yaml"

ROWS = {"datatraining.txt": 8143, "datatest.txt": 2665, "datatest2.txt": 9752}
"""Data rows per file (lines minus the header)."""
SENSOR_ID, LOCATION = "uci-office-1", "umons-office"
WINDOW_S = 300
METRICS = ("temperature", "humidity", "light", "co2")
CO2_LIMIT, TEMP_LOW, TEMP_HIGH = 1000, 18, 26
"""The spec's anomaly thresholds."""
DATA_BUCKETS = ("raw", "schematized", "error", "archival", "aggregated")
DUPLICATE_RULE = "duplicate_reading"

# The files' layout, spelled out: DuckDB's sniffer takes the shorter header for a data row.
_UCI_COLUMNS = {
    "row_index": "BIGINT", "date": "TIMESTAMP", "Temperature": "DOUBLE", "Humidity": "DOUBLE",
    "Light": "DOUBLE", "CO2": "DOUBLE", "HumidityRatio": "DOUBLE", "Occupancy": "BIGINT",
}


def _run_sensors(path: Path, data_dir: Path) -> dict[str, Any]:
    """One ``chrono sensors run --once`` over ``path``, from the example folder; its summary."""
    env = {k: v for k, v in os.environ.items() if k not in ("UCI_SPEC", "CHRONO_PIPELINE_CONFIG")}
    env.update(UCI_FILE=str(path), CHRONO_DATA=str(data_dir))
    cmd = [sys.executable, "-m", "chrono.cli.main", "sensors", "run", "--once", "--quiet",
           "--json", "--config", str(CONFIG)]
    proc = subprocess.run(cmd, cwd=EXAMPLE, env=env, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary: dict[str, Any] = json.loads(proc.stdout)
    assert summary["status"] == "ok", summary
    return summary


def _snapshot(data_dir: Path) -> dict[str, str]:
    """Relative path -> SHA-256 of every output file (buckets and the notification queue)."""
    files = [p for name in DATA_BUCKETS for p in (data_dir / name).rglob("*") if p.is_file()]
    queue = data_dir / "notifications.jsonl"
    if queue.is_file():
        files.append(queue)
    return {str(p.relative_to(data_dir)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in files}


def _reference(path: Path) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection holding table ``uci``: the file as DuckDB reads it."""
    con = duckdb.connect()
    columns = ", ".join(f"'{name}': '{dtype}'" for name, dtype in _UCI_COLUMNS.items())
    con.execute(
        f"CREATE TABLE uci AS SELECT * FROM read_csv(?, header = false, skip = 1, delim = ',', "
        f"quote = '\"', columns = {{{columns}}})",
        [str(path)],
    )
    return con


@pytest.fixture(scope="module", params=sorted(ROWS))
def uci_run(request: pytest.FixtureRequest, corpus: Path,
            tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One corpus file run twice; outputs read after the first run and after the second."""
    name: str = request.param
    path = corpus / "sensors_uci_occupancy" / name
    data_dir = tmp_path_factory.mktemp(name.removesuffix(".txt")) / "chrono-data"
    first = _run_sensors(path, data_dir)
    after_first = _snapshot(data_dir)
    second = _run_sensors(path, data_dir)

    def stream(bucket: str, kind: str) -> pl.DataFrame:
        return read_stream(LocalBucket(data_dir / bucket), kind)

    return {
        "name": name, "path": path, "data_dir": data_dir, "first": first, "second": second,
        "after_first": after_first, "after_second": _snapshot(data_dir),
        "raw": stream("raw", "raw"), "valid": stream("schematized", "schematized"),
        "errors": stream("error", "errors"), "archival": stream("archival", "schematized"),
        "windows": stream("aggregated", "windows"), "con": _reference(path),
    }


def _frame(con: duckdb.DuckDBPyConnection, sql: str, params: list[Any] | None = None,
           ) -> pl.DataFrame:
    frame = pl.from_arrow(con.sql(sql, params=params).to_arrow_table())
    assert isinstance(frame, pl.DataFrame)
    return frame


def _row(con: duckdb.DuckDBPyConnection, sql: str, params: list[Any] | None = None,
         ) -> tuple[Any, ...]:
    rows = con.sql(sql, params=params).fetchall()
    assert len(rows) == 1
    return tuple(rows[0])


def _rejected(run: dict[str, Any]) -> list[str]:
    errors: pl.DataFrame = run["errors"]
    return errors["timestamp"].to_list() if errors.height else []


def test_reference_sees_the_documented_rows(uci_run: dict[str, Any]) -> None:
    con, name = uci_run["con"], uci_run["name"]
    total, stamps, first_index, last_index = _row(
        con, "SELECT count(*), count(DISTINCT date), min(row_index), max(row_index) FROM uci"
    )
    lines = uci_run["path"].read_bytes().count(b"\n")
    assert total == ROWS[name] == lines - 1
    # Timestamps are unique within a file: they identify readings below.
    assert stamps == total
    assert last_index - first_index + 1 == total
    (out_of_order,) = _row(
        con,
        "SELECT count(*) FROM (SELECT date - lag(date) OVER (ORDER BY row_index) AS step FROM uci)"
        " WHERE step <= INTERVAL 0 SECOND",
    )
    assert out_of_order == 0


def test_reading_ids_are_the_files_row_index(uci_run: dict[str, Any]) -> None:
    (indexes,) = _row(uci_run["con"], "SELECT list(row_index ORDER BY row_index) FROM uci")
    errors = uci_run["errors"]
    ids = uci_run["valid"]["id"].to_list() + (errors["id"].to_list() if errors.width else [])
    assert sorted(ids) == indexes


def test_every_row_is_read_and_lands_once(uci_run: dict[str, Any]) -> None:
    rows = ROWS[uci_run["name"]]
    counts = uci_run["first"]["counts"]
    assert counts["processed"] == rows
    assert counts["valid"] + counts["invalid"] == rows
    assert counts["duplicates"] == 0 and counts["late"] == 0
    raw, valid, errors = uci_run["raw"], uci_run["valid"], uci_run["errors"]
    assert raw.height == rows
    assert valid.height == counts["valid"] and errors.height == counts["invalid"]
    assert uci_run["archival"].height == valid.height

    expected = _frame(
        uci_run["con"],
        "SELECT strftime(date, '%Y-%m-%d %H:%M:%S') AS ts FROM uci ORDER BY row_index",
    )["ts"].to_list()
    landed = valid["timestamp"].to_list() + _rejected(uci_run)
    assert sorted(landed) == sorted(expected)
    assert len(set(landed)) == len(landed) == rows
    assert raw["timestamp"].to_list() == expected
    assert set(valid["sensor_id"]) == {SENSOR_ID} and set(valid["location"]) == {LOCATION}


def test_rejected_rows_name_their_rules(uci_run: dict[str, Any]) -> None:
    errors: pl.DataFrame = uci_run["errors"]
    assert errors.height == uci_run["first"]["counts"]["invalid"]
    if not errors.height:
        return
    spec = load_spec(SPEC)
    known = {*spec.rule_ids(), DUPLICATE_RULE}
    for row in errors.select("errors", "spec_version").iter_rows(named=True):
        assert row["spec_version"] == spec.version
        assert row["errors"], "a rejected reading without a rule id"
        assert {e["rule_id"] for e in row["errors"]} <= known


def test_valid_readings_keep_the_file_values(uci_run: dict[str, Any]) -> None:
    reference = _frame(
        uci_run["con"],
        "SELECT strftime(date, '%Y-%m-%d %H:%M:%S') AS timestamp, Temperature AS temperature,"
        " Humidity AS humidity, Light AS light, CO2 AS co2, HumidityRatio AS humidity_ratio,"
        " Occupancy AS occupancy FROM uci",
    )
    got = uci_run["valid"].select(
        "timestamp", "temperature", "humidity",
        *(pl.col(c).cast(pl.Float64) for c in ("light", "co2", "humidity_ratio")),
        pl.col("occupancy").cast(pl.Int64),
    )
    joined = got.join(reference, on="timestamp", how="left", suffix="_ref")
    for column in ("temperature", "humidity", "light", "co2", "humidity_ratio", "occupancy"):
        differ = joined.filter(pl.col(column).ne_missing(pl.col(f"{column}_ref")))
        assert differ.height == 0, (column, differ.height)


def test_anomalies_follow_the_spec_thresholds(uci_run: dict[str, Any]) -> None:
    rejected = _rejected(uci_run)
    (expected,) = _row(
        uci_run["con"],
        "SELECT count(*) FROM uci WHERE (CO2 > ? OR Temperature < ? OR Temperature > ?)"
        " AND strftime(date, '%Y-%m-%d %H:%M:%S') NOT IN (SELECT unnest(?::VARCHAR[]))",
        [CO2_LIMIT, TEMP_LOW, TEMP_HIGH, rejected],
    )
    assert uci_run["first"]["counts"]["anomalies"] == expected


def test_windows_match_duckdb(uci_run: dict[str, Any]) -> None:
    stats = ", ".join(
        f"avg({src}) AS {m}_mean, min({src}) AS {m}_min, max({src}) AS {m}_max,"
        f" stddev_samp({src}) AS {m}_std"
        for m, src in zip(METRICS, ("Temperature", "Humidity", "Light", "CO2"), strict=True)
    )
    reference = _frame(
        uci_run["con"],
        f"SELECT time_bucket(INTERVAL {WINDOW_S} SECOND, date, TIMESTAMP '1970-01-01')"
        f" AS window_start, count(*) AS count, {stats} FROM uci"
        " WHERE strftime(date, '%Y-%m-%d %H:%M:%S') NOT IN (SELECT unnest(?::VARCHAR[]))"
        " GROUP BY window_start ORDER BY window_start",
        [_rejected(uci_run)],
    )
    windows = latest_windows(uci_run["windows"])
    assert set(windows["sensor_id"]) == {SENSOR_ID} and set(windows["location"]) == {LOCATION}
    spans = (windows["window_end"] - windows["window_start"]).dt.total_seconds()
    assert spans.unique().to_list() == [WINDOW_S]
    got = windows.with_columns(
        pl.col("window_start").dt.replace_time_zone(None)  # naive_timezone is UTC
    ).sort("window_start")
    assert got["window_start"].to_list() == reference["window_start"].to_list()
    assert got["count"].to_list() == reference["count"].to_list()
    assert int(got["count"].sum()) == uci_run["first"]["counts"]["valid"]
    for m in METRICS:
        for stat in ("min", "max"):
            column = f"{m}_{stat}"
            assert got[column].to_list() == reference[column].to_list(), column
        for stat in ("mean", "std"):
            column = f"{m}_{stat}"
            pair = pl.DataFrame({"got": got[column], "ref": reference[column]})
            assert pair.filter(pl.col("got").is_null() != pl.col("ref").is_null()).height == 0
            close = pair.drop_nulls().select(
                ((pl.col("got") - pl.col("ref")).abs()
                 <= 1e-9 * pl.max_horizontal(pl.col("ref").abs(), pl.lit(1.0))).all()
            ).item()
            assert close, column
    # Only the window the watermark has not passed at the end of the file is still open.
    assert windows.filter(~pl.col("final")).height <= 1


def test_rerun_adds_nothing(uci_run: dict[str, Any]) -> None:
    counts = uci_run["second"]["counts"]
    assert counts["processed"] == 0 and counts["batches"] == 0
    assert counts["windows"] == 0 and counts["notifications"] == 0
    assert uci_run["after_second"] == uci_run["after_first"]


def test_pipeline_defaults_point_at_the_corpus(corpus: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("UCI_FILE", "UCI_SPEC", "CHRONO_DATA"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(EXAMPLE)
    config = load_pipeline_config(CONFIG)
    source = (EXAMPLE / config.source.path).resolve()
    assert source == (corpus / "sensors_uci_occupancy" / "datatraining.txt").resolve()
    assert config.spec is not None and (EXAMPLE / config.spec).resolve() == SPEC.resolve()
    assert config.windowing.size_s == WINDOW_S
    assert tuple(config.windowing.metrics) == METRICS


def test_schematized_readings_carry_spec_types(uci_run: dict[str, Any]) -> None:
    schema = uci_run["valid"].schema
    assert {c: schema[c] for c in ("light", "co2", "humidity_ratio", "occupancy")} == {
        "light": pl.Float64, "co2": pl.Float64, "humidity_ratio": pl.Float64,
        "occupancy": pl.Int64,
    }
