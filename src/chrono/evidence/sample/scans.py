"""Scanned pages: 300 dpi letter pages drawn with PIL, then skewed, noised and redacted.

Pages use DejaVu Sans (Debian package ``fonts-dejavu-core``) at about 11 pt. Redaction boxes are
black rectangles over chosen body words, never over header lines. The noise comes from a numpy
generator seeded from the page key, so a page renders to the same pixels every time.
"""

from __future__ import annotations

import hashlib
import io
import textwrap
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import numpy as np
from PIL import Image, ImageChops, ImageDraw, ImageFont

FONT_PATH = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")
DPI = 300
PAGE_SIZE = (2550, 3300)  # US letter at 300 dpi
MARGIN = 250
FONT_PX = 46  # 11 pt at 300 dpi
LINE_PX = 68
WRAP_CHARS = 72
NOISE_SIGMA = 10.0
NOISE_TILE = 512


@dataclass
class ScanPage:
    """What one scanned page shows; rendering is deferred until the file is written."""

    key: str
    """Stable name seeding this page's noise (e.g. the file path plus page number)."""
    lines: list[str]
    header_lines: int
    """How many leading lines are a header block (never redacted)."""
    skew: float
    """Degrees of rotation, within ±1.5."""
    redactions: list[tuple[int, int]] = field(default_factory=list)
    """(line index, word index) of body words covered by a black box."""


def layout(header: list[str], body: str) -> tuple[list[str], int]:
    """Wrap a header block and a body to page lines (a blank line between them); returns the
    lines and how many of them belong to the header."""
    lines: list[str] = []
    for line in header:
        lines += textwrap.wrap(line, WRAP_CHARS, subsequent_indent="    ",
                               break_on_hyphens=False) or [""]
    header_count = len(lines)
    if header:
        lines.append("")
    for para in body.split("\n"):
        lines += textwrap.wrap(para, WRAP_CHARS, break_on_hyphens=False) or [""]
    return lines, header_count


def redactable_words(lines: list[str], header_lines: int, avoid: tuple[str, ...]) -> list[
        tuple[int, int]]:
    """Body words that may be covered: plain words, no digits, addresses or canary strings."""
    spots = []
    for li, line in enumerate(lines):
        if li < header_lines:
            continue
        for wi, word in enumerate(line.split(" ")):
            if (len(word) >= 4 and word.isalpha()
                    and not any(a.lower() in line.lower() for a in avoid)):
                spots.append((li, wi))
    return spots


@cache
def _font() -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(str(FONT_PATH), FONT_PX)


def render(page: ScanPage) -> Image.Image:
    """Draw, redact, skew and noise one page; returns an 8-bit grayscale image."""
    image = Image.new("L", PAGE_SIZE, 255)
    draw = ImageDraw.Draw(image)
    font = _font()
    covered = set(page.redactions)
    for li, line in enumerate(page.lines):
        y = MARGIN + li * LINE_PX
        draw.text((MARGIN, y), line, font=font, fill=0)
        words = line.split(" ")
        for wi, word in enumerate(words):
            if (li, wi) not in covered:
                continue
            x0 = MARGIN + font.getlength(" ".join(words[:wi]) + (" " if wi else ""))
            x1 = x0 + font.getlength(word)
            draw.rectangle((x0 - 6, y - 4, x1 + 6, y + FONT_PX + 10), fill=0)
    image = image.rotate(page.skew, resample=Image.Resampling.BILINEAR, fillcolor=255)
    return ImageChops.add(image, _noise(page.key), scale=1.0, offset=-128)


def _noise(key: str) -> Image.Image:
    """Gaussian noise centred on 128, tiled from a seeded square (fast, and the 512 px period is
    invisible to OCR)."""
    seed = int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big")
    values = np.random.default_rng(seed).standard_normal((NOISE_TILE, NOISE_TILE),
                                                         dtype=np.float32)
    tile = Image.fromarray(np.clip(values * NOISE_SIGMA + 128, 0, 255).astype(np.uint8), "L")
    noise = Image.new("L", PAGE_SIZE)
    for x in range(0, PAGE_SIZE[0], NOISE_TILE):
        for y in range(0, PAGE_SIZE[1], NOISE_TILE):
            noise.paste(tile, (x, y))
    return noise


def bilevel(image: Image.Image) -> Image.Image:
    """Threshold (no dithering), the way office scanners produce black-and-white TIFFs."""
    return image.point(lambda v: 255 if v >= 150 else 0).convert("1", dither=Image.Dither.NONE)


def tiff_bytes(pages: list[ScanPage], compression: str) -> bytes:
    """A (multi-page) bilevel TIFF, ``compression`` ``group4`` or ``tiff_lzw``."""
    images = [bilevel(render(p)) for p in pages]
    buf = io.BytesIO()
    images[0].save(buf, "TIFF", save_all=True, append_images=images[1:],
                   compression=compression, dpi=(DPI, DPI))
    return buf.getvalue()


def jpeg_bytes(page: ScanPage) -> bytes:
    buf = io.BytesIO()
    render(page).save(buf, "JPEG", quality=60, dpi=(DPI, DPI))
    return buf.getvalue()
