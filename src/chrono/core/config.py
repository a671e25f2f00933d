"""Typed configuration, validated at load, with messages that name the file, the key and the fix.

Every field has a docstring; defaults are the embedded defaults that let Chrono run on a laptop with
no configuration at all. A YAML file (``chrono.yaml`` or ``--config``) may override any field.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from chrono.core.errors import ConfigError


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)


class ExtractionLimits(StrictModel):
    """Safety limits the extractor base enforces for every format."""

    max_file_bytes: int = 512 * 1024 * 1024
    """Largest input file accepted, in bytes."""
    max_seconds_per_file: int = 300
    """Wall-clock budget for one file; past it the file fails with ``limit_time``."""
    max_pages: int = 5000
    """Most pages read from one PDF or multi-page TIFF."""
    max_image_pixels: int = 120_000_000
    """Most pixels in one image or rendered page (decompression-bomb guard)."""
    max_archive_entries: int = 10_000
    """Most entries read from one archive."""
    max_archive_total_bytes: int = 2 * 1024 * 1024 * 1024
    """Most uncompressed bytes extracted from one archive (all entries)."""
    max_compression_ratio: float = 200.0
    """Largest uncompressed/compressed ratio for an entry before it counts as a bomb."""
    max_nesting_depth: int = 5
    """Deepest chain of containers (archive in archive, attachment in email...)."""
    max_field_bytes: int = 1024 * 1024
    """Largest single CSV/DAT field kept; longer fields are truncated with a warning."""
    max_rows: int = 2_000_000
    """Most rows read from one spreadsheet or CSV."""
    max_memory_bytes: int = 1536 * 1024 * 1024
    """Address-space cap set on each worker process (RLIMIT_AS); 0 disables."""


class OcrConfig(StrictModel):
    """How pages without a text layer are read."""

    backend: Literal["tesseract", "textract"] = "tesseract"
    """OCR backend: ``tesseract`` (in-process, via tesserocr) or ``textract`` (AWS Textract via
    boto3: one synchronous call per page image, one asynchronous job per multi-page PDF)."""
    language: str = "eng"
    """Tesseract language(s), e.g. ``eng`` or ``eng+deu``."""
    tessdata: str | None = None
    """Folder holding ``*.traineddata``; found automatically when unset."""
    dpi: int = 300
    """Resolution PDF pages are rendered at before OCR."""
    detect_orientation: bool = True
    """Run orientation detection and rotate pages before recognition."""
    detect_redactions: bool = True
    """Find black redaction boxes and write ``[[REDACTED]]`` where they cover text."""
    textract_region: str | None = None
    """AWS region for Textract; unset: ``AWS_REGION`` / ``AWS_DEFAULT_REGION``, else
    ``us-east-1``."""
    textract_endpoint_url: str | None = None
    """Textract endpoint (a VPC endpoint, a test server); unset: boto3's own resolution."""
    textract_s3_bucket: str | None = None
    """S3 bucket multi-page PDFs are uploaded to for an asynchronous Textract job (the object is
    deleted when the job ends); unset: each page is rendered and read synchronously instead."""
    textract_s3_prefix: str = "chrono-textract"
    """Key prefix inside ``textract_s3_bucket`` for those uploads."""
    textract_s3_endpoint_url: str | None = None
    """S3 endpoint for the uploads; unset: boto3's own resolution (``AWS_ENDPOINT_URL_S3``...)."""
    textract_poll_interval_s: float = Field(default=5.0, gt=0)
    """Seconds between status checks of an asynchronous job."""
    textract_timeout_s: float = Field(default=240.0, gt=0)
    """Seconds an asynchronous job may take before the file fails with ``textract_timeout``;
    keep it below ``limits.max_seconds_per_file``."""
    textract_max_attempts: int = Field(default=4, ge=1)
    """Tries per Textract call when AWS throttles or fails transiently; then the file fails with
    ``textract_failed``."""
    textract_backoff_s: float = Field(default=0.5, ge=0)
    """Wait before the first retry; doubled for each further retry."""


DEFAULT_HEADER_MAP: dict[str, list[str]] = {
    "timestamp": ["date/time", "datetime", "date time", "timestamp", "time stamp", "start time",
                  "call start", "sent", "date_time", "start"],
    "date": ["date", "call date", "message date"],
    "time": ["time", "call time", "message time"],
    "timezone": ["timezone", "time zone", "tz", "utc offset"],
    "from": ["from", "caller", "calling number", "originating number", "from number",
             "sender", "source number", "a number"],
    "to": ["to", "callee", "called number", "dialed number", "destination number", "to number",
           "recipient", "recipients", "b number"],
    "number": ["number", "phone number", "other party", "correspondent", "correspondent_id",
               "contact number", "remote number", "phone"],
    "direction": ["direction", "type", "call type", "call direction", "folder"],
    "duration": ["duration", "duration (s)", "duration (sec)", "duration (seconds)",
                 "call_duration", "call duration", "seconds"],
    "body": ["body", "message", "text", "message text", "content"],
    "kind": ["interaction", "record type", "event type", "service"],
    "name": ["name", "contact name", "display name", "full name"],
    "email": ["email", "e-mail", "email address"],
    "owner": ["owner", "custodian", "device owner", "account"],
}


class SheetsConfig(StrictModel):
    """How call logs, message exports and contact lists are read from xlsx/xls/csv."""

    header_map: dict[str, list[str]] = Field(default_factory=lambda: dict(DEFAULT_HEADER_MAP))
    """Canonical field -> header spellings (case-insensitive) that mean it."""
    default_timezone: str = "UTC"
    """IANA zone for times without an offset when neither a column nor the file says otherwise."""
    dayfirst: bool = False
    """Read ambiguous dates such as 03/04/2025 as 3 April (true) or March 4 (false)."""


class LoadfileConfig(StrictModel):
    """Concordance DAT / Opticon OPT conventions."""

    quote: str = "\u00fe"
    """Field quote character (þ by default)."""
    separators: list[str] = Field(default_factory=lambda: ["\u0014", "\u00b6"])
    """Field separators to try, in order (0x14, then ¶)."""
    newline: str = "\u00ae"
    """Character standing for a newline inside a field (®)."""
    encoding: str | None = None
    """Force an encoding; detected from the BOM/content when unset."""


class DedupeConfig(StrictModel):
    """How the ``dedupe`` step decides that two events are one communication."""

    call_time_tolerance_s: float = Field(default=120.0, ge=0)
    """Two calls between the same numbers match when their starts differ by at most this
    (carrier records and phone exports disagree by tens of seconds)."""
    call_duration_tolerance_s: float = Field(default=5.0, ge=0)
    """...and their durations by at most this."""
    message_time_tolerance_s: float = Field(default=60.0, ge=0)
    """Two messages with the same participants and text match within this."""
    email_time_tolerance_s: float = Field(default=60.0, ge=0)
    """An email printed to PDF or scanned matches the native copy within this."""


class IdentityConfig(StrictModel):
    """How the ``persons``, ``devices`` and ``mapping`` steps resolve identities."""

    name_threshold: float = Field(default=0.92, ge=0, le=1)
    """Smallest name similarity (0-1) for a probabilistic name link."""
    email_local_threshold: float = Field(default=0.85, ge=0, le=1)
    """Smallest similarity of two email local parts (same domain) that, with a matching name,
    links two addresses of one person."""
    min_mapping_confidence: float = Field(default=0.5, ge=0, le=1)
    """Person-device links below this confidence are not stored."""
    junk_values: list[str] = Field(
        default_factory=lambda: ["0", "unknown", "none", "null", "n/a", "anonymous", "private",
                                 "restricted", "blocked", "unavailable"]
    )
    """Identifier values (case-insensitive) that are dropped as junk."""
    min_phone_digits: int = Field(default=7, ge=1)
    """Phone numbers with fewer digits (short codes such as 611) are dropped."""


class EvidenceConfig(StrictModel):
    """Settings of the evidence pipeline."""

    limits: ExtractionLimits = Field(default_factory=ExtractionLimits)
    """Safety limits for every extractor."""
    ocr: OcrConfig = Field(default_factory=OcrConfig)
    """OCR settings."""
    sheets: SheetsConfig = Field(default_factory=SheetsConfig)
    """Spreadsheet and CSV reading."""
    loadfile: LoadfileConfig = Field(default_factory=LoadfileConfig)
    """Load-file conventions."""
    default_timezone: str = "UTC"
    """IANA zone for printed or scanned times without an offset."""
    default_region: str = "US"
    """Region (ISO 3166 alpha-2) for phone numbers written without a country code."""
    batch_size: int = 1000
    """Files per group in ``groups.ndjson`` (families are never split)."""
    upload_chunk_rows: int = 5000
    """Rows per database transaction during upload."""
    dedupe: DedupeConfig = Field(default_factory=DedupeConfig)
    """Duplicate detection."""
    identity: IdentityConfig = Field(default_factory=IdentityConfig)
    """Person and device resolution."""


class ChronoConfig(StrictModel):
    """Root of ``chrono.yaml``."""

    evidence: EvidenceConfig = Field(default_factory=EvidenceConfig)
    """Evidence pipeline settings."""
    data_dir: str = "${CHRONO_DATA:-./chrono-data}"
    """Root folder for local buckets."""


_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def expand_vars(value: Any) -> Any:
    """Expand ``${VAR}`` and ``${VAR:-default}`` in every string of a parsed YAML tree."""
    if isinstance(value, str):
        def repl(m: re.Match[str]) -> str:
            name, default = m.group(1), m.group(2)
            if name in os.environ:
                return os.environ[name]
            if default is not None:
                return default
            raise ConfigError(
                "config_env_missing",
                f"environment variable {name} is not set; set it or write ${{{name}:-default}}",
            )
        return _VAR.sub(repl, value)
    if isinstance(value, dict):
        return {k: expand_vars(v) for k, v in value.items()}
    if isinstance(value, list):
        return [expand_vars(v) for v in value]
    return value


def _fix_hint(error: Any) -> str:
    """A short "how to fix it" for the common pydantic error kinds."""
    kind = error.get("type", "")
    if kind == "extra_forbidden":
        return "remove it or correct its spelling (see the configuration reference in README)"
    if kind == "missing":
        return "add it"
    if kind.endswith(("_type", "_parsing")):
        return "give a value of the expected type"
    if kind in ("greater_than_equal", "greater_than", "less_than_equal", "less_than"):
        return "choose a value within the allowed range"
    if kind == "literal_error":
        return "use one of the allowed values"
    return "correct the value"


def format_validation_error(path: str, err: ValidationError) -> str:
    """``file: key 'a.b': problem; fix: ...`` for the first few errors (values never echoed)."""
    parts = []
    for e in err.errors()[:5]:
        key = ".".join(str(x) for x in e["loc"]) or "<top level>"
        msg = e["msg"].split(", input_value")[0]
        parts.append(f"{path}: key '{key}': {msg}; fix: {_fix_hint(e)}")
    return "; ".join(parts)


def read_yaml_mapping(path: Path) -> dict[str, Any]:
    """The top-level mapping of a YAML config file; a missing file, bad YAML or a top level that
    is not a mapping stops with the file and the fix."""
    if not path.is_file():
        raise ConfigError("config_missing", f"{path}: file not found; pass an existing --config")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        reason = type(exc).__name__
        raise ConfigError("config_yaml", f"{path}: not valid YAML ({reason})") from None
    if not isinstance(raw, dict):
        raise ConfigError("config_yaml", f"{path}: top level must be a mapping of keys")
    return raw


def load_config(path: str | Path | None = None) -> ChronoConfig:
    """Load ``path`` (or ``$CHRONO_CONFIG``, or ``./chrono.yaml`` if present) over the defaults."""
    candidate = path or os.environ.get("CHRONO_CONFIG")
    if candidate is None and Path("chrono.yaml").is_file():
        candidate = "chrono.yaml"
    if candidate is None:
        return ChronoConfig()
    p = Path(candidate)
    raw = read_yaml_mapping(p)
    try:
        return ChronoConfig.model_validate(expand_vars(raw))
    except ValidationError as exc:
        raise ConfigError("config_invalid", format_validation_error(str(p), exc)) from None
