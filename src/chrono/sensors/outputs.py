"""Batched, idempotent writes of record streams to buckets, partitioned by event date.

A batch of one stream becomes one file per event date, named after the batch's position in the
source (``part-<first seq>-<last seq>``), never after the clock: a replayed batch overwrites its
own files instead of adding copies. Writes are retried on failure; every sink keeps its own
counters so a report can say which destination failed.
"""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

import polars as pl

from chrono.core.errors import ChronoError, TransientError
from chrono.core.logging import log_event
from chrono.sensors.model import EVENT_TIME, public_columns
from chrono.storage.buckets import Bucket

STREAM_PREFIX: dict[str, str] = {
    "raw": "readings",
    "schematized": "readings",
    "errors": "errors",
    "windows": "windows",
    "late": "late",
}
"""Default key prefix of each stream inside its bucket."""

DATE_COLUMN = "_date"
_ISO_DATE = r"^\d{4}-\d{2}-\d{2}"


def _date_key(frame: pl.DataFrame, stream: str) -> pl.Expr:
    """The partition of each record, as a Date where it comes from a parsed time (text is only
    made once per partition: formatting every row was a large share of a write), else text."""
    if stream == "windows":
        return pl.col("window_start").dt.date()
    if EVENT_TIME in frame.columns:
        return pl.col(EVENT_TIME).dt.date()
    if "timestamp" in frame.columns:
        # The pattern spans exactly the first 10 characters, so it is tested on the few distinct
        # prefixes rather than on every row.
        prefix = frame.select(pl.col("timestamp").cast(pl.String).str.slice(0, 10)).to_series()
        distinct = prefix.unique()
        dates = distinct.filter(distinct.str.contains(_ISO_DATE))
        if dates.len() == distinct.len():
            return pl.lit(prefix)
        return pl.when(pl.lit(prefix).is_in(dates.implode())).then(pl.lit(prefix)).otherwise(
            pl.lit("unknown"))
    return pl.lit("unknown")


def _date_text(key: pl.Series) -> str:
    """``YYYY-MM-DD`` (polars' own Date text, as a per-row cast gives) or ``unknown``."""
    value = key.cast(pl.String)[0]
    return "unknown" if value is None else str(value)


def with_event_date(frame: pl.DataFrame, stream: str) -> pl.DataFrame:
    """Add ``_date`` (``YYYY-MM-DD`` or ``unknown``), the partition of each record.

    Valid readings use their UTC event time, windows their start; raw and invalid readings the
    date written in their own timestamp (it may not parse), else ``unknown``.
    """
    key = _date_key(frame, stream)
    return frame.with_columns(key.cast(pl.String).fill_null("unknown").alias(DATE_COLUMN))


def split_by_date(frame: pl.DataFrame, stream: str) -> list[tuple[str, pl.DataFrame]]:
    """``(date, rows)`` per partition (the :func:`with_event_date` dates, without ``_date``), in
    first-seen order; one partition costs no copy."""
    keyed = frame.with_columns(_date_key(frame, stream).alias(DATE_COLUMN))
    keys = keyed[DATE_COLUMN].unique(maintain_order=True)
    if keys.len() == 1:
        return [(_date_text(keys), frame)]
    # Distinct dates have distinct texts, so grouping on the key groups as on the text would.
    return [(_date_text(part[DATE_COLUMN]), part.drop(DATE_COLUMN))
            for part in keyed.partition_by(DATE_COLUMN, maintain_order=True)]


def encode(frame: pl.DataFrame, output_format: str) -> bytes:
    buffer = io.BytesIO()
    if output_format == "parquet":
        # zstd level 1: the size of the default level at three quarters of the time
        frame.write_parquet(buffer, compression="zstd", compression_level=1, statistics=True)
    else:
        frame.write_ndjson(buffer)
    return buffer.getvalue()


@dataclass
class SinkReport:
    """What one destination received in a run."""

    name: str
    files: int = 0
    rows: int = 0
    retries: int = 0
    failures: int = 0
    last_error: str | None = None


@dataclass
class PlannedWrite:
    sink: str
    bucket_url: str
    key: str
    rows: int


class _Once:
    """A value computed by the first thread that asks; the others wait for it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._value: bytes | None = None

    def get(self, compute: Callable[[], bytes]) -> bytes:
        with self._lock:
            if self._value is None:
                self._value = compute()
            return self._value


@dataclass
class Writer:
    """Writes streams to buckets with retries; in dry-run mode only records what it would write.

    With ``threads`` > 0, encoding and writing run on a thread pool while the caller goes on
    (Parquet encoding and file writes release the GIL, so they overlap the next step's work);
    :meth:`wait` is the barrier: it returns once every write has landed and raises the first
    sink failure. Callers wait before committing a checkpoint, so a checkpoint never covers a
    write that has not happened.
    """

    output_format: str = "parquet"
    retries: int = 3
    dry_run: bool = False
    backoff_s: float = 0.2
    threads: int = 0
    sinks: dict[str, SinkReport] = field(default_factory=dict)
    planned: list[PlannedWrite] = field(default_factory=list)
    _cache: dict[tuple[int, str], tuple[pl.DataFrame, _Once]] = field(default_factory=dict)
    _splits: dict[tuple[int, str], tuple[pl.DataFrame, list[tuple[str, pl.DataFrame]]]] = field(
        default_factory=dict)
    _pool: ThreadPoolExecutor | None = None
    _pending: list[Future[None]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def report(self, sink: str) -> SinkReport:
        with self._lock:
            return self.sinks.setdefault(sink, SinkReport(sink))

    def write_stream(
        self, sink: str, bucket: Bucket, stream: str, frame: pl.DataFrame, part: str,
        prefix: str = "",
    ) -> int:
        """Write ``frame`` as one file per event date; returns the number of files (with
        ``threads``, the writes may still be in flight: see :meth:`wait`)."""
        if frame.is_empty():
            return 0
        base = (prefix or STREAM_PREFIX[stream]).strip("/")
        ext = "parquet" if self.output_format == "parquet" else "jsonl"
        written = 0
        for date, body in self._split(frame, stream):
            key = f"{base}/date={date}/part-{part}.{ext}"
            if self.dry_run:
                self.planned.append(PlannedWrite(sink, bucket.url, key, body.height))
                self._counted(sink, body.height)
            elif self.threads > 0:
                if self._pool is None:
                    self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix="writer")
                once = self._encoded(frame, date)
                self._pending.append(self._pool.submit(
                    self._write, sink, bucket, key, once, body))
            else:
                self._write(sink, bucket, key, self._encoded(frame, date), body)
            written += 1
        return written

    def _write(self, sink: str, bucket: Bucket, key: str, once: _Once,
               body: pl.DataFrame) -> None:
        self._put(sink, bucket, key, once.get(lambda: encode(body, self.output_format)))
        self._counted(sink, body.height)

    def _counted(self, sink: str, rows: int) -> None:
        report = self.report(sink)
        with self._lock:
            report.files += 1
            report.rows += rows

    def wait(self) -> None:
        """Block until every submitted write is done; raise the first failure, if any."""
        self.wait_for(self.take_pending())

    def take_pending(self) -> list[Future[None]]:
        """The writes submitted since the last call (a batch's), to wait for elsewhere."""
        pending, self._pending = self._pending, []
        return pending

    @staticmethod
    def wait_for(pending: list[Future[None]]) -> None:
        """Block until ``pending`` writes are done; raise the first failure, if any."""
        first: BaseException | None = None
        for future in pending:
            exc = future.exception()
            if exc is not None and first is None:
                first = exc
        if first is not None:
            raise first

    def close(self) -> None:
        """Wait for in-flight writes (ignoring their failures) and stop the pool."""
        for future in self._pending:
            future.exception()
        self._pending = []
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None

    def _split(self, frame: pl.DataFrame, stream: str) -> list[tuple[str, pl.DataFrame]]:
        """Public rows per date, computed once per frame and stream: a stream sent to several
        buckets is partitioned once."""
        cache_key = (id(frame), stream)
        cached = self._splits.get(cache_key)
        if cached is not None and cached[0] is frame:
            return cached[1]
        parts = [(date, public_columns(rows)) for date, rows in split_by_date(frame, stream)]
        self._splits[cache_key] = (frame, parts)
        return parts

    def _encoded(self, source: pl.DataFrame, date: str) -> _Once:
        """Encode once per frame and date: routes that send one stream to several buckets
        (schematized and archival) share the bytes."""
        cache_key = (id(source), date)
        cached = self._cache.get(cache_key)
        if cached is not None and cached[0] is source:
            return cached[1]
        once = _Once()
        self._cache[cache_key] = (source, once)
        return once

    def next_batch(self) -> None:
        """Forget the previous batch's partitions and encoded files."""
        self._cache.clear()
        self._splits.clear()

    def _put(self, sink: str, bucket: Bucket, key: str, data: bytes) -> None:
        report = self.report(sink)
        attempt = 0
        while True:
            try:
                bucket.put_bytes(key, data)
                return
            except (OSError, TransientError) as exc:
                attempt += 1
                with self._lock:
                    report.last_error = getattr(exc, "code", type(exc).__name__)
                    if attempt > self.retries:
                        report.failures += 1
                if attempt > self.retries:
                    log_event("sink_failed", sink_id=sink, code=report.last_error,
                              attempt=attempt)
                    raise SinkFailed(sink, report.last_error) from None
                with self._lock:
                    report.retries += 1
                time.sleep(self.backoff_s * attempt)
            except ChronoError as exc:
                with self._lock:
                    report.failures += 1
                    report.last_error = exc.code
                log_event("sink_failed", sink_id=sink, code=exc.code, attempt=attempt + 1)
                raise SinkFailed(sink, exc.code) from None


class SinkFailed(TransientError):
    """A destination kept failing; the batch is not committed and is retried next cycle."""

    default_code = "sink_failed"

    def __init__(self, sink: str, code: str | None) -> None:
        super().__init__("sink_failed", f"destination {sink} failed after retries ({code})")
        self.sink = sink



def read_stream(bucket: Bucket, stream: str, prefix: str = "") -> pl.DataFrame:
    """Every record of ``stream`` written to ``bucket`` (all partitions and batches)."""
    base = (prefix or STREAM_PREFIX[stream]).strip("/") + "/"
    frames = []
    for key in bucket.list(base):
        data = io.BytesIO(bucket.get_bytes(key))
        if key.endswith(".parquet"):
            frames.append(pl.read_parquet(data))
        elif key.endswith(".jsonl"):
            frames.append(pl.read_ndjson(data))
    if not frames:
        return pl.DataFrame()
    return pl.concat(frames, how="diagonal_relaxed")


def latest_windows(windows: pl.DataFrame) -> pl.DataFrame:
    """The newest version of each (sensor_id, window_start): the windows as they stand."""
    if windows.is_empty():
        return windows
    return (windows.sort("version").group_by(["sensor_id", "window_start"]).last()
            .sort(["window_start", "sensor_id"]))
