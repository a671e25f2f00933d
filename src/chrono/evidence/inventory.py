"""Inventory: every file under SOURCE_DIR with sha256, size and kind; families and groups.

Output ``inventory/files.ndjson`` (one :class:`FileEntry` per line) and ``inventory/groups.ndjson``
(files in batches of about ``batch_size``; a family is never split). A family is a top-level file
with everything found inside it, or a whole Concordance volume (the folder above a DAT's folder).
"""

from __future__ import annotations

import hashlib
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from chrono.evidence.context import EvidenceRun, stable_id
from chrono.evidence.detect import detect_kind

FILES_KEY = "inventory/files.ndjson"
GROUPS_KEY = "inventory/groups.ndjson"


@dataclass
class FileEntry:
    file_id: str
    """Opaque id: uuid5 of the file's location (source path, or parent id + entry name)."""
    path: str
    """POSIX path relative to SOURCE_DIR; contained files read ``parent/path!/entry``."""
    sha256: str
    size: int
    kind: str
    family_id: str
    depth: int = 0
    parent_id: str | None = None
    relation: str | None = None
    """How a contained file relates to its parent: archive_entry, attachment, native."""
    blob: str | None = None
    """Where a contained file's bytes are, relative to ARTIFACT_DIR."""
    group: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def walk_sources(root: Path) -> tuple[list[Path], list[Path]]:
    """Regular files under ``root`` (sorted) and symlinks, which are never followed."""
    regular: list[Path] = []
    links: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames.sort()
        for name in sorted(filenames):
            p = Path(dirpath) / name
            if p.is_symlink():
                links.append(p)
            elif p.is_file():
                regular.append(p)
        for d in dirnames:
            if (Path(dirpath) / d).is_symlink():
                links.append(Path(dirpath) / d)
    return regular, links


def _describe(root: Path, path: Path) -> FileEntry:
    rel = path.relative_to(root).as_posix()
    kind = detect_kind(path)
    return FileEntry(
        file_id=stable_id("file", rel), path=rel, sha256=sha256_file(path),
        size=path.stat().st_size, kind=kind, family_id=stable_id("family", rel),
    )


def build_inventory(run: EvidenceRun) -> list[FileEntry]:
    """Hash and type every source file (threads: hashing releases the GIL)."""
    regular, links = walk_sources(run.source_dir)
    entries: list[FileEntry] = []
    with run.progress("inventory", len(regular)) as advance, ThreadPoolExecutor(
        max_workers=max(2, run.workers)
    ) as pool:
        for entry in pool.map(lambda p: _describe(run.source_dir, p), regular):
            entries.append(entry)
            advance()
    for link in links:
        rel = link.relative_to(run.source_dir).as_posix()
        entries.append(
            FileEntry(
                file_id=stable_id("file", rel), path=rel, sha256="0" * 64, size=0, kind="link",
                family_id=stable_id("family", rel),
            )
        )
    assign_volume_families(entries)
    return entries


def assign_volume_families(entries: list[FileEntry]) -> None:
    """Put every file of a Concordance volume (the folder above the DAT's folder) in one family."""
    volumes = sorted(
        {str(Path(e.path).parent.parent) for e in entries if e.kind == "dat" and e.depth == 0},
        key=len, reverse=True,
    )
    for e in entries:
        if e.depth:
            continue
        for vol in volumes:
            if vol == "." or e.path.startswith(vol + "/"):
                e.family_id = stable_id("family", "volume", vol)
                break


def assign_groups(entries: list[FileEntry], batch_size: int) -> list[dict[str, Any]]:
    """Pack families into groups of at least ``batch_size`` files (the last may be smaller)."""
    families: dict[str, list[FileEntry]] = {}
    for e in entries:
        families.setdefault(e.family_id, []).append(e)
    groups: list[dict[str, Any]] = []
    current: list[FileEntry] = []
    for family_id in sorted(families, key=lambda f: families[f][0].path):
        current.extend(families[family_id])
        if len(current) >= batch_size:
            groups.append(_group(len(groups), current))
            current = []
    if current:
        groups.append(_group(len(groups), current))
    index = {fid: g["group"] for g in groups for fid in g["file_ids"]}
    for e in entries:
        e.group = index[e.file_id]
    return groups


def _group(index: int, members: list[FileEntry]) -> dict[str, Any]:
    return {
        "group": index,
        "files": len(members),
        "bytes": sum(m.size for m in members),
        "file_ids": [m.file_id for m in members],
    }


def save_inventory(run: EvidenceRun, entries: list[FileEntry]) -> None:
    run.bucket.put_lines(FILES_KEY, [e.to_dict() for e in entries])


def load_inventory(run: EvidenceRun) -> list[FileEntry]:
    if not run.bucket.exists(FILES_KEY):
        return []
    return [FileEntry(**row) for row in run.bucket.get_lines(FILES_KEY)]
