"""Benchmark: sensor pipeline readings/s end to end, vs a per-record baseline and bare DuckDB.

Usage: ``python bench/sensors.py [--quick] [--readings N]``. Progress goes to stderr; the last
stdout line is one JSON object with ``chrono_readings_per_s``, ``baseline_readings_per_s``,
``duckdb_readings_per_s``, ``vs_baseline`` and ``vs_duckdb``.

The input is one CSV file of synthetic readings (the ``sensor_readings`` columns, 500 sensors,
one reading each per second, 1% anomalous, 1% invalid), 5,000,000 rows (500,000 with
``--quick``). All three sides start from that file and are timed in the same run:

- Chrono: ``SensorOrchestrator(...).run(once=True)`` with every scenario on (raw archive,
  validation to schematized/error, lineage, the archival + aggregated routes, windows with
  watermark, incidents and notifications), Parquet output to local folders.
- Baseline, in the seed's style: each record is read as a dict, validated field by field in
  Python, stamped with lineage and written as one JSON object (one file per record, as the seed
  uploads one object per record; each fsync'd, since an S3 PUT returns once the object is
  stored and Chrono fsyncs every file it writes); windows are computed in Python loops. It runs
  on the first ``--baseline-readings`` rows (default 20,000) and its rate is per reading, so it
  is comparable.
- DuckDB: ``read_csv`` and one ``GROUP BY sensor_id, minute`` computing count, mean, min, max
  and sample std of the five metrics: the bare aggregation, no validation and no outputs.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from chrono.core.memory import keep_freed_memory, keep_freed_memory_env

keep_freed_memory_env()  # as `chrono sensors run` does, before polars is imported

import duckdb  # noqa: E402
import numpy as np  # noqa: E402
import polars as pl  # noqa: E402

from chrono.sensors.config import SensorPipelineConfig  # noqa: E402
from chrono.sensors.model import METRICS  # noqa: E402
from chrono.sensors.orchestrator import SensorOrchestrator  # noqa: E402
from chrono.sensors.sources import SourceConfig  # noqa: E402

SENSORS = 500
START = datetime(2025, 3, 1, tzinfo=UTC)


def write_input(path: Path, n: int, seed: int = 1) -> None:
    """``n`` readings in arrival order: every sensor once per second, with a little jitter."""
    rng = np.random.default_rng(seed)
    idx = np.arange(n, dtype=np.int64)
    seconds = idx // SENSORS
    sensor = idx % SENSORS
    jitter_ms = rng.integers(0, 900, n)
    ts = (pl.Series("t", (START.timestamp() * 1000 + seconds * 1000 + jitter_ms).astype(np.int64))
          .cast(pl.Datetime("ms", "UTC")))
    anomalous = rng.random(n) < 0.01
    invalid = rng.random(n) < 0.01
    temperature = rng.normal(24, 2, n)
    temperature[invalid] = 500.0  # above the spec's max
    frame = pl.DataFrame({
        "id": idx + 1,
        "timestamp": ts.dt.strftime("%Y-%m-%dT%H:%M:%S%.3fZ"),
        "sensor_id": pl.Series([f"SENSOR_{s:04d}" for s in range(SENSORS)]).gather(sensor),
        "temperature": temperature,
        "humidity": rng.uniform(30, 70, n),
        "pressure": rng.uniform(990, 1030, n),
        "vibration": rng.uniform(0, 5, n),
        "voltage": rng.uniform(11.5, 12.5, n),
        "status_code": np.where(anomalous, 2, 0),
        "anomaly_flag": anomalous.astype(np.int64),
        "anomaly_type": pl.Series(["spike" if a else None for a in anomalous], dtype=pl.String),
        "firmware_version": "1.4.2",
        "model": "TH-200",
        "manufacturer": "SensorTech",
        "location": pl.Series([f"site-{s % 50:02d}" for s in range(SENSORS)]).gather(sensor),
        "latitude": 52.5,
        "longitude": 13.4,
        "original_timezone": "UTC",
    })
    frame.write_csv(path)


# ---------------------------------------------------------------- Chrono
def run_chrono(csv_path: Path, work: Path, batch_size: int) -> tuple[float, dict[str, int]]:
    cfg = SensorPipelineConfig(
        data_dir=str(work / "data"),
        source=SourceConfig(kind="csv", path=str(csv_path)),
        batch_size=batch_size,
    )
    keep_freed_memory()  # as `chrono sensors run` does
    started = time.perf_counter()
    summary = SensorOrchestrator(cfg).run(once=True)
    return time.perf_counter() - started, summary.counts


# ---------------------------------------------------------------- seed-style baseline
BOUNDS = {"temperature": (-40, 125), "humidity": (0, 100), "pressure": (300, 1100),
          "vibration": (0, 100), "voltage": (0, 50)}


def _put_object(path: Path, text: str) -> None:
    """One object stored durably, as an S3 PUT is acknowledged only once stored: Chrono's
    writer fsyncs every file it writes, so the baseline's objects are fsync'd too."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.write(fd, text.encode("utf-8"))
        os.fsync(fd)
    finally:
        os.close(fd)


def run_baseline(csv_path: Path, work: Path, n: int) -> float:
    import csv

    out = work / "baseline"
    for name in ("schematized", "error", "aggregated"):
        (out / name).mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    windows: dict[tuple[str, str], list[dict[str, float]]] = {}
    with csv_path.open(newline="") as fh:
        for i, record in enumerate(csv.DictReader(fh)):
            if i >= n:
                break
            errors = []
            for field, (low, high) in BOUNDS.items():
                try:
                    value = float(record[field])
                except (TypeError, ValueError):
                    errors.append({"field": field, "error": "type"})
                    continue
                if not low <= value <= high:
                    errors.append({"field": field, "error": "range"})
            try:
                moment = datetime.fromisoformat(record["timestamp"].replace("Z", "+00:00"))
            except ValueError:
                errors.append({"field": "timestamp", "error": "type"})
                moment = None
            record_out: dict[str, object] = dict(record)
            record_out["lineage"] = {
                "node_id": "local", "job_id": "bench", "execution_id": "bench",
                "processing_time": datetime.now(UTC).isoformat(), "pipeline_version": "seed",
            }
            bucket = "error" if errors else "schematized"
            if errors:
                record_out["errors"] = errors
            key = f"{record['sensor_id']}-{record['id']}-{time.time_ns()}.json"
            _put_object(out / bucket / key, json.dumps(record_out))
            if not errors and moment is not None:
                minute = moment.strftime("%Y-%m-%dT%H:%M")
                windows.setdefault((record["sensor_id"], minute), []).append(
                    {m: float(record[m]) for m in METRICS})
    for (sensor, minute), rows in windows.items():
        agg: dict[str, object] = {"sensor_id": sensor, "window_start": minute,
                                  "count": len(rows)}
        for m in METRICS:
            values = [r[m] for r in rows]
            mean = sum(values) / len(values)
            agg[f"{m}_mean"] = mean
            agg[f"{m}_min"] = min(values)
            agg[f"{m}_max"] = max(values)
            agg[f"{m}_std"] = (math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))
                               if len(values) > 1 else None)
        _put_object(out / "aggregated" / f"{sensor}-{minute}.json", json.dumps(agg))
    return time.perf_counter() - started


# ---------------------------------------------------------------- DuckDB
def run_duckdb(csv_path: Path) -> tuple[float, int]:
    aggs = ", ".join(
        f"avg({m}), min({m}), max({m}), stddev_samp({m})" for m in METRICS
    )
    started = time.perf_counter()
    con = duckdb.connect()
    rows = con.execute(
        f"SELECT sensor_id, date_trunc('minute', CAST(timestamp AS TIMESTAMPTZ)) AS w, "
        f"count(*), {aggs} FROM read_csv('{csv_path}') GROUP BY ALL"
    ).fetchall()
    return time.perf_counter() - started, len(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="500,000 readings instead of 5M")
    parser.add_argument("--readings", type=int, default=None, help="number of readings")
    parser.add_argument("--baseline-readings", type=int, default=20_000)
    parser.add_argument("--batch-size", type=int, default=500_000)
    args = parser.parse_args()
    n = args.readings or (500_000 if args.quick else 5_000_000)
    with tempfile.TemporaryDirectory(prefix="chrono-bench-sensors-") as folder:
        work = Path(folder)
        csv_path = work / "readings.csv"
        print(f"generating {n:,} readings", file=sys.stderr)
        write_input(csv_path, n)
        print("duckdb: read_csv + GROUP BY", file=sys.stderr)
        duck_s, duck_windows = run_duckdb(csv_path)
        print(f"  {duck_s:.2f}s, {duck_windows} windows", file=sys.stderr)
        print("chrono: orchestrator --once, every scenario on", file=sys.stderr)
        chrono_s, counts = run_chrono(csv_path, work, args.batch_size)
        print(f"  {chrono_s:.2f}s {counts}", file=sys.stderr)
        base_n = min(args.baseline_readings, n)
        print(f"baseline: seed-style per-record loop on {base_n:,} readings", file=sys.stderr)
        base_s = run_baseline(csv_path, work, base_n)
        print(f"  {base_s:.2f}s", file=sys.stderr)
    chrono_rate = n / chrono_s
    base_rate = base_n / base_s
    duck_rate = n / duck_s
    print(json.dumps({
        "readings": n,
        "batch_size": args.batch_size,
        "chrono_seconds": round(chrono_s, 2),
        "chrono_readings_per_s": round(chrono_rate),
        "baseline_readings": base_n,
        "baseline_readings_per_s": round(base_rate),
        "duckdb_readings_per_s": round(duck_rate),
        "vs_baseline": round(chrono_rate / base_rate, 1),
        "vs_duckdb": round(chrono_rate / duck_rate, 3),
        "counts": {k: v for k, v in counts.items() if isinstance(v, int)},
    }))


if __name__ == "__main__":
    main()
