"""Moving bytes between buckets and local folders: source staging and local artifact views.

Extraction reads and writes local files (the process pool, the extractors and ``LocalBucket``
all work on paths), so a worker brings a group's source files to a local folder first, and the
global phases read artifacts from a local folder. When a bucket already is a local folder it is
used in place; an ``s3://`` bucket is copied to a folder under the work dir whose name derives
from the bucket URL, so the same bucket lands at the same path on every machine.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from chrono.core.crashpoints import crash_point
from chrono.core.errors import TerminalError
from chrono.evidence.context import stable_id
from chrono.evidence.inventory import FileEntry, sha256_file
from chrono.storage.buckets import Bucket, open_bucket
from chrono.storage.local import TEMP_PREFIXES, LocalBucket


def split_object_url(url: str) -> tuple[str, str]:
    """``s3://b/inv/groups.ndjson`` -> (``s3://b/inv``, ``groups.ndjson``); same for folders."""
    head, sep, key = url.rstrip("/").rpartition("/")
    if not sep:
        return ".", key
    return head or "/", key


def local_root(bucket: Bucket) -> Path | None:
    """The folder behind ``bucket`` when it is a local one, else ``None``."""
    return bucket.root.resolve() if isinstance(bucket, LocalBucket) else None


def write_lines(bucket: Bucket, key: str, rows: Iterable[dict[str, Any]]) -> None:
    body = "".join(json.dumps(r, ensure_ascii=False, sort_keys=True) + "\n" for r in rows)
    bucket.put_bytes(key, body.encode("utf-8"))


def read_lines(bucket: Bucket, key: str) -> Iterator[dict[str, Any]]:
    for line in bucket.get_bytes(key).decode("utf-8").splitlines():
        if line.strip():
            yield json.loads(line)


def _s3_parts(bucket: Bucket, key: str) -> tuple[Any, str, str] | None:
    """(client, bucket name, full key) for an S3 bucket, so large objects stream to disk."""
    from chrono.storage.s3 import S3Bucket

    if not isinstance(bucket, S3Bucket):
        return None
    full = f"{bucket.prefix}/{key}" if bucket.prefix else key
    return bucket.client, bucket.bucket, full


def fetch_object(bucket: Bucket, key: str, target: Path) -> None:
    """Copy object ``key`` to file ``target`` atomically (a hard link for local buckets)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-")
    os.close(fd)
    try:
        root = local_root(bucket)
        s3 = _s3_parts(bucket, key)
        if root is not None:
            os.unlink(tmp)
            try:
                os.link(root / key, tmp)
            except OSError:  # another file system, or links not allowed: copy
                shutil.copyfile(root / key, tmp)
        elif s3 is not None:
            from chrono.storage.s3 import s3_error

            client, name, full = s3
            try:
                client.download_file(name, full, tmp)
            except Exception as exc:
                raise s3_error(exc, name, "download_file") from None
        else:
            Path(tmp).write_bytes(bucket.get_bytes(key))
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def publish_file(bucket: Bucket, key: str, source: Path) -> None:
    """Store local file ``source`` under ``key``; readers see all of it or nothing."""
    root = local_root(bucket)
    s3 = _s3_parts(bucket, key)
    if root is not None:
        target = LocalBucket(root).path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-")
        os.close(fd)
        try:
            os.unlink(tmp)
            try:
                os.link(source, tmp)
            except OSError:
                shutil.copyfile(source, tmp)
            crash_point("publish.replace")
            os.replace(tmp, target)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    elif s3 is not None:
        from chrono.storage.s3 import s3_error

        client, name, full = s3
        try:
            client.upload_file(str(source), name, full)
        except Exception as exc:
            raise s3_error(exc, name, "upload_file") from None
    else:
        bucket.put_bytes(key, source.read_bytes())


def local_keys(root: Path, prefix: str = "") -> list[str]:
    """Keys (relative POSIX paths) of the files under ``root/prefix``, temp files excluded."""
    start = root / prefix if prefix else root
    if not start.is_dir():
        return []
    keys = []
    for dirpath, _dirs, files in os.walk(start):
        for name in files:
            if not name.startswith(TEMP_PREFIXES):
                keys.append((Path(dirpath) / name).relative_to(root).as_posix())
    return sorted(keys)


class SourceStage:
    """A group's source files as local paths: the source folder itself, or copies of S3 objects
    under ``WORK_DIR/sources/<id of the source URL>`` with the same relative paths."""

    def __init__(self, url: str, *, endpoint_url: str | None, work_dir: str) -> None:
        self.url = url
        self.bucket = open_bucket(url, endpoint_url=endpoint_url)
        root = local_root(self.bucket)
        self.in_place = root is not None
        self.root = root if root is not None else (
            Path(work_dir) / "sources" / stable_id("source", url)
        ).resolve()

    @property
    def source_key(self) -> str | None:
        """The stable source name for copies (their folder is not the source)."""
        return None if self.in_place else self.url

    def fetch(self, entries: Iterable[FileEntry]) -> None:
        """Bring the files of ``entries`` here and check each against its scheduled sha256."""
        changed = 0
        for e in entries:
            if e.kind == "link" or e.depth:
                continue
            target = self.root / e.path
            if self.in_place:
                # Used where it lies: a size check is cheap, a second hash is not.
                if not target.is_file():
                    raise TerminalError("source_missing", "a scheduled file left the source")
                if target.stat().st_size != e.size:
                    changed += 1
                continue
            if target.is_file() and target.stat().st_size == e.size and (
                sha256_file(target) == e.sha256
            ):
                continue  # staged by an earlier attempt
            fetch_object(self.bucket, e.path, target)
            if sha256_file(target) != e.sha256:
                changed += 1
        if changed:
            raise TerminalError("source_changed", f"{changed} files changed since the schedule")

    def release(self, entries: Iterable[FileEntry]) -> None:
        """Delete staged copies (never the source itself)."""
        if self.in_place:
            return
        for e in entries:
            if not e.depth:
                (self.root / e.path).unlink(missing_ok=True)


class ArtifactView:
    """The artifact bucket as a local folder: the folder itself, or a mirror of an S3 bucket
    under ``WORK_DIR/artifacts/<id of the bucket URL>`` that is pulled before and pushed after."""

    def __init__(self, url: str, *, endpoint_url: str | None, work_dir: str) -> None:
        self.url = url
        self.bucket = open_bucket(url, endpoint_url=endpoint_url)
        root = local_root(self.bucket)
        self.mirrored = root is None
        self.root = root if root is not None else (
            Path(work_dir) / "artifacts" / stable_id("artifacts", url)
        ).resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        self._pulled: dict[str, float] = {}

    def pull(self, prefixes: Iterable[str], *, refresh: bool = False) -> int:
        """Copy remote keys under ``prefixes`` that the mirror lacks (all of them with
        ``refresh``: after an overwrite, content keys hold new versions); returns how many."""
        if not self.mirrored:
            return 0
        copied = 0
        for prefix in prefixes:
            for key in self.bucket.list(prefix):
                target = self.root / key
                if refresh or not target.is_file():
                    fetch_object(self.bucket, key, target)
                    copied += 1
        self._pulled = self._snapshot()
        return copied

    def ensure(self, key: str) -> bool:
        """Make ``key`` present locally when the bucket has it; whether it is present now."""
        target = self.root / key
        if target.is_file():
            return True
        if not self.mirrored or not self.bucket.exists(key):
            return False
        fetch_object(self.bucket, key, target)
        self._pulled[key] = target.stat().st_mtime
        return True

    def _snapshot(self) -> dict[str, float]:
        return {k: (self.root / k).stat().st_mtime for k in local_keys(self.root)}

    def push(self) -> int:
        """Upload what changed in the mirror since the pull (blobs before artifacts before the
        rest, so nothing points at bytes not yet there); returns how many keys."""
        if not self.mirrored:
            return 0
        now = self._snapshot()
        changed = [k for k, t in now.items() if self._pulled.get(k) != t
                   and not k.startswith("chrono.db")]
        order = {"blobs": 0, "artifacts": 1}
        for key in sorted(changed, key=lambda k: (order.get(k.split("/", 1)[0], 2), k)):
            publish_file(self.bucket, key, self.root / key)
        self._pulled = now
        return len(changed)
