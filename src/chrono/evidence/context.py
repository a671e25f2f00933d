"""The state one evidence run carries from step to step: folders, config, options, progress."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from chrono.core.config import EvidenceConfig
from chrono.storage.local import LocalBucket

NAMESPACE = uuid.UUID("6f1c1d0e-1b7a-5b3e-9c1e-6368726f6e6f")
"""uuid5 namespace of every deterministic id Chrono makes."""


def stable_id(*parts: str) -> str:
    return str(uuid.uuid5(NAMESPACE, "\x1f".join(parts)))


@dataclass
class EvidenceRun:
    source_dir: Path
    artifact_dir: Path
    config: EvidenceConfig = field(default_factory=EvidenceConfig)
    db_url: str | None = None
    passwords: tuple[str, ...] = ()
    workers: int = field(default_factory=lambda: os.cpu_count() or 1)
    overwrite: bool = False
    skip_event_generation: bool = False
    show_progress: bool = True
    run_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    state: dict[str, Any] = field(default_factory=dict)
    """Counters and outcomes steps hand to the report (not persisted between runs)."""
    source_key: str | None = None
    """Stable name of the source when SOURCE_DIR is only a local copy of it (an ``s3://`` URL);
    the source id derives from it instead of from the copy's path."""
    pool_start_method: str | None = None
    """How extraction worker processes start (``fork``, ``forkserver``, ``spawn``); unset: the
    platform's default. A large parent (a Dask worker) should not fork them: a forked child
    inherits the parent's address space, which counts against ``limits.max_memory_bytes``."""

    def __post_init__(self) -> None:
        self.source_dir = Path(self.source_dir).resolve()
        self.artifact_dir = Path(self.artifact_dir).resolve()
        if self.db_url is None:
            self.db_url = f"sqlite:///{self.artifact_dir / 'chrono.db'}"

    @property
    def bucket(self) -> LocalBucket:
        return LocalBucket(self.artifact_dir)

    @property
    def source_id(self) -> str:
        return stable_id("source", self.source_key or str(self.source_dir))

    @contextmanager
    def progress(self, label: str, total: int) -> Iterator[Any]:
        """A rich progress bar on stderr; yields a function ``advance(n=1)``."""
        console = Console(stderr=True)
        enabled = self.show_progress and total > 0
        with Progress(
            TextColumn("[bold]{task.description:<12}"), BarColumn(), MofNCompleteColumn(),
            TimeElapsedColumn(), TimeRemainingColumn(), console=console, disable=not enabled,
            transient=False,
        ) as bar:
            task = bar.add_task(label, total=total)
            yield lambda n=1: bar.advance(task, n)
