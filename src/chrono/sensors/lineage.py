"""Lineage of sensor records: the ``lineage`` struct stamped on rows, and OpenLineage run events.

Two halves, both switched on by the ``lineage`` scenario:

* :func:`add_lineage` stamps every record of a batch with where, by which job and which pipeline
  version it was processed (a ``lineage`` struct column, written to buckets with the record). The
  values are the same for a whole batch, so the column is one literal broadcast, not a per-row
  computation.
* :class:`OpenLineageEmitter` reports each run as OpenLineage ``RunEvent`` s (START, then COMPLETE
  or FAIL) to a JSON-lines file or an HTTP endpoint such as Marquez (``/api/v1/lineage``). Lineage
  is an observer: an unreachable endpoint is retried, logged with a code and counted in
  :attr:`OpenLineageEmitter.failures`, and never stops the pipeline.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import logging
import os
import socket
import threading
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import polars as pl
from pydantic import field_validator

from chrono.core.config import StrictModel
from chrono.core.logging import log_event
from chrono.evidence.context import stable_id
from chrono.sensors.model import LINEAGE


def _package_version() -> str:
    try:
        return importlib.metadata.version("chrono")
    except importlib.metadata.PackageNotFoundError:
        return "0.0.0"


PIPELINE_VERSION: str = _package_version()
"""Chrono's installed package version; ``0.0.0`` when running from an uninstalled tree."""

RUN_EVENT_SCHEMA_URL = "https://openlineage.io/spec/2-0-2/OpenLineage.json#/definitions/RunEvent"
OUTPUT_STATISTICS_SCHEMA_URL = (
    "https://openlineage.io/spec/facets/1-0-2/OutputStatisticsOutputDatasetFacet.json"
)
INPUT_STATISTICS_SCHEMA_URL = (
    "https://openlineage.io/spec/facets/1-0-0/InputStatisticsInputDatasetFacet.json"
)
ERROR_MESSAGE_SCHEMA_URL = "https://openlineage.io/spec/facets/1-0-1/ErrorMessageRunFacet.json"

LINEAGE_DTYPE = pl.Struct(
    {
        "node_id": pl.String(),
        "job_id": pl.String(),
        "execution_id": pl.String(),
        "processing_time": pl.String(),
        "pipeline_version": pl.String(),
        "spec_version": pl.String(),
    }
)
"""Type of the ``lineage`` column; field order is the order readers see."""

EventType = Literal["START", "COMPLETE", "FAIL"]


class LineageConfig(StrictModel):
    """Where OpenLineage run events go (the ``lineage`` struct on records needs no settings)."""

    openlineage_target: str | None = None
    """``null``: no events. A file path: one JSON event per line, appended. An ``http://`` or
    ``https://`` URL: each event POSTed as JSON, e.g. ``http://localhost:5000/api/v1/lineage``
    for Marquez."""
    namespace: str = "chrono"
    """OpenLineage namespace of the jobs and datasets Chrono reports."""
    producer: str = "https://github.com/chrono/chrono/tree/main/src/chrono/sensors"
    """URI identifying the code that produced the events (``producer`` and every ``_producer``)."""

    @field_validator("openlineage_target")
    @classmethod
    def _known_target(cls, value: str | None) -> str | None:
        if value is None:
            return None
        value = value.strip()
        if not value:
            raise ValueError("empty target; use null for no events, a file path or an http(s) URL")
        scheme = value.split("://", 1)[0].lower() if "://" in value else ""
        if scheme and scheme not in ("http", "https", "file"):
            raise ValueError(
                f"scheme '{scheme}' is not supported; use a file path or an http(s):// URL"
            )
        return value

    @field_validator("namespace")
    @classmethod
    def _non_empty(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("namespace must not be empty; e.g. 'chrono' or 'edge-site-7'")
        return value.strip()


def _iso_utc(moment: datetime) -> str:
    """ISO 8601 UTC with microseconds and ``Z``, e.g. ``2025-01-01T00:00:00.000000Z``."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def _env(name: str) -> str | None:
    value = os.environ.get(name, "").strip()
    return value or None


@dataclass(frozen=True)
class LineageInfo:
    """What the ``lineage`` struct of every record in one run says."""

    node_id: str
    """``$BACALHAU_NODE_ID`` on a Bacalhau node, else this machine's host name."""
    job_id: str
    """First 16 hex chars of sha256(job name, config fingerprint): same job + config, same id."""
    execution_id: str
    """``$BACALHAU_EXECUTION_ID`` on a Bacalhau node, else the run id."""
    processing_time: datetime
    """When the run processed the batch (UTC)."""
    pipeline_version: str
    """Chrono's package version."""
    spec_version: str
    """Version of the validation spec the records were checked against."""

    def as_dict(self) -> dict[str, Any]:
        """The struct's fields as plain values (``processing_time`` as an ISO UTC string)."""
        return {
            "node_id": self.node_id,
            "job_id": self.job_id,
            "execution_id": self.execution_id,
            "processing_time": _iso_utc(self.processing_time),
            "pipeline_version": self.pipeline_version,
            "spec_version": self.spec_version,
        }


def job_hash(job_name: str, config_fingerprint: str) -> str:
    """16 hex chars of sha256 over the job name and config fingerprint (unit-separator joined)."""
    digest = hashlib.sha256(f"{job_name}\x1f{config_fingerprint}".encode())
    return digest.hexdigest()[:16]


def lineage_info(
    *,
    run_id: str,
    job_name: str,
    config_fingerprint: str,
    spec_version: str,
    now: datetime | None = None,
) -> LineageInfo:
    """Lineage for one run; Bacalhau's environment wins over local defaults.

    ``now`` defaults to the current time; a naive ``now`` is taken as UTC.
    """
    moment = now or datetime.now(UTC)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return LineageInfo(
        node_id=_env("BACALHAU_NODE_ID") or socket.gethostname(),
        job_id=job_hash(job_name, config_fingerprint),
        execution_id=_env("BACALHAU_EXECUTION_ID") or run_id,
        processing_time=moment.astimezone(UTC),
        pipeline_version=PIPELINE_VERSION,
        spec_version=spec_version,
    )


def add_lineage(frame: pl.DataFrame, info: LineageInfo) -> pl.DataFrame:
    """``frame`` with a ``lineage`` struct column (replacing any earlier one) on every row.

    One literal broadcast to the frame's height: polars keeps it as a scalar column until it is
    written, so stamping a million rows costs about as much as stamping one.
    """
    return frame.with_columns(pl.lit(info.as_dict(), dtype=LINEAGE_DTYPE).alias(LINEAGE))


@dataclass(frozen=True)
class DatasetRef:
    """A dataset a run read or wrote, e.g. ``DatasetRef("chrono", "schematized", 1200)``."""

    namespace: str
    name: str
    row_count: int | None = None
    """Rows read (inputs) or written (outputs) by this run; unknown when ``None``."""


def openlineage_run_id(run_id: str) -> str:
    """``run_id`` itself when it is a UUID, else a UUID derived from it (the spec needs a UUID)."""
    try:
        return str(uuid.UUID(run_id))
    except ValueError:
        return stable_id("openlineage-run", run_id)


class OpenLineageEmitter:
    """Sends a run's START / COMPLETE / FAIL events to the configured target, never raising."""

    attempts: int = 3
    """Tries per event for an HTTP target (the first one and two retries)."""
    timeout_s: float = 5.0
    """Socket timeout of each HTTP attempt."""
    backoff_s: float = 0.2
    """Pause before the first retry; doubled before the next."""

    def __init__(self, config: LineageConfig) -> None:
        self.config = config
        self.events_sent = 0
        """Events the target accepted (file: appended; HTTP: a 2xx answer)."""
        self.failures = 0
        """Events given up on after all attempts (logged as ``openlineage_emit_failed``)."""
        self._lock = threading.Lock()
        target = config.openlineage_target
        self._url: str | None = None
        self._path: Path | None = None
        if target is None:
            pass
        elif target.lower().startswith(("http://", "https://")):
            self._url = target
        else:
            self._path = Path(target[len("file://"):] if target.startswith("file://") else target)

    @property
    def enabled(self) -> bool:
        return self._url is not None or self._path is not None

    def start(self, run_id: str, job_name: str, inputs: list[DatasetRef]) -> None:
        self._emit(self._event("START", run_id, job_name, inputs, []))

    def complete(
        self, run_id: str, job_name: str, inputs: list[DatasetRef], outputs: list[DatasetRef]
    ) -> None:
        self._emit(self._event("COMPLETE", run_id, job_name, inputs, outputs))

    def fail(self, run_id: str, job_name: str, inputs: list[DatasetRef], error_code: str) -> None:
        """FAIL event; the ``errorMessage`` facet holds only ``error_code`` (never a message)."""
        error = {
            **self._facet(ERROR_MESSAGE_SCHEMA_URL),
            "message": error_code,
            "programmingLanguage": "python",
        }
        self._emit(self._event("FAIL", run_id, job_name, inputs, [], {"errorMessage": error}))

    def _facet(self, schema_url: str) -> dict[str, Any]:
        return {"_producer": self.config.producer, "_schemaURL": schema_url}

    def _dataset(self, ref: DatasetRef, *, output: bool) -> dict[str, Any]:
        dataset: dict[str, Any] = {"namespace": ref.namespace, "name": ref.name, "facets": {}}
        if output:
            dataset["outputFacets"] = {}
            if ref.row_count is not None:
                dataset["outputFacets"]["outputStatistics"] = {
                    **self._facet(OUTPUT_STATISTICS_SCHEMA_URL),
                    "rowCount": ref.row_count,
                }
        else:
            dataset["inputFacets"] = {}
            if ref.row_count is not None:
                dataset["inputFacets"]["inputStatistics"] = {
                    **self._facet(INPUT_STATISTICS_SCHEMA_URL),
                    "rowCount": ref.row_count,
                }
        return dataset

    def _event(
        self,
        event_type: EventType,
        run_id: str,
        job_name: str,
        inputs: list[DatasetRef],
        outputs: list[DatasetRef],
        run_facets: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        return {
            "eventType": event_type,
            "eventTime": _iso_utc(datetime.now(UTC)),
            "run": {"runId": openlineage_run_id(run_id), "facets": run_facets or {}},
            "job": {"namespace": self.config.namespace, "name": job_name, "facets": {}},
            "inputs": [self._dataset(ref, output=False) for ref in inputs],
            "outputs": [self._dataset(ref, output=True) for ref in outputs],
            "producer": self.config.producer,
            "schemaURL": RUN_EVENT_SCHEMA_URL,
        }

    def _emit(self, event: dict[str, Any]) -> None:
        if not self.enabled:
            return
        body = json.dumps(event, separators=(",", ":"), sort_keys=True)
        code = self._append(body) if self._path is not None else self._post(body)
        with self._lock:
            if code is None:
                self.events_sent += 1
                return
            self.failures += 1
        log_event(
            "openlineage_emit_failed", level=logging.WARNING, code=code,
            event_kind=event["eventType"], run_id=event["run"]["runId"],
        )

    def _append(self, body: str) -> str | None:
        """Append one line; the lock keeps lines of concurrent emits from interleaving."""
        assert self._path is not None
        try:
            self._path.parent.mkdir(parents=True, exist_ok=True)
            with self._lock, self._path.open("a", encoding="utf-8") as out:
                out.write(body + "\n")
        except OSError as exc:
            return f"openlineage_file_{type(exc).__name__}"
        return None

    def _post(self, body: str) -> str | None:
        """POST with retries; returns ``None`` on success, else the failure code of the last try."""
        assert self._url is not None
        data = body.encode("utf-8")
        code = "openlineage_unreachable"
        for attempt in range(self.attempts):
            if attempt:
                time.sleep(self.backoff_s * 2 ** (attempt - 1))
            request = urllib.request.Request(
                self._url, data=data, method="POST",
                headers={"Content-Type": "application/json", "Accept": "application/json"},
            )
            try:
                with urllib.request.urlopen(request, timeout=self.timeout_s) as answer:
                    answer.read()
                return None
            except urllib.error.HTTPError as exc:
                code = f"openlineage_http_{exc.code}"
                # A 4xx other than timeout/throttling means the event itself was refused:
                # sending the same bytes again cannot succeed.
                if 400 <= exc.code < 500 and exc.code not in (408, 429):
                    return code
            except TimeoutError:
                code = "openlineage_timeout"
            except (urllib.error.URLError, OSError) as exc:
                reason = getattr(exc, "reason", None)
                code = (
                    "openlineage_timeout" if isinstance(reason, TimeoutError)
                    else "openlineage_unreachable"
                )
        return code
