"""OCR against Tesseract's own test images (tesseract-ocr/test): phototest, rotations, eurotext."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.evidence.extract.page_images import cer, extract

OCR = "ocr_tesseract"


def test_phototest_reads_within_one_percent(corpus: Path, tmp_path: Path) -> None:
    folder = corpus / OCR
    artifact = extract(folder / "phototest.tif", "tiff", tmp_path)
    assert artifact.status == "processed", artifact.reason
    (page,) = artifact.pages
    assert page.method == "ocr" and page.rotation == 0
    truth = (folder / "phototest.txt").read_text(encoding="utf-8")
    assert cer(page.text, truth) <= 0.01


@pytest.mark.parametrize(
    ("name", "rotation"),
    [("phototest-rotated-180.png", 180), ("phototest-rotated-L.png", 270),
     ("phototest-rotated-R.png", 90)],
)
def test_rotated_phototests_read_the_same(
    corpus: Path, tmp_path: Path, name: str, rotation: int
) -> None:
    folder = corpus / OCR
    artifact = extract(folder / name, "png", tmp_path)
    assert artifact.status == "processed", artifact.reason
    (page,) = artifact.pages
    assert page.rotation == rotation
    truth = (folder / "phototest.txt").read_text(encoding="utf-8")
    assert cer(page.text, truth) <= 0.03


def test_eurotext_runs_and_keeps_amounts(corpus: Path, tmp_path: Path) -> None:
    folder = corpus / OCR
    artifact = extract(folder / "eurotext.tif", "tiff", tmp_path)
    assert artifact.status == "processed", artifact.reason
    text = artifact.pages[0].text
    truth = (folder / "eurotext.txt").read_text(encoding="utf-8")
    assert cer(text, truth) <= 0.08  # several languages, eng model only
    assert "$43,456.78" in text
    assert "quick" in text
