"""Incidents from anomalous readings, their ids, the ledger and the queue-file and SQS sinks."""

from __future__ import annotations

import json
import logging
import random
import socket
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import boto3
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from chrono.core.errors import ChronoError
from chrono.evidence.context import stable_id
from chrono.sensors.model import ANOMALOUS, EVENT_TIME, SEQ, conform
from chrono.sensors.notify import (
    IncidentState,
    LocalQueueSink,
    Notification,
    NotificationConfig,
    NotificationLedger,
    SqsSink,
    deliver,
    detect_incidents,
    flush_incidents,
    sqs_body,
)

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
CONFIG = NotificationConfig()


def readings(
    rows: Sequence[tuple[str, float, int]], *, job_id: str | None = None
) -> pl.DataFrame:
    """Anomalous readings from (location, seconds after T0, id), as validation emits them."""
    times = [T0 + timedelta(seconds=s) for _, s, _ in rows]
    frame = conform(pl.DataFrame({
        "id": [r[2] for r in rows],
        "timestamp": [t.isoformat().replace("+00:00", "Z") for t in times],
        "sensor_id": [f"sensor-{r[2] % 7}" for r in rows],
        "temperature": [80.0 + r[2] for r in rows],
        "anomaly_flag": [1] * len(rows),
        "anomaly_type": ["spike"] * len(rows),
        "location": [r[0] for r in rows],
    }, schema_overrides={"id": pl.Int64, "location": pl.String}))
    frame = frame.with_columns(
        pl.Series(EVENT_TIME, times, dtype=pl.Datetime("us", "UTC")),
        pl.Series(SEQ, [r[2] for r in rows], dtype=pl.Int64),
        pl.lit(True).alias(ANOMALOUS),
    )
    if job_id is not None:
        frame = frame.with_columns(
            pl.struct(pl.lit(job_id).alias("job_id"), pl.lit("node-1").alias("node_id"))
            .alias("lineage")
        )
    return frame


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def ids_of(note: Notification) -> list[int]:
    return [r["id"] for r in note.readings]


def run_all(frame: pl.DataFrame, config: NotificationConfig = CONFIG) -> list[Notification]:
    notes, state = detect_incidents(IncidentState.empty(), frame, None, config)
    more, _ = flush_incidents(state, config)
    return notes + more


# ------------------------------------------------------------------------------- the rule
def test_three_within_window_open_one_incident_and_chain_the_rest() -> None:
    frame = readings([("hall", 0, 1), ("hall", 20, 2), ("hall", 50, 3), ("hall", 100, 4),
                      ("hall", 150, 5), ("yard", 10, 6)])
    notes, state = detect_incidents(IncidentState.empty(), frame, at(150), CONFIG)
    assert notes == []  # the chain may still grow: 150 + 60 not yet passed
    assert state.open_count == 1
    notes, state = detect_incidents(state, readings([]), at(211), CONFIG)
    assert len(notes) == 1
    note = notes[0]
    assert ids_of(note) == [1, 2, 3, 4, 5]
    assert note.reading_count == 5
    assert note.location == "hall"
    assert (note.first_seen, note.last_seen) == (at(0), at(150))
    assert note.notification_id == stable_id("notification", "hall", "1",
                                             "2024-05-01T12:00:00Z")
    assert state.open_count == 0


def test_two_within_window_make_no_incident() -> None:
    assert run_all(readings([("hall", 0, 1), ("hall", 30, 2)])) == []


def test_three_spread_over_61_seconds_make_no_incident() -> None:
    assert run_all(readings([("hall", 0, 1), ("hall", 30, 2), ("hall", 61, 3)])) == []
    assert len(run_all(readings([("hall", 0, 1), ("hall", 30, 2), ("hall", 60, 3)]))) == 1


def test_locations_are_separate() -> None:
    assert run_all(readings([("a", 0, 1), ("b", 10, 2), ("a", 20, 3), ("b", 30, 4)])) == []


def test_cooldown_suppresses_then_a_new_incident_opens() -> None:
    rows = [("hall", 0, 1), ("hall", 10, 2), ("hall", 20, 3),      # incident, ends at 20
            ("hall", 100, 4), ("hall", 110, 5), ("hall", 120, 6),  # within 20 + 300: suppressed
            ("hall", 330, 7), ("hall", 340, 8), ("hall", 350, 9)]  # after the cooldown
    notes, state = detect_incidents(IncidentState.empty(), readings(rows), at(1000), CONFIG)
    assert [ids_of(n) for n in notes] == [[1, 2, 3], [7, 8, 9]]
    assert state.suppressed == 3
    # An earlier cooldown edge: a reading exactly at last + cooldown_s is still suppressed.
    rows = [("x", 0, 1), ("x", 1, 2), ("x", 2, 3), ("x", 302, 4), ("x", 303, 5), ("x", 304, 6)]
    notes, state = detect_incidents(IncidentState.empty(), readings(rows), at(1000), CONFIG)
    assert [ids_of(n) for n in notes] == [[1, 2, 3]]
    assert state.suppressed == 1 and state.expired == 2


def test_readings_after_the_watermark_wait_and_late_ones_are_dropped() -> None:
    state = IncidentState.empty()
    notes, state = detect_incidents(state, readings([("hall", 10, 1), ("hall", 20, 2)]),
                                    at(5), CONFIG)
    assert notes == [] and state.pending_count == 2
    # Arrives after the watermark moved past it: late, whatever it would have done.
    notes, state = detect_incidents(state, readings([("hall", 4, 3)]), at(30), CONFIG)
    assert state.late == 1
    notes, state = detect_incidents(state, readings([("hall", 40, 4)]), at(200), CONFIG)
    assert [ids_of(n) for n in notes] == [[1, 2, 4]]
    # The watermark never moves back.
    _, later = detect_incidents(state, readings([]), at(0), CONFIG)
    assert later.watermark == at(200)


def test_state_stays_bounded_by_the_watermark() -> None:
    rows = [("hall", 100 * k, k) for k in range(1, 50)]  # isolated: never an incident
    notes, state = detect_incidents(IncidentState.empty(), readings(rows), at(10_000), CONFIG)
    assert notes == []
    assert state.pending_count == 0 and state.expired == 49
    notes, state = detect_incidents(state, readings([("hall", 10_030, 60)]), at(10_040), CONFIG)
    assert state.pending_count == 1  # may still pair with a reading after the watermark


def test_notification_carries_public_columns_lineage_and_a_capped_reading_list() -> None:
    frame = pl.concat([
        readings([("hall", s, s + 1) for s in range(0, 5)], job_id="job-a"),
        readings([("hall", s, s + 1) for s in range(5, 8)], job_id="job-b"),
    ])
    config = NotificationConfig(max_readings=4)
    [note] = run_all(frame.sample(fraction=1.0, shuffle=True, seed=3), config)
    assert note.reading_count == 8
    assert ids_of(note) == [1, 2, 3, 4]
    assert note.job_ids == ["job-a", "job-b"]
    assert note.lineage == {"job_id": "job-a", "node_id": "node-1"}
    first = note.readings[0]
    assert not any(k.startswith("_") for k in first)
    assert first["timestamp"] == "2024-05-01T12:00:00Z" and first["temperature"] == 81.0
    body = note.to_json()
    assert next(iter(body)) == "notification_id"
    assert json.loads(json.dumps(body)) == body
    assert Notification.from_json(body) == note


def test_without_lineage_job_ids_are_empty() -> None:
    [note] = run_all(readings([("hall", 0, 1), ("hall", 1, 2), ("hall", 2, 3)]))
    assert note.job_ids == [] and note.lineage is None


def test_config_rejects_a_zero_threshold() -> None:
    with pytest.raises(ValidationError):
        NotificationConfig(threshold=0)
    with pytest.raises(ValidationError):
        NotificationConfig.model_validate({"treshold": 3})


# ------------------------------------------------------------- invariants (Hypothesis)
def reference(
    rows: list[tuple[str, float, int]], config: NotificationConfig
) -> tuple[list[tuple[str, list[int]]], int]:
    """The incident rule read literally, one reading at a time: (location, ids) and suppressed."""
    incidents: list[tuple[str, list[int]]] = []
    suppressed = 0
    for location in sorted({r[0] for r in rows}):
        ordered = sorted((t, i) for loc, t, i in rows if loc == location)
        pending: list[tuple[float, int]] = []
        current: list[tuple[float, int]] | None = None
        last_end: float | None = None
        for t, i in ordered:
            if current is not None and t - current[-1][0] <= config.window_s:
                current.append((t, i))
                continue
            if current is not None:
                incidents.append((location, [x[1] for x in current]))
                last_end, current = current[-1][0], None
            if last_end is not None and t <= last_end + config.cooldown_s:
                suppressed += 1
                continue
            pending = [p for p in pending if t - p[0] <= config.window_s] + [(t, i)]
            if len(pending) >= config.threshold:
                current, pending = pending, []
        if current is not None:
            incidents.append((location, [x[1] for x in current]))
    return sorted(incidents), suppressed


def summary(notes: list[Notification]) -> list[tuple[str, list[int]]]:
    return sorted((n.location, ids_of(n)) for n in notes)


def capped(incidents: list[tuple[str, list[int]]], cap: int) -> list[tuple[str, list[int]]]:
    return sorted((location, ids[:cap]) for location, ids in incidents)


SMALL = NotificationConfig(threshold=3, window_s=20, cooldown_s=50)
DELAY = 15  # watermark = latest event time - DELAY; arrival disorder stays below it

# Bursts (location, start, gaps between readings) make incidents, chains and cooldowns common.
bursts = st.lists(
    st.tuples(st.sampled_from(["a", "b", "c"]), st.integers(0, 400),
              st.lists(st.integers(0, 25), max_size=5)),
    max_size=8,
)


def flatten(drawn: list[tuple[str, int, list[int]]]) -> list[tuple[str, float, int]]:
    rows: list[tuple[str, float, int]] = []
    for location, start, gaps in drawn:
        t = start
        for gap in [0, *gaps]:
            t += gap
            rows.append((location, float(t), len(rows) + 1))
    return rows


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(bursts, st.randoms(use_true_random=False), st.booleans(), st.sampled_from([2, 500]))
def test_any_arrival_order_and_batch_split_gives_the_reference_incidents(
    drawn: list[tuple[str, int, list[int]]], rnd: random.Random, round_trip: bool, cap: int
) -> None:
    rows = flatten(drawn)
    config = SMALL.model_copy(update={"max_readings": cap})
    expected, expected_suppressed = reference(rows, config)
    # Arrival order: event time plus a jitter below the watermark delay (nothing is late).
    jitter = [rnd.uniform(0, DELAY - 0.5) for _ in rows]
    arrival = sorted(range(len(rows)), key=lambda k: (rows[k][1] + jitter[k], k))
    cuts = sorted(rnd.sample(range(1, len(rows)), min(4, len(rows) - 1))) if len(rows) > 1 else []
    state, notes, newest = IncidentState.empty(), [], -1e9
    for lo, hi in zip([0, *cuts], [*cuts, len(rows)], strict=True):
        batch = [rows[k] for k in arrival[lo:hi]]
        newest = max([newest, *(r[1] for r in batch)])
        out, state = detect_incidents(state, readings(batch), at(newest - DELAY), config)
        notes += out
        if round_trip:
            state = IncidentState.from_bytes(state.to_bytes())
        assert state.late == 0
    out, state = flush_incidents(state, config)
    notes += out
    assert summary(notes) == capped(expected, cap)
    assert sorted(n.reading_count for n in notes) == sorted(len(ids) for _, ids in expected)
    assert state.suppressed == expected_suppressed
    assert state.pending_count == 0 and state.open_count == 0
    assert len({n.notification_id for n in notes}) == len(notes)
    # No watermark at all (everything waits for the flush) gives the same notifications.
    assert sorted(n.notification_id for n in run_all(readings(rows), config)) == sorted(
        n.notification_id for n in notes
    )


def test_state_round_trip_mid_stream_is_deterministic_and_resumes() -> None:
    first = readings([("hall", 0, 1), ("hall", 10, 2), ("yard", 5, 3), ("hall", 30, 4),
                      ("hall", 70, 5)], job_id="job-a")
    second = readings([("hall", 80, 6), ("yard", 100, 7), ("yard", 101, 8), ("hall", 300, 9)],
                      job_id="job-b")
    _, state = detect_incidents(IncidentState.empty(), first, at(40), CONFIG)
    assert state.open_count == 1 and state.pending_count == 2
    data = state.to_bytes()
    restored = IncidentState.from_bytes(data)
    assert restored.to_bytes() == data
    shuffled = first.sample(fraction=1.0, shuffle=True, seed=1)
    assert detect_incidents(IncidentState.empty(), shuffled, at(40), CONFIG)[1].to_bytes() == data
    direct = detect_incidents(state, second, at(400), CONFIG)[0]
    resumed = detect_incidents(restored, second, at(400), CONFIG)[0]
    assert direct == resumed
    assert [ids_of(n) for n in direct] == [[1, 2, 4, 5, 6]]
    assert direct[0].job_ids == ["job-a", "job-b"]
    assert direct[0].lineage == {"job_id": "job-a", "node_id": "node-1"}
    with pytest.raises(ChronoError):
        IncidentState.from_bytes(b"not a state")


# ------------------------------------------------------------------- ledger and sinks
def burst(location: str, start_id: int) -> pl.DataFrame:
    return readings([(location, 0, start_id), (location, 5, start_id + 1),
                     (location, 9, start_id + 2)])


def test_ledger_is_at_most_once_across_restart_and_replay(tmp_path: Path) -> None:
    batch = pl.concat([burst("hall", 1), burst("yard", 10)])
    older = IncidentState.empty()
    notes, _ = detect_incidents(older, batch, at(500), CONFIG)
    queue = tmp_path / "queue.jsonl"
    ledger = NotificationLedger(tmp_path / "ledger.db")
    report = deliver(notes, ledger, [LocalQueueSink(queue)])
    assert (report.sent, report.already_sent, report.failed) == (2, 0, {})
    ledger.close()

    # Restart: a new ledger object on the same file, and the same batch replayed from the older
    # state, gives the same ids, which the ledger refuses to send again.
    replayed, _ = detect_incidents(older, batch.reverse(), at(500), CONFIG)
    assert [n.notification_id for n in replayed] == [n.notification_id for n in notes]
    with NotificationLedger(tmp_path / "ledger.db") as again:
        report = deliver(replayed, again, [LocalQueueSink(queue)])
        assert (report.sent, report.already_sent) == (0, 2)
        assert again.sent_ids() == {n.notification_id for n in notes}
        assert again.claim(notes[0].notification_id) is False
        assert again.claim("another-id") is True
        assert again.results(notes[0].notification_id) == {"queue_file": ("sent", None, 1)}
    assert len(queue.read_text().splitlines()) == 2


def test_queue_file_gets_one_json_line_per_notification(tmp_path: Path) -> None:
    notes = run_all(pl.concat([burst("hall", 1), burst("yard", 10), burst("dock", 20)]))
    queue = tmp_path / "nested" / "notifications.jsonl"
    sink = LocalQueueSink(queue)
    for note in notes:
        sink.send(note)
    lines = [json.loads(line) for line in queue.read_text(encoding="utf-8").splitlines()]
    assert [line["notification_id"] for line in lines] == [n.notification_id for n in notes]
    assert all(next(iter(line)) == "notification_id" for line in lines)
    assert [Notification.from_json(line) for line in lines] == notes


def test_sqs_sink_delivers_to_a_real_queue(moto_endpoint: str, tmp_path: Path) -> None:
    sqs = boto3.client("sqs", endpoint_url=moto_endpoint, region_name="us-east-1")
    url = sqs.create_queue(QueueName="chrono-notify")["QueueUrl"]
    notes = run_all(pl.concat([burst("hall", 1), burst("yard", 10)]))
    with NotificationLedger(tmp_path / "ledger.db") as ledger:
        report = deliver(notes, ledger, [SqsSink(url, moto_endpoint)])
    assert (report.sent, report.failed) == (2, {})
    got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10,
                              MessageAttributeNames=["All"], WaitTimeSeconds=1)["Messages"]
    bodies = sorted((json.loads(m["Body"]) for m in got), key=lambda b: b["notification_id"])
    assert bodies == sorted((n.to_json() for n in notes), key=lambda b: b["notification_id"])
    assert {m["MessageAttributes"]["notification_id"]["StringValue"] for m in got} == {
        n.notification_id for n in notes
    }


def test_sqs_sink_on_a_fifo_queue_deduplicates_by_notification_id(moto_endpoint: str) -> None:
    sqs = boto3.client("sqs", endpoint_url=moto_endpoint, region_name="us-east-1")
    url = sqs.create_queue(QueueName="chrono-notify.fifo",
                           Attributes={"FifoQueue": "true"})["QueueUrl"]
    [note] = run_all(burst("hall room 2", 1))
    sink = SqsSink(url, moto_endpoint)
    sink.send(note)
    sink.send(note)  # same deduplication id: SQS keeps one
    got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10,
                              AttributeNames=["All"], WaitTimeSeconds=1)["Messages"]
    assert len(got) == 1
    assert got[0]["Attributes"]["MessageDeduplicationId"] == note.notification_id
    assert json.loads(got[0]["Body"])["notification_id"] == note.notification_id


class DownSqsSink(SqsSink):
    """A second SQS sink under its own name, so the report can tell the two apart."""

    name = "sqs_down"


def test_a_failing_sink_is_reported_and_does_not_stop_the_other(
    moto_endpoint: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    notes = run_all(pl.concat([burst("hall", 1), burst("yard", 10)]))
    queue = tmp_path / "queue.jsonl"
    missing = f"{moto_endpoint}/123456789012/no-such-queue"
    with socket.socket() as sock:  # a port nobody listens on: connection refused (transient)
        sock.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{sock.getsockname()[1]}"
    sinks = [SqsSink(missing, moto_endpoint), DownSqsSink(closed + "/1/q", closed)]
    caplog.set_level(logging.INFO, logger="chrono")
    with NotificationLedger(tmp_path / "ledger.db") as ledger:
        report = deliver(notes, ledger, [*sinks, LocalQueueSink(queue)], retries=2)
        assert report.sent == 2
        assert report.failed == {"sqs": 2, "sqs_down": 2}
        results = ledger.results(notes[0].notification_id)
    assert results["queue_file"] == ("sent", None, 1)
    assert results["sqs"][0:2] == ("failed", "sqs_rejected")
    assert results["sqs"][2] == 1  # a missing queue is terminal: no retry
    assert results["sqs_down"] == ("failed", "sqs_unreachable", 3)  # retried twice
    assert len(queue.read_text().splitlines()) == 2
    events = [json.loads(r.getMessage()) for r in caplog.records]
    retries = [e for e in events if e["event"] == "notification_retry"]
    assert len(retries) == 4 and {e["sink_id"] for e in retries} == {"sqs_down"}
    assert all("hall" not in r.getMessage() for r in caplog.records)  # no location in logs


def test_sqs_body_leaves_out_readings_past_the_size_limit() -> None:
    [note] = run_all(readings([("hall", s, s + 1) for s in range(40)]))
    body = json.loads(sqs_body(note, limit=4000))
    assert len(json.dumps(body, separators=(",", ":"))) <= 4000
    assert 0 < len(body["readings"]) < 40 and body["reading_count"] == 40


def test_deliver_needs_a_sink(tmp_path: Path) -> None:
    with NotificationLedger(tmp_path / "l.db") as ledger, pytest.raises(ChronoError):
        deliver([], ledger, [])
