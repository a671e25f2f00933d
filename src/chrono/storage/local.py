"""Local-folder buckets with atomic writes: data goes to a unique temp name, then is renamed.

A reader therefore sees either no object or the whole object, never a partial one, and a crash
leaves at most a ``.tmp-*`` file that :meth:`LocalBucket.clean_temp` removes on the next run.
"""

from __future__ import annotations

import builtins
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from chrono.core.crashpoints import crash_point

TEMP_PREFIXES = (".tmp-", ".spool-")
"""File-name prefixes of in-flight writes; never listed as keys, removed by ``clean_temp``."""


class LocalBucket:
    """A bucket is a folder; keys are POSIX relative paths inside it."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        # The Bucket protocol's ``url``: for a folder, its path as given.
        self.url = str(self.root)

    def path(self, key: str) -> Path:
        target = (self.root / key).resolve()
        root = self.root.resolve()
        if target != root and root not in target.parents:
            raise ValueError("key escapes the bucket")
        return target

    def exists(self, key: str) -> bool:
        return self.path(key).is_file()

    def put_bytes(self, key: str, data: bytes) -> None:
        target = self.path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(data)
                out.flush()
                os.fsync(out.fileno())
            crash_point("bucket.replace")
            os.replace(tmp, target)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise

    def get_bytes(self, key: str) -> bytes:
        return self.path(key).read_bytes()

    def put_json(self, key: str, obj: Any) -> None:
        self.put_bytes(key, json.dumps(obj, ensure_ascii=False, sort_keys=True).encode("utf-8"))

    def get_json(self, key: str) -> Any:
        return json.loads(self.get_bytes(key))

    def put_lines(self, key: str, rows: list[dict[str, Any]]) -> None:
        body = "".join(json.dumps(r, ensure_ascii=False, sort_keys=True) + "\n" for r in rows)
        self.put_bytes(key, body.encode("utf-8"))

    def get_lines(self, key: str) -> Iterator[dict[str, Any]]:
        with self.path(key).open("r", encoding="utf-8") as fh:
            for line in fh:
                if line.strip():
                    yield json.loads(line)

    def delete(self, key: str) -> None:
        p = self.path(key)
        if p.exists():
            p.unlink()

    def list(self, prefix: str = "") -> builtins.list[str]:
        """Keys (POSIX, relative to the root) starting with ``prefix``, sorted; temp files excluded.

        ``prefix`` is a plain string prefix, as in S3 (``"raw/2024-"`` matches ``raw/2024-01/x``).
        Only the folder named by the prefix up to its last ``/`` is walked, not the whole bucket.
        A prefix starting with ``/`` or holding a ``.`` or ``..`` segment raises ``ValueError``.
        """
        if prefix.startswith("/") or any(part in (".", "..") for part in prefix.split("/")):
            raise ValueError("prefix escapes the bucket")
        base_dir, _, _ = prefix.rpartition("/")
        start = self.path(base_dir) if base_dir else self.root.resolve()
        if not start.is_dir():
            return []
        root = self.root.resolve()
        keys = []
        for dirpath, _dirs, files in os.walk(start):
            rel_dir = Path(dirpath).relative_to(root).as_posix()
            for name in files:
                if name.startswith(TEMP_PREFIXES):
                    continue
                key = name if rel_dir == "." else f"{rel_dir}/{name}"
                if key.startswith(prefix):
                    keys.append(key)
        keys.sort()
        return keys

    def clean_temp(self) -> int:
        """Remove temp files left by a crashed writer; returns how many."""
        removed = 0
        if not self.root.is_dir():
            return 0
        for dirpath, _dirs, files in os.walk(self.root):
            for name in files:
                if name.startswith(TEMP_PREFIXES):
                    os.unlink(os.path.join(dirpath, name))
                    removed += 1
        return removed
