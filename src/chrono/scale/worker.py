"""One group's work (the ECS task, the Dask task): stage, extract, publish, commit.

:func:`process_group` reads line ``index`` of ``groups.ndjson``, brings the group's files to a
local folder (a local source is used in place), runs the extraction step's own machinery over
exactly those files (waves, load files first, duplicates, the process pool with its time and
memory limits; a file over a limit is recorded failed with its reason and the group goes on),
and publishes to the artifact bucket: blobs, then artifacts under their content keys, then
``groups/<N>/extracted.ndjson`` (every entry, children included, with its outcome) LAST, as the
group's commit marker. A group whose marker holds the same files is not redone unless
``overwrite``. Extraction writes to a private folder, never into a shared artifact folder, so
groups running side by side never see each other's temp files.

``python -m chrono.scale.worker`` runs one group from a pickled ``(groups_url, index,
settings)`` on stdin and prints the outcome as JSON: how a Dask worker that may not start child
processes (a daemon) still gets a process pool.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
import sys
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from chrono.core.crashpoints import crash_point
from chrono.core.errors import ChronoError, ConfigError
from chrono.core.logging import log_event
from chrono.evidence.context import EvidenceRun
from chrono.evidence.extraction import Outcome, artifact_key, extract_all, load_artifact
from chrono.evidence.inventory import FileEntry
from chrono.evidence.pipeline import extracted_rows
from chrono.scale.schedule import group_entries, load_groups
from chrono.scale.settings import WorkerSettings
from chrono.scale.staging import (
    SourceStage,
    fetch_object,
    local_keys,
    publish_file,
    read_lines,
    write_lines,
)
from chrono.storage.buckets import Bucket, open_bucket
from chrono.storage.local import LocalBucket


def marker_key(index: int) -> str:
    """The group's commit marker (and its results) in the artifact bucket."""
    return f"groups/{index}/extracted.ndjson"


@dataclass
class GroupOutcome:
    """How one group ended: ``done``, ``skipped`` (already committed) or ``failed``."""

    group: int
    status: str
    reason: str | None = None
    """Reason code of a failure (``source_changed``, ``worker_killed``...), or ``committed``."""
    detail: str | None = None
    """Bounded, data-free detail of a failure (an error class name, counts)."""
    files: int = 0
    seconds: float = 0.0
    extract_seconds: float = 0.0
    """Of ``seconds``, the time spent in extraction proper; the rest is staging and publishing."""
    counts: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def group_committed(artifacts: Bucket, index: int, entries: list[FileEntry]) -> bool:
    """Whether group ``index``'s marker exists and covers exactly these files and contents
    (a marker left by an older schedule whose group ``index`` held other files does not count)."""
    key = marker_key(index)
    if not artifacts.exists(key):
        return False
    committed = {(r["file_id"], r["sha256"]) for r in read_lines(artifacts, key) if not r["depth"]}
    return committed == {(e.file_id, e.sha256) for e in entries}


def group_rows(artifacts: Bucket, index: int) -> list[dict[str, Any]]:
    """The committed results of group ``index``: entry fields plus ``outcome`` and ``reason``."""
    return list(read_lines(artifacts, marker_key(index)))


def _find_group(groups_url: str, index: int, endpoint_url: str | None) -> dict[str, Any]:
    for line in load_groups(groups_url, endpoint_url=endpoint_url):
        if line["group"] == index:
            return line
    raise ConfigError("group_missing", f"no group {index} in the groups file")


def _prefetch(artifacts: Bucket, work: Path, shas: list[str]) -> set[str]:
    """Copy existing artifacts of ``shas`` (and, down the tree, their children's blobs and
    artifacts) into the private folder, so extraction reuses them; returns the keys copied."""
    copied: set[str] = set()
    stack = list(dict.fromkeys(shas))
    seen: set[str] = set()
    local = LocalBucket(work)
    while stack:
        sha = stack.pop()
        key = artifact_key(sha)
        if sha in seen or not artifacts.exists(key):
            continue
        seen.add(sha)
        fetch_object(artifacts, key, work / key)
        copied.add(key)
        for child in load_artifact(local, sha).children:
            if child.blob not in copied and artifacts.exists(child.blob):
                fetch_object(artifacts, child.blob, work / child.blob)
                copied.add(child.blob)
            stack.append(child.sha256)
    return copied


def _publish(artifacts: Bucket, work: Path, prefetched: set[str]) -> int:
    """Blobs first, then the artifacts that point at them; returns how many objects."""
    keys = [k for k in local_keys(work, "blobs") + local_keys(work, "artifacts")
            if k not in prefetched]
    for key in keys:
        publish_file(artifacts, key, work / key)
    return len(keys)


def _owner_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, under another user
        return True
    return True


def remove_orphaned_folders(groups_dir: Path) -> int:
    """Delete private group folders whose process is gone (killed before its ``finally`` ran),
    temp and spool files included; returns how many. A folder is named
    ``<index>-<pid>-<token>``; one of a live process, or of an unknown form, is kept."""
    removed = 0
    if not groups_dir.is_dir():
        return 0
    for folder in groups_dir.iterdir():
        parts = folder.name.split("-")
        if len(parts) != 3 or not parts[1].isdigit() or not folder.is_dir():
            continue
        if not _owner_alive(int(parts[1])):
            shutil.rmtree(folder, ignore_errors=True)
            removed += 1
    return removed


def _process(groups_url: str, index: int, settings: WorkerSettings) -> GroupOutcome:
    line = _find_group(groups_url, index, settings.endpoint_url)
    entries = group_entries(line)
    artifacts = open_bucket(settings.artifact_url or line["artifact_bucket"],
                            endpoint_url=settings.endpoint_url)
    if not settings.overwrite and group_committed(artifacts, index, entries):
        return GroupOutcome(index, "skipped", "committed", files=len(entries))
    duplicates = {f["file_id"] for f in line["files"] if f.get("duplicate_of")}
    todo = [e for e in entries if e.file_id not in duplicates]
    stage = SourceStage(settings.source_url or line["source"], endpoint_url=settings.endpoint_url,
                        work_dir=settings.work_dir)
    groups_dir = Path(settings.work_dir) / "groups"
    remove_orphaned_folders(groups_dir)
    work = groups_dir / f"{index}-{os.getpid()}-{uuid.uuid4().hex[:12]}"
    work.mkdir(parents=True)
    try:
        stage.fetch(todo)
        prefetched = set() if settings.overwrite else _prefetch(
            artifacts, work, [e.sha256 for e in todo if e.kind != "link"])
        run = EvidenceRun(
            source_dir=stage.root, artifact_dir=work, config=settings.config,
            passwords=settings.passwords.values, workers=settings.extraction_workers,
            overwrite=settings.overwrite, show_progress=False, source_key=stage.source_key,
            pool_start_method=settings.pool_start_method,
        )
        started = time.perf_counter()
        counts = extract_all(run, todo)
        extract_seconds = time.perf_counter() - started
        published = _publish(artifacts, work, prefetched)
        crash_point("group.published")
        all_entries: list[FileEntry] = list(run.state["entries"])
        outcomes: dict[str, Outcome] = dict(run.state["outcomes"])
        for e in entries:
            if e.file_id in duplicates:
                # Another copy of this load file comes first across the whole source.
                all_entries.append(e)
                outcomes[e.file_id] = Outcome("duplicate", "same_content")
        write_lines(artifacts, marker_key(index), extracted_rows(all_entries, outcomes))
        crash_point("group.committed")
    finally:
        shutil.rmtree(work, ignore_errors=True)
        stage.release(todo)
    counts["published"] = published
    return GroupOutcome(index, "done", files=len(entries), extract_seconds=extract_seconds,
                        counts={k: v for k, v in counts.items() if isinstance(v, int)})


def process_group(groups_url: str, index: int, settings: WorkerSettings) -> GroupOutcome:
    """Process group ``index`` of ``groups_url``; failures come back as a ``failed`` outcome
    with a reason code (never raised), so a mode can report them and go on."""
    started = time.perf_counter()
    log_event("group_start", group=index)
    try:
        outcome = _process(groups_url, index, settings)
    except ChronoError as exc:
        outcome = GroupOutcome(index, "failed", exc.code, exc.detail)
    except FileNotFoundError:
        outcome = GroupOutcome(index, "failed", "source_missing", "a file or object is gone")
    except OSError as exc:
        outcome = GroupOutcome(index, "failed", "io_error", type(exc).__name__)
    except Exception as exc:  # a bug or a library failure: report it, let other groups go on
        outcome = GroupOutcome(index, "failed", "worker_error", type(exc).__name__)
    outcome.seconds = round(time.perf_counter() - started, 3)
    outcome.extract_seconds = round(outcome.extract_seconds, 3)
    log_event("group_done", group=index, status=outcome.status, reason_code=outcome.reason,
              seconds=outcome.seconds)
    return outcome


def main() -> None:
    """Entry of ``python -m chrono.scale.worker``: pickled arguments in, outcome JSON out."""
    groups_url, index, settings = pickle.loads(sys.stdin.buffer.read())
    outcome = process_group(groups_url, index, settings)
    sys.stdout.write(json.dumps(outcome.to_dict()) + "\n")


if __name__ == "__main__":
    main()
