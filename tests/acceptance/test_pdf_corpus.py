"""PDF extractor against real third-party PDFs: pypdf's test files and qpdf's malformed ones."""

from __future__ import annotations

import unicodedata
from pathlib import Path

import pytest

from tests.evidence.extract.page_images import cer, extract

PYPDF = "pdf_pypdf"
QPDF = "pdf_qpdf_malformed"


def test_crazyones_text_layer_matches(corpus: Path, tmp_path: Path) -> None:
    folder = corpus / PYPDF
    artifact = extract(folder / "crazyones.pdf", "pdf", tmp_path)
    assert artifact.status == "processed", artifact.reason
    (page,) = artifact.pages
    assert page.method == "text_layer"
    # The truth keeps ligature characters (ﬁ); PDFium spells them out, so compare NFKC forms.
    truth = unicodedata.normalize("NFKC", (folder / "crazyones.txt").read_text(encoding="utf-8"))
    assert cer(unicodedata.normalize("NFKC", page.text), truth) <= 0.01
    assert artifact.metadata["created"] == "2015-06-04T13:34:06-06:00"


@pytest.mark.parametrize(
    ("name", "password", "wrong"),
    [
        ("crazyones-encrypted-256.pdf", "password", "qwerty"),
        ("encrypted-file.pdf", "test", "qwerty"),
        ("r4-aes-user-password.pdf", "asdfzxcv", "qwerty"),
        ("r6-user-password.pdf", "asdfzxcv", "qwerty"),
    ],
)
def test_encrypted_pdfs(corpus: Path, tmp_path: Path, name: str, password: str,
                        wrong: str) -> None:
    path = corpus / PYPDF / name
    assert extract(path, "pdf", tmp_path).reason == "password_required"
    failed = extract(path, "pdf", tmp_path, passwords=(wrong,))
    assert (failed.status, failed.reason) == ("failed", "wrong_password")
    opened = extract(path, "pdf", tmp_path, passwords=(wrong, password))
    assert opened.status == "processed", opened.reason
    assert opened.pages and opened.pages[0].text.strip()
    assert wrong not in failed.model_dump_json()
    assert password not in (failed.detail or "")


def test_encrypted_crazyones_reads_like_the_plain_one(corpus: Path, tmp_path: Path) -> None:
    plain = extract(corpus / PYPDF / "crazyones.pdf", "pdf", tmp_path)
    locked = extract(corpus / PYPDF / "crazyones-encrypted-256.pdf", "pdf", tmp_path,
                     passwords=("password",))
    assert locked.text == plain.text


def test_broken_xref_is_recovered(corpus: Path, tmp_path: Path) -> None:
    artifact = extract(corpus / PYPDF / "issue-297.pdf", "pdf", tmp_path)
    assert artifact.status == "processed", artifact.reason
    assert artifact.metadata["page_count"] == 1
    assert len(artifact.pages) == 1


def test_scanned_pdf_with_ocr_layer_uses_its_text_layer(corpus: Path, tmp_path: Path) -> None:
    artifact = extract(corpus / PYPDF / "Seige_of_Vicksburg_Sample_OCR.pdf", "pdf", tmp_path)
    assert artifact.status == "processed", artifact.reason
    assert {p.method for p in artifact.pages} == {"text_layer"}
    assert "Vicksburg" in artifact.text


def test_every_malformed_qpdf_file_has_an_outcome(corpus: Path, tmp_path: Path) -> None:
    files = sorted((corpus / QPDF).glob("*.pdf"))
    assert len(files) == 6
    outcomes = {}
    for path in files:
        artifact = extract(path, "pdf", tmp_path)
        assert artifact.status in ("processed", "failed")
        if artifact.status == "failed":
            assert artifact.reason == "corrupt_pdf", (path.name, artifact.reason)
        outcomes[path.name] = artifact
    assert outcomes["bad1.pdf"].reason == "corrupt_pdf"  # not a PDF at all
    # qpdf's bad2-recover.out: recovery reconstructs the xref; the page reads "Potato".
    assert outcomes["bad2.pdf"].status == "processed"
    assert "Potato" in outcomes["bad2.pdf"].text
    assert outcomes["append-xref-loop.pdf"].status == "processed"
    assert outcomes["append-xref-loop.pdf"].metadata["page_count"] == 30
    assert list(tmp_path.glob(".repair-*")) == []
