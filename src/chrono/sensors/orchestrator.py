"""The sensor orchestrator: read a batch, run the active scenarios on it, commit, repeat.

One cycle:

1. read the next batch after the committed cursor (``source``);
2. ``raw``: archive the batch as received;
3. validate (always: windows and incidents need parsed times); ``schematized``: valid readings
   to the schematized bucket, invalid ones and duplicates to the error bucket, each with every
   failed rule; ``lineage``: every record carries the ``lineage`` struct;
4. update event-time windows (always, so switching scenarios never corrupts the state);
   ``multi_destination``: the routes send streams to archival, aggregated and any named bucket;
5. detect incidents; ``notification``: deliver them, at most once (ledger);
6. commit cursor + window state + incident state in one transaction.

Outputs are written under keys derived from the batch's source position, and the checkpoint is
committed last, so a run killed anywhere resumes at the last whole batch and writes the same
files again (it first removes the temp files of writes the kill cut short). With ``--once`` the
run stops when the source is drained and flushes open windows and incidents; without it, it
polls every ``interval_s`` and picks up scenario changes between cycles. ``dry_run`` computes
everything and writes nothing.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl

from chrono.core.errors import ChronoError, ConfigError
from chrono.core.logging import log_event
from chrono.sensors.config import SensorPipelineConfig
from chrono.sensors.lineage import DatasetRef, OpenLineageEmitter, add_lineage, lineage_info
from chrono.sensors.model import SEQ
from chrono.sensors.notify import (
    IncidentState,
    LocalQueueSink,
    Notification,
    NotificationLedger,
    SqsSink,
    deliver,
    flush_incidents,
)
from chrono.sensors.outputs import Writer
from chrono.sensors.pipeline import Cycle, cycle_steps
from chrono.sensors.scenarios import SCENARIOS, ScenarioStore
from chrono.sensors.sources import Source, open_source
from chrono.sensors.spec import ValidationSpec, load_spec
from chrono.sensors.state import CheckpointStore
from chrono.sensors.windows import WindowState, flush_windows
from chrono.storage.buckets import Bucket, open_bucket
from chrono.storage.local import LocalBucket

COUNTER_NAMES: tuple[str, ...] = (
    "batches", "processed", "valid", "invalid", "duplicates", "windows", "late", "anomalies",
    "notifications", "notifications_suppressed",
)
"""Counters every run reports (plus one ``writes.<sink>`` per destination)."""


@dataclass
class RunSummary:
    """What a run did; written to ``<data_dir>/state/runs/<run_id>.json`` (not in dry-run)."""

    run_id: str
    started_at: str
    scenarios: tuple[str, ...] = ()
    status: str = "running"
    finished_at: str | None = None
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(COUNTER_NAMES, 0))
    sinks: dict[str, dict[str, Any]] = field(default_factory=dict)
    planned: list[dict[str, Any]] = field(default_factory=list)
    would_notify: list[str] = field(default_factory=list)
    error_code: str | None = None
    step_seconds: dict[str, float] = field(default_factory=dict)
    """Seconds spent in each step of the cycle (``read`` included), summed over the run."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id, "started_at": self.started_at,
            "finished_at": self.finished_at, "status": self.status,
            "scenarios": list(self.scenarios), "counts": self.counts, "sinks": self.sinks,
            "planned": self.planned, "would_notify": self.would_notify,
            "error_code": self.error_code, "step_seconds": self.step_seconds,
        }


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class SensorOrchestrator:
    """Runs the sensor pipeline over one source with the scenarios that are active."""

    def __init__(
        self,
        config: SensorPipelineConfig,
        *,
        dry_run: bool = False,
        run_id: str | None = None,
        on_cycle: Callable[[RunSummary], None] | None = None,
    ) -> None:
        self.config = config
        self.dry_run = dry_run
        self.on_cycle = on_cycle
        self.run_id = run_id or str(uuid.uuid4())
        self.summary = RunSummary(self.run_id, _now())
        self.spec: ValidationSpec = load_spec(Path(config.spec) if config.spec else None)
        self.source: Source = open_source(config.source)
        self.source_name = self.source.name
        self.fingerprint = config.fingerprint()
        self.checkpoints = CheckpointStore(config.state_dir / "checkpoints.db")
        self.writer = Writer(config.output_format, config.sink_retries, dry_run=dry_run,
                             threads=config.write_threads)
        self._ahead: tuple[dict[str, Any] | None, Future[tuple[pl.DataFrame, Any]]] | None = None
        self._reader: ThreadPoolExecutor | None = None
        self._committer: ThreadPoolExecutor | None = None
        self._commit_future: Future[None] | None = None
        self.emitter = OpenLineageEmitter(config.lineage)
        self._buckets: dict[str, Bucket] = {}
        self._load_state()

    # ----------------------------------------------------------------- state and wiring
    def _load_state(self) -> None:
        checkpoint = self.checkpoints.load(self.source_name)
        if checkpoint.fingerprint not in (None, self.fingerprint):
            raise ConfigError(
                "state_mismatch",
                f"{self.checkpoints.path}: state was built with other source, spec, windowing "
                "or notification settings; use another data_dir or delete the state folder",
            )
        self.cursor = checkpoint.cursor
        self.batches = checkpoint.batches
        self.windows = (WindowState.from_bytes(checkpoint.windows, self.config.windowing)
                        if checkpoint.windows else WindowState.empty(self.config.windowing))
        self.incidents = (IncidentState.from_bytes(checkpoint.incidents)
                          if checkpoint.incidents else IncidentState.empty())

    def _scenario_store(self) -> ScenarioStore | None:
        path = self.config.scenario_store_path
        if self.dry_run and not path.is_file():
            return None
        return ScenarioStore(path, default=tuple(self.config.scenarios.default))

    def active_scenarios(self) -> tuple[str, ...]:
        store = self._scenario_store()
        if store is None:
            return tuple(s for s in SCENARIOS if s in self.config.scenarios.default)
        return store.get().active

    def bucket(self, url: str) -> Bucket:
        if url not in self._buckets:
            self._buckets[url] = open_bucket(url, endpoint_url=self.config.endpoint_url)
        return self._buckets[url]

    def named_bucket(self, name: str) -> Bucket:
        return self.bucket(self.config.bucket_spec(name).url)

    def _clean_temp(self) -> None:
        """Remove the temp files of writes a killed run left half done (their data is written
        again under the same keys when the uncommitted batch is replayed)."""
        urls = [spec.url for spec in self.config.all_buckets().values()]
        urls += [self.config.route_bucket(route).url for route in self.config.routes]
        removed = sum(self.bucket(url).clean_temp() for url in dict.fromkeys(urls))
        removed += LocalBucket(self.config.state_dir / "runs").clean_temp()
        if removed:
            log_event("temp_files_removed", run_id=self.run_id, files_count=removed)

    def _sinks(self) -> list[Any]:
        sinks: list[Any] = [LocalQueueSink(self.config.queue_file)]
        cfg = self.config.notification
        if cfg.sqs_queue_url:
            sinks.append(SqsSink(cfg.sqs_queue_url, cfg.sqs_endpoint_url, cfg.region))
        return sinks

    # ----------------------------------------------------------------- the run
    def run(self, *, once: bool = True, max_cycles: int | None = None) -> RunSummary:
        """Cycle until the source is drained (``once``) or forever / ``max_cycles`` times."""
        if not self.dry_run:
            self._clean_temp()
        scenarios = self.active_scenarios()
        self.summary.scenarios = scenarios
        store = None if self.dry_run else self._scenario_store()
        if store is not None:
            store.start_execution(self.run_id, scenarios)
        inputs = [DatasetRef(self.config.lineage.namespace, self.source_name)]
        lineage_on = "lineage" in scenarios and not self.dry_run
        if lineage_on:
            self.emitter.start(self.run_id, self.config.job_name, inputs)
        log_event("sensor_run_start", run_id=self.run_id, mode="once" if once else "continuous")
        cycles = 0
        try:
            while True:
                worked = self.cycle()
                cycles += 1
                if self.on_cycle:
                    self.on_cycle(self.summary)
                if max_cycles is not None and cycles >= max_cycles:
                    self.await_commit()
                    break
                if not worked:
                    if once:
                        self.flush()
                        break
                    self.await_commit()  # idle: the last batch's checkpoint lands (or fails)
                    time.sleep(self.config.interval_s)
        except BaseException as exc:
            self._stop_threads()
            self.summary.status = "failed"
            self.summary.error_code = exc.code if isinstance(exc, ChronoError) else (
                type(exc).__name__)
            self._finish(store, lineage_on, inputs)
            raise
        finally:
            self._stop_threads()
            self.source.close()
        self.summary.status = "dry_run" if self.dry_run else "ok"
        self._finish(store, lineage_on, inputs)
        return self.summary

    def _finish(self, store: ScenarioStore | None, lineage_on: bool,
                inputs: list[DatasetRef]) -> None:
        self.summary.finished_at = _now()
        self.summary.sinks = {name: vars(rep).copy() for name, rep in self.writer.sinks.items()}
        for name, rep in self.writer.sinks.items():
            self.summary.counts[f"writes.{name}"] = rep.files
        self.summary.planned = [vars(p).copy() for p in self.writer.planned]
        if store is not None:
            store.finish_execution(self.run_id, self.summary.status, self._int_counts())
        if lineage_on:
            ns = self.config.lineage.namespace
            outputs = [DatasetRef(ns, name, rep.rows) for name, rep in self.writer.sinks.items()]
            if self.summary.status == "failed":
                self.emitter.fail(self.run_id, self.config.job_name, inputs,
                                  self.summary.error_code or "error")
            else:
                self.emitter.complete(self.run_id, self.config.job_name, inputs, outputs)
        if not self.dry_run:
            runs = LocalBucket(self.config.state_dir / "runs")
            runs.put_json(f"{self.run_id}.json", self.summary.to_dict())
        log_event("sensor_run_done", run_id=self.run_id, status=self.summary.status,
                  **{f"{k}_count": v for k, v in self._int_counts().items() if "." not in k})

    def _int_counts(self) -> dict[str, int]:
        return {k: int(v) for k, v in self.summary.counts.items()}

    def _count(self, name: str, value: int) -> None:
        self.summary.counts[name] = self.summary.counts.get(name, 0) + int(value)

    # ----------------------------------------------------------------- one cycle
    def cycle(self) -> bool:
        """Process one batch through the cycle's steps; False when the source had nothing new."""
        scenarios = self.active_scenarios()
        if scenarios != self.summary.scenarios:
            log_event("scenarios_changed", run_id=self.run_id, count=len(scenarios))
            self.summary.scenarios = tuple(dict.fromkeys((*self.summary.scenarios, *scenarios)))
        if self._commit_future is not None and self._commit_future.done():
            self.await_commit()  # a failed commit stops the run before more work
        started = time.perf_counter()
        batch, cursor = self._read()
        self._time("read", time.perf_counter() - started)
        self.writer.next_batch()
        if batch.is_empty():
            return False
        self._read_ahead(cursor)
        first, last = int(batch[SEQ].min()), int(batch[SEQ].max())  # type: ignore[arg-type]
        cycle = Cycle(self, scenarios, batch, cursor, f"{first:012d}-{last:012d}",
                      self._lineage() if "lineage" in scenarios else None)
        for record in cycle_steps.run(cycle):
            self._time(record.name, record.seconds)
            for name, value in record.counts.items():
                self._count(name, value)
        return True

    def _read(self) -> tuple[pl.DataFrame, Any]:
        """The batch after the committed cursor: the one read ahead when it starts there and
        is not empty (an empty read ahead may be stale by now), else a fresh read."""
        ahead, self._ahead = self._ahead, None
        if ahead is not None:
            start, future = ahead
            batch, cursor = future.result()
            if start == self.cursor and not batch.is_empty():
                return batch, cursor
        return self.source.read(self.cursor, self.config.batch_size)

    def _read_ahead(self, cursor: dict[str, Any] | None) -> None:
        """Start reading the batch after ``cursor`` on a thread (polars parses without the
        GIL), so the next cycle finds it ready. Reading is side-effect free for file and
        SQLite sources; an MQTT read acknowledges messages, so it never reads ahead."""
        if not self.config.read_ahead or not getattr(self.source, "replayable", False):
            return
        if self._reader is None:
            self._reader = ThreadPoolExecutor(1, thread_name_prefix="read-ahead")
        self._ahead = (cursor, self._reader.submit(
            self.source.read, cursor, self.config.batch_size))

    def _stop_threads(self) -> None:
        """Let in-flight writes, the commit and the read ahead finish, then stop their
        threads (their failures are the caller's to raise, before this)."""
        if self._commit_future is not None:
            self._commit_future.exception()
            self._commit_future = None
        if self._committer is not None:
            self._committer.shutdown(wait=True)
            self._committer = None
        self.writer.close()
        if self._ahead is not None:
            self._ahead[1].exception()
            self._ahead = None
        if self._reader is not None:
            self._reader.shutdown(wait=True)
            self._reader = None

    def _time(self, step: str, seconds: float) -> None:
        steps = self.summary.step_seconds
        steps[step] = round(steps.get(step, 0.0) + seconds, 3)

    def flush(self) -> None:
        """End of input (``--once``): emit open windows and close open incidents."""
        scenarios = self.active_scenarios()
        self.writer.next_batch()
        update = flush_windows(self.windows)
        notes, incidents = flush_incidents(self.incidents, self.config.notification)
        last = int((self.cursor or {}).get("seq", 0))
        part = f"flush-{last:012d}"
        windows = update.windows
        if "lineage" in scenarios and not windows.is_empty():
            windows = add_lineage(windows, self._lineage())
        self._count("windows", windows.height)
        if "multi_destination" in scenarios:
            self.route({"windows": windows}, part)
        self.notify(notes, "notification" in scenarios)
        self.windows, self.incidents = update.state, incidents
        self.commit()

    def route(self, streams: dict[str, pl.DataFrame], part: str) -> None:
        for route in self.config.routes:
            frame = streams.get(route.stream)
            if frame is None:
                continue
            bucket = self.bucket(self.config.route_bucket(route).url)
            self.writer.write_stream(route.name, bucket, route.stream, frame, part, route.prefix)

    def notify(self, notes: list[Notification], enabled: bool) -> None:
        if not notes or not enabled:
            return
        path = self.config.state_dir / "notifications.db"
        if self.dry_run:
            sent: set[str] = set()
            if path.is_file():
                with NotificationLedger(path) as ledger:
                    sent = ledger.sent_ids()
            fresh = [n.notification_id for n in notes if n.notification_id not in sent]
            self.summary.would_notify.extend(fresh)
            self._count("notifications", len(fresh))
            return
        with NotificationLedger(path) as ledger:
            report = deliver(notes, ledger, self._sinks(), retries=self.config.sink_retries)
        self._count("notifications", report.sent)
        self._count("notifications_suppressed", report.already_sent)
        for sink, failed in report.failed.items():
            self._count(f"notification_failures.{sink}", failed)

    def _lineage(self) -> Any:
        return lineage_info(
            run_id=self.run_id, job_name=self.config.job_name,
            config_fingerprint=self.fingerprint, spec_version=self.spec.version,
        )

    def commit(self) -> None:
        """Commit the checkpoint now, after every write so far (end of input, flush)."""
        if self.dry_run:
            return
        self.await_commit()
        self.writer.wait()
        self.checkpoints.commit(self.source_name, self.cursor or {}, self.windows.to_bytes(),
                                self.incidents.to_bytes(), self.batches, self.fingerprint)

    def commit_async(self) -> None:
        """Commit this batch's checkpoint on the commit thread once the batch's writes have
        landed, while the next batch is read and computed.

        At most one commit is in flight: a new one first waits for the previous (and raises its
        failure, a sink that kept failing), so checkpoints land in batch order and never before
        their outputs. The states are immutable snapshots, so serialising them on another
        thread is safe. A kill before the commit lands replays the batch, whose files keep their
        keys, and its notifications are already in the ledger: nothing is duplicated.
        """
        if self.dry_run:
            return
        self.await_commit()
        pending = self.writer.take_pending()
        snapshot = (dict(self.cursor or {}), self.windows, self.incidents, self.batches)
        if self._committer is None:
            self._committer = ThreadPoolExecutor(1, thread_name_prefix="commit")
        self._commit_future = self._committer.submit(self._commit_after, pending, snapshot)

    def _commit_after(self, pending: list[Future[None]],
                      snapshot: tuple[dict[str, Any], WindowState, IncidentState, int]) -> None:
        Writer.wait_for(pending)
        cursor, windows, incidents, batches = snapshot
        self.checkpoints.commit(self.source_name, cursor, windows.to_bytes(),
                                incidents.to_bytes(), batches, self.fingerprint)

    def await_commit(self) -> None:
        """Wait for the commit in flight, if any; raise its failure."""
        future, self._commit_future = self._commit_future, None
        if future is not None:
            future.result()

