"""Typed records passed between evidence steps: artifacts, pages, records, participants.

An :class:`Artifact` is the one output of extracting one file (keyed by the file's sha256). It is
stored as JSON and is the contract between extraction and event generation.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

ARTIFACT_SCHEMA_VERSION = 1

Role = Literal[
    "from", "to", "cc", "bcc", "reply_to",
    "caller", "callee", "sender", "recipient", "owner", "participant", "custodian",
]
IdentifierKind = Literal["email", "phone", "handle", "name"]
RecordType = Literal["email", "call", "message", "contact", "document"]


class Participant(BaseModel):
    """Somebody on a communication, as seen in the source (not yet resolved to a person)."""

    role: Role
    kind: IdentifierKind
    value: str
    """The identifier as seen: an email address, a phone number, a handle, or a name."""
    name: str | None = None
    """Display name seen next to the identifier, if any."""


class Page(BaseModel):
    """Text of one page (PDF page, TIFF frame, image)."""

    number: int
    """1-based page number within the file."""
    text: str
    method: Literal["text_layer", "ocr", "none"]
    confidence: float | None = None
    """Mean OCR word confidence 0-100 (OCR pages only)."""
    redactions: int = 0
    """How many black redaction boxes were found and rendered as [[REDACTED]]."""
    rotation: int = 0
    """Degrees the page was rotated before OCR (orientation detection)."""


class Record(BaseModel):
    """One communication or document entry found inside a file (an email, a call-log row...)."""

    type: RecordType
    locator: str
    """Stable position of the record inside the file, e.g. ``row:12``, ``page:3``, ``msg:0``.
    Together with the file's sha256 it makes the event id, so it must not depend on run order."""
    start: str | None = None
    """ISO 8601 timestamp *with* its original offset when the source had one; naive otherwise."""
    timezone: str | None = None
    """IANA zone that applies to a naive ``start`` (from a column or the header mapping)."""
    participants: list[Participant] = Field(default_factory=list)
    subject: str | None = None
    body: str | None = None
    duration_s: float | None = None
    direction: Literal["incoming", "outgoing", "missed", "unknown"] | None = None
    message_id: str | None = None
    page: int | None = None
    row: int | None = None
    bates: str | None = None
    attachments: list[str] = Field(default_factory=list)
    """sha256 of attachment children (emails)."""
    attributes: dict[str, Any] = Field(default_factory=dict)


class Child(BaseModel):
    """A file found inside another file: an archive entry, an email attachment, a native."""

    name: str
    """Sanitised entry name (never absolute, no ``..``)."""
    sha256: str
    size: int
    relation: Literal["archive_entry", "attachment", "native", "embedded"]
    blob: str
    """Path of the stored bytes, relative to the artifact dir (``ExtractContext.store_child``)."""


class Artifact(BaseModel):
    """Everything extracted from one file's content."""

    schema_version: int = ARTIFACT_SCHEMA_VERSION
    sha256: str
    kind: str
    extractor: str
    status: Literal["processed", "failed"]
    reason: str | None = None
    """Reason code when ``status == "failed"`` (see README, "Reason codes")."""
    detail: str | None = None
    """Bounded, PII-free explanation of a failure."""
    pages: list[Page] = Field(default_factory=list)
    records: list[Record] = Field(default_factory=list)
    children: list[Child] = Field(default_factory=list)
    metadata: dict[str, Any] = Field(default_factory=dict)
    """Document metadata: ``title``, ``created`` (ISO 8601), ``page_count``, ``bates``..."""
    warnings: list[str] = Field(default_factory=list)
    """Reason codes of non-fatal problems (a child refused, a page that failed OCR...)."""
    seconds: float = 0.0

    @property
    def text(self) -> str:
        return "\n\f".join(p.text for p in self.pages)
