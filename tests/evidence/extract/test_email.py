"""Email extractor: generated .eml/.mbox/.msg files, hostile MIME, attachments as children."""

from __future__ import annotations

import binascii
import datetime as dt
import hashlib
import struct
from email.message import EmailMessage
from pathlib import Path

from extract_msg.ole_writer import OleWriter

from chrono.core.config import EvidenceConfig, ExtractionLimits
from chrono.evidence.extract.base import ExtractContext, SourceFile, run_extractor
from chrono.evidence.extract.email import email_date, html_to_text, split_uuencoded
from chrono.evidence.model import Artifact

PNG = bytes.fromhex("89504e470d0a1a0a") + b"not really a png" * 4


def extract(
    path: Path, kind: str, out: Path, config: EvidenceConfig | None = None, depth: int = 0
) -> Artifact:
    data = path.read_bytes()
    source = SourceFile(
        path=path, sha256=hashlib.sha256(data).hexdigest(), size=len(data), kind=kind,
        name=path.name,
    )
    ctx = ExtractContext(
        config=config or EvidenceConfig(), artifact_dir=out / "artifact", depth=depth
    )
    return run_extractor(source, ctx)


def blob(out: Path, artifact: Artifact, name: str) -> bytes:
    child = next(c for c in artifact.children if c.name == name)
    return (out / "artifact" / child.blob).read_bytes()


def rich_message() -> EmailMessage:
    inner = EmailMessage()
    inner["From"] = "inner@example.org"
    inner["To"] = "someone@example.org"
    inner["Subject"] = "Forwarded original"
    inner.set_content("inner body")

    msg = EmailMessage()
    msg["From"] = '"Roe, Jane" <Jane.Roe@Example.COM>'
    msg["To"] = "Bob Smith <bob@example.com>, carol@example.com"
    msg["Cc"] = "=?utf-8?q?J=C3=BCrgen_M=C3=BCller?= <jm@example.de>"
    msg["Reply-To"] = "replies@example.com"
    msg["Subject"] = "=?utf-8?b?UXVhcnRhbHN6YWhsZW4gw5xiZXJzaWNodA==?="
    msg["Date"] = "Tue, 02 Mar 2021 09:15:00 -0500"
    msg["Message-ID"] = "<m1@example.com>"
    msg["In-Reply-To"] = "<m0@example.com>"
    msg["References"] = "<a@example.com> <m0@example.com>"
    msg.set_content(
        "<html><head><style>p{}</style><script>alert('x')</script></head>"
        "<body><p>Hello&nbsp;team,</p><p>numbers &amp; plans</p></body></html>",
        subtype="html",
    )
    msg.add_attachment(b"%PDF-1.4 fake", maintype="application", subtype="pdf",
                       filename="report.pdf")
    msg.add_attachment(PNG, maintype="image", subtype="png", filename="logo.png",
                       disposition="inline")
    msg.add_attachment(inner)
    return msg


def test_eml_fields_attachments_and_html_body(tmp_path: Path) -> None:
    path = tmp_path / "m.eml"
    path.write_bytes(rich_message().as_bytes())
    artifact = extract(path, "eml", tmp_path)
    assert artifact.status == "processed", artifact.detail
    (record,) = artifact.records
    assert record.type == "email" and record.locator == "msg:0"
    people = [(p.role, p.kind, p.value, p.name) for p in record.participants]
    assert people == [
        ("from", "email", "jane.roe@example.com", "Roe, Jane"),
        ("to", "email", "bob@example.com", "Bob Smith"),
        ("to", "email", "carol@example.com", None),
        ("cc", "email", "jm@example.de", "Jürgen Müller"),
        ("reply_to", "email", "replies@example.com", None),
    ]
    assert record.subject == "Quartalszahlen Übersicht"
    assert record.start == "2021-03-02T09:15:00-05:00"
    assert record.message_id == "<m1@example.com>"
    assert record.attributes == {
        "in_reply_to": "<m0@example.com>", "references": ["<a@example.com>", "<m0@example.com>"],
    }
    assert "Hello team," in (record.body or "") and "numbers & plans" in (record.body or "")
    assert "alert" not in (record.body or "") and "<p>" not in (record.body or "")
    names = sorted(c.name for c in artifact.children)
    assert names == ["attached-3.eml", "logo.png", "report.pdf"]
    assert all(c.relation == "attachment" for c in artifact.children)
    assert sorted(record.attachments) == sorted(c.sha256 for c in artifact.children)
    assert blob(tmp_path, artifact, "logo.png") == PNG
    assert blob(tmp_path, artifact, "report.pdf") == b"%PDF-1.4 fake"
    assert b"Subject: Forwarded original" in blob(tmp_path, artifact, "attached-3.eml")
    assert artifact.pages[0].number == 1 and artifact.pages[0].text == record.body


def test_plain_body_preferred_over_html(tmp_path: Path) -> None:
    msg = EmailMessage()
    msg["From"] = "a@example.com"
    msg["Subject"] = "alt"
    msg.set_content("plain version\n")
    msg.add_alternative("<p>html version</p>", subtype="html")
    path = tmp_path / "alt.eml"
    path.write_bytes(msg.as_bytes())
    (record,) = extract(path, "eml", tmp_path).records
    assert record.body == "plain version"


def test_bad_charset_and_raw_8bit_headers(tmp_path: Path) -> None:
    raw = (
        b"From: =?x-nonsense?q?Bad=FFName?= <bad@example.com>\r\n"
        b"To: \"J\xfcrgen\" <j@example.com>\r\n"
        b"Subject: Gr\xfc\xdfe\r\n"
        b"Date: not a date at all\r\n"
        b"Content-Type: text/plain; charset=x-does-not-exist\r\n"
        b"\r\n"
        b"Sch\xf6ne Gr\xfc\xdfe aus K\xf6ln\r\n"
    )
    path = tmp_path / "bad.eml"
    path.write_bytes(raw)
    artifact = extract(path, "eml", tmp_path)
    assert artifact.status == "processed"
    (record,) = artifact.records
    assert record.subject == "Grüße"
    assert [p.value for p in record.participants] == ["bad@example.com", "j@example.com"]
    assert record.participants[1].name == "Jürgen"
    assert record.start is None
    assert "Sch" in (record.body or "") and "\udcf6" not in (record.body or "")
    artifact.model_dump_json()  # no lone surrogates left anywhere


def test_uuencoded_attachment_in_plain_body(tmp_path: Path) -> None:
    payload = bytes(range(256)) * 3
    lines = [binascii.b2a_uu(payload[i:i + 45]).decode() for i in range(0, len(payload), 45)]
    body = "See attached.\n\nbegin 644 data.bin\n" + "".join(lines) + "`\nend\n\nBye\n"
    raw = f"From: a@example.com\nSubject: uu\n\n{body}".encode()
    path = tmp_path / "uu.eml"
    path.write_bytes(raw)
    artifact = extract(path, "eml", tmp_path)
    (record,) = artifact.records
    assert blob(tmp_path, artifact, "data.bin") == payload
    assert record.body is not None and "begin 644" not in record.body and "Bye" in record.body
    text, files = split_uuencoded("begin 644 x.bin\nno end line here")
    assert files == [] and "begin 644" in text


def test_truncated_multipart_does_not_crash(tmp_path: Path) -> None:
    raw = (
        b"From: a@example.com\nSubject: cut\nMIME-Version: 1.0\n"
        b'Content-Type: multipart/mixed; boundary="XX"\n\n'
        b"--XX\nContent-Type: text/plain\n\nbody text\n"
        b"--XX\nContent-Type: application/pdf; name=\"a.pdf\"\n"
        b"Content-Transfer-Encoding: base64\n\nJVBERi0x!!!not-base64"
    )
    path = tmp_path / "cut.eml"
    path.write_bytes(raw)
    artifact = extract(path, "eml", tmp_path)
    assert artifact.status == "processed"
    assert artifact.records[0].body == "body text"
    assert [c.name for c in artifact.children] == ["a.pdf"]


def test_garbage_eml_fails_corrupt_email(tmp_path: Path) -> None:
    path = tmp_path / "junk.eml"
    path.write_bytes(bytes(range(256)) * 10)
    artifact = extract(path, "eml", tmp_path)
    assert (artifact.status, artifact.reason) == ("failed", "corrupt_email")


def test_attachment_over_depth_limit_is_refused_message_kept(tmp_path: Path) -> None:
    path = tmp_path / "m.eml"
    path.write_bytes(rich_message().as_bytes())
    config = EvidenceConfig(limits=ExtractionLimits(max_nesting_depth=1))
    artifact = extract(path, "eml", tmp_path, config=config, depth=1)
    assert artifact.status == "processed"
    assert artifact.children == [] and artifact.records[0].attachments == []
    assert artifact.warnings.count("limit_depth") == 3


def test_mbox_one_record_per_message_and_bad_message_skipped(tmp_path: Path) -> None:
    messages = []
    for i in range(3):
        msg = EmailMessage()
        msg["From"] = f"sender{i}@example.com"
        msg["To"] = "box@example.com"
        msg["Subject"] = f"number {i}"
        msg["Date"] = f"Mon, 0{i + 1} Feb 2021 10:00:00 +0100"
        msg.set_content(f"body {i}\n>From the archive\n")
        messages.append(msg.as_bytes())
    junk = b"\x00\x01\x02 binary noise without headers\n"
    mbox = b""
    for i, data in enumerate([messages[0], junk, messages[1], messages[2]]):
        mbox += f"From sender{i}@example.com Mon Feb  1 10:00:00 2021\n".encode() + data + b"\n"
    path = tmp_path / "box.mbox"
    path.write_bytes(mbox)
    artifact = extract(path, "mbox", tmp_path)
    assert artifact.status == "processed"
    assert [r.locator for r in artifact.records] == ["msg:0", "msg:2", "msg:3"]
    assert [r.subject for r in artifact.records] == ["number 0", "number 1", "number 2"]
    assert artifact.records[1].start == "2021-02-02T10:00:00+01:00"
    assert [p.number for p in artifact.pages] == [1, 3, 4]
    assert artifact.warnings == ["mbox_bad_message"]
    assert artifact.metadata["messages"] == 3


def test_empty_mbox_fails(tmp_path: Path) -> None:
    path = tmp_path / "empty.mbox"
    path.write_bytes(b"no from line here\n")
    artifact = extract(path, "mbox", tmp_path)
    assert (artifact.status, artifact.reason) == ("failed", "corrupt_email")


# --- .msg: extract-msg cannot write messages, so the test builds the OLE streams itself -------


def _utf16(text: str) -> bytes:
    return text.encode("utf-16-le")


def _prop(tag: int, value: int) -> bytes:
    return struct.pack("<IIQ", tag, 6, value)


def _filetime(moment: dt.datetime) -> int:
    epoch = dt.datetime(1601, 1, 1, tzinfo=dt.UTC)
    return int((moment - epoch).total_seconds() * 10_000_000)


def _write_message(
    writer: OleWriter, prefix: list[str], subject: str, embedded: bool,
    attachment: bytes | None = None, inner_subject: str | None = None,
) -> None:
    """MS-OXMSG streams of one IPM.Note: sender, one recipient, optional attachments."""
    count = int(attachment is not None) + int(inner_subject is not None)
    header = bytes(8) + struct.pack("<IIII", 1, count, 1, count)
    header += b"" if embedded else bytes(8)
    sent = _filetime(dt.datetime(2021, 3, 4, 5, 6, 7, tzinfo=dt.UTC))
    writer.addEntry([*prefix, "__properties_version1.0"], header + _prop(0x00390040, sent))
    for stream, text in (
        ("001A001F", "IPM.Note"), ("0037001F", subject), ("1000001F", f"Body of {subject}"),
        ("0C1A001F", "Roe, Jane"), ("5D01001F", "Jane.Roe@Example.com"),
        ("1035001F", "<msg-1@example.com>"),
    ):
        writer.addEntry([*prefix, f"__substg1.0_{stream}"], _utf16(text))
    recip = [*prefix, "__recip_version1.0_#00000000"]
    writer.addEntry(recip, storage=True)
    writer.addEntry([*recip, "__properties_version1.0"], bytes(8) + _prop(0x0C150003, 2))
    writer.addEntry([*recip, "__substg1.0_3001001F"], _utf16("Bob Smith"))
    writer.addEntry([*recip, "__substg1.0_39FE001F"], _utf16("Bob@Example.com"))
    index = 0
    if attachment is not None:
        att = [*prefix, f"__attach_version1.0_#{index:08X}"]
        writer.addEntry(att, storage=True)
        writer.addEntry([*att, "__properties_version1.0"], bytes(8) + _prop(0x37050003, 1))
        writer.addEntry([*att, "__substg1.0_3707001F"], _utf16("notes.txt"))
        writer.addEntry([*att, "__substg1.0_37010102"], attachment)
        index += 1
    if inner_subject is not None:
        att = [*prefix, f"__attach_version1.0_#{index:08X}"]
        writer.addEntry(att, storage=True)
        writer.addEntry([*att, "__properties_version1.0"], bytes(8) + _prop(0x37050003, 5))
        writer.addEntry([*att, "__substg1.0_3001001F"], _utf16("Inner item"))
        inner = [*att, "__substg1.0_3701000D"]
        writer.addEntry(inner, storage=True)
        _write_message(writer, inner, inner_subject, embedded=True)


def write_msg(path: Path, attachment: bytes | None, inner_subject: str | None) -> Path:
    writer = OleWriter()
    writer.addEntry(["__nameid_version1.0"], storage=True)
    for stream in ("00020102", "00030102", "00040102"):
        writer.addEntry(["__nameid_version1.0", f"__substg1.0_{stream}"], b"")
    _write_message(writer, [], "Quarterly numbers", False, attachment, inner_subject)
    writer.write(str(path))
    return path


def test_msg_fields_attachment_and_embedded_item(tmp_path: Path) -> None:
    path = write_msg(tmp_path / "m.msg", b"attached bytes\n", "Inner subject")
    artifact = extract(path, "msg", tmp_path)
    assert artifact.status == "processed", artifact.detail
    (record,) = artifact.records
    assert record.locator == "msg:0" and record.subject == "Quarterly numbers"
    assert [(p.role, p.value, p.name) for p in record.participants] == [
        ("from", "jane.roe@example.com", "Roe, Jane"), ("cc", "bob@example.com", "Bob Smith"),
    ]
    assert record.start == "2021-03-04T05:06:07+00:00"
    assert record.body == "Body of Quarterly numbers"
    assert record.message_id == "<msg-1@example.com>"
    names = [c.name for c in artifact.children]
    assert names == ["notes.txt", "Inner item.msg"]
    assert blob(tmp_path, artifact, "notes.txt") == b"attached bytes\n"
    assert record.attachments == [c.sha256 for c in artifact.children]
    # the embedded item is a readable .msg of its own
    inner_path = tmp_path / "inner.msg"
    inner_path.write_bytes(blob(tmp_path, artifact, "Inner item.msg"))
    inner = extract(inner_path, "msg", tmp_path / "inner")
    assert inner.status == "processed" and inner.records[0].subject == "Inner subject"


def test_msg_garbage_and_foreign_ole_fail_corrupt_email(tmp_path: Path) -> None:
    junk = tmp_path / "junk.msg"
    junk.write_bytes(b"\xd0\xcf\x11\xe0 truncated" + bytes(600))
    assert extract(junk, "msg", tmp_path).reason == "corrupt_email"
    writer = OleWriter()
    writer.addEntry(["WordDocument"], b"\x00" * 4096)
    foreign = tmp_path / "doc.msg"
    writer.write(str(foreign))
    artifact = extract(foreign, "msg", tmp_path)
    assert (artifact.status, artifact.reason) == ("failed", "corrupt_email")


def test_email_date_keeps_offset_or_stays_naive() -> None:
    assert email_date("Sun, 29 Nov 2015 09:45:18 +0100") == "2015-11-29T09:45:18+01:00"
    assert email_date("Wed, 24 Apr 2019 10:05:02 +0200 (CEST)") == "2019-04-24T10:05:02+02:00"
    assert email_date("Mon, 1 Feb 2021 10:00:00 -0000") == "2021-02-01T10:00:00"
    assert email_date("2021-02-01 10:00") == "2021-02-01T10:00:00"
    assert email_date("garbage") is None


def test_html_to_text_skips_scripts_and_keeps_blocks() -> None:
    html = "<div>One</div><script>var x = 1;</script><table><tr><td>a</td><td>b</td></tr></table>"
    assert html_to_text(html) == "One\n\na b"


def test_attachment_count_is_capped(tmp_path: Path) -> None:
    path = tmp_path / "m.eml"
    path.write_bytes(rich_message().as_bytes())
    config = EvidenceConfig(limits=ExtractionLimits(max_archive_entries=2))
    artifact = extract(path, "eml", tmp_path, config=config)
    assert artifact.status == "processed"
    assert len(artifact.children) == 2 and len(artifact.records[0].attachments) == 2
    assert artifact.warnings == ["limit_entries"]
