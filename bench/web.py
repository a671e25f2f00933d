"""Benchmark: how fast ``chrono serve`` answers the first page of the timeline and the windows.

Usage: ``python bench/web.py [--quick] [--events N] [--windows N] [--repeat N]``. Progress goes
to stderr; the last stdout line is one JSON object with ``timeline_first_page_ms``,
``timeline_page_html_ms``, ``windows_first_page_ms``, ``windows_page_html_ms`` (medians over
``--repeat`` warm requests), the cold first requests, and a few more pages for context.

Setup: a SQLite timeline database made by ``ensure_schema`` and filled with 1,000,000 events
(100,000 with ``--quick``) through sqlite3 ``executemany`` in large transactions, spread over
three years, four types, with participants on every 50th; and a local aggregated bucket with
100,000 windows (10,000 with ``--quick``): 100 sensors, one-minute windows, as parquet files
partitioned by date like the orchestrator writes them. The app is the real one
(:func:`chrono.web.create_app`) driven in-process by Starlette's test client over ASGI, with
the bearer token.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl

from chrono.db import schema
from chrono.sensors.config import SensorPipelineConfig
from chrono.sensors.model import METRICS
from chrono.web import WebSettings, create_app

TOKEN = "bench-token-" + "b" * 20
START = datetime(2023, 1, 1, tzinfo=UTC)
TYPES = ("email", "call", "message", "document")


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def fill_events(db: Path, n: int, seed: int = 1) -> None:
    engine = schema.make_engine(f"sqlite:///{db}")
    schema.ensure_schema(engine)
    engine.dispose()
    rng = np.random.default_rng(seed)
    span_s = 3 * 365 * 86400
    offsets = np.sort(rng.integers(0, span_s, n))
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=OFF")
    ident = str(uuid.uuid5(uuid.NAMESPACE_URL, "bench-identifier"))
    conn.execute("INSERT INTO identifiers VALUES (?, 'email', 'someone@example.com')", (ident,))
    batch = 100_000
    for lo in range(0, n, batch):
        rows, parts = [], []
        for k in range(lo, min(n, lo + batch)):
            start = START + timedelta(seconds=int(offsets[k]))
            event_id = f"{k:08d}-0000-4000-8000-{k:012d}"
            rows.append((event_id, TYPES[k % 4], start.strftime("%Y-%m-%d %H:%M:%S.000000"),
                         0, "UTC", f"Subject {k}", f"body text {k}", None, None, None,
                         "file-1", "a" * 64, f"box/{k // 1000}.mbox", f"msg:{k}", None, None,
                         None, None, None, None))
            if k % 50 == 0:
                parts.append((event_id, 0, "from", ident, "someone@example.com", None))
        conn.executemany("INSERT INTO events VALUES (" + ",".join("?" * 20) + ")", rows)
        conn.executemany("INSERT INTO participants VALUES (?, ?, ?, ?, ?, ?)", parts)
        conn.commit()
        log(f"  events {min(n, lo + batch):,}/{n:,}")
    conn.execute("ANALYZE")
    conn.commit()
    conn.close()


def fill_windows(data_dir: Path, n: int, sensors: int = 100, files: int = 10) -> None:
    per_sensor = n // sensors
    rng = np.random.default_rng(2)
    start_us = int(datetime(2025, 3, 1, tzinfo=UTC).timestamp() * 1e6)
    minute = np.arange(per_sensor, dtype=np.int64)
    frames = []
    for s in range(sensors):
        cols: dict[str, object] = {
            "sensor_id": [f"SENSOR_{s:04d}"] * per_sensor,
            "location": [f"site-{s % 7:02d}"] * per_sensor,
            "window_start": start_us + minute * 60_000_000,
            "window_end": start_us + (minute + 1) * 60_000_000,
            "count": rng.integers(5, 13, per_sensor),
        }
        for m in METRICS:
            mean = rng.normal(20, 3, per_sensor)
            cols[f"{m}_mean"] = mean
            cols[f"{m}_min"] = mean - rng.random(per_sensor)
            cols[f"{m}_max"] = mean + rng.random(per_sensor)
            cols[f"{m}_std"] = rng.random(per_sensor)
        cols["version"] = np.ones(per_sensor, dtype=np.int64)
        cols["final"] = np.ones(per_sensor, dtype=bool)
        frames.append(pl.DataFrame(cols))
    windows = pl.concat(frames).with_columns(
        pl.col("window_start", "window_end").cast(pl.Datetime("us", "UTC")))
    windows = windows.sort("window_start")
    step = -(-windows.height // files)
    for i in range(files):
        part = windows.slice(i * step, step)
        day = part["window_start"].min().date().isoformat()  # type: ignore[union-attr]
        folder = data_dir / "aggregated" / "windows" / f"date={day}"
        folder.mkdir(parents=True, exist_ok=True)
        part.write_parquet(folder / f"part-{i:012d}.parquet", compression="zstd")


def timed(client, path: str, headers: dict[str, str], repeat: int) -> tuple[float, float]:  # type: ignore[no-untyped-def]
    """(cold ms, median warm ms) of GET ``path``."""
    def once() -> float:
        t0 = time.perf_counter()
        r = client.get(path, headers=headers)
        ms = (time.perf_counter() - t0) * 1000
        assert r.status_code == 200, (path, r.status_code, r.text[:200])
        return ms
    cold = once()
    return cold, statistics.median(once() for _ in range(repeat))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="100,000 events, 10,000 windows")
    ap.add_argument("--events", type=int, default=None)
    ap.add_argument("--windows", type=int, default=None)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    n_events = args.events or (100_000 if args.quick else 1_000_000)
    n_windows = args.windows or (10_000 if args.quick else 100_000)

    from fastapi.testclient import TestClient

    with tempfile.TemporaryDirectory(prefix="chrono-bench-web-") as tmp:
        root = Path(tmp)
        t0 = time.perf_counter()
        log(f"building {n_events:,} events")
        fill_events(root / "chrono.db", n_events)
        log(f"building {n_windows:,} windows")
        fill_windows(root / "data", n_windows)
        setup_s = time.perf_counter() - t0
        cfg = SensorPipelineConfig(data_dir=str(root / "data"))
        app = create_app(WebSettings(db_url=f"sqlite:///{root / 'chrono.db'}", pipeline=cfg,
                                     token=TOKEN))
        api = {"Authorization": f"Bearer {TOKEN}"}
        html = {**api, "Accept": "text/html"}
        out: dict[str, object] = {"events": n_events, "windows": n_windows,
                                  "setup_s": round(setup_s, 1)}
        with TestClient(app) as client:
            checks = {
                "windows_first_page": ("/api/sensors/windows?limit=50", api),
                "windows_page_html": ("/sensors/windows", html),
                "timeline_first_page": ("/api/events?limit=50", api),
                "timeline_page_html": ("/timeline", html),
                "timeline_histogram": ("/api/events/histogram", api),
                "timeline_type_page": ("/api/events?type=call&limit=50", api),
                "timeline_mid_range_page": ("/api/events?start=2024-06-01&limit=50", api),
            }
            for key, (path, headers) in checks.items():
                cold, warm = timed(client, path, headers, args.repeat)
                out[f"{key}_ms"] = round(warm, 1)
                out[f"{key}_cold_ms"] = round(cold, 1)
                log(f"  {key}: cold {cold:.1f} ms, warm {warm:.1f} ms")
            first = client.get("/api/events?limit=50", headers=api).json()
            after = client.get(f"/api/events?limit=50&after={first['next_cursor']}",
                               headers=api)
            assert after.json()["items"][0]["start"] >= first["items"][-1]["start"]
        app.state.ctx.engine.dispose()
    print(json.dumps(out))


if __name__ == "__main__":
    main()
