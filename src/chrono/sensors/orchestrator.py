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
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl

from chrono.core.errors import ChronoError, ConfigError
from chrono.core.logging import log_event
from chrono.sensors.config import SensorPipelineConfig
from chrono.sensors.lineage import DatasetRef, OpenLineageEmitter, add_lineage, lineage_info
from chrono.sensors.model import ANOMALOUS, SEQ
from chrono.sensors.notify import (
    IncidentState,
    LocalQueueSink,
    Notification,
    NotificationLedger,
    SqsSink,
    deliver,
    detect_incidents,
    flush_incidents,
)
from chrono.sensors.outputs import Writer
from chrono.sensors.scenarios import SCENARIOS, ScenarioStore
from chrono.sensors.sources import Source, open_source
from chrono.sensors.spec import ValidationSpec, load_spec, validate
from chrono.sensors.state import CheckpointStore
from chrono.sensors.windows import WindowState, flush_windows, update_windows
from chrono.storage.buckets import Bucket, open_bucket
from chrono.storage.local import LocalBucket

DUPLICATE_RULE = "duplicate_reading"

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

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id, "started_at": self.started_at,
            "finished_at": self.finished_at, "status": self.status,
            "scenarios": list(self.scenarios), "counts": self.counts, "sinks": self.sinks,
            "planned": self.planned, "would_notify": self.would_notify,
            "error_code": self.error_code,
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
        self.writer = Writer(config.output_format, config.sink_retries, dry_run=dry_run)
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
                    break
                if not worked:
                    if once:
                        self.flush()
                        break
                    time.sleep(self.config.interval_s)
        except BaseException as exc:
            self.summary.status = "failed"
            self.summary.error_code = exc.code if isinstance(exc, ChronoError) else (
                type(exc).__name__)
            self._finish(store, lineage_on, inputs)
            raise
        finally:
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
        """Process one batch; False when the source had nothing new."""
        scenarios = self.active_scenarios()
        if scenarios != self.summary.scenarios:
            log_event("scenarios_changed", run_id=self.run_id, count=len(scenarios))
            self.summary.scenarios = tuple(dict.fromkeys((*self.summary.scenarios, *scenarios)))
        batch, cursor = self.source.read(self.cursor, self.config.batch_size)
        self.writer.next_batch()
        if batch.is_empty():
            return False
        first, last = int(batch[SEQ].min()), int(batch[SEQ].max())  # type: ignore[arg-type]
        part = f"{first:012d}-{last:012d}"
        self._count("batches", 1)
        self._count("processed", batch.height)
        lineage = self._lineage() if "lineage" in scenarios else None

        # One view object for every route of the raw stream: the writer partitions it once.
        raw = _raw_view(batch)
        if "raw" in scenarios:
            self.writer.write_stream("raw", self.named_bucket("raw"), "raw", raw, part)

        result = validate(batch, self.spec)
        valid, invalid = result.valid, result.invalid
        update = update_windows(self.windows, valid)
        if not update.duplicates.is_empty():
            valid = valid.join(update.duplicates.select(SEQ), on=SEQ, how="anti")
        errors = _with_duplicates(invalid, update.duplicates, self.spec.version)
        windows, late = update.windows, update.late
        if lineage is not None:
            valid, errors = add_lineage(valid, lineage), add_lineage(errors, lineage)
            windows, late = add_lineage(windows, lineage), add_lineage(late, lineage)
        self._count("valid", valid.height)
        self._count("invalid", errors.height)
        self._count("duplicates", update.duplicates.height)
        self._count("windows", windows.height)
        self._count("late", late.height)

        streams = {"raw": raw, "schematized": valid, "errors": errors,
                   "windows": windows, "late": late}
        if "schematized" in scenarios:
            self.writer.write_stream("schematized", self.named_bucket("schematized"),
                                     "schematized", valid, part)
            self.writer.write_stream("error", self.named_bucket("error"), "errors", errors, part)
        if "multi_destination" in scenarios:
            self._route(streams, part)

        anomalous = valid.filter(pl.col(ANOMALOUS))
        self._count("anomalies", anomalous.height)
        notes, incidents = detect_incidents(self.incidents, anomalous, update.state.watermark,
                                            self.config.notification)
        self._notify(notes, "notification" in scenarios)

        self.windows, self.incidents, self.cursor = update.state, incidents, cursor
        self.batches += 1
        self._commit()
        return True

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
            self._route({"windows": windows}, part)
        self._notify(notes, "notification" in scenarios)
        self.windows, self.incidents = update.state, incidents
        self._commit()

    def _route(self, streams: dict[str, pl.DataFrame], part: str) -> None:
        for route in self.config.routes:
            frame = streams.get(route.stream)
            if frame is None:
                continue
            bucket = self.bucket(self.config.route_bucket(route).url)
            self.writer.write_stream(route.name, bucket, route.stream, frame, part, route.prefix)

    def _notify(self, notes: list[Notification], enabled: bool) -> None:
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

    def _commit(self) -> None:
        if self.dry_run:
            return
        self.checkpoints.commit(self.source_name, self.cursor or {}, self.windows.to_bytes(),
                                self.incidents.to_bytes(), self.batches, self.fingerprint)


def _raw_view(batch: pl.DataFrame) -> pl.DataFrame:
    """The batch as received: reading columns, plus the original text of values that did not
    parse (``_raw_x`` kept as ``raw_x``)."""
    raw_cols = [c for c in batch.columns if c.startswith("_raw_")]
    return batch.rename({c: c[1:] for c in raw_cols})


def _with_duplicates(invalid: pl.DataFrame, duplicates: pl.DataFrame,
                     spec_version: str) -> pl.DataFrame:
    """Invalid readings plus duplicates, each duplicate with the ``duplicate_reading`` rule."""
    if duplicates.is_empty():
        return invalid
    error = pl.struct(
        pl.lit(DUPLICATE_RULE).alias("rule_id"), pl.lit("timestamp").alias("field"),
        pl.lit("same sensor_id and timestamp as an earlier reading").alias("message"),
    )
    dups = duplicates.with_columns(
        pl.concat_list(error).alias("errors"), pl.lit(spec_version).alias("spec_version"),
    )
    return pl.concat([invalid, dups], how="diagonal_relaxed")
