"""Write a planned sample production to disk: production/, passwords.txt, then truth.json.

truth.json is written last (the marker that the output is complete). Scanned pages dominate the
cost, so files are built in worker processes when more than one CPU is available; the bytes do not
depend on which process builds them.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from chrono.core.errors import ConfigError
from chrono.evidence.sample.plan import PlannedFile, ProductionPlan, plan_production

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class SampleSummary:
    """What :func:`generate_production` wrote."""

    out_dir: Path
    production_dir: Path
    """The SOURCE_DIR to run the pipeline on."""
    truth_path: Path
    passwords_path: Path
    size: str
    seed: int
    files: int
    """Files under ``production/``."""
    bytes: int
    events: int
    documents: int
    scanned_pages: int
    hostile: int

    def __str__(self) -> str:
        return (f"{self.files} files ({self.bytes / 1e6:.1f} MB, {self.scanned_pages} scanned "
                f"pages), {self.events} truth events, {self.documents} documents, "
                f"{self.hostile} hostile files in {self.production_dir}; truth: {self.truth_path}")


def generate_production(
    out_dir: Path,
    size: Literal["small", "medium"] = "small",
    seed: int = 7,
    progress: Progress | None = None,
) -> SampleSummary:
    """Write a synthetic legal production with ground truth under ``out_dir``.

    Refuses to write into an ``out_dir`` whose ``production/`` already holds files (stale files
    would break the truth's file count). The same ``size`` and ``seed`` give byte-identical files.
    """
    out_dir = Path(out_dir)
    production = out_dir / "production"
    if production.exists() and any(production.iterdir()):
        raise ConfigError("sample_dir_not_empty",
                          f"{production} is not empty; choose an empty output folder")
    plan = plan_production(size, seed)
    total_bytes = 0
    for done, (planned, data) in enumerate(_build_all(plan.files), start=1):
        target = out_dir / planned.path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        total_bytes += len(data)
        if progress is not None:
            progress(done, len(plan.files))
    passwords = out_dir / "passwords.txt"
    passwords.write_text("".join(f"{p}\n" for p in plan.passwords), encoding="utf-8")
    truth_path = out_dir / "truth.json"
    truth_path.write_text(json.dumps(plan.truth, indent=1, ensure_ascii=False) + "\n",
                          encoding="utf-8")
    return _summary(plan, out_dir, total_bytes)


def _build(planned: PlannedFile) -> bytes:
    return planned.build()


def _build_all(files: list[PlannedFile]) -> Iterator[tuple[PlannedFile, bytes]]:
    """Build every file, heavy (scanned) ones in worker processes, yielding in plan order."""
    workers = min(4, os.cpu_count() or 1)
    heavy = [f for f in files if f.scanned_pages]
    if workers < 2 or len(heavy) < 4:
        for planned in files:
            yield planned, planned.build()
        return
    with ProcessPoolExecutor(max_workers=workers) as pool:
        futures = {f.path: pool.submit(_build, f) for f in heavy}
        for planned in files:
            future = futures.pop(planned.path, None)
            yield planned, future.result() if future is not None else planned.build()


def _summary(plan: ProductionPlan, out_dir: Path, total_bytes: int) -> SampleSummary:
    truth = plan.truth
    return SampleSummary(
        out_dir=out_dir, production_dir=out_dir / "production",
        truth_path=out_dir / "truth.json", passwords_path=out_dir / "passwords.txt",
        size=plan.size, seed=plan.seed, files=len(plan.files), bytes=total_bytes,
        events=len(truth["events"]), documents=len(truth["documents"]),
        scanned_pages=plan.scanned_pages, hostile=len(truth["hostile"]),
    )
