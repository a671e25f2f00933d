"""Text extractor: encodings of plain text, docx paragraphs and metadata, hostile docx."""

from __future__ import annotations

import hashlib
import random
import zipfile
from pathlib import Path

import pytest

from chrono.core.config import EvidenceConfig, ExtractionLimits
from chrono.evidence.extract.base import ExtractContext, SourceFile, run_extractor
from chrono.evidence.extract.text import MAX_TEXT_CHARS, detect_encoding
from chrono.evidence.model import Artifact

W_NS = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"


def extract(path: Path, kind: str, out: Path, config: EvidenceConfig | None = None) -> Artifact:
    data = path.read_bytes()
    source = SourceFile(
        path=path, sha256=hashlib.sha256(data).hexdigest(), size=len(data), kind=kind,
        name=path.name,
    )
    ctx = ExtractContext(config=config or EvidenceConfig(), artifact_dir=out / "artifact")
    return run_extractor(source, ctx)


def document_xml(body: str, prolog: str = "") -> str:
    return (
        f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>{prolog}'
        f'<w:document xmlns:w="{W_NS}"><w:body>{body}</w:body></w:document>'
    )


def write_docx(path: Path, document: str, core: str | None = None) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        archive.writestr("word/document.xml", document)
        if core is not None:
            archive.writestr("docProps/core.xml", core)
    return path


CORE = (
    '<?xml version="1.0" encoding="UTF-8"?>'
    '<cp:coreProperties xmlns:cp="http://schemas.openxmlformats.org/package/2006/metadata/'
    'core-properties" xmlns:dc="http://purl.org/dc/elements/1.1/" '
    'xmlns:dcterms="http://purl.org/dc/terms/" '
    'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">'
    "<dc:title>Settlement memo</dc:title>"
    '<dcterms:created xsi:type="dcterms:W3CDTF">2025-03-03T14:05:09Z</dcterms:created>'
    "</cp:coreProperties>"
)


# --- plain text ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("encoding", "expected_codec"),
    [("utf-8", "utf-8"), ("utf-8-sig", "utf-8-sig"), ("utf-16", "utf-16"), ("cp1252", "cp1252")],
)
def test_plain_text_encodings(tmp_path: Path, encoding: str, expected_codec: str) -> None:
    text = "Meeting with José Müller on 3 March.\nFrançoise Lefèvre will call back.\n"
    path = tmp_path / "note.txt"
    path.write_bytes(text.encode(encoding))
    artifact = extract(path, "text", tmp_path)
    assert artifact.status == "processed", artifact.reason
    assert artifact.metadata["encoding"] == expected_codec
    assert [p.text for p in artifact.pages] == [text]
    assert artifact.pages[0].method == "text_layer"


def test_non_utf8_byte_far_into_the_file_is_found(tmp_path: Path) -> None:
    # The first megabyte is plain ASCII; the only non-UTF-8 byte comes after it.
    path = tmp_path / "long.txt"
    path.write_bytes(b"a" * (2 << 20) + "\nCafé crème\n".encode("cp1252"))
    assert detect_encoding(path) == "cp1252"
    artifact = extract(path, "text", tmp_path)
    assert artifact.text.endswith("Café crème\n")


def test_random_bytes_are_bad_encoding(tmp_path: Path) -> None:
    path = tmp_path / "noise.txt"
    path.write_bytes(b"Hello " + random.Random(3).randbytes(8000).replace(b"\xef", b"\xff\xfe"))
    artifact = extract(path, "text", tmp_path)
    assert (artifact.status, artifact.reason) == ("failed", "bad_encoding")


def test_long_text_is_truncated_with_a_warning(tmp_path: Path) -> None:
    path = tmp_path / "long.txt"
    path.write_text("abcd\n" * (MAX_TEXT_CHARS // 5 + 10))
    artifact = extract(path, "text", tmp_path)
    assert artifact.status == "processed"
    assert len(artifact.text) == MAX_TEXT_CHARS
    assert artifact.warnings == ["text_truncated"]


# --- docx ----------------------------------------------------------------------------------


def test_docx_paragraphs_and_core_properties(tmp_path: Path) -> None:
    body = (
        "<w:p><w:r><w:t>Call from Bob at </w:t></w:r><w:r><w:t>9:05 AM.</w:t></w:r></w:p>"
        "<w:p><w:r><w:t>Item</w:t><w:tab/><w:t>Amount</w:t><w:br/><w:t>next line</w:t></w:r></w:p>"
        "<w:tbl><w:tr><w:tc><w:p><w:r><w:t>In a table</w:t></w:r></w:p></w:tc></w:tr></w:tbl>"
        "<w:p/>"
    )
    path = write_docx(tmp_path / "memo.docx", document_xml(body), CORE)
    artifact = extract(path, "docx", tmp_path)
    assert artifact.status == "processed", artifact.reason
    assert artifact.text == "Call from Bob at 9:05 AM.\nItem\tAmount\nnext line\nIn a table\n"
    assert artifact.metadata["created"] == "2025-03-03T14:05:09+00:00"
    assert artifact.metadata["title"] == "Settlement memo"


def test_docx_without_core_properties(tmp_path: Path) -> None:
    path = write_docx(tmp_path / "plain.docx", document_xml("<w:p><w:r><w:t>x</w:t></w:r></w:p>"))
    artifact = extract(path, "docx", tmp_path)
    assert artifact.text == "x"
    assert "created" not in artifact.metadata


def test_docx_with_external_entity_is_refused(tmp_path: Path) -> None:
    prolog = '<!DOCTYPE w:document [<!ENTITY host SYSTEM "file:///etc/hostname">]>'
    path = write_docx(
        tmp_path / "xxe.docx",
        document_xml("<w:p><w:r><w:t>&host;</w:t></w:r></w:p>", prolog),
    )
    artifact = extract(path, "docx", tmp_path)
    assert (artifact.status, artifact.reason) == ("failed", "xml_entities")
    hostname = Path("/etc/hostname").read_text().strip() if Path("/etc/hostname").exists() else ""
    if len(hostname) >= 2:
        assert hostname not in artifact.model_dump_json()


def test_docx_billion_laughs_in_core_xml_is_refused(tmp_path: Path) -> None:
    core = (
        '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
        '<!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]>'
        "<cp:coreProperties xmlns:cp=\"urn:x\">&lol2;</cp:coreProperties>"
    )
    path = write_docx(tmp_path / "lol.docx", document_xml("<w:p/>"), core)
    assert extract(path, "docx", tmp_path).reason == "xml_entities"


def test_docx_document_over_the_size_limit(tmp_path: Path) -> None:
    body = "<w:p><w:r><w:t>" + "a" * 3_000_000 + "</w:t></w:r></w:p>"
    path = write_docx(tmp_path / "big.docx", document_xml(body))
    config = EvidenceConfig(limits=ExtractionLimits(max_file_bytes=1_000_000))
    artifact = extract(path, "docx", tmp_path, config)
    assert (artifact.status, artifact.reason) == ("failed", "limit_size")


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("notzip.docx", b"this is not a zip at all"),
        ("nodoc.docx", None),
        ("broken.docx", b"<w:document><w:body><w:p>"),
    ],
)
def test_broken_docx_is_corrupt(tmp_path: Path, name: str, content: bytes | None) -> None:
    path = tmp_path / name
    if name == "notzip.docx":
        path.write_bytes(content or b"")
    elif content is None:
        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr("word/other.xml", "<x/>")
    else:
        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr("word/document.xml", content)
    assert extract(path, "docx", tmp_path).reason == "corrupt"
