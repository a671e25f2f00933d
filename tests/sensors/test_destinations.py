"""The orchestrator end to end against real destinations: S3 buckets and an SQS queue on a moto
server, extra routes to S3 and to a folder, OpenLineage events to a file and to an HTTP
endpoint, and a live MQTT source on the local Mosquitto with readings that arrive far too late."""

from __future__ import annotations

import io
import json
import re
import sqlite3
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import boto3
import paho.mqtt.client as mqtt
import polars as pl
import pytest
import yaml

from chrono.core.errors import TransientError
from chrono.sensors.config import (
    BUCKET_NAMES,
    RouteConfig,
    SensorPipelineConfig,
    load_pipeline_config,
)
from chrono.sensors.lineage import LineageConfig
from chrono.sensors.notify import NotificationConfig
from chrono.sensors.orchestrator import SensorOrchestrator
from chrono.sensors.outputs import latest_windows, read_stream
from chrono.sensors.simulate import DEFAULT_START, simulate
from chrono.sensors.sources import MqttSettings, SourceConfig
from chrono.storage.buckets import create_buckets, open_bucket
from tests.sensors.mqtt_broker import broker_settings, forget_session

KEY = re.compile(
    r"^(readings|errors|windows|late)/date=(\d{4}-\d{2}-\d{2}|unknown)/"
    r"part-(\d{12}-\d{12}|flush-\d{12})\.parquet$"
)
"""Every key the writer makes: stream prefix, event-date partition (``unknown`` for an unreadable
timestamp), batch position."""
SINK_STREAMS: dict[str, tuple[str, str]] = {
    "raw": ("raw", "raw"), "schematized": ("schematized", "schematized"),
    "error": ("error", "errors"), "archival": ("archival", "schematized"),
    "aggregated": ("aggregated", "windows"), "aggregated_late": ("aggregated", "late"),
}
"""Sink name of the default scenarios -> (bucket, stream) it writes."""


@dataclass(frozen=True)
class Simulated:
    db: Path
    truth: dict[str, Any]

    @property
    def bad_ids(self) -> set[int]:
        """Readings the error bucket must hold: invalid ones and later copies of a reading."""
        return {int(i) for i in self.truth["invalid"]} | {int(i) for i in self.truth["duplicates"]}


def simulated_db(folder: Path, *, sensors: int, minutes: int, seed: int) -> Simulated:
    summary = simulate(folder / "sensor_data.db", sensors=sensors, minutes=minutes, seed=seed)
    return Simulated(summary.db_path, json.loads(summary.truth_path.read_text()))


def table_rows(db: Path) -> list[dict[str, Any]]:
    """The simulated table in arrival (id) order, one dict per reading."""
    con = sqlite3.connect(db)
    con.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in con.execute("SELECT * FROM sensor_readings ORDER BY id")]
    finally:
        con.close()


@pytest.fixture(scope="module")
def simulated(tmp_path_factory: pytest.TempPathFactory) -> Simulated:
    return simulated_db(tmp_path_factory.mktemp("sim"), sensors=5, minutes=15, seed=11)


def default_routes() -> list[RouteConfig]:
    """The routes a config without ``routes`` gets (archival, aggregated, aggregated_late)."""
    return list(SensorPipelineConfig().routes)


def make_config(tmp: Path, db: Path, **overrides: Any) -> SensorPipelineConfig:
    return SensorPipelineConfig(
        data_dir=str(tmp / "data"), source=SourceConfig(kind="sqlite", path=str(db)),
        **overrides,
    )


def stream(cfg: SensorPipelineConfig, bucket: str, name: str) -> pl.DataFrame:
    """Every record of stream ``name`` in the configured bucket ``bucket``."""
    return read_stream(open_bucket(cfg.bucket_spec(bucket).url), name)


def unique(kind: str) -> str:
    """A fresh S3 bucket / queue name (the moto server lives for the whole session)."""
    return f"chrono-{uuid.uuid4().hex[:10]}-{kind.replace('_', '-')}"


def ids_of(frame: pl.DataFrame) -> set[int]:
    return set() if frame.is_empty() else {int(i) for i in frame["id"]}


# ------------------------------------------------------------------------- S3 through boto3
def s3(endpoint: str) -> Any:
    return boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")


def s3_keys(client: Any, bucket: str, prefix: str = "") -> list[str]:
    keys: list[str] = []
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        keys += [item["Key"] for item in page.get("Contents", [])]
    return sorted(keys)


def s3_frame(client: Any, bucket: str, prefix: str) -> pl.DataFrame:
    """Every Parquet object under ``prefix`` of ``bucket``, read with boto3 and stacked."""
    frames = [
        pl.read_parquet(io.BytesIO(client.get_object(Bucket=bucket, Key=key)["Body"].read()))
        for key in s3_keys(client, bucket, prefix)
    ]
    return pl.concat(frames, how="diagonal_relaxed") if frames else pl.DataFrame()


def s3_versions(client: Any, bucket: str) -> dict[str, int]:
    """Key -> number of stored versions."""
    counts: dict[str, int] = {}
    for page in client.get_paginator("list_object_versions").paginate(Bucket=bucket):
        for version in page.get("Versions", []):
            counts[version["Key"]] = counts.get(version["Key"], 0) + 1
    return counts


def chrono_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """``python -m chrono.cli.main ARGS`` in a subprocess (the AWS settings are inherited)."""
    proc = subprocess.run(
        [sys.executable, "-m", "chrono.cli.main", *args], cwd=cwd,
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc


def test_s3_buckets_partition_readings_and_a_replay_overwrites_the_same_keys(
    simulated: Simulated, moto_endpoint: str, tmp_path: Path,
) -> None:
    names = {name: unique(name) for name in BUCKET_NAMES}
    config_file = tmp_path / "pipeline.yaml"
    config_file.write_text(yaml.safe_dump({
        "data_dir": str(tmp_path / "data"),
        "source": {"kind": "sqlite", "path": str(simulated.db)},
        "batch_size": 250,
        "endpoint_url": moto_endpoint,
        "buckets": {name: {"url": f"s3://{bucket}"} for name, bucket in names.items()},
    }))
    client = s3(moto_endpoint)

    chrono_cli("buckets", "create", "--config", str(config_file), cwd=tmp_path)
    for bucket in names.values():
        assert client.get_bucket_versioning(Bucket=bucket)["Status"] == "Enabled"
    run = chrono_cli("sensors", "run", "--once", "--quiet", "--json", "--config",
                     str(config_file), cwd=tmp_path)
    summary = json.loads(run.stdout)
    counts = summary["counts"]
    assert summary["status"] == "ok" and counts["processed"] == simulated.truth["rows"]

    valid = s3_frame(client, names["schematized"], "readings/")
    errors = s3_frame(client, names["error"], "errors/")
    assert valid.height == counts["valid"] and errors.height == counts["invalid"]
    assert ids_of(valid).isdisjoint(ids_of(errors))
    assert ids_of(valid) | ids_of(errors) == set(range(1, simulated.truth["rows"] + 1))
    assert ids_of(errors) == simulated.bad_ids
    assert s3_frame(client, names["raw"], "readings/").height == simulated.truth["rows"]
    assert ids_of(s3_frame(client, names["archival"], "readings/")) == ids_of(valid)

    window_keys = s3_keys(client, names["aggregated"])
    assert window_keys and all(k.startswith("windows/date=2025-03-01/") for k in window_keys)
    windows = latest_windows(s3_frame(client, names["aggregated"], "windows/"))
    assert counts["late"] == 0  # the simulator's late rows stay within the allowed lateness
    assert int(windows["count"].sum()) == valid.height

    keys = {bucket: s3_keys(client, bucket) for bucket in names.values()}
    assert [k for ks in keys.values() for k in ks if not KEY.match(k)] == []
    assert all(set(s3_versions(client, b).values()) == {1} for b in names.values())

    # As if killed before the first commit: the replay rewrites every key, adds none.
    (tmp_path / "data" / "state" / "checkpoints.db").unlink()
    again = SensorOrchestrator(load_pipeline_config(config_file)).run(once=True)
    assert again.counts["processed"] == simulated.truth["rows"]
    assert {bucket: s3_keys(client, bucket) for bucket in names.values()} == keys
    for bucket, bucket_keys in keys.items():
        assert s3_versions(client, bucket) == dict.fromkeys(bucket_keys, 2), bucket
    assert ids_of(s3_frame(client, names["schematized"], "readings/")) == ids_of(valid)


# --------------------------------------------------------------------------------------- SQS
def receive_all(sqs: Any, url: str, wait_s: int = 0) -> list[dict[str, Any]]:
    """Every visible message, each deleted once received."""
    messages: list[dict[str, Any]] = []
    while True:
        got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=wait_s,
                                  MessageAttributeNames=["All"]).get("Messages", [])
        if not got:
            return messages
        for message in got:
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
        messages += got


def test_sqs_gets_one_message_per_incident_and_a_rerun_sends_none(
    moto_endpoint: str, tmp_path: Path,
) -> None:
    sim = simulated_db(tmp_path, sensors=10, minutes=15, seed=4)  # two locations, two incidents
    incidents = sim.truth["incidents"]
    assert len(incidents) >= 2
    sqs = boto3.client("sqs", endpoint_url=moto_endpoint, region_name="us-east-1")
    url = sqs.create_queue(QueueName=unique("notify"))["QueueUrl"]
    notification = NotificationConfig(sqs_queue_url=url, sqs_endpoint_url=moto_endpoint)
    cfg = make_config(tmp_path, sim.db, batch_size=500, notification=notification)

    summary = SensorOrchestrator(cfg).run(once=True)
    messages = receive_all(sqs, url)
    assert len(messages) == len(incidents) == summary.counts["notifications"]
    bodies = [json.loads(m["Body"]) for m in messages]
    ids = [b["notification_id"] for b in bodies]
    assert len(set(ids)) == len(ids) and all(ids)
    assert [m["MessageAttributes"]["notification_id"]["StringValue"] for m in messages] == ids
    assert sorted(sorted(r["id"] for r in b["readings"]) for b in bodies) == sorted(
        sorted(i["reading_ids"]) for i in incidents)
    assert sorted((b["location"], b["reading_count"]) for b in bodies) == sorted(
        (i["location"], len(i["reading_ids"])) for i in incidents)
    queue_lines = cfg.queue_file.read_text().splitlines()
    queued = [json.loads(line)["notification_id"] for line in queue_lines]
    assert sorted(queued) == sorted(ids)  # the queue file got the same notifications

    rerun = SensorOrchestrator(cfg).run(once=True)
    assert rerun.counts["processed"] == 0 and rerun.counts["notifications"] == 0
    (cfg.state_dir / "checkpoints.db").unlink()
    replay = SensorOrchestrator(cfg).run(once=True)
    assert replay.counts["notifications"] == 0
    assert replay.counts["notifications_suppressed"] == len(incidents)
    assert receive_all(sqs, url, wait_s=1) == []


# ------------------------------------------------------------------------- extra destinations
def test_extra_routes_get_their_files_and_their_own_counters(
    simulated: Simulated, moto_endpoint: str, tmp_path: Path,
) -> None:
    lake = unique("lake")
    quarantine = tmp_path / "quarantine"
    routes = [
        *default_routes(),
        RouteConfig(name="lake", stream="windows", bucket=f"s3://{lake}/sensors"),
        RouteConfig(name="quarantine", stream="errors", bucket=str(quarantine),
                    prefix="rejected"),
    ]
    cfg = make_config(tmp_path, simulated.db, batch_size=400, routes=routes,
                      endpoint_url=moto_endpoint)
    # Route destinations given as URLs are created with the named buckets.
    actions = create_buckets(cfg.all_buckets(), endpoint_url=moto_endpoint)
    assert {(a.bucket, a.action) for a in actions} >= {("lake", "create_bucket"),
                                                       ("quarantine", "create_folder")}

    summary = SensorOrchestrator(cfg).run(once=True)
    client = s3(moto_endpoint)
    lake_keys = s3_keys(client, lake)
    assert lake_keys and all(k.startswith("sensors/windows/date=2025-03-01/") for k in lake_keys)
    lake_windows = s3_frame(client, lake, "sensors/windows/")
    aggregated = stream(cfg, "aggregated", "windows")
    assert summary.sinks["lake"]["files"] == summary.counts["writes.lake"] == len(lake_keys)
    assert summary.sinks["lake"]["rows"] == lake_windows.height == aggregated.height
    sort = ["sensor_id", "window_start", "version"]
    assert lake_windows.sort(sort).equals(aggregated.sort(sort))

    rejected = read_stream(open_bucket(str(quarantine)), "errors", "rejected")
    files = sorted(p.relative_to(quarantine).as_posix() for p in quarantine.rglob("*.parquet"))
    assert files and all(f.startswith("rejected/date=") for f in files)
    assert summary.counts["writes.quarantine"] == summary.sinks["quarantine"]["files"] == len(
        files)
    assert ids_of(rejected) == simulated.bad_ids
    assert summary.sinks["quarantine"]["rows"] == summary.counts["invalid"]
    assert {"raw", "schematized", "error", "archival", "aggregated", "lake",
            "quarantine"} <= set(summary.sinks)
    assert all(s["failures"] == 0 and s["retries"] == 0 for s in summary.sinks.values())


# ------------------------------------------------------------------------------ OpenLineage
def events_of(lines: list[str], run_id: str) -> list[dict[str, Any]]:
    events = [json.loads(line) for line in lines if line.strip()]
    return [e for e in events if e["run"]["runId"] == run_id]


def test_openlineage_file_gets_start_then_complete_with_sink_row_counts(
    simulated: Simulated, tmp_path: Path,
) -> None:
    target = tmp_path / "lineage" / "events.jsonl"
    cfg = make_config(tmp_path, simulated.db,
                      lineage=LineageConfig(openlineage_target=str(target)))
    orchestrator = SensorOrchestrator(cfg)
    summary = orchestrator.run(once=True)

    events = events_of(target.read_text().splitlines(), summary.run_id)
    assert [e["eventType"] for e in events] == ["START", "COMPLETE"]
    source = {"namespace": "chrono", "name": orchestrator.source_name}
    for event in events:
        assert event["job"]["name"] == cfg.job_name
        assert [{k: d[k] for k in ("namespace", "name")} for d in event["inputs"]] == [source]
    assert events[0]["outputs"] == []
    rows = {d["name"]: d["outputFacets"]["outputStatistics"]["rowCount"]
            for d in events[1]["outputs"]}
    assert rows == {name: sink["rows"] for name, sink in summary.sinks.items()}
    for name, (bucket, stream_name) in SINK_STREAMS.items():
        assert rows.get(name, 0) == stream(cfg, bucket, stream_name).height, name
    assert rows["raw"] == simulated.truth["rows"]


def test_openlineage_file_gets_fail_when_a_destination_cannot_be_written(
    simulated: Simulated, tmp_path: Path,
) -> None:
    target = tmp_path / "events.jsonl"
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where a bucket folder should be")
    routes = [*default_routes(), RouteConfig(name="lake", stream="windows", bucket=str(blocker))]
    cfg = make_config(tmp_path, simulated.db, routes=routes, sink_retries=0,
                      lineage=LineageConfig(openlineage_target=str(target)))
    orchestrator = SensorOrchestrator(cfg)
    with pytest.raises(TransientError):
        orchestrator.run(once=True)

    events = events_of(target.read_text().splitlines(), orchestrator.run_id)
    assert [e["eventType"] for e in events] == ["START", "FAIL"]
    assert events[1]["run"]["facets"]["errorMessage"]["message"] == "sink_failed"
    assert events[1]["inputs"][0]["name"] == orchestrator.source_name


class _Collector(BaseHTTPRequestHandler):
    """Keeps every POSTed body on the server object; answers 201 like Marquez."""

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.server.received.append(  # type: ignore[attr-defined]
            (self.path, self.headers["Content-Type"], body.decode("utf-8")))
        self.send_response(201)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def lineage_server() -> Iterator[ThreadingHTTPServer]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Collector)
    server.received = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_openlineage_http_endpoint_receives_the_run_events(
    simulated: Simulated, tmp_path: Path, lineage_server: ThreadingHTTPServer,
) -> None:
    url = f"http://127.0.0.1:{lineage_server.server_address[1]}/api/v1/lineage"
    cfg = make_config(tmp_path, simulated.db, lineage=LineageConfig(openlineage_target=url))
    orchestrator = SensorOrchestrator(cfg)
    summary = orchestrator.run(once=True)

    received = lineage_server.received  # type: ignore[attr-defined]
    assert {(path, kind) for path, kind, _ in received} == {
        ("/api/v1/lineage", "application/json")}
    events = events_of([body for _, _, body in received], summary.run_id)
    assert [e["eventType"] for e in events] == ["START", "COMPLETE"]
    assert orchestrator.emitter.events_sent == 2 and orchestrator.emitter.failures == 0
    rows = {d["name"]: d["outputFacets"]["outputStatistics"]["rowCount"]
            for d in events[1]["outputs"]}
    assert rows["schematized"] == summary.counts["valid"]


# ------------------------------------------------------------------------------------ MQTT
@pytest.fixture
def broker() -> Iterator[MqttSettings]:
    """A unique topic and client id on the local Mosquitto; the persistent session the
    orchestrator leaves on the broker is dropped afterwards."""
    settings = broker_settings("chrono-dst", poll_s=1.0)
    yield settings
    forget_session(settings)


def publish_readings(topic: str, rows: list[dict[str, Any]]) -> None:
    """One JSON message per reading, QoS 1; returns once the broker acknowledged all of them."""
    client = mqtt.Client(callback_api_version=mqtt.CallbackAPIVersion.VERSION2,
                         client_id=f"chrono-pub-{uuid.uuid4().hex[:8]}")
    client.max_inflight_messages_set(100)
    client.connect("127.0.0.1", 1883)
    client.loop_start()
    try:
        infos = [client.publish(topic, json.dumps(row), qos=1) for row in rows]
        for info in infos:
            info.wait_for_publish(10)
            assert info.is_published()
    finally:
        client.loop_stop()
        client.disconnect()


def test_mqtt_readings_are_counted_schematized_and_far_too_late_ones_go_to_late(
    broker: MqttSettings, tmp_path: Path,
) -> None:
    # 10 minutes of 5 sensors (~600 messages) stay below Mosquitto's default queue of 1000.
    sim = simulated_db(tmp_path, sensors=5, minutes=10, seed=2)
    rows = table_rows(sim.db)
    duplicated = {int(k) for k in sim.truth["duplicates"]} | {
        int(v) for v in sim.truth["duplicates"].values()}
    excluded = {int(i) for i in sim.truth["invalid"]} | duplicated
    # Every other valid reading of the first two minutes is held back and published after the
    # last one: the watermark is then ~8 minutes past its window, beyond the allowed 5 minutes.
    cutoff = DEFAULT_START + timedelta(minutes=2)
    held = {r["id"] for r in rows if r["id"] not in excluded and r["id"] % 2 == 0
            and datetime.fromisoformat(r["timestamp"]) < cutoff}
    assert len(held) > 40
    order = [r for r in rows if r["id"] not in held] + [r for r in rows if r["id"] in held]

    cfg = SensorPipelineConfig(
        data_dir=str(tmp_path / "data"), batch_size=200,
        source=SourceConfig(kind="mqtt", mqtt=broker),
    )
    orchestrator = SensorOrchestrator(cfg)  # subscribes: the broker now queues for the session
    try:
        publish_readings(broker.topic.rstrip("#") + "warehouse-01", order)
        summary = orchestrator.run(once=True)
    finally:
        orchestrator.source.close()

    counts = summary.counts
    assert counts["processed"] == len(rows) and counts["batches"] >= 3
    assert counts["invalid"] == len(sim.bad_ids) and counts["duplicates"] == len(
        sim.truth["duplicates"])
    valid = stream(cfg, "schematized", "schematized")
    assert ids_of(valid) == {r["id"] for r in rows} - sim.bad_ids
    assert ids_of(stream(cfg, "error", "errors")) == sim.bad_ids

    late = stream(cfg, "aggregated", "late")
    assert ids_of(late) == held and counts["late"] == len(held)
    late_keys = open_bucket(cfg.bucket_spec("aggregated").url).list("late/")
    assert late_keys and all(KEY.match(k) for k in late_keys)

    # Windows hold exactly the readings that were on time: none of the held-back ones.
    kept = [r for r in rows if r["id"] not in sim.bad_ids | held]
    on_time = pl.DataFrame({"sensor_id": [r["sensor_id"] for r in kept],
                            "timestamp": [r["timestamp"] for r in kept]})
    want = on_time.group_by(
        "sensor_id",
        pl.col("timestamp").str.to_datetime("%Y-%m-%dT%H:%M:%S%.3fZ", time_zone="UTC")
        .dt.truncate("1m").alias("window_start"),
    ).agg(pl.len().cast(pl.Int64).alias("count")).sort("window_start", "sensor_id")
    windows = latest_windows(stream(cfg, "aggregated", "windows"))
    got = windows.select("sensor_id", "window_start", "count").sort("window_start", "sensor_id")
    assert got.equals(want.select(got.columns))
    # The held-back readings' windows exist, counting only their on-time readings.
    assert got.filter(pl.col("window_start") < cutoff).height > 0
