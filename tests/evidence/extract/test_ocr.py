"""OCR engine: reads a rendered page, corrects its orientation, fails clearly without tessdata."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from chrono.core.config import EvidenceConfig, OcrConfig
from chrono.core.errors import FileRejected
from chrono.evidence.extract.ocr import despeckle, find_tessdata, ocr_image, to_gray

from .page_images import LINES, cer, extract, render_lines


@pytest.fixture(scope="module")
def page() -> Image.Image:
    return render_lines()


def test_reads_a_rendered_page(page: Image.Image) -> None:
    result = ocr_image(page, 7, OcrConfig())
    assert result.number == 7
    assert result.method == "ocr"
    assert result.rotation == 0
    assert result.redactions == 0
    assert cer(result.text, "\n".join(LINES)) <= 0.01
    assert result.confidence is not None and result.confidence > 80


def test_sideways_page_is_turned_upright(page: Image.Image) -> None:
    sideways = page.transpose(Image.Transpose.ROTATE_270)
    result = ocr_image(sideways, 1, OcrConfig())
    assert result.rotation == 90
    assert cer(result.text, "\n".join(LINES)) <= 0.02


def test_orientation_detection_can_be_switched_off(page: Image.Image) -> None:
    upside_down = page.transpose(Image.Transpose.ROTATE_180)
    result = ocr_image(upside_down, 1, OcrConfig(detect_orientation=False))
    assert result.rotation == 0
    assert cer(result.text, "\n".join(LINES)) > 0.3


def test_blank_page_gives_empty_text() -> None:
    result = ocr_image(Image.new("L", (600, 400), 255), 1, OcrConfig())
    assert result.text == ""


def test_transparent_image_is_read_on_white() -> None:
    rgba = Image.new("RGBA", (10, 10), (0, 0, 0, 0))
    assert np.asarray(to_gray(rgba)).min() == 255


def test_despeckle_drops_isolated_dots_only() -> None:
    dark = np.zeros((20, 20), dtype=bool)
    dark[2, 2] = True
    dark[10:12, 10:12] = True
    cleaned = despeckle(dark)
    assert not cleaned[2, 2]
    assert cleaned[10:12, 10:12].all()


def test_missing_tessdata_is_ocr_unavailable(tmp_path: Path) -> None:
    with pytest.raises(FileRejected) as err:
        find_tessdata(OcrConfig(tessdata=str(tmp_path)))
    assert err.value.code == "ocr_unavailable"
    with pytest.raises(FileRejected) as err:
        find_tessdata(OcrConfig(language="xx_nonexistent"))
    assert err.value.code == "ocr_unavailable"


def test_missing_tessdata_fails_the_file_not_the_run(tmp_path: Path, page: Image.Image) -> None:
    path = tmp_path / "page.png"
    page.save(path)
    config = EvidenceConfig(ocr=OcrConfig(tessdata=str(tmp_path / "nowhere")))
    artifact = extract(path, "png", tmp_path / "out", config=config)
    assert artifact.status == "failed"
    assert artifact.reason == "ocr_unavailable"
