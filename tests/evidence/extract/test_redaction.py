"""Redaction boxes: found on real-looking pages, not on text, rules or photos; read as a token."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from chrono.core.config import OcrConfig
from chrono.evidence.extract.ocr import REDACTED_TOKEN, ocr_image
from chrono.evidence.extract.redaction import find_redactions, otsu_threshold

from .page_images import BOLD_FONT, LINES, render_lines


def dark_of(image: Image.Image) -> np.ndarray:
    pixels = np.asarray(image.convert("L"))
    return pixels <= otsu_threshold(pixels)


def blank(width: int = 1500, height: int = 900) -> Image.Image:
    return Image.new("L", (width, height), 255)


def test_solid_box_is_found_with_its_extent() -> None:
    page = blank()
    ImageDraw.Draw(page).rectangle((300, 200, 899, 259), fill=0)
    (box,) = find_redactions(dark_of(page), dpi=300)
    assert abs(box.left - 300) <= 2 and abs(box.right - 900) <= 2
    assert abs(box.top - 200) <= 2 and abs(box.bottom - 260) <= 2


def test_skewed_noisy_box_is_found() -> None:
    page = blank()
    ImageDraw.Draw(page).rectangle((300, 400, 1100, 460), fill=0)
    page = page.rotate(1.0, resample=Image.Resampling.BILINEAR, fillcolor=255)
    noisy = np.asarray(page, dtype=np.int16) + np.random.default_rng(1).normal(0, 15, (900, 1500))
    pixels = np.clip(noisy, 0, 255).astype(np.uint8)
    assert len(find_redactions(pixels <= otsu_threshold(pixels), dpi=300)) == 1


def test_bold_text_rules_and_thin_bars_are_not_redactions() -> None:
    page = blank(2400, 1200)
    draw = ImageDraw.Draw(page)
    draw.text((60, 40), "What Kids Need Most", font=ImageFont.truetype(BOLD_FONT, 160), fill=0)
    draw.text((60, 300), "Bold body text line", font=ImageFont.truetype(BOLD_FONT, 60), fill=0)
    draw.rectangle((60, 500, 2300, 505), fill=0)  # horizontal rule
    draw.rectangle((60, 600, 2300, 612), fill=0)  # thick rule, thinner than a text line
    draw.rectangle((1000, 700, 1020, 1100), fill=0)  # vertical bar
    assert find_redactions(dark_of(page), dpi=300) == []


def test_speckled_dark_photo_and_page_border_are_not_redactions() -> None:
    page = blank()
    rng = np.random.default_rng(3)
    pixels = np.asarray(page).copy()
    photo = np.where(rng.random((400, 500)) < 0.06, 255, 0).astype(np.uint8)
    pixels[200:600, 300:800] = photo
    pixels[850:, :] = 0  # scanner border along the bottom edge
    assert find_redactions(pixels < 128, dpi=300) == []


def test_ocr_writes_token_where_the_box_covers_words() -> None:
    page = render_lines()
    draw = ImageDraw.Draw(page)
    font = ImageFont.truetype("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf", 40)
    start = 60 + draw.textlength("and discussed the ", font=font)
    end = 60 + draw.textlength("and discussed the secret payment", font=font)
    draw.rectangle((start - 4, 60 + 70 - 4, end + 4, 60 + 70 + 52), fill=0)
    result = ocr_image(page, 1, OcrConfig())
    assert result.redactions == 1
    assert result.text.count(REDACTED_TOKEN) == 1
    lines = result.text.splitlines()
    assert lines[0] == LINES[0]
    assert lines[1] == f"and discussed the {REDACTED_TOKEN} plan today"
    assert lines[2] == LINES[2]
    assert "secret" not in result.text


def test_box_between_lines_becomes_its_own_line() -> None:
    page = render_lines(line_gap=160)
    ImageDraw.Draw(page).rectangle((200, 60 + 160 + 75, 900, 60 + 160 + 130), fill=0)
    result = ocr_image(page, 1, OcrConfig())
    lines = [line for line in result.text.splitlines() if line.strip()]
    assert lines == [LINES[0], LINES[1], REDACTED_TOKEN, LINES[2]]


def test_detection_can_be_switched_off() -> None:
    page = render_lines()
    ImageDraw.Draw(page).rectangle((300, 60 + 70 - 4, 700, 60 + 70 + 52), fill=0)
    result = ocr_image(page, 1, OcrConfig(detect_redactions=False))
    assert result.redactions == 0
    assert REDACTED_TOKEN not in result.text
