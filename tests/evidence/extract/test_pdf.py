"""PDF extractor: text layers, OCR of image-only pages, passwords, repair, limits, metadata."""

from __future__ import annotations

import io
from pathlib import Path

import pikepdf
import pytest
from reportlab.pdfgen import canvas

from chrono.core.config import EvidenceConfig, ExtractionLimits
from chrono.evidence.extract.pdf import pdf_date_to_iso

from .page_images import LINES, cer, extract, render_lines

SECRET = "s3cret-pass"


def text_pdf(pages: list[list[str]], title: str | None = None) -> bytes:
    buffer = io.BytesIO()
    pdf = canvas.Canvas(buffer, invariant=True)
    if title:
        pdf.setTitle(title)
    for lines in pages:
        text = pdf.beginText(72, 720)
        text.setFont("Helvetica", 12)
        for line in lines:
            text.textLine(line)
        pdf.drawText(text)
        pdf.showPage()
    pdf.save()
    return buffer.getvalue()


@pytest.fixture()
def two_page_pdf(tmp_path: Path) -> Path:
    path = tmp_path / "doc.pdf"
    path.write_bytes(text_pdf([list(LINES), ["Second page says hello to the reader"]],
                              title="Board minutes"))
    return path


def test_text_layer_per_page_with_metadata(tmp_path: Path, two_page_pdf: Path) -> None:
    artifact = extract(two_page_pdf, "pdf", tmp_path / "out")
    assert artifact.status == "processed", artifact.reason
    assert [p.method for p in artifact.pages] == ["text_layer", "text_layer"]
    assert artifact.pages[0].text == "\n".join(LINES)
    assert artifact.pages[1].text == "Second page says hello to the reader"
    assert artifact.metadata["page_count"] == 2
    assert artifact.metadata["title"] == "Board minutes"
    assert artifact.metadata["created"].startswith("2000-01-01T00:00:00")


def test_image_only_pdf_goes_to_ocr(tmp_path: Path) -> None:
    path = tmp_path / "scan.pdf"
    render_lines().convert("RGB").save(path, resolution=300)
    artifact = extract(path, "pdf", tmp_path / "out")
    assert artifact.status == "processed", artifact.reason
    (page,) = artifact.pages
    assert page.method == "ocr"
    assert cer(page.text, "\n".join(LINES)) <= 0.02


def test_rendered_page_over_pixel_limit_fails(tmp_path: Path) -> None:
    path = tmp_path / "scan.pdf"
    render_lines().convert("RGB").save(path, resolution=300)
    config = EvidenceConfig(limits=ExtractionLimits(max_image_pixels=100_000))
    artifact = extract(path, "pdf", tmp_path / "out", config=config)
    assert (artifact.status, artifact.reason) == ("failed", "limit_pixels")


def test_page_limit(tmp_path: Path, two_page_pdf: Path) -> None:
    config = EvidenceConfig(limits=ExtractionLimits(max_pages=1))
    artifact = extract(two_page_pdf, "pdf", tmp_path / "out", config=config)
    assert (artifact.status, artifact.reason) == ("failed", "limit_pages")


@pytest.fixture()
def encrypted_pdf(tmp_path: Path, two_page_pdf: Path) -> Path:
    path = tmp_path / "locked.pdf"
    with pikepdf.open(two_page_pdf) as pdf:
        pdf.save(path, encryption=pikepdf.Encryption(user=SECRET, owner=SECRET + "-owner"))
    return path


def test_encrypted_pdf_needs_the_right_password(tmp_path: Path, encrypted_pdf: Path) -> None:
    out = tmp_path / "out"
    missing = extract(encrypted_pdf, "pdf", out)
    assert (missing.status, missing.reason) == ("failed", "password_required")
    wrong = extract(encrypted_pdf, "pdf", out, passwords=("guess", "other"))
    assert (wrong.status, wrong.reason) == ("failed", "wrong_password")
    opened = extract(encrypted_pdf, "pdf", out, passwords=("guess", SECRET))
    assert opened.status == "processed"
    assert opened.pages[1].text == "Second page says hello to the reader"
    for artifact in (missing, wrong, opened):
        dumped = artifact.model_dump_json()
        assert SECRET not in dumped and "guess" not in dumped
    assert "hello" not in (wrong.detail or "")


def test_pdf_pdfium_cannot_open_is_repaired(tmp_path: Path) -> None:
    path = tmp_path / "junk-prefixed.pdf"
    path.write_bytes(b"X" * 3000 + text_pdf([["Recovered potato text"]]))
    out = tmp_path / "out"
    artifact = extract(path, "pdf", out)
    assert artifact.status == "processed", artifact.reason
    assert artifact.pages[0].text == "Recovered potato text"
    assert "pdf_repaired" in artifact.warnings
    assert list(out.iterdir()) == []  # the repaired temp copy is gone


def test_broken_encrypted_pdf_is_repaired_with_the_password(
    tmp_path: Path, encrypted_pdf: Path
) -> None:
    path = tmp_path / "broken-locked.pdf"
    path.write_bytes(b"X" * 3000 + encrypted_pdf.read_bytes())
    out = tmp_path / "out"
    assert extract(path, "pdf", out).reason == "password_required"
    assert extract(path, "pdf", out, passwords=("nope",)).reason == "wrong_password"
    artifact = extract(path, "pdf", out, passwords=("nope", SECRET))
    assert artifact.status == "processed", artifact.reason
    assert "Second page" in artifact.pages[1].text
    assert list(out.iterdir()) == []


def test_not_a_pdf_is_corrupt(tmp_path: Path) -> None:
    path = tmp_path / "fake.pdf"
    path.write_bytes(b"%PDF-1.7\nthis is not really a pdf at all\n")
    artifact = extract(path, "pdf", tmp_path / "out")
    assert (artifact.status, artifact.reason) == ("failed", "corrupt_pdf")
    empty = tmp_path / "empty.pdf"
    empty.write_bytes(b"")
    assert extract(empty, "pdf", tmp_path / "out").status == "failed"


@pytest.mark.parametrize(
    ("raw", "iso"),
    [
        ("D:20150604133406-06'00'", "2015-06-04T13:34:06-06:00"),
        ("D:20220407205911+05'00'", "2022-04-07T20:59:11+05:00"),
        ("D:20230102030405Z", "2023-01-02T03:04:05+00:00"),
        ("D:20230102030405", "2023-01-02T03:04:05"),
        ("D:2023", "2023-01-01T00:00:00"),
        ("20230102", "2023-01-02T00:00:00"),
        ("D:20231399", None),
        ("", None),
        ("garbage", None),
    ],
)
def test_pdf_dates(raw: str, iso: str | None) -> None:
    assert pdf_date_to_iso(raw) == iso
