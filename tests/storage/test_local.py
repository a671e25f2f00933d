from pathlib import Path

import pytest

from chrono.storage.local import LocalBucket


def test_atomic_put_get_and_temp_cleanup(tmp_path: Path) -> None:
    b = LocalBucket(tmp_path)
    b.put_json("a/b.json", {"x": 1})
    assert b.get_json("a/b.json") == {"x": 1}
    b.put_lines("l.ndjson", [{"i": 1}, {"i": 2}])
    assert [r["i"] for r in b.get_lines("l.ndjson")] == [1, 2]
    (tmp_path / "a" / ".tmp-crashed").write_bytes(b"partial")
    assert b.clean_temp() == 1
    assert not (tmp_path / "a" / ".tmp-crashed").exists()


def test_keys_cannot_escape_the_bucket(tmp_path: Path) -> None:
    b = LocalBucket(tmp_path / "bucket")
    with pytest.raises(ValueError):
        b.put_bytes("../outside.txt", b"x")
    assert not (tmp_path / "outside.txt").exists()
