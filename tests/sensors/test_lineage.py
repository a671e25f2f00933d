"""Lineage struct on records and OpenLineage run events to a file and to a real HTTP server."""

from __future__ import annotations

import json
import logging
import re
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from pydantic import ValidationError

from chrono.sensors.lineage import (
    PIPELINE_VERSION,
    RUN_EVENT_SCHEMA_URL,
    DatasetRef,
    LineageConfig,
    LineageInfo,
    OpenLineageEmitter,
    add_lineage,
    lineage_info,
    openlineage_run_id,
)
from chrono.sensors.model import LINEAGE, empty_readings

LINEAGE_FIELDS = [
    "node_id", "job_id", "execution_id", "processing_time", "pipeline_version", "spec_version",
]
NOW = datetime(2025, 3, 1, 12, 30, 5, 123456, tzinfo=UTC)


@pytest.fixture
def no_bacalhau(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BACALHAU_NODE_ID", raising=False)
    monkeypatch.delenv("BACALHAU_EXECUTION_ID", raising=False)


def make_info() -> LineageInfo:
    return lineage_info(
        run_id="run-1", job_name="sensors", config_fingerprint="abc", spec_version="2.0", now=NOW
    )


# --- lineage_info -------------------------------------------------------------------------------


def test_local_defaults_are_host_name_and_run_id(no_bacalhau: None) -> None:
    info = make_info()
    assert info.node_id == socket.gethostname()
    assert info.execution_id == "run-1"
    assert info.pipeline_version == PIPELINE_VERSION != ""
    assert info.spec_version == "2.0"
    assert info.processing_time == NOW


def test_bacalhau_environment_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BACALHAU_NODE_ID", "node-7")
    monkeypatch.setenv("BACALHAU_EXECUTION_ID", "e-42")
    info = make_info()
    assert (info.node_id, info.execution_id) == ("node-7", "e-42")


def test_blank_bacalhau_variables_fall_back(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BACALHAU_NODE_ID", "  ")
    monkeypatch.setenv("BACALHAU_EXECUTION_ID", "")
    info = make_info()
    assert (info.node_id, info.execution_id) == (socket.gethostname(), "run-1")


def test_job_id_is_a_stable_hash_of_job_and_config(no_bacalhau: None) -> None:
    a = make_info().job_id
    assert re.fullmatch(r"[0-9a-f]{16}", a)
    assert a == make_info().job_id
    other = lineage_info(
        run_id="run-2", job_name="sensors", config_fingerprint="abd", spec_version="2.0"
    )
    assert other.job_id != a
    # The run id is not part of the job id: every run of one job + config shares it.
    same = lineage_info(
        run_id="run-9", job_name="sensors", config_fingerprint="abc", spec_version="2.0"
    )
    assert same.job_id == a


def test_processing_time_is_utc(no_bacalhau: None) -> None:
    plus_two = timezone(timedelta(hours=2))
    info = lineage_info(
        run_id="r", job_name="j", config_fingerprint="f", spec_version="1",
        now=datetime(2025, 3, 1, 14, 30, 5, 123456, tzinfo=plus_two),
    )
    assert info.processing_time == NOW and info.processing_time.tzinfo == UTC
    assert info.as_dict()["processing_time"] == "2025-03-01T12:30:05.123456Z"
    naive = lineage_info(
        run_id="r", job_name="j", config_fingerprint="f", spec_version="1",
        now=datetime(2025, 3, 1, 12, 30, 5, 123456),
    )
    assert naive.processing_time == NOW
    assert lineage_info(
        run_id="r", job_name="j", config_fingerprint="f", spec_version="1"
    ).processing_time.tzinfo is not None


def test_as_dict_has_the_struct_fields_in_order(no_bacalhau: None) -> None:
    assert list(make_info().as_dict()) == LINEAGE_FIELDS


# --- add_lineage --------------------------------------------------------------------------------


def test_add_lineage_on_an_empty_batch(no_bacalhau: None) -> None:
    out = add_lineage(empty_readings(), make_info())
    assert out.height == 0
    dtype = out.schema[LINEAGE]
    assert isinstance(dtype, pl.Struct)
    assert [f.name for f in dtype.fields] == LINEAGE_FIELDS
    assert all(f.dtype == pl.String for f in dtype.fields)


def test_add_lineage_on_a_million_rows_is_a_broadcast(no_bacalhau: None) -> None:
    frame = pl.DataFrame({"id": pl.int_range(0, 1_000_000, eager=True)})
    info = make_info()
    add_lineage(frame.head(10), info)  # warm up polars' expression machinery
    started = time.perf_counter()
    out = add_lineage(frame, info)
    elapsed = time.perf_counter() - started
    assert out.height == 1_000_000
    # A few ms in practice; the bound is loose for a loaded 2-core CI box.
    assert elapsed < 0.5, elapsed
    expected = info.as_dict()
    assert out[LINEAGE][0] == expected
    assert out[LINEAGE][-1] == expected
    unnested = out.select(pl.col(LINEAGE).struct.unnest())
    assert unnested.n_unique() == 1
    assert out.select(pl.col(LINEAGE).struct.field("processing_time")).item(0, 0) == (
        "2025-03-01T12:30:05.123456Z"
    )


def test_add_lineage_replaces_an_earlier_stamp_and_survives_parquet(
    no_bacalhau: None, tmp_path: Path
) -> None:
    frame = pl.DataFrame({"id": [1, 2, 3], "sensor_id": ["a", "b", "c"]})
    first = add_lineage(frame, make_info())
    later = lineage_info(
        run_id="run-2", job_name="sensors", config_fingerprint="abc", spec_version="2.1", now=NOW
    )
    again = add_lineage(first, later)
    assert again.columns == ["id", "sensor_id", LINEAGE]
    assert again[LINEAGE].struct.field("spec_version").to_list() == ["2.1"] * 3
    path = tmp_path / "part.parquet"
    again.write_parquet(path)
    assert pl.read_parquet(path).equals(again)


# --- OpenLineage events -------------------------------------------------------------------------


def assert_run_event(event: dict[str, Any], event_type: str, config: LineageConfig) -> None:
    """Required fields of the OpenLineage 2-0-2 RunEvent (and of its nested objects)."""
    for key in ("eventTime", "producer", "schemaURL", "run", "job", "eventType"):
        assert key in event, key
    assert event["eventType"] == event_type
    assert event["schemaURL"] == RUN_EVENT_SCHEMA_URL
    assert event["producer"] == config.producer
    moment = datetime.fromisoformat(event["eventTime"])
    assert moment.utcoffset() == timedelta(0)
    assert abs((datetime.now(UTC) - moment).total_seconds()) < 60
    uuid.UUID(event["run"]["runId"])
    assert event["job"]["namespace"] == config.namespace
    assert isinstance(event["job"]["name"], str) and event["job"]["name"]
    for dataset in event.get("inputs", []) + event.get("outputs", []):
        assert {"namespace", "name"} <= dataset.keys()
    facets: list[dict[str, Any]] = [
        *event["run"].get("facets", {}).values(), *event["job"].get("facets", {}).values()
    ]
    for dataset in event.get("inputs", []):
        facets += [*dataset.get("facets", {}).values(), *dataset.get("inputFacets", {}).values()]
    for dataset in event.get("outputs", []):
        facets += [*dataset.get("facets", {}).values(), *dataset.get("outputFacets", {}).values()]
    for facet in facets:
        assert facet["_producer"] == config.producer
        assert facet["_schemaURL"].startswith("https://openlineage.io/spec/")


def read_events(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


INPUTS = [DatasetRef("sqlite", "/data/sensors.db/sensor_readings", 1000)]
OUTPUTS = [
    DatasetRef("chrono", "schematized", 990),
    DatasetRef("chrono", "error", 10),
    DatasetRef("chrono", "raw"),
]


def test_file_target_writes_start_then_complete_with_counts(tmp_path: Path) -> None:
    target = tmp_path / "lineage" / "events.jsonl"
    config = LineageConfig(openlineage_target=str(target), namespace="edge-7")
    emitter = OpenLineageEmitter(config)
    run_id = str(uuid.uuid4())
    emitter.start(run_id, "sensors.run", INPUTS)
    emitter.complete(run_id, "sensors.run", INPUTS, OUTPUTS)
    assert (emitter.events_sent, emitter.failures) == (2, 0)

    start, complete = read_events(target)
    assert_run_event(start, "START", config)
    assert_run_event(complete, "COMPLETE", config)
    assert start["run"]["runId"] == complete["run"]["runId"] == run_id
    assert start["outputs"] == []
    assert start["inputs"][0]["inputFacets"]["inputStatistics"]["rowCount"] == 1000
    outputs = {d["name"]: d for d in complete["outputs"]}
    assert outputs["schematized"]["outputFacets"]["outputStatistics"]["rowCount"] == 990
    assert outputs["error"]["outputFacets"]["outputStatistics"]["rowCount"] == 10
    assert outputs["raw"]["outputFacets"] == {}  # unknown count: no statistics facet
    assert outputs["schematized"]["namespace"] == "chrono"

    # Appended, not overwritten: a second run adds two more lines.
    emitter.start("second-run", "sensors.run", INPUTS)
    emitter.complete("second-run", "sensors.run", INPUTS, OUTPUTS)
    assert len(read_events(target)) == 4


def test_fail_event_carries_only_the_error_code(tmp_path: Path) -> None:
    target = tmp_path / "events.jsonl"
    config = LineageConfig(openlineage_target=f"file://{target}")
    emitter = OpenLineageEmitter(config)
    emitter.start("run-7", "sensors.run", INPUTS)
    emitter.fail("run-7", "sensors.run", INPUTS, "source_unreachable")
    start, fail = read_events(target)
    assert_run_event(fail, "FAIL", config)
    error = fail["run"]["facets"]["errorMessage"]
    assert error["message"] == "source_unreachable"
    assert set(error) == {"_producer", "_schemaURL", "message", "programmingLanguage"}
    assert "stackTrace" not in error
    # A non-UUID run id maps to one stable UUID, the same for START and FAIL.
    assert start["run"]["runId"] == fail["run"]["runId"] == openlineage_run_id("run-7")


def test_run_ids_become_uuids() -> None:
    real = str(uuid.uuid4())
    assert openlineage_run_id(real) == real
    assert openlineage_run_id(real.upper()) == real
    derived = openlineage_run_id("20250301T120000-sensors")
    assert uuid.UUID(derived).version == 5
    assert derived == openlineage_run_id("20250301T120000-sensors")
    assert derived != openlineage_run_id("20250301T120001-sensors")


def test_no_target_sends_nothing(tmp_path: Path) -> None:
    emitter = OpenLineageEmitter(LineageConfig())
    emitter.start("r", "j", [])
    emitter.complete("r", "j", [], [])
    emitter.fail("r", "j", [], "x")
    assert (emitter.events_sent, emitter.failures, emitter.enabled) == (0, 0, False)


def test_config_rejects_unknown_schemes_and_keys() -> None:
    with pytest.raises(ValidationError, match="scheme 'ftp'"):
        LineageConfig(openlineage_target="ftp://example.org/lineage")
    with pytest.raises(ValidationError):
        LineageConfig.model_validate({"openlineage_url": "http://x"})
    with pytest.raises(ValidationError):
        LineageConfig(namespace=" ")
    assert LineageConfig(openlineage_target="HTTPS://marquez:5000/api/v1/lineage")


class LineageServer:
    """A real HTTP endpoint on a free local port that records posted JSON events."""

    def __init__(self, fail_first: int = 0, status: int = 500) -> None:
        self.received: list[dict[str, Any]] = []
        self.requests = 0
        self.fail_first = fail_first
        self.status = status
        self.content_types: list[str] = []
        self.paths: list[str] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length)
                owner.requests += 1
                owner.paths.append(self.path)
                owner.content_types.append(self.headers.get("Content-Type", ""))
                if owner.requests <= owner.fail_first:
                    self.send_response(owner.status)
                    self.end_headers()
                    return
                owner.received.append(json.loads(body))
                self.send_response(201)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/api/v1/lineage"
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def __enter__(self) -> LineageServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


@pytest.fixture
def fast_retries(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(OpenLineageEmitter, "backoff_s", 0.01)
    monkeypatch.setattr(OpenLineageEmitter, "timeout_s", 2.0)
    yield


def test_http_target_receives_the_json_events(fast_retries: None) -> None:
    with LineageServer() as server:
        config = LineageConfig(openlineage_target=server.url)
        emitter = OpenLineageEmitter(config)
        emitter.start("run-h", "sensors.run", INPUTS)
        emitter.complete("run-h", "sensors.run", INPUTS, OUTPUTS)
    assert (emitter.events_sent, emitter.failures) == (2, 0)
    assert [e["eventType"] for e in server.received] == ["START", "COMPLETE"]
    assert server.paths == ["/api/v1/lineage"] * 2
    assert all(ct == "application/json" for ct in server.content_types)
    assert_run_event(server.received[1], "COMPLETE", config)
    rows = {
        d["name"]: d["outputFacets"].get("outputStatistics", {}).get("rowCount")
        for d in server.received[1]["outputs"]
    }
    assert rows == {"schematized": 990, "error": 10, "raw": None}


def test_http_server_errors_are_retried(fast_retries: None) -> None:
    with LineageServer(fail_first=2, status=503) as server:
        emitter = OpenLineageEmitter(LineageConfig(openlineage_target=server.url))
        emitter.start("run-r", "sensors.run", INPUTS)
    assert server.requests == 3
    assert (emitter.events_sent, emitter.failures) == (1, 0)
    assert len(server.received) == 1


def test_http_failure_is_counted_and_logged_not_raised(
    fast_retries: None, caplog: pytest.LogCaptureFixture
) -> None:
    with LineageServer(fail_first=100, status=500) as server:
        emitter = OpenLineageEmitter(LineageConfig(openlineage_target=server.url))
        with caplog.at_level(logging.WARNING, logger="chrono"):
            emitter.fail("run-x", "sensors.run", INPUTS, "boom")
    assert server.requests == 3  # the first try and two retries
    assert (emitter.events_sent, emitter.failures) == (0, 1)
    logged = [json.loads(r.getMessage()) for r in caplog.records]
    assert logged[-1]["event"] == "openlineage_emit_failed"
    assert logged[-1]["code"] == "openlineage_http_500"
    assert logged[-1]["event_kind"] == "FAIL"


def test_http_refusal_is_not_retried(fast_retries: None) -> None:
    with LineageServer(fail_first=100, status=400) as server:
        emitter = OpenLineageEmitter(LineageConfig(openlineage_target=server.url))
        emitter.start("run-b", "sensors.run", INPUTS)
    assert server.requests == 1
    assert emitter.failures == 1


def test_unreachable_endpoint_does_not_crash(
    fast_retries: None, caplog: pytest.LogCaptureFixture
) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    emitter = OpenLineageEmitter(
        LineageConfig(openlineage_target=f"http://127.0.0.1:{port}/api/v1/lineage")
    )
    with caplog.at_level(logging.WARNING, logger="chrono"):
        emitter.start("run-u", "sensors.run", INPUTS)
        emitter.complete("run-u", "sensors.run", INPUTS, OUTPUTS)
    assert (emitter.events_sent, emitter.failures) == (0, 2)
    codes = [json.loads(r.getMessage())["code"] for r in caplog.records]
    assert codes == ["openlineage_unreachable"] * 2


def test_unwritable_file_target_is_counted(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")
    emitter = OpenLineageEmitter(LineageConfig(openlineage_target=str(blocker / "events.jsonl")))
    emitter.start("r", "j", [])
    assert (emitter.events_sent, emitter.failures) == (0, 1)
