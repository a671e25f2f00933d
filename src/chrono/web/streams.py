"""Reads of the sensor pipeline's outputs for the web app: streams, windows, errors, the queue.

Local buckets (folders) are scanned with polars over the stream's parquet files, so a page
aggregates and slices without loading rows it does not show; S3 buckets go through
:func:`chrono.sensors.outputs.read_stream`. A frame is cached per stream until its set of files
(names, sizes, modification times) changes, which is what a new batch or a flush does.

Errors never show values of text fields: rule ids, fields, record ids and timestamps only.
"""

from __future__ import annotations

import json
import threading
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl

from chrono.sensors.config import SensorPipelineConfig
from chrono.sensors.model import METRICS
from chrono.sensors.outputs import STREAM_PREFIX, latest_windows, read_stream
from chrono.sensors.scenarios import ScenarioStore
from chrono.storage.buckets import open_bucket
from chrono.storage.local import LocalBucket

TABS = ("raw", "schematized", "errors", "windows", "anomalies", "late")
READING_COLUMNS = ("id", "timestamp", "sensor_id", "location", *METRICS, "status_code",
                   "anomaly_flag", "anomaly_type")
"""Reading columns a page shows: ids, times, measurements and codes (no free text)."""
MAX_PAGE = 500
MAX_POINTS = 240
"""Most points drawn per chart line; longer series are folded into equal time buckets."""
MAX_QUEUE_LINES = 10_000


@dataclass(frozen=True)
class StreamLocation:
    bucket_url: str
    prefix: str


def _ts(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        moment = value if value.tzinfo else value.replace(tzinfo=UTC)
        return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return str(value)


class SensorData:
    """The sensor side of the app, over one pipeline config."""

    def __init__(self, config: SensorPipelineConfig) -> None:
        self.config = config
        self._cache: dict[tuple[str, str], tuple[Any, pl.DataFrame]] = {}
        self._lock = threading.Lock()

    # ----------------------------------------------------------------- locating streams
    def location(self, stream: str) -> StreamLocation:
        """Where ``stream`` is written: its bucket (routes decide for windows and late)."""
        if stream in ("windows", "late"):
            for route in self.config.routes:
                if route.stream == stream:
                    return StreamLocation(self.config.route_bucket(route).url,
                                          (route.prefix or STREAM_PREFIX[stream]).strip("/"))
        bucket = {"raw": "raw", "schematized": "schematized", "errors": "error"}.get(
            stream, "aggregated")
        return StreamLocation(self.config.bucket_spec(bucket).url, STREAM_PREFIX[stream])

    def _files(self, loc: StreamLocation) -> list[Path] | None:
        """The stream's local files, or None when the bucket is not a local folder."""
        if "://" in loc.bucket_url and not loc.bucket_url.startswith("file://"):
            return None
        root = Path(loc.bucket_url.removeprefix("file://")) / loc.prefix
        if not root.is_dir():
            return []
        return sorted(p for p in root.rglob("*")
                      if p.suffix in (".parquet", ".jsonl") and not p.name.startswith("."))

    def frame(self, stream: str) -> pl.DataFrame:
        """Every record of ``stream`` (windows: the latest version of each), cached."""
        loc = self.location(stream)
        files = self._files(loc)
        if files is None:
            bucket = open_bucket(loc.bucket_url, endpoint_url=self.config.endpoint_url)
            frame = read_stream(bucket, stream, loc.prefix)
            return latest_windows(frame) if stream == "windows" else frame
        stamp = tuple((str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in files)
        key = (loc.bucket_url, stream)
        with self._lock:
            hit = self._cache.get(key)
        if hit is not None and hit[0] == stamp:
            return hit[1]
        frame = _scan(files)
        if stream == "windows" and not frame.is_empty():
            frame = _latest(frame)
        with self._lock:
            self._cache[key] = (stamp, frame)
        return frame

    # ----------------------------------------------------------------- readings
    def readings(self, stream: str, sensor: str | None, offset: int, limit: int
                 ) -> dict[str, Any]:
        frame = self.frame(stream)
        limit = max(1, min(limit, MAX_PAGE))
        if frame.is_empty():
            return {"stream": stream, "total": 0, "matched": 0, "offset": offset,
                    "limit": limit, "items": [], "sensors": []}
        sensors = sorted(frame["sensor_id"].drop_nulls().unique().to_list())
        if sensor:
            frame = frame.filter(pl.col("sensor_id") == sensor)
        cols = [c for c in READING_COLUMNS if c in frame.columns]
        page = frame.sort("id", descending=True).slice(offset, limit).select(cols)
        return {"stream": stream, "total": self.frame(stream).height, "matched": frame.height,
                "offset": offset, "limit": limit, "sensors": sensors,
                "items": page.to_dicts()}

    # ----------------------------------------------------------------- errors
    def errors(self, rule: str | None, offset: int, limit: int) -> dict[str, Any]:
        frame = self.frame("errors")
        limit = max(1, min(limit, MAX_PAGE))
        empty = {"total": 0, "by_rule": [], "by_field": [], "items": [], "offset": offset,
                 "limit": limit, "matched": 0}
        if frame.is_empty() or "errors" not in frame.columns:
            return empty
        exploded = (frame.select("id", "timestamp", "sensor_id", "errors")
                    .explode("errors").filter(pl.col("errors").is_not_null())
                    .with_columns(pl.col("errors").struct.field("rule_id").alias("rule_id"),
                                  pl.col("errors").struct.field("field").alias("field"))
                    .drop("errors"))
        by_rule = (exploded.group_by("rule_id").agg(pl.len().alias("count"),
                                                    pl.col("id").n_unique().alias("records"))
                   .sort(["count", "rule_id"], descending=[True, False]))
        by_field = (exploded.group_by("field").agg(pl.len().alias("count"))
                    .sort(["count", "field"], descending=[True, False]))
        chosen = exploded.filter(pl.col("rule_id") == rule) if rule else exploded
        page = chosen.sort("id", descending=True).slice(offset, limit)
        return {"total": frame.height, "by_rule": by_rule.to_dicts(),
                "by_field": by_field.to_dicts(), "matched": chosen.height,
                "offset": offset, "limit": limit, "items": page.to_dicts()}

    # ----------------------------------------------------------------- windows
    def windows(self, sensor: str | None, start: str | None, end: str | None,
                offset: int, limit: int, metric: str = "temperature") -> dict[str, Any]:
        frame = self.frame("windows")
        limit = max(1, min(limit, MAX_PAGE))
        metric = metric if metric in METRICS else METRICS[0]
        if frame.is_empty():
            return {"total": 0, "matched": 0, "items": [], "offset": offset, "limit": limit,
                    "sensors": [], "metric": metric, "range": None}
        chosen = _in_range(frame, start, end)
        if sensor:
            chosen = chosen.filter(pl.col("sensor_id") == sensor)
        cols = ["sensor_id", "location", "window_start", "window_end", "count",
                f"{metric}_mean", f"{metric}_min", f"{metric}_max", f"{metric}_std",
                "version", "final"]
        page = (chosen.sort(["window_start", "sensor_id"], descending=[True, False])
                .slice(offset, limit).select([c for c in cols if c in chosen.columns]))
        items = [{k: _ts(v) if k.startswith("window_") else v for k, v in row.items()}
                 for row in page.iter_rows(named=True)]
        return {"total": frame.height, "matched": chosen.height, "offset": offset,
                "limit": limit, "metric": metric, "items": items,
                "sensors": self.sensor_ids(),
                "range": {"first": _ts(frame["window_start"].min()),
                          "last": _ts(frame["window_start"].max())}}

    def sensor_ids(self) -> list[str]:
        frame = self.frame("windows")
        if frame.is_empty():
            return []
        return sorted(frame["sensor_id"].drop_nulls().unique().to_list())

    def series(self, sensors: list[str], metric: str, start: str | None, end: str | None
               ) -> dict[str, Any]:
        """Per sensor: mean, min and max of ``metric`` over time, at most MAX_POINTS each."""
        metric = metric if metric in METRICS else METRICS[0]
        frame = self.frame("windows")
        if frame.is_empty() or not sensors:
            return {"metric": metric, "series": []}
        chosen = _in_range(frame, start, end).filter(pl.col("sensor_id").is_in(sensors))
        cols = [f"{metric}_mean", f"{metric}_min", f"{metric}_max"]
        out = []
        for sensor in sensors:
            rows = chosen.filter(pl.col("sensor_id") == sensor).sort("window_start")
            if rows.height > MAX_POINTS:
                low = rows["window_start"].min()
                high = rows["window_start"].max()
                assert isinstance(low, datetime) and isinstance(high, datetime)
                step_us = max(1, int((high - low).total_seconds() * 1e6 / MAX_POINTS) + 1)
                rows = (rows.with_columns(
                    ((pl.col("window_start") - low).dt.total_microseconds() // step_us)
                    .alias("_b"))
                    .group_by("_b").agg(pl.col("window_start").first(),
                                        pl.col(cols[0]).mean(), pl.col(cols[1]).min(),
                                        pl.col(cols[2]).max())
                    .sort("window_start"))
            out.append({"sensor_id": sensor, "points": [
                {"t": _ts(r["window_start"]), "mean": r[cols[0]], "min": r[cols[1]],
                 "max": r[cols[2]]} for r in rows.select("window_start", *cols)
                .iter_rows(named=True)]})
        return {"metric": metric, "series": out}

    # ----------------------------------------------------------------- anomalies, queue, late
    def anomalies(self) -> dict[str, Any]:
        frame = self.frame("schematized")
        if frame.is_empty() or "anomaly_flag" not in frame.columns:
            return {"flagged": 0, "by_type": [], "by_location": []}
        flagged = frame.filter(pl.col("anomaly_flag") == 1)
        by_type = flagged.group_by("anomaly_type").agg(pl.len().alias("count")).sort(
            ["count", "anomaly_type"], descending=[True, False])
        by_location = flagged.group_by("location").agg(pl.len().alias("count")).sort(
            ["count", "location"], descending=[True, False])
        return {"flagged": flagged.height, "by_type": by_type.to_dicts(),
                "by_location": by_location.to_dicts()}

    def notifications(self, offset: int, limit: int) -> dict[str, Any]:
        """The queue file's notifications, newest first (the last MAX_QUEUE_LINES lines)."""
        limit = max(1, min(limit, MAX_PAGE))
        path = self.config.queue_file
        lines: deque[str] = deque(maxlen=MAX_QUEUE_LINES)
        if path.is_file():
            with path.open(encoding="utf-8", errors="replace") as handle:
                lines.extend(line for line in handle if line.strip())
        items: list[dict[str, Any]] = []
        for line in list(reversed(lines))[offset:offset + limit]:
            try:
                note = json.loads(line)
            except ValueError:
                items.append({"notification_id": None, "invalid": True})  # bad line
                continue
            readings = note.get("readings") or []
            items.append({
                "notification_id": note.get("notification_id"),
                "location": note.get("location"),
                "first_seen": note.get("first_seen"), "last_seen": note.get("last_seen"),
                "reading_count": note.get("reading_count", len(readings)),
                "reading_ids": [r.get("id") for r in readings][:50],
                "sensor_ids": sorted({str(r.get("sensor_id")) for r in readings}),
                "anomaly_types": sorted({str(r.get("anomaly_type")) for r in readings
                                         if r.get("anomaly_type")}),
            })
        return {"total": len(lines), "offset": offset, "limit": limit, "items": items}

    def late(self, offset: int, limit: int) -> dict[str, Any]:
        frame = self.frame("late")
        limit = max(1, min(limit, MAX_PAGE))
        if frame.is_empty():
            return {"total": 0, "offset": offset, "limit": limit, "items": []}
        cols = [c for c in ("id", "timestamp", "sensor_id", "location", "window_start")
                if c in frame.columns]
        page = frame.sort("id", descending=True).slice(offset, limit).select(cols)
        items = [{k: _ts(v) if k == "window_start" else v for k, v in row.items()}
                 for row in page.iter_rows(named=True)]
        return {"total": frame.height, "offset": offset, "limit": limit, "items": items}

    # ----------------------------------------------------------------- runs and scenarios
    def runs(self, limit: int = 200) -> list[dict[str, Any]]:
        """Sensor runs from ``<data_dir>/state/runs/*.json``, newest first."""
        folder = self.config.state_dir / "runs"
        if not folder.is_dir():
            return []
        out = []
        for key in LocalBucket(folder).list():
            if not key.endswith(".json"):
                continue
            try:
                data = json.loads((folder / key).read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue
            out.append(_sensor_run(data))
        out.sort(key=lambda r: (r["started_at"] or "", r["run_id"]), reverse=True)
        return out[:limit]

    def run(self, run_id: str) -> dict[str, Any] | None:
        path = self.config.state_dir / "runs" / f"{run_id}.json"
        if "/" in run_id or ".." in run_id or not path.is_file():
            return None
        data = json.loads(path.read_text(encoding="utf-8"))
        run = _sensor_run(data)
        run["steps"] = [{"name": k, "seconds": v, "status": None, "counts": {}}
                        for k, v in (data.get("step_seconds") or {}).items()]
        run["sinks"] = data.get("sinks") or {}
        run["scenarios"] = data.get("scenarios") or []
        run["error_code"] = data.get("error_code")
        return run

    def store(self) -> ScenarioStore:
        return ScenarioStore(self.config.scenario_store_path,
                             default=tuple(self.config.scenarios.default))


def _sensor_run(data: dict[str, Any]) -> dict[str, Any]:
    return {"run_id": data.get("run_id"), "kind": "sensor", "pipeline": "sensors",
            "status": data.get("status"), "started_at": data.get("started_at"),
            "finished_at": data.get("finished_at"), "counts": data.get("counts") or {},
            "scenarios": data.get("scenarios") or []}


def _scan(files: list[Path]) -> pl.DataFrame:
    parquet = [str(p) for p in files if p.suffix == ".parquet"]
    frames: list[pl.DataFrame] = []
    if parquet:
        try:
            frames.append(pl.scan_parquet(parquet, hive_partitioning=False,
                                          missing_columns="insert",
                                          extra_columns="ignore").collect())
        except (pl.exceptions.PolarsError, OSError):
            # Files of one stream can differ in columns (lineage switched on mid-way).
            frames.append(pl.concat([pl.read_parquet(p) for p in parquet],
                                    how="diagonal_relaxed"))
    frames.extend(pl.read_ndjson(p) for p in files if p.suffix == ".jsonl")
    if not frames:
        return pl.DataFrame()
    return frames[0] if len(frames) == 1 else pl.concat(frames, how="diagonal_relaxed")


def _latest(windows: pl.DataFrame) -> pl.DataFrame:
    keys = ["sensor_id", "window_start"]
    return windows.filter(pl.col("version") == pl.col("version").max().over(keys)).unique(
        subset=keys, keep="last")


def _in_range(frame: pl.DataFrame, start: str | None, end: str | None) -> pl.DataFrame:
    """Windows starting in [start, end]; ``start`` may also be ``last:<hours>`` (before the
    newest window)."""
    if start and start.startswith("last:"):
        try:
            hours = float(start.removeprefix("last:"))
        except ValueError:
            raise ValueError("range is last:<hours>") from None
        newest = frame["window_start"].max()
        assert isinstance(newest, datetime)
        return frame.filter(pl.col("window_start") >= newest - timedelta(hours=hours))
    if start:
        frame = frame.filter(pl.col("window_start") >= _moment(start))
    if end:
        bound = _moment(end)
        if len(end.strip()) == 10:
            bound += timedelta(days=1)
            return frame.filter(pl.col("window_start") < bound)
        frame = frame.filter(pl.col("window_start") <= bound)
    return frame


def _moment(text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ValueError("dates are YYYY-MM-DD or ISO 8601 times") from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)
