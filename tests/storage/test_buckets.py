"""The Bucket protocol over local folders, bucket URLs, bucket specs and local bucket plans."""

from __future__ import annotations

import tempfile
import threading
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from chrono.core.errors import ConfigError
from chrono.storage.buckets import (
    Bucket,
    BucketAction,
    BucketSpec,
    LifecycleRule,
    create_buckets,
    open_bucket,
    plan_buckets,
)
from chrono.storage.local import LocalBucket
from chrono.storage.s3 import S3Bucket


def test_open_bucket_maps_urls_to_stores(tmp_path: Path) -> None:
    plain = open_bucket(str(tmp_path / "raw"))
    assert isinstance(plain, LocalBucket)
    assert plain.url == str(tmp_path / "raw")
    as_file_url = open_bucket(f"file://{tmp_path}/error")
    assert isinstance(as_file_url, LocalBucket)
    assert as_file_url.url == str(tmp_path / "error")
    s3 = open_bucket("s3://lake/sensors/raw/", endpoint_url="http://127.0.0.1:9")
    assert isinstance(s3, S3Bucket)
    assert (s3.bucket, s3.prefix, s3.url) == ("lake", "sensors/raw", "s3://lake/sensors/raw")
    assert open_bucket("s3://lake").url == "s3://lake"
    for bucket in (plain, as_file_url, s3):
        assert isinstance(bucket, Bucket)


@pytest.mark.parametrize(
    ("url", "code"),
    [
        ("gs://lake/raw", "bucket_url_unsupported"),
        ("s3:///raw", "bucket_url_invalid"),
        ("file://otherhost/data", "bucket_url_invalid"),
        ("  ", "bucket_url_invalid"),
    ],
)
def test_bad_urls_are_config_errors(url: str, code: str) -> None:
    with pytest.raises(ConfigError) as info:
        open_bucket(url)
    assert info.value.code == code


def test_local_list_is_sorted_relative_and_skips_temp_files(tmp_path: Path) -> None:
    b = open_bucket(str(tmp_path / "bucket"))
    assert b.list() == []  # the folder does not exist yet
    for key in ("raw/2024-01-02/b.json", "raw/2024-01-01/a.json", "error/x.json", "top.json"):
        b.put_bytes(key, b"{}")
    (tmp_path / "bucket" / "raw" / ".tmp-abc").write_bytes(b"partial")
    (tmp_path / "bucket" / ".spool-1").write_bytes(b"partial")
    assert b.list() == [
        "error/x.json", "raw/2024-01-01/a.json", "raw/2024-01-02/b.json", "top.json",
    ]
    assert b.list("raw/") == ["raw/2024-01-01/a.json", "raw/2024-01-02/b.json"]
    assert b.list("raw/2024-01-01") == ["raw/2024-01-01/a.json"]  # a string prefix, as in S3
    assert b.list("ra") == ["raw/2024-01-01/a.json", "raw/2024-01-02/b.json"]
    assert b.list("nothing/here/") == []
    assert b.clean_temp() == 2
    assert b.list() == [
        "error/x.json", "raw/2024-01-01/a.json", "raw/2024-01-02/b.json", "top.json",
    ]


_segment = st.sampled_from(["a", "b", "ab", "b.json"])
_key = st.lists(_segment, min_size=1, max_size=3).map("/".join)


@settings(max_examples=40, deadline=None)
@given(keys=st.sets(_key, max_size=8), prefix=st.text(alphabet="ab/.json", max_size=5))
def test_local_list_equals_prefix_filter(keys: set[str], prefix: str) -> None:
    # A key that is also a folder of another key cannot exist on a file system; keep leaves.
    leaves = {k for k in keys if not any(o.startswith(k + "/") for o in keys)}
    with tempfile.TemporaryDirectory() as root:
        b = LocalBucket(Path(root))
        for key in leaves:
            b.put_bytes(key, b"x")
        try:
            listed = b.list(prefix)
        except ValueError:
            assert prefix.startswith("/") or {".", ".."} & set(prefix.split("/"))
            return
        assert listed == sorted(k for k in leaves if k.startswith(prefix))


def test_local_keys_and_prefixes_cannot_escape(tmp_path: Path) -> None:
    b = open_bucket(str(tmp_path / "bucket"))
    for key in ("../outside.txt", "a/../../outside.txt", "/etc/chrono-outside"):
        with pytest.raises(ValueError):
            b.put_bytes(key, b"x")
    with pytest.raises(ValueError):
        b.list("../")
    assert not (tmp_path / "outside.txt").exists()


def test_local_put_is_all_or_nothing(tmp_path: Path) -> None:
    b = LocalBucket(tmp_path)
    b.put_bytes("k.bin", b"old")
    with pytest.raises(TypeError):
        b.put_bytes("k.bin", "not bytes")  # type: ignore[arg-type]  # fails mid-write
    assert b.get_bytes("k.bin") == b"old"
    assert b.list() == ["k.bin"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".tmp-")]


def test_local_readers_never_see_partial_objects(tmp_path: Path) -> None:
    b = LocalBucket(tmp_path)
    versions = [bytes([i]) * 2_000_000 for i in range(2)]
    b.put_bytes("big.bin", versions[0])
    seen: list[bool] = []
    done = threading.Event()

    def read() -> None:
        while not done.is_set():
            seen.append(b.get_bytes("big.bin") in versions)

    reader = threading.Thread(target=read)
    reader.start()
    for i in range(20):
        b.put_bytes("big.bin", versions[i % 2])
    done.set()
    reader.join()
    assert seen and all(seen)


def test_missing_local_key_is_file_not_found(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        LocalBucket(tmp_path).get_bytes("missing.json")
    LocalBucket(tmp_path).delete("missing.json")  # deleting nothing is fine


def test_spec_validation() -> None:
    with pytest.raises(ValidationError, match="does nothing"):
        LifecycleRule(id="noop")
    with pytest.raises(ValidationError, match="30 days"):
        LifecycleRule(id="early", transition_days=7)
    with pytest.raises(ValidationError, match="storage_class"):
        LifecycleRule(id="odd", transition_days=40, storage_class="TAPE")
    with pytest.raises(ValidationError, match="later than"):
        LifecycleRule(id="order", transition_days=60, expire_days=30)
    LifecycleRule(id="glacier", transition_days=0, storage_class="GLACIER", expire_days=365)
    with pytest.raises(ValidationError, match="kms_key_id"):
        BucketSpec(url="s3://lake", kms_key_id="alias/chrono")
    with pytest.raises(ValidationError, match="unique"):
        BucketSpec(url="s3://lake", lifecycle=[LifecycleRule(id="a", expire_days=1)] * 2)
    with pytest.raises(ValidationError):
        BucketSpec(url="gs://lake")
    with pytest.raises(ValidationError):
        BucketSpec(url="s3://lake", versionning=True)  # type: ignore[call-arg]  # extra=forbid
    spec = BucketSpec(url="s3://lake")
    assert (spec.versioning, spec.encryption, spec.lifecycle) == (True, "AES256", [])


@pytest.mark.parametrize("model", [LifecycleRule, BucketSpec])
def test_every_field_has_a_docstring(model: type[BaseModel]) -> None:
    assert all(field.description for field in model.model_fields.values())


def test_local_plan_create_and_rerun(tmp_path: Path) -> None:
    specs = {
        "raw": BucketSpec(url=str(tmp_path / "data" / "raw")),
        "error": BucketSpec(url=f"file://{tmp_path}/data/error"),
    }
    plan = plan_buckets(specs)
    assert [(a.bucket, a.action) for a in plan] == [
        ("error", "create_folder"), ("raw", "create_folder"),
    ]
    assert create_buckets(specs, dry_run=True) == plan
    assert not (tmp_path / "data").exists()  # planning touched nothing

    assert create_buckets(specs) == plan
    assert (tmp_path / "data" / "raw").is_dir() and (tmp_path / "data" / "error").is_dir()
    again = create_buckets(specs)
    assert again == [
        BucketAction("error", f"file://{tmp_path}/data/error", "exists", "folder"),
        BucketAction("raw", str(tmp_path / "data" / "raw"), "exists", "folder"),
    ]


def test_local_bucket_over_a_file_is_a_config_error(tmp_path: Path) -> None:
    (tmp_path / "raw").write_text("not a folder")
    with pytest.raises(ConfigError) as info:
        plan_buckets({"raw": BucketSpec(url=str(tmp_path / "raw"))})
    assert info.value.code == "bucket_not_a_folder"
