"""S3 buckets and bucket creation against a real S3 endpoint over HTTP (moto's server)."""

from __future__ import annotations

import socket
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from chrono.core.errors import ConfigError, TerminalError, TransientError
from chrono.storage.buckets import (
    BucketSpec,
    LifecycleRule,
    create_buckets,
    open_bucket,
    plan_buckets,
)
from chrono.storage.s3 import KeyNotFound, S3Bucket, s3_client, s3_error


@pytest.fixture
def client(moto_endpoint: str) -> Any:
    return s3_client(moto_endpoint)


@pytest.fixture
def bucket_name(client: Any) -> Iterator[str]:
    name = f"chrono-test-{uuid.uuid4().hex[:12]}"
    client.create_bucket(Bucket=name)
    yield name


def _fresh_name() -> str:
    return f"chrono-new-{uuid.uuid4().hex[:12]}"


def test_put_get_exists_delete_under_a_prefix(
    moto_endpoint: str, client: Any, bucket_name: str
) -> None:
    b = open_bucket(f"s3://{bucket_name}/sensors/", endpoint_url=moto_endpoint)
    assert b.url == f"s3://{bucket_name}/sensors"
    assert not b.exists("raw/a.json")
    b.put_bytes("raw/a.json", b'{"a": 1}')
    b.put_bytes("raw/b.json", b"")
    b.put_bytes("error/c.json", b"c")
    assert b.exists("raw/a.json")
    assert b.get_bytes("raw/a.json") == b'{"a": 1}'
    assert b.get_bytes("raw/b.json") == b""
    stored = [o["Key"] for o in client.list_objects_v2(Bucket=bucket_name)["Contents"]]
    assert sorted(stored) == ["sensors/error/c.json", "sensors/raw/a.json", "sensors/raw/b.json"]
    assert b.list() == ["error/c.json", "raw/a.json", "raw/b.json"]
    assert b.list("raw/") == ["raw/a.json", "raw/b.json"]
    assert b.list("raw/b") == ["raw/b.json"]
    b.delete("raw/a.json")
    b.delete("raw/a.json")  # deleting a missing key is fine
    assert not b.exists("raw/a.json")
    assert b.list("raw/") == ["raw/b.json"]
    assert b.clean_temp() == 0
    # A sibling prefix in the same S3 bucket is a different logical bucket.
    assert open_bucket(f"s3://{bucket_name}/other", endpoint_url=moto_endpoint).list() == []


def test_missing_key_is_key_not_found(moto_endpoint: str, bucket_name: str) -> None:
    b = S3Bucket(bucket_name, endpoint_url=moto_endpoint)
    with pytest.raises(KeyNotFound) as info:
        b.get_bytes("nope/secret-name.json")
    assert isinstance(info.value, FileNotFoundError) and isinstance(info.value, TerminalError)
    assert "secret-name" not in str(info.value)


def test_keys_cannot_escape(moto_endpoint: str, bucket_name: str) -> None:
    b = S3Bucket(bucket_name, "sensors", endpoint_url=moto_endpoint)
    for key in ("../x", "/abs", "a/./b", ""):
        with pytest.raises(ValueError):
            b.put_bytes(key, b"x")
    with pytest.raises(ValueError):
        b.list("../")


def test_list_reads_every_page(moto_endpoint: str, client: Any, bucket_name: str) -> None:
    b = S3Bucket(bucket_name, "many", endpoint_url=moto_endpoint)
    keys = [f"k/{i:05d}" for i in range(1100)]
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(lambda k: b.put_bytes(k, b"."), keys))
    b.put_bytes("z/.tmp-leftover", b"")  # temp names never count as keys
    assert b.list() == [*keys, "z/.tmp-leftover"][:-1]
    assert b.list("k/0105") == [f"k/{i:05d}" for i in range(1050, 1060)]
    assert client.list_objects_v2(Bucket=bucket_name, Prefix="many/")["IsTruncated"]


def test_missing_bucket_is_terminal_and_leaks_nothing(moto_endpoint: str) -> None:
    name = _fresh_name()
    b = S3Bucket(name, "p", endpoint_url=moto_endpoint)
    payload = b"patient-4711 temperature 39.2"
    calls = [
        lambda: b.put_bytes("people/jane.doe@example.com.json", payload),
        lambda: b.get_bytes("people/jane.doe@example.com.json"),
        lambda: b.exists("people/jane.doe@example.com.json"),
        lambda: b.list("people/"),
    ]
    for call in calls:
        with pytest.raises(TerminalError) as info:
            call()
        err = info.value
        assert not err.retryable
        assert err.code == "s3_no_such_bucket"
        text = str(err)
        assert name in text and "NoSuchBucket" in text
        assert "jane" not in text and "patient" not in text and "people" not in text
        assert err.__cause__ is None and err.__suppress_context__


def test_unreachable_endpoint_is_transient() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    client = boto3.client(
        "s3", endpoint_url=f"http://127.0.0.1:{port}", region_name="us-east-1",
        aws_access_key_id="testing", aws_secret_access_key="testing",
        config=Config(retries={"max_attempts": 1}, connect_timeout=1),
    )
    b = S3Bucket("lake", client=client)
    with pytest.raises(TransientError) as info:
        b.put_bytes("k", b"data")
    assert info.value.retryable and info.value.code == "s3_connection"


@pytest.mark.parametrize(
    ("code", "status", "kind", "chrono_code"),
    [
        ("SlowDown", 503, TransientError, "s3_slow_down"),
        ("InternalError", 500, TransientError, "s3_internal_error"),
        ("Throttling", 400, TransientError, "s3_throttling"),
        ("AccessDenied", 403, TerminalError, "s3_access_denied"),
        ("403", 403, TerminalError, "s3_access_denied"),
        ("NoSuchBucket", 404, TerminalError, "s3_no_such_bucket"),
    ],
)
def test_error_codes_map_to_retryable_or_terminal(
    code: str, status: int, kind: type[Exception], chrono_code: str
) -> None:
    exc = ClientError(
        {"Error": {"Code": code, "Message": "secret key people/jane"},
         "ResponseMetadata": {"HTTPStatusCode": status}},
        "PutObject",
    )
    err = s3_error(exc, "lake", "put_object")
    assert type(err) is kind
    assert err.code == chrono_code
    assert "jane" not in str(err) and "lake" in str(err)


def _specs(shared: str, kms_bucket: str) -> dict[str, BucketSpec]:
    return {
        "raw": BucketSpec(
            url=f"s3://{shared}/raw",
            lifecycle=[
                LifecycleRule(id="raw-to-ia", transition_days=30, expire_days=365),
                LifecycleRule(id="raw-old-versions", noncurrent_expire_days=7),
            ],
        ),
        "error": BucketSpec(
            url=f"s3://{shared}/error",
            lifecycle=[LifecycleRule(id="error-expire", prefix="2024/", expire_days=90)],
        ),
        "archival": BucketSpec(url=f"s3://{kms_bucket}", encryption="aws:kms",
                               kms_key_id="alias/chrono-archive"),
    }


def test_create_buckets_configures_and_is_idempotent(moto_endpoint: str, client: Any) -> None:
    shared, kms_bucket = _fresh_name(), _fresh_name()
    specs = _specs(shared, kms_bucket)

    # Actions come bucket by bucket (in the order of the random names), steps in order within.
    first = create_buckets(specs, endpoint_url=moto_endpoint)
    by_bucket: dict[str, list[str]] = {}
    for a in first:
        by_bucket.setdefault(a.bucket, []).append(a.action)
    assert by_bucket == {
        "archival": ["create_bucket", "put_versioning", "put_encryption"],
        "error,raw": ["create_bucket", "put_versioning", "put_encryption", "put_lifecycle"],
    }
    urls = {a.bucket: a.url for a in first}
    assert urls == {"archival": f"s3://{kms_bucket}", "error,raw": f"s3://{shared}"}

    second = create_buckets(specs, endpoint_url=moto_endpoint)
    assert sorted((a.bucket, a.action) for a in second) == [
        ("archival", "exists"), ("error,raw", "exists"),
    ]
    assert plan_buckets(specs, endpoint_url=moto_endpoint) == second

    for name in (shared, kms_bucket):
        assert client.get_bucket_versioning(Bucket=name)["Status"] == "Enabled"
    sse = client.get_bucket_encryption(Bucket=shared)["ServerSideEncryptionConfiguration"]
    assert sse["Rules"][0]["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    sse = client.get_bucket_encryption(Bucket=kms_bucket)["ServerSideEncryptionConfiguration"]
    assert sse["Rules"][0]["ApplyServerSideEncryptionByDefault"] == {
        "SSEAlgorithm": "aws:kms", "KMSMasterKeyID": "alias/chrono-archive",
    }
    rules = {r["ID"]: r for r in client.get_bucket_lifecycle_configuration(Bucket=shared)["Rules"]}
    assert set(rules) == {"raw-to-ia", "raw-old-versions", "error-expire"}
    assert rules["raw-to-ia"]["Filter"]["Prefix"] == "raw/"
    assert rules["raw-to-ia"]["Transitions"][0]["Days"] == 30
    assert rules["raw-to-ia"]["Transitions"][0]["StorageClass"] == "STANDARD_IA"
    assert rules["raw-to-ia"]["Expiration"]["Days"] == 365
    assert rules["raw-old-versions"]["NoncurrentVersionExpiration"]["NoncurrentDays"] == 7
    assert rules["error-expire"]["Filter"]["Prefix"] == "error/2024/"
    assert rules["error-expire"]["Expiration"]["Days"] == 90
    assert all(r["Status"] == "Enabled" for r in rules.values())
    assert "LifecycleConfiguration" not in client.get_bucket_lifecycle_configuration(
        Bucket=shared
    )  # sanity: the read-back above is the real configuration, not our request echoed


def test_changed_settings_are_applied_and_foreign_rules_kept(
    moto_endpoint: str, client: Any
) -> None:
    name = _fresh_name()
    client.create_bucket(Bucket=name)
    client.put_bucket_lifecycle_configuration(Bucket=name, LifecycleConfiguration={"Rules": [
        {"ID": "someone-elses", "Filter": {"Prefix": "logs/"}, "Status": "Enabled",
         "Expiration": {"Days": 3}},
    ]})
    spec = {"aggregated": BucketSpec(
        url=f"s3://{name}/agg", lifecycle=[LifecycleRule(id="agg-expire", expire_days=30)],
    )}
    actions = [a.action for a in create_buckets(spec, endpoint_url=moto_endpoint)]
    assert actions[0] == "exists" and "put_versioning" in actions and "put_lifecycle" in actions
    ids = {r["ID"] for r in client.get_bucket_lifecycle_configuration(Bucket=name)["Rules"]}
    assert ids == {"someone-elses", "agg-expire"}

    spec["aggregated"] = BucketSpec(
        url=f"s3://{name}/agg", versioning=False,
        lifecycle=[LifecycleRule(id="agg-expire", expire_days=60)],
    )
    changed = create_buckets(spec, endpoint_url=moto_endpoint)
    assert [(a.action, a.detail) for a in changed if a.action != "exists"] == [
        ("put_versioning", "status=Suspended"), ("put_lifecycle", "rules=agg-expire"),
    ]
    assert client.get_bucket_versioning(Bucket=name)["Status"] == "Suspended"
    rules = {r["ID"]: r for r in client.get_bucket_lifecycle_configuration(Bucket=name)["Rules"]}
    assert rules["agg-expire"]["Expiration"]["Days"] == 60
    assert "someone-elses" in rules


def test_dry_run_creates_nothing(moto_endpoint: str, client: Any) -> None:
    shared, kms_bucket = _fresh_name(), _fresh_name()
    specs = _specs(shared, kms_bucket)
    planned = create_buckets(specs, endpoint_url=moto_endpoint, dry_run=True)
    assert planned == plan_buckets(specs, endpoint_url=moto_endpoint)
    assert {a.action for a in planned} >= {"create_bucket", "put_lifecycle"}
    existing = {b["Name"] for b in client.list_buckets()["Buckets"]}
    assert shared not in existing and kms_bucket not in existing


def test_shared_bucket_must_agree(moto_endpoint: str) -> None:
    name = _fresh_name()
    specs = {
        "raw": BucketSpec(url=f"s3://{name}/raw"),
        "error": BucketSpec(url=f"s3://{name}/error", versioning=False),
    }
    with pytest.raises(ConfigError) as info:
        plan_buckets(specs, endpoint_url=moto_endpoint)
    assert info.value.code == "bucket_conflict" and "versioning" in info.value.detail
    same_rule = [LifecycleRule(id="expire", expire_days=5)]
    specs = {
        "raw": BucketSpec(url=f"s3://{name}/raw", lifecycle=same_rule),
        "error": BucketSpec(url=f"s3://{name}/error", lifecycle=same_rule),
    }
    with pytest.raises(ConfigError, match="expire"):
        plan_buckets(specs, endpoint_url=moto_endpoint)


def test_mixed_local_and_s3_plan(moto_endpoint: str, tmp_path: Any) -> None:
    name = _fresh_name()
    specs = {
        "raw": BucketSpec(url=str(tmp_path / "raw")),
        "archival": BucketSpec(url=f"s3://{name}", encryption=None),
    }
    actions = create_buckets(specs, endpoint_url=moto_endpoint)
    assert [(a.bucket, a.action) for a in actions] == [
        ("raw", "create_folder"), ("archival", "create_bucket"), ("archival", "put_versioning"),
    ]
    assert (tmp_path / "raw").is_dir()
    b = open_bucket(f"s3://{name}", endpoint_url=moto_endpoint)
    b.put_bytes("x", b"1")
    assert b.list() == ["x"]


def test_other_regions_get_a_location_constraint(
    moto_endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AWS_REGION", raising=False)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    name = _fresh_name()
    specs = {"raw": BucketSpec(url=f"s3://{name}", encryption=None)}
    first = create_buckets(specs, endpoint_url=moto_endpoint)
    assert (first[0].action, first[0].detail) == ("create_bucket", "region=eu-west-1")
    location = s3_client(moto_endpoint).get_bucket_location(Bucket=name)["LocationConstraint"]
    assert location == "eu-west-1"
    assert [a.action for a in create_buckets(specs, endpoint_url=moto_endpoint)] == ["exists"]
