"""Schedule: inventory the source bucket, leave out what is done, pack the rest into groups.

Writes two objects to the inventory bucket, the second last (it is what workers read):

* ``files.ndjson``: every top-level source file in scope (after ``--prefix``), one
  :class:`~chrono.evidence.inventory.FileEntry` per line; ``group`` is its group or ``-1`` when
  it was left out because its results already exist. The global phases start from it.
* ``groups.ndjson``: one line per group, ``{"group", "schedule_id", "source",
  "artifact_bucket", "file_count", "bytes", "files": [{"path", "size", "sha256", "kind",
  "family_id", "file_id"}...]}``; a load file that repeats an earlier one's bytes also carries
  ``"duplicate_of"`` (the earlier one's file id).

A group holds at least ``minimum_batch_size`` files (the last may hold fewer). A family is never
split, and neither is a Concordance volume: the DAT with every TEXT, IMAGES and NATIVES file
under the volume folder, nested volumes included, so the load file and the files it covers are
always extracted together. A file is done when an artifact of its content exists, or when the
last merged inventory recorded it, with the same content, as covered by a load file or as a
refused symlink; a volume or family is left out only when all of its files are done.
"""

from __future__ import annotations

import tempfile
import uuid
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chrono.core.crashpoints import crash_point
from chrono.core.errors import ConfigError
from chrono.core.logging import log_event
from chrono.evidence.context import stable_id
from chrono.evidence.detect import detect_kind
from chrono.evidence.inventory import (
    FileEntry,
    assign_volume_families,
    sha256_file,
    walk_sources,
)
from chrono.evidence.pipeline import EXTRACTED_KEY
from chrono.scale.progress import progress_bar
from chrono.scale.settings import ScaleSettings
from chrono.scale.staging import fetch_object, local_root, read_lines, split_object_url, write_lines
from chrono.storage.buckets import Bucket, open_bucket

GROUPS_KEY = "groups.ndjson"
FILES_KEY = "files.ndjson"
NOT_SCHEDULED = -1
"""``group`` of a file left out because its results exist."""
GROUP_FILE_FIELDS = ("path", "size", "sha256", "kind", "family_id", "file_id")


@dataclass
class Schedule:
    """What one schedule wrote: its id, where the groups are, the groups and every file."""

    schedule_id: str
    groups_url: str
    groups: list[dict[str, Any]]
    entries: list[FileEntry]
    """Every top-level file in scope, scheduled or not."""

    @property
    def indices(self) -> list[int]:
        return [g["group"] for g in self.groups]

    @property
    def files_scheduled(self) -> int:
        return sum(g["file_count"] for g in self.groups)


def check_prefixes(prefixes: Iterable[str]) -> tuple[str, ...]:
    checked = []
    for prefix in prefixes:
        if prefix.startswith("/") or any(part in (".", "..") for part in prefix.split("/")):
            raise ConfigError(
                "prefix_invalid", "--prefix is relative to the source bucket: no leading / or .."
            )
        checked.append(prefix)
    return tuple(dict.fromkeys(checked))


def _in_scope(rel: str, prefixes: tuple[str, ...]) -> bool:
    return not prefixes or any(rel.startswith(p) for p in prefixes)


def describe_file(rel: str, path: Path) -> FileEntry:
    """A top-level entry, with the ids ``chrono run`` gives the same relative path."""
    return FileEntry(
        file_id=stable_id("file", rel), path=rel, sha256=sha256_file(path),
        size=path.stat().st_size, kind=detect_kind(path), family_id=stable_id("family", rel),
    )


def _link_entry(rel: str) -> FileEntry:
    return FileEntry(
        file_id=stable_id("file", rel), path=rel, sha256="0" * 64, size=0, kind="link",
        family_id=stable_id("family", rel),
    )


def _local_listing(root: Path, prefixes: tuple[str, ...]) -> tuple[dict[str, Path], list[str]]:
    """Regular files (relative path -> path) and symlinks in scope under folder ``root``."""
    starts = sorted({p.rpartition("/")[0] for p in prefixes} if prefixes else {""})
    regular: dict[str, Path] = {}
    links: set[str] = set()
    for start in starts:
        base = root / start if start else root
        if not base.is_dir():
            continue
        found, found_links = walk_sources(base)
        for path in found:
            rel = path.relative_to(root).as_posix()
            if _in_scope(rel, prefixes):
                regular[rel] = path
        for path in found_links:
            rel = path.relative_to(root).as_posix()
            if _in_scope(rel, prefixes):
                links.add(rel)
    return regular, sorted(links)


def inventory_source(settings: ScaleSettings) -> list[FileEntry]:
    """Hash and type every source file in scope; volumes get one family, as in ``chrono run``.

    Local sources are read in place; S3 objects are streamed to a scratch file each (under the
    work dir, keeping the file name, which kind detection reads for some formats) and deleted.
    """
    prefixes = check_prefixes(settings.prefixes)
    bucket = open_bucket(settings.source_url, endpoint_url=settings.endpoint_url)
    root = local_root(bucket)
    links: list[str] = []
    if root is not None:
        if not root.is_dir():
            raise ConfigError("source_missing", "the source bucket folder does not exist")
        regular, links = _local_listing(root, prefixes)
        keys = sorted(regular)

        def describe(key: str) -> FileEntry:
            return describe_file(key, regular[key])
    else:
        keys = sorted({k for p in (prefixes or ("",)) for k in bucket.list(p)})
        scratch = Path(settings.work_dir) / "schedule"
        scratch.mkdir(parents=True, exist_ok=True)

        def describe(key: str) -> FileEntry:
            with tempfile.TemporaryDirectory(dir=scratch) as folder:
                local = Path(folder) / key.rpartition("/")[2]
                fetch_object(bucket, key, local)
                return describe_file(key, local)

    entries: list[FileEntry] = []
    with progress_bar("inventory", len(keys), settings.show_progress) as advance, (
        ThreadPoolExecutor(max_workers=max(2, settings.workers))
    ) as pool:
        for entry in pool.map(describe, keys):  # hashing and downloads release the GIL
            entries.append(entry)
            advance(1)
    entries.extend(_link_entry(rel) for rel in links)
    assign_volume_families(entries)
    return entries


def grouping_units(entries: list[FileEntry]) -> dict[str, list[FileEntry]]:
    """Files that must share a group: the outermost volume around them, else their family."""
    volumes = sorted(
        {str(Path(e.path).parent.parent) for e in entries if e.kind == "dat" and e.depth == 0},
        key=len,
    )
    units: dict[str, list[FileEntry]] = {}
    for e in sorted(entries, key=lambda x: x.path):
        key = e.family_id
        for vol in volumes:
            if vol == "." or e.path.startswith(vol + "/"):
                key = f"volume:{vol}"
                break
        units.setdefault(key, []).append(e)
    return units


def done_file_ids(entries: list[FileEntry], artifacts: Bucket) -> set[str]:
    """Files whose results exist: an artifact of their content, or a record in the last merged
    inventory (same content) as covered by a load file or as a refused symlink."""
    have = {key.rpartition("/")[2].removesuffix(".json") for key in artifacts.list("artifacts/")}
    recorded: dict[str, tuple[str, str | None, str | None]] = {}
    if artifacts.exists(EXTRACTED_KEY):
        for row in read_lines(artifacts, EXTRACTED_KEY):
            if not row.get("depth"):
                recorded[row["file_id"]] = (row["sha256"], row.get("outcome"), row.get("reason"))
    settled = {("skipped", "loadfile_member"), ("failed", "symlink_refused")}
    done = set()
    for e in entries:
        sha, outcome, reason = recorded.get(e.file_id, ("", None, None))
        if (e.kind != "link" and e.sha256 in have) or (
            sha == e.sha256 and (outcome, reason) in settled
        ):
            done.add(e.file_id)
    return done


def duplicate_loadfiles(entries: list[FileEntry]) -> dict[str, str]:
    """file_id -> canonical file_id for top-level load files repeating an earlier one's bytes.

    ``chrono run`` extracts load files first and only the first copy (by path) of each content,
    and only that copy covers its volume's files; a worker must know this across groups.
    """
    first: dict[str, str] = {}
    dupes: dict[str, str] = {}
    for e in sorted((e for e in entries if e.kind == "dat" and e.depth == 0),
                    key=lambda x: x.path):
        if e.sha256 in first:
            dupes[e.file_id] = first[e.sha256]
        else:
            first[e.sha256] = e.file_id
    return dupes


def pack_groups(units: list[list[FileEntry]], minimum: int) -> list[list[FileEntry]]:
    """Whole units, in path order, into groups of at least ``minimum`` files."""
    groups: list[list[FileEntry]] = []
    current: list[FileEntry] = []
    for unit in sorted(units, key=lambda u: u[0].path):
        current.extend(unit)
        if len(current) >= minimum:
            groups.append(current)
            current = []
    if current:
        groups.append(current)
    return groups


def _group_line(index: int, members: list[FileEntry], settings: ScaleSettings,
                schedule_id: str, dupes: dict[str, str]) -> dict[str, Any]:
    files = []
    for m in sorted(members, key=lambda x: x.path):
        row = {k: getattr(m, k) for k in GROUP_FILE_FIELDS}
        if m.file_id in dupes:
            row["duplicate_of"] = dupes[m.file_id]
        files.append(row)
    return {
        "group": index, "schedule_id": schedule_id, "source": settings.source_url,
        "artifact_bucket": settings.artifact_url, "file_count": len(files),
        "bytes": sum(m.size for m in members), "files": files,
    }


def schedule(settings: ScaleSettings) -> Schedule:
    """Inventory, leave out what is done (unless overwrite), pack, write; returns the schedule."""
    entries = inventory_source(settings)
    artifacts = open_bucket(settings.artifact_url, endpoint_url=settings.endpoint_url)
    done = set() if settings.overwrite else done_file_ids(entries, artifacts)
    todo_units = [u for u in grouping_units(entries).values()
                  if any(e.file_id not in done for e in u)]
    packed = pack_groups(todo_units, settings.minimum_batch_size)
    schedule_id = str(uuid.uuid4())
    dupes = duplicate_loadfiles(entries)
    lines = [_group_line(i, members, settings, schedule_id, dupes)
             for i, members in enumerate(packed)]
    group_of = {e.file_id: i for i, members in enumerate(packed) for e in members}
    for e in entries:
        e.group = group_of.get(e.file_id, NOT_SCHEDULED)
    inventory_bucket_url, groups_key = split_object_url(settings.groups_url)
    inventory = open_bucket(inventory_bucket_url, endpoint_url=settings.endpoint_url)
    inventory.clean_temp()  # what a killed schedule left half-written
    write_lines(inventory, FILES_KEY, (e.to_dict() for e in entries))
    crash_point("schedule.groups")
    write_lines(inventory, groups_key, lines)  # last: the groups are what workers act on
    log_event("schedule_written", schedule_id=schedule_id, files_count=len(entries),
              groups_count=len(lines), skipped_count=len(entries) - len(group_of))
    return Schedule(schedule_id, settings.groups_url, lines, entries)


def load_groups(groups_url: str, *, endpoint_url: str | None = None) -> list[dict[str, Any]]:
    """Every line of a ``groups.ndjson`` (a local path or ``s3://...``)."""
    bucket_url, key = split_object_url(groups_url)
    bucket = open_bucket(bucket_url, endpoint_url=endpoint_url)
    if not bucket.exists(key):
        raise ConfigError("groups_missing", "no groups file at the given URL; run the schedule")
    return list(read_lines(bucket, key))


def load_schedule(groups_url: str, *, endpoint_url: str | None = None) -> Schedule:
    """The schedule written next to ``groups_url`` (its groups and its ``files.ndjson``)."""
    groups = load_groups(groups_url, endpoint_url=endpoint_url)
    bucket_url, _key = split_object_url(groups_url)
    bucket = open_bucket(bucket_url, endpoint_url=endpoint_url)
    if not bucket.exists(FILES_KEY):
        raise ConfigError("inventory_missing", "no files.ndjson beside the groups; reschedule")
    entries = [FileEntry(**row) for row in read_lines(bucket, FILES_KEY)]
    schedule_id = groups[0]["schedule_id"] if groups else ""
    return Schedule(schedule_id, groups_url, groups, entries)


def group_entries(line: dict[str, Any]) -> list[FileEntry]:
    """The group's files as top-level inventory entries."""
    return [FileEntry(**{k: f[k] for k in GROUP_FILE_FIELDS}, group=line["group"])
            for f in line["files"]]
