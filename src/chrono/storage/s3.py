"""S3 buckets through boto3: the :class:`~chrono.storage.buckets.Bucket` protocol and bucket setup.

A put is atomic by nature (S3 shows a new object only once it is complete), so there are no temp
objects. Keys live under the URL's prefix: ``s3://lake/sensors`` stores key ``raw/x`` as
``sensors/raw/x``. Every boto3 failure becomes a :class:`TransientError` (throttling, 5xx, lost
connection: retry) or a :class:`TerminalError` (missing bucket, access denied: fix the config) whose
message holds the bucket name, the AWS error code and the operation, never keys or data.

The region comes from ``AWS_REGION`` / ``AWS_DEFAULT_REGION`` (default ``us-east-1``); the endpoint
from ``endpoint_url`` or boto3's own ``AWS_ENDPOINT_URL_S3`` / ``AWS_ENDPOINT_URL``.
"""

from __future__ import annotations

import builtins
import os
import re
from collections.abc import Callable
from functools import partial
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, HTTPClientError
from botocore.exceptions import ConnectionError as BotoConnectionError

from chrono.core.errors import ChronoError, ConfigError, TerminalError, TransientError
from chrono.storage.buckets import BucketAction, BucketSpec, LifecycleRule, _Step
from chrono.storage.local import TEMP_PREFIXES

DEFAULT_REGION = "us-east-1"

_TRANSIENT_CODES = frozenset({
    "Throttling", "ThrottlingException", "ThrottledException", "SlowDown", "RequestLimitExceeded",
    "TooManyRequestsException", "RequestTimeout", "RequestTimeoutException", "InternalError",
    "ServiceUnavailable", "OperationAborted",
})
"""AWS error codes that a retry may cure (besides any HTTP 5xx or 429)."""

# HEAD responses have no body, so the error code is the bare HTTP status.
_STATUS_CODES = {"403": "AccessDenied", "404": "NotFound"}


class KeyNotFound(TerminalError, FileNotFoundError):
    """No object under the key; a :class:`FileNotFoundError` too, as for local buckets."""

    default_code = "key_not_found"


def s3_region() -> str:
    """The AWS region from the environment, ``us-east-1`` when unset."""
    return os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or DEFAULT_REGION


def s3_client(endpoint_url: str | None = None) -> Any:
    """A boto3 S3 client with bounded timeouts and retries (path-style for custom endpoints)."""
    options: dict[str, Any] = {
        "retries": {"max_attempts": 3, "mode": "standard"},
        "connect_timeout": 5,
        "read_timeout": 60,
    }
    if endpoint_url:
        # Test servers and S3-compatible stores rarely resolve bucket.host names.
        options["s3"] = {"addressing_style": "path"}
    return boto3.client(
        "s3", endpoint_url=endpoint_url, region_name=s3_region(), config=Config(**options)
    )


def _snake(code: str) -> str:
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", code).lower()


def s3_error(exc: Exception, bucket: str, operation: str) -> ChronoError:
    """Translate a boto3/botocore failure into a Chrono error naming bucket, code and operation."""
    if isinstance(exc, ClientError):
        raw_code = str(exc.response.get("Error", {}).get("Code") or "Unknown")
        # The code comes from the server: keep it a short token.
        aws_code = re.sub(r"[^A-Za-z0-9.]", "", raw_code)[:64] or "Unknown"
        aws_code = _STATUS_CODES.get(aws_code, aws_code)
        if aws_code == "NotFound" and operation == "head_bucket":
            aws_code = "NoSuchBucket"
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
        detail = f"bucket={bucket} aws_code={aws_code} operation={operation}"
        if aws_code in _TRANSIENT_CODES or status >= 500 or status == 429:
            return TransientError(f"s3_{_snake(aws_code)}", detail)
        if aws_code == "NoSuchKey":
            return KeyNotFound("s3_no_such_key", detail)
        return TerminalError(f"s3_{_snake(aws_code)}", detail)
    detail = f"bucket={bucket} error={type(exc).__name__} operation={operation}"
    if isinstance(exc, BotoConnectionError | HTTPClientError):
        return TransientError("s3_connection", detail)
    return TerminalError("s3_client", detail)


def _call(bucket: str, method: Callable[..., Any], **kwargs: Any) -> Any:
    """Run one client call, translating its failures (the cause is dropped: it may carry keys)."""
    try:
        return method(**kwargs)
    except (ClientError, BotoCoreError) as exc:
        raise s3_error(exc, bucket, method.__name__) from None


def _aws_code(exc: ClientError) -> str:
    code = str(exc.response.get("Error", {}).get("Code") or "")
    return _STATUS_CODES.get(code, code)


def _check_key(key: str) -> None:
    """Keys are relative POSIX paths, as in a folder: no leading ``/``, no ``.`` or ``..``."""
    if not key:
        raise ValueError("empty key")
    if key.startswith("/") or any(part in (".", "..") for part in key.split("/")):
        raise ValueError("key escapes the bucket")


class S3Bucket:
    """An S3 bucket, or a prefix inside one, seen as a flat key space."""

    def __init__(
        self, bucket: str, prefix: str = "", *, endpoint_url: str | None = None,
        client: Any | None = None,
    ) -> None:
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.url = f"s3://{bucket}/{self.prefix}" if self.prefix else f"s3://{bucket}"
        self.client = client if client is not None else s3_client(endpoint_url)
        self._bucket_seen = False

    def _full(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def put_bytes(self, key: str, data: bytes) -> None:
        _check_key(key)
        _call(self.bucket, self.client.put_object, Bucket=self.bucket, Key=self._full(key),
              Body=data)
        self._bucket_seen = True

    def get_bytes(self, key: str) -> bytes:
        _check_key(key)
        try:
            response = self.client.get_object(Bucket=self.bucket, Key=self._full(key))
            body: bytes = response["Body"].read()
        except (ClientError, BotoCoreError) as exc:
            raise s3_error(exc, self.bucket, "get_object") from None
        self._bucket_seen = True
        return body

    def exists(self, key: str) -> bool:
        _check_key(key)
        try:
            self.client.head_object(Bucket=self.bucket, Key=self._full(key))
        except ClientError as exc:
            if _aws_code(exc) not in ("NotFound", "NoSuchKey"):
                raise s3_error(exc, self.bucket, "head_object") from None
            if not self._bucket_seen:
                # A 404 cannot tell a missing key from a missing bucket; ask once.
                _call(self.bucket, self.client.head_bucket, Bucket=self.bucket)
                self._bucket_seen = True
            return False
        except BotoCoreError as exc:
            raise s3_error(exc, self.bucket, "head_object") from None
        self._bucket_seen = True
        return True

    def delete(self, key: str) -> None:
        _check_key(key)
        _call(self.bucket, self.client.delete_object, Bucket=self.bucket, Key=self._full(key))

    def clean_temp(self) -> int:
        """Nothing to clean: S3 never shows a partial object, so there are no temp objects."""
        return 0

    def list(self, prefix: str = "") -> builtins.list[str]:
        """Keys under ``prefix`` relative to this bucket's prefix, sorted (all pages read)."""
        if prefix.startswith("/") or any(part in (".", "..") for part in prefix.split("/")):
            raise ValueError("prefix escapes the bucket")
        base = f"{self.prefix}/" if self.prefix else ""
        keys: builtins.list[str] = []
        paginator = self.client.get_paginator("list_objects_v2")
        try:
            for page in paginator.paginate(Bucket=self.bucket, Prefix=base + prefix):
                for item in page.get("Contents", []):
                    key = item["Key"][len(base):]
                    if not key.rpartition("/")[2].startswith(TEMP_PREFIXES):
                        keys.append(key)
        except (ClientError, BotoCoreError) as exc:
            raise s3_error(exc, self.bucket, "list_objects_v2") from None
        self._bucket_seen = True
        keys.sort()
        return keys


def plan_s3_bucket(
    client: Any, bucket: str, members: list[tuple[str, BucketSpec, str]]
) -> list[_Step]:
    """Steps that bring S3 bucket ``bucket`` to the state its logical buckets ask for.

    ``members`` holds (logical name, spec, key prefix) for every logical bucket stored in this S3
    bucket; they must agree on versioning and encryption, and their lifecycle rules are merged
    (each rule's prefix under its member's prefix). Only reads happen here; each step carries the
    call that would perform it, or ``None`` when the setting is already in place.
    """
    names = ",".join(name for name, _spec, _prefix in members)
    url = members[0][1].url if len(members) == 1 else f"s3://{bucket}"
    versioning = _agreed(bucket, members, "versioning", lambda s: s.versioning)
    encryption = _agreed(bucket, members, "encryption", lambda s: (s.encryption, s.kms_key_id))
    rules = _lifecycle_rules(bucket, members)

    def step(action: str, detail: str, apply: Callable[[], None] | None) -> _Step:
        return BucketAction(names, url, action, detail), apply

    region = str(client.meta.region_name or DEFAULT_REGION)
    exists = _bucket_exists(client, bucket)
    steps = [
        step("exists", "owned", None) if exists else
        step("create_bucket", f"region={region}", partial(_create_bucket, client, bucket, region))
    ]

    current_status = _versioning_status(client, bucket) if exists else None
    wanted_status = "Enabled" if versioning else (
        "Suspended" if current_status == "Enabled" else None
    )
    if wanted_status is not None and wanted_status != current_status:
        steps.append(step("put_versioning", f"status={wanted_status}", partial(
            _call, bucket, client.put_bucket_versioning, Bucket=bucket,
            VersioningConfiguration={"Status": wanted_status},
        )))

    algorithm, kms_key_id = encryption
    if algorithm is not None:
        wanted_sse: dict[str, str] = {"SSEAlgorithm": algorithm}
        if kms_key_id:
            wanted_sse["KMSMasterKeyID"] = kms_key_id
        if (_encryption(client, bucket) if exists else None) != wanted_sse:
            rule: dict[str, Any] = {"ApplyServerSideEncryptionByDefault": wanted_sse}
            if algorithm == "aws:kms":
                rule["BucketKeyEnabled"] = True  # fewer KMS calls, lower cost
            steps.append(step("put_encryption", f"algorithm={algorithm}", partial(
                _call, bucket, client.put_bucket_encryption, Bucket=bucket,
                ServerSideEncryptionConfiguration={"Rules": [rule]},
            )))

    if rules:
        current_rules = _lifecycle(client, bucket) if exists else []
        ours = {r["ID"] for r in rules}
        # Rules someone else put on the bucket stay; put_bucket_lifecycle replaces the whole set.
        wanted_rules = [r for r in current_rules if r.get("ID") not in ours] + rules
        if _canonical_rules(current_rules) != _canonical_rules(wanted_rules):
            steps.append(step("put_lifecycle", "rules=" + ",".join(sorted(ours)), partial(
                _call, bucket, client.put_bucket_lifecycle_configuration, Bucket=bucket,
                LifecycleConfiguration={"Rules": wanted_rules},
            )))
    return steps


def _agreed(
    bucket: str, members: list[tuple[str, BucketSpec, str]], key: str,
    value: Callable[[BucketSpec], Any],
) -> Any:
    values = {value(spec) for _name, spec, _prefix in members}
    if len(values) > 1:
        names = ", ".join(name for name, _spec, _prefix in members)
        raise ConfigError(
            "bucket_conflict",
            f"buckets {names} share S3 bucket {bucket} but set different '{key}'; "
            f"give buckets.<name>.{key} the same value for all of them",
        )
    return values.pop()


def _rule_prefix(member_prefix: str, rule_prefix: str) -> str:
    return f"{member_prefix}/{rule_prefix}" if member_prefix else rule_prefix


def _lifecycle_rule(member_prefix: str, rule: LifecycleRule) -> dict[str, Any]:
    out: dict[str, Any] = {
        "ID": rule.id,
        "Filter": {"Prefix": _rule_prefix(member_prefix, rule.prefix)},
        "Status": "Enabled",
    }
    if rule.transition_days is not None:
        out["Transitions"] = [{"Days": rule.transition_days, "StorageClass": rule.storage_class}]
    if rule.expire_days is not None:
        out["Expiration"] = {"Days": rule.expire_days}
    if rule.noncurrent_expire_days is not None:
        out["NoncurrentVersionExpiration"] = {"NoncurrentDays": rule.noncurrent_expire_days}
    return out


def _lifecycle_rules(
    bucket: str, members: list[tuple[str, BucketSpec, str]]
) -> list[dict[str, Any]]:
    rules: list[dict[str, Any]] = []
    seen: set[str] = set()
    for name, spec, prefix in members:
        for rule in spec.lifecycle:
            if rule.id in seen:
                raise ConfigError(
                    "bucket_conflict",
                    f"lifecycle rule id '{rule.id}' appears twice in S3 bucket {bucket}; "
                    f"rename it in buckets.{name}.lifecycle",
                )
            seen.add(rule.id)
            rules.append(_lifecycle_rule(prefix, rule))
    return rules


def _canonical_rules(rules: list[dict[str, Any]]) -> list[str]:
    """Rules reduced to what we set, so a read-back with extra defaults compares equal."""
    out = []
    for r in rules:
        prefix = (r.get("Filter") or {}).get("Prefix", r.get("Prefix", ""))
        transitions = sorted(
            (t.get("Days"), t.get("StorageClass")) for t in r.get("Transitions", [])
        )
        out.append(repr((
            r.get("ID"), r.get("Status"), prefix, transitions,
            (r.get("Expiration") or {}).get("Days"),
            (r.get("NoncurrentVersionExpiration") or {}).get("NoncurrentDays"),
        )))
    return sorted(out)


def _bucket_exists(client: Any, bucket: str) -> bool:
    try:
        client.head_bucket(Bucket=bucket)
    except ClientError as exc:
        if _aws_code(exc) in ("NotFound", "NoSuchBucket"):
            return False
        raise s3_error(exc, bucket, "head_bucket") from None
    except BotoCoreError as exc:
        raise s3_error(exc, bucket, "head_bucket") from None
    return True


def _create_bucket(client: Any, bucket: str, region: str) -> None:
    kwargs: dict[str, Any] = {"Bucket": bucket}
    if region != "us-east-1":  # us-east-1 rejects an explicit LocationConstraint
        kwargs["CreateBucketConfiguration"] = {"LocationConstraint": region}
    try:
        client.create_bucket(**kwargs)
    except ClientError as exc:
        if _aws_code(exc) == "BucketAlreadyOwnedByYou":
            return
        raise s3_error(exc, bucket, "create_bucket") from None
    except BotoCoreError as exc:
        raise s3_error(exc, bucket, "create_bucket") from None


def _versioning_status(client: Any, bucket: str) -> str | None:
    status = _call(bucket, client.get_bucket_versioning, Bucket=bucket).get("Status")
    return str(status) if status else None


def _encryption(client: Any, bucket: str) -> dict[str, str] | None:
    try:
        response = client.get_bucket_encryption(Bucket=bucket)
    except ClientError as exc:
        if _aws_code(exc) == "ServerSideEncryptionConfigurationNotFoundError":
            return None
        raise s3_error(exc, bucket, "get_bucket_encryption") from None
    except BotoCoreError as exc:
        raise s3_error(exc, bucket, "get_bucket_encryption") from None
    for rule in response.get("ServerSideEncryptionConfiguration", {}).get("Rules", []):
        sse = rule.get("ApplyServerSideEncryptionByDefault")
        if sse:
            return {k: str(v) for k, v in sse.items() if k in ("SSEAlgorithm", "KMSMasterKeyID")}
    return None


def _lifecycle(client: Any, bucket: str) -> list[dict[str, Any]]:
    try:
        response = client.get_bucket_lifecycle_configuration(Bucket=bucket)
    except ClientError as exc:
        if _aws_code(exc) == "NoSuchLifecycleConfiguration":
            return []
        raise s3_error(exc, bucket, "get_bucket_lifecycle_configuration") from None
    except BotoCoreError as exc:
        raise s3_error(exc, bucket, "get_bucket_lifecycle_configuration") from None
    return list(response.get("Rules", []))
