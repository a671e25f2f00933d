"""What a scale-out run is told: buckets, batch sizes, concurrency, steps, and the worker's share.

:class:`ScaleSettings` is what ``chrono schedule`` builds from its flags; :class:`WorkerSettings`
is the part one group's worker needs (``chrono worker``, a Dask task, later an ECS task). Both
pickle, so a mode can ship them to another process or machine.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field

from chrono.core.config import EvidenceConfig
from chrono.core.errors import ConfigError

GLOBAL_STEPS = ("events", "upload", "dedupe", "persons", "devices", "mapping")
"""The steps that run once over the merged results of every group, in seed order."""

FAN_OUT_STEP = "extraction"
"""The step the groups' workers perform (``inventory`` is the schedule itself)."""


def default_work_dir() -> str:
    """Where workers stage sources and keep private artifact folders; the same path on every
    machine, so load-file member paths recorded on one machine read the same on another."""
    return os.path.join(tempfile.gettempdir(), "chrono-scale")


@dataclass(frozen=True)
class Passwords:
    """Passwords to try on encrypted archives and PDFs; never printed."""

    values: tuple[str, ...] = field(default=(), repr=False)

    def __repr__(self) -> str:
        return f"Passwords(<{len(self.values)} hidden>)"


@dataclass(frozen=True)
class WorkerSettings:
    """What processing one group needs beyond the group's line in ``groups.ndjson``."""

    source_url: str | None = None
    """Source bucket; unset: the ``source`` the schedule wrote into the group's line."""
    artifact_url: str | None = None
    """Artifact bucket; unset: the ``artifact_bucket`` of the group's line."""
    overwrite: bool = False
    """Re-extract files whose artifacts exist, and redo a group whose results are committed."""
    passwords: Passwords = Passwords()
    endpoint_url: str | None = None
    """S3 endpoint (moto, MinIO) for every ``s3://`` bucket; unset: boto3's own settings."""
    config: EvidenceConfig = field(default_factory=EvidenceConfig)
    work_dir: str = field(default_factory=default_work_dir)
    extraction_workers: int = 1
    """Extraction processes of this group (the group's own pool, with its time/memory limits)."""
    pool_start_method: str = "forkserver"
    """How the group's extraction processes start: from a small server process, not forked
    from this one, whose address space (a Dask worker's) would count against the memory cap."""


@dataclass(frozen=True)
class ScaleSettings:
    """Everything ``chrono schedule`` was told."""

    source_url: str
    inventory_url: str
    artifact_url: str
    report_url: str
    prefixes: tuple[str, ...] = ()
    """Only source keys starting with one of these (S3-style string prefixes); empty: all."""
    overwrite: bool = False
    minimum_batch_size: int = 1000
    """Fewest files per group (the last group may hold fewer); families are never split."""
    max_concurrency: int = 300
    """Most groups in flight at once."""
    steps: tuple[str, ...] = ()
    """Pipeline steps to run (empty: all); ``extraction`` is the fan-out, the rest are global."""
    skip_event_generation: bool = False
    passwords: Passwords = Passwords()
    scheduler: str | None = None
    """Dask scheduler address (``tcp://host:8786``); unset: a LocalCluster of ``workers``."""
    db_url: str | None = None
    """Timeline database; unset: ``chrono.db`` in the (local view of the) artifact bucket."""
    workers: int = field(default_factory=lambda: os.cpu_count() or 1)
    """Groups processed at once (local mode) or LocalCluster worker processes (dask mode)."""
    endpoint_url: str | None = None
    config: EvidenceConfig = field(default_factory=EvidenceConfig)
    work_dir: str = field(default_factory=default_work_dir)
    show_progress: bool = True

    def __post_init__(self) -> None:
        if self.minimum_batch_size < 1:
            raise ConfigError("minimum_batch_size", "--minimum-batch-size must be at least 1")
        if self.max_concurrency < 1:
            raise ConfigError("max_concurrency", "--max-concurrency must be at least 1")
        if self.workers < 1:
            raise ConfigError("workers", "--workers must be at least 1")
        from chrono.evidence.pipeline import pipeline

        pipeline.select(list(self.steps))  # unknown names fail here, before any work

    @property
    def groups_url(self) -> str:
        """Where the schedule writes ``groups.ndjson`` (inside the inventory bucket)."""
        return self.inventory_url.rstrip("/") + "/groups.ndjson"

    @property
    def runs_fan_out(self) -> bool:
        return not self.steps or FAN_OUT_STEP in self.steps

    @property
    def global_steps(self) -> list[str]:
        """The global phases to run, in seed order."""
        chosen = [s for s in GLOBAL_STEPS if not self.steps or s in self.steps]
        if self.skip_event_generation:
            chosen = [s for s in chosen if s != "events"]
        return chosen

    def worker_settings(self, extraction_workers: int = 1) -> WorkerSettings:
        return WorkerSettings(
            source_url=self.source_url, artifact_url=self.artifact_url, overwrite=self.overwrite,
            passwords=self.passwords, endpoint_url=self.endpoint_url, config=self.config,
            work_dir=self.work_dir, extraction_workers=extraction_workers,
        )
