"""Email extractor: ``.eml`` (RFC 5322/MIME), ``.mbox`` mailboxes and Outlook ``.msg`` files.

Every message becomes one ``email`` :class:`Record` (participants, date with its original
offset, subject, body, message id) and one :class:`Page` holding its body, so the text is
exportable. Attachments (inline images with a file name, uuencoded blocks, attached emails as
``.eml``, embedded Outlook items as ``.msg``, TNEF ``winmail.dat``) are stored as children with
relation ``attachment``; their sha256 go into ``Record.attachments``.

Parsing is forgiving: headers that ``policy.default`` cannot parse are decoded by hand, unknown
charsets fall back to detection, a broken message inside an mbox is skipped with a warning.

Reason codes raised:

* ``corrupt_email``: the file cannot be read as an email at all (no message headers, an mbox
  without messages, an unreadable Outlook file).

Warnings recorded:

* ``mbox_bad_message``: one message of an mbox could not be parsed or had no message headers;
  it was skipped (its ``msg:N`` locator stays unused), the others were kept.
* ``attachment_unsupported``: an Outlook attachment of a kind that holds no bytes (web link,
  broken or unsupported attachment) was skipped.
* ``attachment_unreadable``: an attachment part whose bytes could not be decoded was skipped.
* any limit code (``limit_depth``...) raised while storing one attachment: that attachment was
  refused, the message was kept. ``limit_entries`` (once): more attachments than
  ``limits.max_archive_entries``; the rest were not stored.
"""

from __future__ import annotations

import binascii
import contextlib
import email
import email.errors
import email.utils
import logging
import mailbox
import mimetypes
import re
import struct
from collections.abc import Iterator
from datetime import datetime
from email import policy
from email.header import decode_header, make_header
from email.message import Message
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

from charset_normalizer import from_bytes
from dateutil import parser as date_parser

from chrono.core.errors import FileRejected, LimitExceeded
from chrono.evidence.addresses import make_participant, parse_addresses
from chrono.evidence.extract.base import ExtractContext, Extractor, SourceFile, register
from chrono.evidence.model import Artifact, Page, Participant, Record, Role

_PARSE_ERRORS: tuple[type[BaseException], ...] = (
    email.errors.MessageError, ValueError, LookupError, TypeError, IndexError,
    AttributeError, AssertionError, UnicodeError,
)
"""What the stdlib email package raises on hostile input (it has no single error base)."""

_ADDRESS_HEADERS: tuple[tuple[str, Role], ...] = (
    ("from", "from"), ("to", "to"), ("cc", "cc"), ("bcc", "bcc"), ("reply-to", "reply_to"),
)
_KEY_HEADERS = ("from", "to", "cc", "subject", "date", "message-id", "received", "sender")
_MESSAGE_ID = re.compile(r"<[^<>\s]+>")
_SIGNATURE_TYPES = frozenset({
    "application/pgp-signature", "application/pkcs7-signature", "application/x-pkcs7-signature",
})
"""Signature parts of multipart/signed: proof of origin, not attached files."""
_UU_BEGIN = re.compile(r"^begin [0-7]{3,4} (?P<name>\S.*?)\s*$")


@register
class EmailExtractor(Extractor):
    """Reads ``eml``, ``mbox`` and ``msg`` files into ``email`` records."""

    NAME = "email"
    KINDS = ("eml", "mbox", "msg")

    def extract(self, source: SourceFile, ctx: ExtractContext) -> Artifact:
        artifact = self.new_artifact(source)
        if source.kind == "msg":
            _read_outlook_msg(source.path, ctx, artifact)
        elif source.kind == "mbox":
            _read_mbox(source.path, ctx, artifact)
        else:
            raw = source.path.read_bytes()
            try:
                message = email.message_from_bytes(raw, policy=policy.default)
            except _PARSE_ERRORS as exc:
                raise FileRejected("corrupt_email", type(exc).__name__) from None
            if not _has_headers(message):
                raise FileRejected("corrupt_email", "no message headers")
            _add_message(message, 0, ctx, artifact)
        artifact.metadata["messages"] = len(artifact.records)
        return artifact


# --- eml / mbox ---------------------------------------------------------------------------


def _read_mbox(path: Path, ctx: ExtractContext, artifact: Artifact) -> None:
    """One record per message, in file order; the mailbox is read one message at a time."""
    box = mailbox.mbox(path, create=False)
    try:
        keys = list(box.iterkeys())
        if not keys:
            raise FileRejected("corrupt_email", "mbox holds no messages")
        for index, key in enumerate(keys):
            try:
                message = email.message_from_bytes(box.get_bytes(key), policy=policy.default)
                if not _has_headers(message):
                    ctx.warn("mbox_bad_message")
                    continue
                _add_message(message, index, ctx, artifact)
            except _PARSE_ERRORS:
                ctx.warn("mbox_bad_message")
    finally:
        box.close()


def _has_headers(message: Message) -> bool:
    return any(name.lower() in _KEY_HEADERS for name in message)


def _add_message(message: Message, index: int, ctx: ExtractContext, artifact: Artifact) -> None:
    """Turn one parsed MIME message into a record, a page and attachment children."""
    participants: list[Participant] = []
    for header, role in _ADDRESS_HEADERS:
        participants.extend(parse_addresses(_header(message, header), role))
    body_parts: list[str] = []
    html_parts: list[str] = []
    attachments: list[str] = []
    for number, part in enumerate(_leaf_parts(message)):
        if part.get_content_type() in _SIGNATURE_TYPES:
            continue
        if _is_attachment(part):
            _store_attachment(part, number, ctx, artifact, attachments)
            continue
        text = _part_text(part)
        if part.get_content_type() == "text/html":
            html_parts.append(html_to_text(text))
            continue
        if part.get_content_maintype() == "multipart" and "<html" in text[:2000].lower():
            text = html_to_text(text)  # a multipart whose boundary is missing: raw HTML
        text, blocks = split_uuencoded(text)
        for name, data in blocks:
            _store_child(ctx, artifact, attachments, name, data)
        body_parts.append(text)
    body = "\n".join(p.strip("\r\n") for p in body_parts) or "\n".join(html_parts)
    attributes: dict[str, Any] = {}
    in_reply_to = _header(message, "in-reply-to")
    if in_reply_to:
        attributes["in_reply_to"] = in_reply_to
    references = _MESSAGE_ID.findall(_header(message, "references") or "")
    if references:
        attributes["references"] = references
    artifact.records.append(Record(
        type="email",
        locator=f"msg:{index}",
        start=email_date(_header(message, "date")),
        participants=participants,
        subject=_header(message, "subject"),
        body=body,
        message_id=_header(message, "message-id"),
        attachments=attachments,
        attributes=attributes,
    ))
    artifact.pages.append(Page(number=index + 1, text=body, method="text_layer"))


def _leaf_parts(part: Message) -> Iterator[Message]:
    """Every leaf MIME part; an attached message (message/rfc822) counts as one leaf."""
    if part.get_content_type() == "message/rfc822":
        yield part
        return
    payload = part.get_payload()
    if part.is_multipart() and isinstance(payload, list):
        for child in payload:
            if isinstance(child, Message):
                yield from _leaf_parts(child)
        return
    yield part


def _is_attachment(part: Message) -> bool:
    """Attached files; inline text parts are body even when named (as mail clients show them)."""
    if part.get_content_type() == "message/rfc822":
        return True
    disposition = (part.get_content_disposition() or "").lower()
    if disposition == "attachment":
        return True
    if part.get_content_maintype() in ("text", "multipart"):
        return disposition != "inline" and _safe_filename(part) is not None
    return True


def _store_attachment(
    part: Message, number: int, ctx: ExtractContext, artifact: Artifact, attachments: list[str]
) -> None:
    if part.get_content_type() == "message/rfc822":
        inner = part.get_payload()
        if isinstance(inner, list) and inner and isinstance(inner[0], Message):
            eml_name = _safe_filename(part) or f"attached-{number}.eml"
            if not eml_name.lower().endswith(".eml"):
                eml_name += ".eml"
            try:
                eml_bytes = inner[0].as_bytes(policy=policy.compat32)
            except _PARSE_ERRORS:
                ctx.warn("attachment_unreadable")
                return
            _store_child(ctx, artifact, attachments, eml_name, eml_bytes)
            return
    try:
        data: Any = part.get_payload(decode=True)
    except _PARSE_ERRORS:
        data = None
    if not isinstance(data, bytes):
        ctx.warn("attachment_unreadable")
        return
    name = _safe_filename(part)
    if name is None:
        extension = mimetypes.guess_extension(part.get_content_type()) or ".bin"
        name = f"attachment-{number}{extension}"
    _store_child(ctx, artifact, attachments, name, data)


def _store_child(
    ctx: ExtractContext, artifact: Artifact, attachments: list[str], name: str, data: bytes
) -> None:
    """Store one attachment; a limit hit refuses this attachment only."""
    if len(artifact.children) >= ctx.limits.max_archive_entries:
        if "limit_entries" not in ctx.warnings:
            ctx.warn("limit_entries")
        return
    try:
        child = ctx.store_child(name, data, "attachment")
    except LimitExceeded as exc:
        ctx.warn(exc.code)
        return
    artifact.children.append(child)
    attachments.append(child.sha256)


def _safe_filename(part: Message) -> str | None:
    """The part's file name; a name with undecodable 8-bit bytes is re-read from the raw header."""
    try:
        name = part.get_filename()
    except _PARSE_ERRORS:
        name = None
    if name and "\ufffd" in name:
        legacy = Message(policy=policy.compat32)
        for header in ("content-disposition", "content-type"):
            raw = _raw_header(part, header)
            if raw is not None:
                legacy[header] = raw
        with contextlib.suppress(*_PARSE_ERRORS):
            name = legacy.get_filename() or name
    if not name:
        return None
    return _fix_surrogates(_decode_words(str(name))).strip() or None


def _header(message: Message, name: str) -> str | None:
    """A header's decoded, unfolded value; malformed or 8-bit headers are decoded by hand."""
    try:
        value = message.get(name)
        text = None if value is None else str(value)
    except _PARSE_ERRORS:
        text = "\ufffd"
    if text is not None and "\ufffd" in text:
        raw = _raw_header(message, name)
        text = text if raw is None else _decode_words(raw)
    if text is None:
        return None
    text = " ".join(_fix_surrogates(text).split())
    return text or None


def _raw_header(message: Message, name: str) -> str | None:
    """The header as written, 8-bit bytes decoded as utf-8 or cp1252."""
    raw = next((v for k, v in message.raw_items() if k.lower() == name), None)
    return None if raw is None else _fix_surrogates(str(raw))


def _decode_words(text: str) -> str:
    try:
        return str(make_header(decode_header(text)))
    except _PARSE_ERRORS:
        return text


def _fix_surrogates(text: str) -> str:
    """Undo surrogate-escaped 8-bit bytes left by the parser (utf-8, else cp1252)."""
    if not any("\udc80" <= char <= "\udcff" for char in text):
        return text
    raw = text.encode("utf-8", "surrogateescape")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("cp1252", errors="replace")


def _part_text(part: Message) -> str:
    """Decoded text of a part: declared charset, else detected, else utf-8 with replacement."""
    try:
        data = part.get_payload(decode=True)
    except _PARSE_ERRORS:
        data = None
    if not isinstance(data, bytes):
        payload = part.get_payload()
        return _fix_surrogates(payload) if isinstance(payload, str) else ""
    return decode_text(data, part.get_content_charset())


def decode_text(data: bytes, charset: str | None = None) -> str:
    """Bytes to text with ``charset`` when Python knows it, else by detection."""
    if charset:
        try:
            return data.decode(charset, errors="replace")
        except LookupError:
            pass
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        best = from_bytes(data[: 1 << 20]).best()
        encoding = best.encoding if best is not None else "cp1252"
        return data.decode(encoding, errors="replace")


def email_date(value: str | None) -> str | None:
    """ISO 8601 of a Date header, keeping its offset (naive when the header has none)."""
    if not value:
        return None
    parsed: datetime | None
    try:
        parsed = email.utils.parsedate_to_datetime(value)
    except _PARSE_ERRORS:
        parsed = None
    if parsed is None:
        try:
            parsed = date_parser.parse(value)
        except (ValueError, OverflowError):
            return None
    return parsed.isoformat()


def split_uuencoded(text: str) -> tuple[str, list[tuple[str, bytes]]]:
    """Cut ``begin 644 name`` … ``end`` blocks out of a text body: (remaining text, files)."""
    if "begin " not in text:
        return text, []
    kept: list[str] = []
    files: list[tuple[str, bytes]] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        match = _UU_BEGIN.match(lines[i])
        end = _uu_end(lines, i) if match else None
        if match is None or end is None:
            kept.append(lines[i])
            i += 1
            continue
        data = bytearray()
        for line in lines[i + 1:end]:
            data += _uu_line(line)
        files.append((match.group("name"), bytes(data)))
        i = end + 1
    return "\n".join(kept), files


def _uu_end(lines: list[str], start: int) -> int | None:
    for j in range(start + 1, len(lines)):
        if lines[j].strip() == "end":
            return j
        if lines[j].startswith("begin "):
            return None
    return None


def _uu_line(line: str) -> bytes:
    if not line or line in ("`", " "):
        return b""
    try:
        return binascii.a2b_uu(line)
    except binascii.Error:
        # Some encoders pad lines oddly; trim to the length the count character promises.
        count = ((ord(line[0]) - 32) & 63) * 4 + 5
        try:
            return binascii.a2b_uu(line[: count // 3])
        except binascii.Error:
            return b""


class _HtmlText(HTMLParser):
    """Collects the visible text of an HTML document (no scripts, styles or head)."""

    _SKIP = frozenset({"script", "style", "head", "title", "noscript", "template"})
    _BLOCK = frozenset({
        "p", "div", "br", "tr", "li", "ul", "ol", "table", "h1", "h2", "h3", "h4", "h5", "h6",
        "blockquote", "pre", "hr", "section", "article", "header", "footer", "dd", "dt",
    })

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.chunks: list[str] = []
        self.skipping = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self._SKIP:
            self.skipping += 1
        elif tag in self._BLOCK:
            self.chunks.append("\n")
        elif tag in ("td", "th"):
            self.chunks.append(" ")

    def handle_endtag(self, tag: str) -> None:
        if tag in self._SKIP:
            self.skipping = max(0, self.skipping - 1)
        elif tag in self._BLOCK:
            self.chunks.append("\n")

    def handle_data(self, data: str) -> None:
        if not self.skipping:
            self.chunks.append(data)


def html_to_text(html: str) -> str:
    """Visible text of an HTML body, one line per block, blank runs collapsed."""
    parser = _HtmlText()
    parser.feed(html)
    parser.close()
    lines = [" ".join(line.split()) for line in "".join(parser.chunks).splitlines()]
    text = "\n".join(lines)
    return re.sub(r"\n{3,}", "\n\n", text).strip()


# --- Outlook .msg -----------------------------------------------------------------------------


def _read_outlook_msg(path: Path, ctx: ExtractContext, artifact: Artifact) -> None:
    """Read an Outlook item with extract-msg; unreadable OLE files fail ``corrupt_email``."""
    import extract_msg

    # extract-msg logs names and subjects of what it reads; keep evidence content out of logs.
    logging.getLogger("extract_msg").setLevel(logging.CRITICAL + 1)
    errors = _outlook_errors()
    try:
        msg = extract_msg.openMsg(str(path), strict=False, delayAttachments=True)
    except errors as exc:
        raise FileRejected("corrupt_email", type(exc).__name__) from None
    try:
        _add_outlook_message(msg, ctx, artifact)
    except errors as exc:
        raise FileRejected("corrupt_email", type(exc).__name__) from None
    finally:
        msg.close()


def _outlook_errors() -> tuple[type[BaseException], ...]:
    """What extract-msg and olefile raise on a damaged file."""
    from extract_msg.exceptions import ExMsgBaseException

    return (ExMsgBaseException, OSError, struct.error, *_PARSE_ERRORS)


def _add_outlook_message(msg: Any, ctx: ExtractContext, artifact: Artifact) -> None:
    participants = parse_addresses(getattr(msg, "sender", None), "from")
    roles: dict[int, Role] = {1: "to", 2: "cc", 3: "bcc"}
    for recipient in getattr(msg, "recipients", None) or []:
        role = roles.get(int(recipient.type or 1), "to")
        participant = make_participant(role, recipient.email, recipient.name)
        if participant is not None and participant not in participants:
            participants.append(participant)
    body = getattr(msg, "body", None) or ""
    if not body.strip() and getattr(msg, "htmlBody", None):
        body = html_to_text(decode_text(msg.htmlBody))
    body = body.replace("\r\n", "\n")
    attachments: list[str] = []
    for number, attachment in enumerate(msg.attachments):
        _store_outlook_attachment(attachment, number, ctx, artifact, attachments)
    attributes: dict[str, Any] = {}
    in_reply_to = getattr(msg, "inReplyTo", None)
    if in_reply_to:
        attributes["in_reply_to"] = in_reply_to.strip()
    message_id = getattr(msg, "messageId", None)
    artifact.records.append(Record(
        type="email",
        locator="msg:0",
        start=_outlook_date(msg),
        participants=participants,
        subject=getattr(msg, "subject", None) or None,
        body=body,
        message_id=message_id.strip() if message_id else None,
        attachments=attachments,
        attributes=attributes,
    ))
    artifact.pages.append(Page(number=1, text=body, method="text_layer"))


def _outlook_date(msg: Any) -> str | None:
    """The transport header's Date (original offset) when present, else the MAPI send time."""
    if getattr(msg, "headerText", None):
        from_header = email_date(msg.header.get("Date"))
        if from_header:
            return from_header
    for attribute in ("date", "receivedTime"):
        value = getattr(msg, attribute, None)
        if isinstance(value, datetime):
            return value.isoformat()
    return None


def _store_outlook_attachment(
    attachment: Any, number: int, ctx: ExtractContext, artifact: Artifact, attachments: list[str]
) -> None:
    from extract_msg.enums import AttachmentType

    name = (
        getattr(attachment, "longFilename", None)
        or getattr(attachment, "shortFilename", None)
        or getattr(attachment, "displayName", None)
        or f"attachment-{number}"
    )
    if attachment.type in (AttachmentType.MSG, AttachmentType.SIGNED_EMBEDDED):
        try:
            data = attachment.data.exportBytes(allowBadEmbed=True)
        except _outlook_errors():
            ctx.warn("attachment_unreadable")
            return
        if not str(name).lower().endswith(".msg"):
            name = f"{name}.msg"
    elif attachment.type == AttachmentType.DATA and isinstance(attachment.data, bytes):
        data = attachment.data
    else:
        ctx.warn("attachment_unsupported")
        return
    _store_child(ctx, artifact, attachments, str(name), data)
