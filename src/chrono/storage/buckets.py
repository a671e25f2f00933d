"""Named buckets behind one protocol (local folders or S3), and the plans that create them.

A pipeline writes through :class:`Bucket` and never knows which store is behind it:
:func:`open_bucket` maps ``s3://bucket[/prefix]`` to :class:`~chrono.storage.s3.S3Bucket` and a
plain path or ``file://`` URL to :class:`~chrono.storage.local.LocalBucket`.

:func:`plan_buckets` says what :func:`create_buckets` would do (it only reads); ``create_buckets``
is idempotent: a second run finds everything in place and reports ``exists`` only. Local buckets
are folders (``mkdir -p``); S3 buckets get versioning, default encryption and lifecycle rules.
"""

from __future__ import annotations

import builtins
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Literal, Protocol, runtime_checkable
from urllib.parse import unquote, urlsplit

from pydantic import Field, model_validator

from chrono.core.config import StrictModel
from chrono.core.errors import ConfigError
from chrono.core.logging import log_event
from chrono.storage.local import LocalBucket


@runtime_checkable
class Bucket(Protocol):
    """A flat key space of byte objects; keys are relative POSIX paths (``raw/2024-01-01/x``)."""

    url: str

    def put_bytes(self, key: str, data: bytes) -> None:
        """Store ``data`` under ``key`` atomically: readers see all of it or nothing."""
        ...

    def get_bytes(self, key: str) -> bytes:
        """The object's bytes; a missing key raises :class:`FileNotFoundError`."""
        ...

    def exists(self, key: str) -> bool:
        """Whether an object is stored under ``key``."""
        ...

    def delete(self, key: str) -> None:
        """Remove ``key``; deleting a missing key is not an error."""
        ...

    def clean_temp(self) -> int:
        """Remove leftovers of interrupted writes; returns how many."""
        ...

    def list(self, prefix: str = "") -> builtins.list[str]:
        """Keys starting with ``prefix`` (a string prefix), sorted; temp files excluded."""
        ...


_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


def open_bucket(url: str, *, endpoint_url: str | None = None) -> Bucket:
    """The bucket at ``url``: ``s3://bucket[/prefix]``, ``file:///path`` or a plain folder path.

    ``endpoint_url`` points S3 at another endpoint (moto, MinIO); unset, boto3's own settings
    (``AWS_ENDPOINT_URL_S3``, ``AWS_ENDPOINT_URL``) apply.
    """
    kind, location, prefix = _parse_url(url)
    if kind == "s3":
        from chrono.storage.s3 import S3Bucket  # boto3 is imported only when S3 is used

        return S3Bucket(location, prefix, endpoint_url=endpoint_url)
    return LocalBucket(Path(location))


def _parse_url(url: str) -> tuple[Literal["s3", "local"], str, str]:
    """Split a bucket URL into (kind, bucket name or folder, key prefix)."""
    if not _SCHEME.match(url):
        if not url.strip():
            raise ConfigError("bucket_url_invalid", "bucket url is empty; give a folder or s3://")
        return "local", str(Path(url).expanduser()), ""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme == "s3":
        if not parts.netloc:
            raise ConfigError(
                "bucket_url_invalid", "s3 bucket url has no bucket name; write s3://BUCKET[/prefix]"
            )
        return "s3", parts.netloc, parts.path.strip("/")
    if scheme == "file":
        if parts.netloc not in ("", "localhost"):
            raise ConfigError(
                "bucket_url_invalid", "file:// bucket urls must be local; write file:///abs/path"
            )
        return "local", unquote(parts.path), ""
    raise ConfigError(
        "bucket_url_unsupported",
        f"bucket url scheme '{scheme}' is not supported; use s3://, file:// or a folder path",
    )


S3_STORAGE_CLASSES = (
    "STANDARD_IA", "ONEZONE_IA", "INTELLIGENT_TIERING", "GLACIER_IR", "GLACIER", "DEEP_ARCHIVE",
)
"""Storage classes a lifecycle rule may transition objects to."""


class LifecycleRule(StrictModel):
    """One S3 lifecycle rule: move objects to a cheaper class, then expire them."""

    id: str
    """Rule id, unique within the S3 bucket (several logical buckets may share one)."""
    prefix: str = ""
    """Key prefix the rule applies to, relative to the bucket URL's prefix; empty means all keys."""
    transition_days: int | None = Field(default=None, ge=0)
    """Days after creation when objects move to ``storage_class``; unset: no transition."""
    storage_class: str = "STANDARD_IA"
    """Target storage class of the transition (``STANDARD_IA``, ``GLACIER``, ...)."""
    expire_days: int | None = Field(default=None, ge=1)
    """Days after creation when current objects expire; unset: they never do."""
    noncurrent_expire_days: int | None = Field(default=None, ge=1)
    """Days after an object version stops being current before it is deleted (versioned buckets)."""

    @model_validator(mode="after")
    def _check_actions(self) -> LifecycleRule:
        if self.transition_days is None and self.expire_days is None and (
            self.noncurrent_expire_days is None
        ):
            raise ValueError(
                f"lifecycle rule '{self.id}' does nothing; set transition_days, expire_days "
                "or noncurrent_expire_days"
            )
        if self.storage_class not in S3_STORAGE_CLASSES:
            raise ValueError(
                f"storage_class '{self.storage_class}' is unknown; use one of "
                + ", ".join(S3_STORAGE_CLASSES)
            )
        if (
            self.transition_days is not None
            and self.storage_class in ("STANDARD_IA", "ONEZONE_IA")
            and self.transition_days < 30
        ):
            raise ValueError(
                f"S3 moves objects to {self.storage_class} after 30 days at the earliest; "
                "set transition_days >= 30"
            )
        if (
            self.transition_days is not None
            and self.expire_days is not None
            and self.expire_days <= self.transition_days
        ):
            raise ValueError("expire_days must be later than transition_days")
        return self


class BucketSpec(StrictModel):
    """Where one logical bucket lives and, for S3, how the bucket is configured."""

    url: str
    """``s3://bucket[/prefix]``, ``file:///path`` or a folder path."""
    versioning: bool = True
    """S3 only: keep every version of every object (needed to undo overwrites and deletes)."""
    encryption: Literal["AES256", "aws:kms"] | None = "AES256"
    """S3 only: default server-side encryption (SSE-S3 ``AES256`` or SSE-KMS); null: leave as is."""
    kms_key_id: str | None = None
    """S3 only, with ``aws:kms``: key id, ARN or alias; unset uses the account's ``aws/s3`` key."""
    lifecycle: list[LifecycleRule] = Field(default_factory=list)
    """S3 only: lifecycle rules; rules with other ids already on the bucket are kept."""

    @model_validator(mode="after")
    def _check(self) -> BucketSpec:
        try:
            _parse_url(self.url)
        except ConfigError as exc:
            raise ValueError(exc.detail) from None
        if self.kms_key_id is not None and self.encryption != "aws:kms":
            raise ValueError("kms_key_id needs encryption: aws:kms")
        ids = [rule.id for rule in self.lifecycle]
        if len(ids) != len(set(ids)):
            raise ValueError("lifecycle rule ids must be unique")
        return self


@dataclass(frozen=True)
class BucketAction:
    """One step of a bucket plan: what is (or would be) done to which bucket."""

    bucket: str
    """Logical bucket name (``raw``, ``error``...); comma-joined when they share one S3 bucket."""
    url: str
    """The bucket's URL (for a shared S3 bucket, ``s3://NAME``)."""
    action: str
    """One of ``create_folder``, ``exists``, ``create_bucket``, ``put_versioning``,
    ``put_encryption``, ``put_lifecycle``."""
    detail: str
    """Short, data-free description (status, algorithm, rule ids)."""


_Step = tuple[BucketAction, Callable[[], None] | None]
"""A planned action and the call that performs it (``None`` when nothing needs doing)."""


def plan_buckets(
    specs: dict[str, BucketSpec], *, endpoint_url: str | None = None
) -> list[BucketAction]:
    """What :func:`create_buckets` would do, in order; reads existing state, changes nothing."""
    return [action for action, _apply in _steps(specs, endpoint_url)]


def create_buckets(
    specs: dict[str, BucketSpec], *, endpoint_url: str | None = None, dry_run: bool = False
) -> list[BucketAction]:
    """Create and configure every bucket in ``specs``; returns the actions taken.

    Idempotent: settings already in place give no action, a bucket already there (and owned) gives
    ``exists``. With ``dry_run`` nothing is touched and the result equals :func:`plan_buckets`.
    """
    steps = _steps(specs, endpoint_url)
    for action, apply in steps:
        if not dry_run and apply is not None:
            apply()
        log_event(
            "bucket_action", bucket_id=action.bucket, action_kind=action.action,
            mode="dry_run" if dry_run else "apply",
        )
    log_event("buckets_planned" if dry_run else "buckets_created", count=len(steps))
    return [action for action, _apply in steps]


def _steps(specs: dict[str, BucketSpec], endpoint_url: str | None) -> list[_Step]:
    """Actions with the call that performs each (``None`` when nothing needs doing)."""
    steps: list[_Step] = []
    by_s3_bucket: dict[str, list[tuple[str, BucketSpec, str]]] = {}
    for name in sorted(specs):
        spec = specs[name]
        kind, location, prefix = _parse_url(spec.url)
        if kind == "s3":
            by_s3_bucket.setdefault(location, []).append((name, spec, prefix))
            continue
        folder = Path(location)
        if folder.exists() and not folder.is_dir():
            raise ConfigError(
                "bucket_not_a_folder",
                f"buckets.{name}.url points at a file, not a folder; give a folder path",
            )
        if folder.is_dir():
            steps.append((BucketAction(name, spec.url, "exists", "folder"), None))
        else:
            steps.append((
                BucketAction(name, spec.url, "create_folder", "mkdir -p"),
                partial(folder.mkdir, parents=True, exist_ok=True),
            ))
    if by_s3_bucket:
        from chrono.storage.s3 import plan_s3_bucket, s3_client

        client = s3_client(endpoint_url)
        for bucket_name in sorted(by_s3_bucket):
            steps.extend(plan_s3_bucket(client, bucket_name, by_s3_bucket[bucket_name]))
    return steps
