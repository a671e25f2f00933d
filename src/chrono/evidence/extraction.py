"""Extraction step: one artifact per unique file content, in a pool of worker processes.

Files are extracted in waves. Concordance load files go first, so the TEXT and IMAGES files they
cover are known and not OCR'd a second time; then every other unique content; then whatever the
previous wave found inside files (archive entries, attachments), until nothing new turns up.

An artifact is written to a temp name and renamed (the commit marker), after the blobs of its
children, so a killed run never leaves an artifact that points at missing bytes. Existing
artifacts are reused unless ``--overwrite-existing``. A worker that dies (segfault, OOM kill)
breaks the pool; the pool is rebuilt and the files in flight are retried once, then failed with
``worker_crashed``.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import multiprocessing.context
import os
import resource
from collections.abc import Callable, Collection
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chrono.core.config import EvidenceConfig
from chrono.core.crashpoints import crash_point
from chrono.core.logging import log_event
from chrono.evidence.context import EvidenceRun, stable_id
from chrono.evidence.extract.base import ExtractContext, SourceFile, failed_artifact, run_extractor
from chrono.evidence.inventory import FileEntry
from chrono.evidence.model import Artifact
from chrono.storage.local import LocalBucket

MAX_ATTEMPTS = 2


def artifact_key(sha256: str) -> str:
    return f"artifacts/{sha256[:2]}/{sha256}.json"


def load_artifact(bucket: LocalBucket, sha256: str) -> Artifact:
    return Artifact.model_validate_json(bucket.get_bytes(artifact_key(sha256)))


@dataclass
class Outcome:
    outcome: str
    """processed | skipped | duplicate | failed"""
    reason: str | None = None


# --- worker process side -------------------------------------------------------------------

_WORKER: dict[str, Any] = {}


def _init_worker(config_json: str, artifact_dir: str, passwords: tuple[str, ...]) -> None:
    os.environ["OMP_THREAD_LIMIT"] = "1"
    config = EvidenceConfig.model_validate_json(config_json)
    cap = config.limits.max_memory_bytes
    if cap > 0:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    _WORKER.update(config=config, artifact_dir=Path(artifact_dir), passwords=passwords)


def _extract_in_worker(task: dict[str, Any]) -> dict[str, Any]:
    ctx = ExtractContext(
        config=_WORKER["config"], artifact_dir=_WORKER["artifact_dir"],
        passwords=_WORKER["passwords"], depth=task["depth"],
    )
    source = SourceFile(
        path=Path(task["path"]), sha256=task["sha256"], size=task["size"], kind=task["kind"],
        name=task["name"], depth=task["depth"],
    )
    artifact = run_extractor(source, ctx)
    crash_point("worker.extract")
    LocalBucket(ctx.artifact_dir).put_bytes(
        artifact_key(source.sha256), artifact.model_dump_json().encode("utf-8")
    )
    return {"sha256": source.sha256, "status": artifact.status, "reason": artifact.reason}


# --- orchestrator side ---------------------------------------------------------------------


def _task_for(run: EvidenceRun, entry: FileEntry) -> dict[str, Any]:
    path = (run.artifact_dir / entry.blob) if entry.blob else (run.source_dir / entry.path)
    return {
        "sha256": entry.sha256, "path": str(path), "size": entry.size, "kind": entry.kind,
        "name": entry.path.rsplit("/", 1)[-1], "depth": entry.depth,
    }


def _run_pool(run: EvidenceRun, entries: list[FileEntry], advance: Any) -> None:
    """Extract ``entries`` (unique contents) in worker processes; survive worker crashes."""
    attempts: dict[str, int] = {}
    queue = list(entries)
    workers = max(1, min(run.workers, len(queue)))
    context = _pool_context(run.pool_start_method)
    while queue:
        pool = ProcessPoolExecutor(
            max_workers=workers,
            mp_context=context,
            initializer=_init_worker,
            initargs=(run.config.model_dump_json(), str(run.artifact_dir), run.passwords),
        )
        futures: dict[Future[dict[str, Any]], FileEntry] = {}
        broken = False
        try:
            for entry in queue:
                futures[pool.submit(_extract_in_worker, _task_for(run, entry))] = entry
            queue = []
            pending = set(futures)
            while pending:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for fut in done:
                    entry = futures[fut]
                    try:
                        result = fut.result()
                        log_event("file_extracted", file_id=entry.file_id, status=result["status"],
                                  reason_code=result["reason"])
                        advance()
                    except BrokenProcessPool:
                        broken = True
                        _retry_or_fail(run, entry, attempts, queue, advance)
        finally:
            pool.shutdown(wait=not broken, cancel_futures=True)


def _pool_context(start_method: str | None) -> multiprocessing.context.BaseContext | None:
    if start_method is None:
        return None
    context = multiprocessing.get_context(start_method)
    if start_method == "forkserver":
        # The server imports the extractors once; each worker forks from it ready to run.
        context.set_forkserver_preload(["chrono.evidence.extraction",
                                        "chrono.evidence.extract.registry"])
    return context


def _retry_or_fail(
    run: EvidenceRun, entry: FileEntry, attempts: dict[str, int], queue: list[FileEntry],
    advance: Any,
) -> None:
    attempts[entry.sha256] = attempts.get(entry.sha256, 0) + 1
    if attempts[entry.sha256] < MAX_ATTEMPTS:
        queue.append(entry)
        return
    source = SourceFile(Path(entry.path), entry.sha256, entry.size, entry.kind, "", entry.depth)
    artifact = failed_artifact(source, "none", "worker_crashed", "worker process died")
    run.bucket.put_bytes(artifact_key(entry.sha256), artifact.model_dump_json().encode("utf-8"))
    log_event("file_extracted", file_id=entry.file_id, status="failed",
              reason_code="worker_crashed")
    advance()


def _child_entries(parent: FileEntry, artifact: Artifact) -> list[FileEntry]:
    children = []
    for index, child in enumerate(artifact.children):
        children.append(
            FileEntry(
                file_id=stable_id("file", parent.file_id, str(index), child.name),
                path=f"{parent.path}!/{child.name}", sha256=child.sha256, size=child.size,
                kind="pending", family_id=parent.family_id, depth=parent.depth + 1,
                parent_id=parent.file_id, relation=child.relation, blob=child.blob,
                group=parent.group,
            )
        )
    return children


def extract_all(
    run: EvidenceRun,
    entries: list[FileEntry],
    *,
    extracted_elsewhere: Collection[str] = frozenset(),
    child_kind: Callable[[FileEntry], str] | None = None,
    before_extract: Callable[[list[FileEntry]], None] | None = None,
) -> dict[str, Any]:
    """Run extraction over the inventory; returns counters, and fills ``run.state``.

    The keywords let a scale-out run merge results that workers produced elsewhere with exactly
    this function's choices (canonical copy, waves, load-file members): ``extracted_elsewhere``
    holds contents extracted by this run's workers (``processed``, not ``skipped``);
    ``child_kind`` gives a contained file's kind when its blob is not at hand (default: detect
    it from the blob); ``before_extract`` is called with the entries about to be extracted here,
    so their bytes can be fetched first.
    """
    from chrono.evidence.detect import detect_kind

    def detect_child(child: FileEntry) -> str:
        return detect_kind(run.artifact_dir / (child.blob or ""))

    kind_of = child_kind or detect_child
    bucket = run.bucket
    bucket.clean_temp()
    outcomes: dict[str, Outcome] = {}
    canonical: dict[str, FileEntry] = {}
    extracted_now: set[str] = set()
    all_entries = list(entries)

    def triage(batch: list[FileEntry]) -> list[FileEntry]:
        """Mark duplicates and links; return the canonical entries of new contents."""
        fresh = []
        for e in sorted(batch, key=lambda x: x.path):
            if e.kind == "link":
                outcomes[e.file_id] = Outcome("failed", "symlink_refused")
            elif e.sha256 in canonical:
                outcomes[e.file_id] = Outcome("duplicate", "same_content")
            else:
                canonical[e.sha256] = e
                fresh.append(e)
        return fresh

    def extract_wave(wave: list[FileEntry]) -> list[FileEntry]:
        todo = [e for e in wave if run.overwrite or not bucket.exists(artifact_key(e.sha256))]
        if todo:
            if before_extract is not None:
                before_extract(todo)
            with run.progress("extract", len(todo)) as advance:
                _run_pool(run, todo, advance)
            extracted_now.update(e.sha256 for e in todo)
        found: list[FileEntry] = []
        for e in wave:
            artifact = load_artifact(bucket, e.sha256)
            if artifact.status == "failed":
                outcomes[e.file_id] = Outcome("failed", artifact.reason)
            elif e.sha256 in extracted_now or e.sha256 in extracted_elsewhere:
                outcomes[e.file_id] = Outcome("processed")
            else:
                outcomes[e.file_id] = Outcome("skipped", "artifact_exists")
            for child in _child_entries(e, artifact):
                child.kind = kind_of(child)
                found.append(child)
        return found

    loadfiles = triage([e for e in all_entries if e.kind == "dat" and e.depth == 0])
    found = extract_wave(loadfiles)
    covered = _loadfile_members(run, loadfiles)
    for e in all_entries:
        if e.file_id in outcomes:
            continue
        if e.depth == 0 and e.path in covered:
            outcomes[e.file_id] = Outcome("skipped", "loadfile_member")
    wave = triage([e for e in all_entries if e.file_id not in outcomes])
    while True:
        found += extract_wave(wave)
        if not found:
            break
        all_entries.extend(found)
        wave = triage(found)
        found = []

    run.state["entries"] = all_entries
    run.state["outcomes"] = outcomes
    run.state["canonical"] = canonical
    counts = {"files": len(all_entries), "extracted": len(extracted_now)}
    for o in outcomes.values():
        counts[o.outcome] = counts.get(o.outcome, 0) + 1
    return counts


def _loadfile_members(run: EvidenceRun, loadfiles: list[FileEntry]) -> set[str]:
    """Relative paths of TEXT/IMAGE files that processed load files already cover."""
    covered: set[str] = set()
    for e in loadfiles:
        artifact = load_artifact(run.bucket, e.sha256)
        for member in artifact.metadata.get("member_paths", []):
            try:
                covered.add(Path(member).resolve().relative_to(run.source_dir).as_posix())
            except ValueError:
                continue
    return covered
