"""``pipeline.yaml``: the sensor pipeline's typed configuration, validated at load.

Every section is the config model of the component that reads it (sources, windows, notify,
lineage, buckets, Bacalhau); this module only composes them and resolves defaults that depend on
the data folder. ``${VAR}`` and ``${VAR:-default}`` are expanded in every string before
validation; an unknown key or a bad value stops with the file, the key and the fix.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, ValidationError

from chrono.core.config import (
    StrictModel,
    expand_vars,
    format_validation_error,
    read_yaml_mapping,
)
from chrono.core.errors import ConfigError
from chrono.sensors.bacalhau import BacalhauConfig
from chrono.sensors.lineage import LineageConfig
from chrono.sensors.notify import NotificationConfig
from chrono.sensors.scenarios import SCENARIOS
from chrono.sensors.sources import SourceConfig
from chrono.sensors.windows import WindowingConfig
from chrono.storage.buckets import BucketSpec

BUCKET_NAMES: tuple[str, ...] = ("raw", "schematized", "error", "archival", "aggregated")
"""The five buckets of the seed; routes may name further destinations."""

class ScenariosConfig(StrictModel):
    """Which scenarios run when nobody has set any with ``chrono scenarios set``."""

    default: list[str] = Field(default_factory=lambda: list(SCENARIOS))
    """Scenarios active until the first ``chrono scenarios set``."""
    store: str | None = None
    """SQLite file of the scenario manager; default ``<data_dir>/state/scenarios.db``."""


class RouteConfig(StrictModel):
    """One declarative route of the ``multi_destination`` scenario."""

    name: str
    """Destination name shown in counters and reports (e.g. ``archival``)."""
    stream: Literal["raw", "schematized", "errors", "windows", "late"]
    """Which records go there."""
    bucket: str
    """A bucket name from ``buckets`` or a bucket URL (folder path or ``s3://...``)."""
    prefix: str = ""
    """Key prefix inside the bucket; default: the stream's own prefix."""


def _default_routes() -> list[RouteConfig]:
    return [
        RouteConfig(name="archival", stream="schematized", bucket="archival"),
        RouteConfig(name="aggregated", stream="windows", bucket="aggregated"),
        RouteConfig(name="aggregated_late", stream="late", bucket="aggregated"),
    ]


class WebConfig(StrictModel):
    """``chrono serve`` settings."""

    token: SecretStr | None = None
    """Access token of the dashboard and API (at least 16 characters; ``$CHRONO_TOKEN`` wins).
    Write it as ``${CHRONO_WEB_TOKEN}`` to keep it out of the file. Unset: one is generated on
    first start and kept in ``<data_dir>/state/web_token``."""


class SensorPipelineConfig(StrictModel):
    """Root of ``pipeline.yaml``."""

    data_dir: str = Field(default_factory=lambda: os.environ.get("CHRONO_DATA") or "./chrono-data")
    """Root folder for local buckets, the notification queue file and pipeline state
    (default: ``$CHRONO_DATA``, else ``./chrono-data``)."""
    source: SourceConfig = Field(default_factory=SourceConfig)
    """Where readings come from."""
    spec: str | None = None
    """Validation spec YAML; default: the packaged ``sensor_validation_spec_v2.yaml``."""
    batch_size: int = Field(default=100_000, ge=1)
    """Most readings read and processed per batch."""
    interval_s: float = Field(default=10.0, ge=0)
    """Pause between cycles in continuous mode (without ``--once``)."""
    output_format: Literal["parquet", "jsonl"] = "parquet"
    """Format of the files written to buckets (one file per batch and partition)."""
    endpoint_url: str | None = None
    """S3-compatible endpoint for ``s3://`` buckets (e.g. a MinIO or moto server)."""
    buckets: dict[str, BucketSpec] = Field(default_factory=dict)
    """Bucket name -> URL and S3 settings; missing ones default to ``<data_dir>/<name>``."""
    routes: list[RouteConfig] = Field(default_factory=_default_routes)
    """Routes of the ``multi_destination`` scenario."""
    sink_retries: int = Field(default=3, ge=0)
    """Retries of a failed bucket write before the batch is abandoned (and retried next cycle)."""
    write_threads: int = Field(default=2, ge=0, le=64)
    """Threads that encode and write output files while the next step runs (0: write inline).
    The checkpoint still waits for every write of its batch."""
    read_ahead: bool = True
    """Read the next batch while the current one is processed (file and SQLite sources; an
    MQTT source never reads ahead, since reading acknowledges messages)."""
    scenarios: ScenariosConfig = Field(default_factory=ScenariosConfig)
    """Scenario defaults and store."""
    windowing: WindowingConfig = Field(default_factory=WindowingConfig)
    """Event-time windows."""
    notification: NotificationConfig = Field(default_factory=NotificationConfig)
    """Anomaly incidents and where notifications go."""
    lineage: LineageConfig = Field(default_factory=LineageConfig)
    """Lineage stamping and OpenLineage events."""
    bacalhau: BacalhauConfig = Field(default_factory=BacalhauConfig)
    web: WebConfig = Field(default_factory=WebConfig)
    """The dashboard (``chrono serve``)."""
    """Job spec for running the orchestrator on edge nodes."""
    job_name: str = "chrono-sensors"
    """Job name in lineage and OpenLineage events."""

    def model_post_init(self, _context: Any) -> None:
        unknown = [s for s in self.scenarios.default if s not in SCENARIOS]
        if unknown:
            raise ValueError(f"unknown scenario(s) {unknown}; choose from {list(SCENARIOS)}")
        names = {r.name for r in self.routes}
        if len(names) != len(self.routes):
            raise ValueError("route names must be unique")

    @property
    def data_path(self) -> Path:
        return Path(self.data_dir)

    def bucket_spec(self, name: str) -> BucketSpec:
        """The bucket called ``name``, defaulting to a folder under ``data_dir``."""
        if name in self.buckets:
            return self.buckets[name]
        return BucketSpec(url=str(self.data_path / name))

    def all_buckets(self) -> dict[str, BucketSpec]:
        """Every bucket the pipeline writes to, as ``chrono buckets create`` makes them: the five
        of the seed, further named ones, and route destinations given as a URL (under the route's
        name, or ``route:<name>`` where that name is a bucket's)."""
        names = list(dict.fromkeys([*BUCKET_NAMES, *self.buckets]))
        specs = {name: self.bucket_spec(name) for name in names}
        urls = {spec.url for spec in specs.values()}
        for route in self.routes:
            spec = self.route_bucket(route)
            if spec.url not in urls:
                specs[route.name if route.name not in specs else f"route:{route.name}"] = spec
                urls.add(spec.url)
        return specs

    def route_bucket(self, route: RouteConfig) -> BucketSpec:
        if route.bucket in self.buckets or route.bucket in BUCKET_NAMES:
            return self.bucket_spec(route.bucket)
        return BucketSpec(url=route.bucket)

    @property
    def state_dir(self) -> Path:
        return self.data_path / "state"

    @property
    def scenario_store_path(self) -> Path:
        if self.scenarios.store:
            return Path(self.scenarios.store)
        return self.state_dir / "scenarios.db"

    @property
    def queue_file(self) -> Path:
        if self.notification.queue_file:
            return Path(self.notification.queue_file)
        return self.data_path / "notifications.jsonl"

    def fingerprint(self) -> str:
        """Hash of the settings that change what the pipeline computes (not where it writes)."""
        relevant = {
            "source": self.source.model_dump(mode="json"),
            "spec": self.spec,
            "windowing": self.windowing.model_dump(mode="json"),
            "notification": {
                k: v for k, v in self.notification.model_dump(mode="json").items()
                if k in ("threshold", "window_s", "cooldown_s")
            },
        }
        blob = json.dumps(relevant, sort_keys=True).encode("utf-8")
        return hashlib.sha256(blob).hexdigest()[:16]


DEFAULT_CONFIG_NAME = "pipeline.yaml"


def load_pipeline_config(path: str | Path | None = None) -> SensorPipelineConfig:
    """Load ``path`` (or ``$CHRONO_PIPELINE_CONFIG``, or ``./pipeline.yaml``) over the defaults.

    Relative paths inside the file (source, spec, data_dir) stay relative to the working folder,
    as a user typing them on the command line would expect.
    """
    candidate = path or os.environ.get("CHRONO_PIPELINE_CONFIG")
    if candidate is None and Path(DEFAULT_CONFIG_NAME).is_file():
        candidate = DEFAULT_CONFIG_NAME
    raw: Any = {}
    label = "<defaults>"
    if candidate is not None:
        label = str(candidate)
        raw = read_yaml_mapping(Path(candidate))
    try:
        return SensorPipelineConfig.model_validate(expand_vars(raw))
    except ValidationError as exc:
        raise ConfigError("config_invalid", format_validation_error(label, exc)) from None

