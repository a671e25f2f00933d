"""Sample emails: .eml bytes (stdlib ``email``), mbox files, and printed-email header blocks.

Everything that would normally be random in a message (Message-ID, MIME boundaries) is derived
from the event id, so the same plan always serialises to the same bytes.
"""

from __future__ import annotations

import email.policy
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime

from chrono.evidence.sample.truth import TruthEvent

EMAIL_POLICY = email.policy.default.clone(linesep="\n")


@dataclass(frozen=True)
class Mailbox:
    """An address as a header shows it: display name plus the address as printed."""

    name: str
    address: str
    """As displayed (may have capitals); truth uses ``address.lower()``."""

    def header(self) -> str:
        return f"{self.name} <{self.address}>"


@dataclass
class Attachment:
    """A file attached to an email; ``build`` returns its bytes."""

    filename: str
    mime: str
    build: Callable[[], bytes]


@dataclass
class EmailSpec:
    """Everything needed to write one email (and to print it on a page)."""

    event: TruthEvent
    sender: Mailbox
    to: list[Mailbox]
    cc: list[Mailbox]
    bcc: list[Mailbox]
    subject: str
    body: str
    sent: datetime
    """Aware datetime in the sender's zone; the Date header keeps this offset."""
    attachments: list[Attachment] = field(default_factory=list)
    forwarded: EmailSpec | None = None
    """An earlier email attached as message/rfc822 (its own truth event)."""

    @property
    def message_id(self) -> str:
        return f"<{self.event.id}.{self.sent.strftime('%Y%m%d%H%M%S')}@mail.harbor-corp.test>"


def build_message(spec: EmailSpec) -> EmailMessage:
    msg = EmailMessage(policy=EMAIL_POLICY)
    msg["From"] = spec.sender.header()
    msg["To"] = ", ".join(m.header() for m in spec.to)
    if spec.cc:
        msg["Cc"] = ", ".join(m.header() for m in spec.cc)
    if spec.bcc:
        msg["Bcc"] = ", ".join(m.header() for m in spec.bcc)
    msg["Subject"] = spec.subject
    msg["Date"] = format_datetime(spec.sent)
    msg["Message-ID"] = spec.message_id
    msg["MIME-Version"] = "1.0"
    msg.set_content(spec.body)
    for att in spec.attachments:
        maintype, subtype = att.mime.split("/", 1)
        msg.add_attachment(att.build(), maintype=maintype, subtype=subtype,
                           filename=att.filename)
    if spec.forwarded is not None:
        inner = build_message(spec.forwarded)
        msg.add_attachment(inner, filename=forwarded_name(spec.forwarded))
    if msg.is_multipart():
        msg.set_boundary(f"==chrono-{spec.event.id}==")
    return msg


def forwarded_name(spec: EmailSpec) -> str:
    return f"{spec.event.id}.eml"


def eml_bytes(spec: EmailSpec) -> bytes:
    return build_message(spec).as_bytes(policy=EMAIL_POLICY)


def mbox_bytes(specs: list[EmailSpec]) -> bytes:
    """An mboxrd file: a ``From `` separator per message and ``>``-quoted body From lines."""
    out: list[bytes] = []
    for spec in specs:
        stamp = spec.sent.astimezone(UTC).strftime("%a %b %d %H:%M:%S %Y")
        out.append(f"From {spec.sender.address.lower()} {stamp}\n".encode())
        for line in eml_bytes(spec).split(b"\n"):
            stripped = line.lstrip(b">")
            out.append(b">" + line + b"\n" if stripped.startswith(b"From ") else line + b"\n")
        out.append(b"\n")
    return b"".join(out)


def _hour(dt: datetime) -> str:
    return dt.strftime("%I:%M %p").lstrip("0")


def outlook_header_lines(spec: EmailSpec) -> list[str]:
    """The header block Outlook prints; the time is UTC with no offset shown."""
    sent = spec.sent.astimezone(UTC)
    lines = [
        f"From: {spec.sender.header()}",
        f"Sent: {sent.strftime('%A, %B')} {sent.day}, {sent.year} {_hour(sent)}",
        f"To: {'; '.join(m.header() for m in spec.to)}",
    ]
    if spec.cc:
        lines.append(f"Cc: {'; '.join(m.header() for m in spec.cc)}")
    lines.append(f"Subject: {spec.subject}")
    return lines


def gmail_header_lines(spec: EmailSpec) -> list[str]:
    """The header block Gmail prints ('Date: Mon, Mar 3, 2025 at 10:15 AM'), UTC, no offset."""
    sent = spec.sent.astimezone(UTC)
    lines = [
        f"From: {spec.sender.header()}",
        f"Date: {sent.strftime('%a, %b')} {sent.day}, {sent.year} at {_hour(sent)}",
        f"Subject: {spec.subject}",
        f"To: {', '.join(m.header() for m in spec.to)}",
    ]
    if spec.cc:
        lines.append(f"Cc: {', '.join(m.header() for m in spec.cc)}")
    return lines


def participants(spec: EmailSpec) -> list[tuple[str, str, str]]:
    """Truth participants of an email (addresses lower-case)."""
    out = [("from", "email", spec.sender.address.lower())]
    for role, boxes in (("to", spec.to), ("cc", spec.cc), ("bcc", spec.bcc)):
        out += [(role, "email", m.address.lower()) for m in boxes]
    return out
