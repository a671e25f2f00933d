"""OCR of page images: the backend protocol, Tesseract in process (the default), and dispatch.

The image and PDF extractors call :func:`ocr_image` for every page they OCR; it hands the page to
the backend ``evidence.ocr.backend`` names (:func:`ocr_backend`). ``tesseract`` is
:class:`TesseractOcr` here; ``textract`` is :class:`~chrono.evidence.extract.textract.TextractOcr`
(imported only when chosen, so boto3 stays unloaded otherwise). Every backend returns the same
:class:`~chrono.evidence.model.Page` (``method="ocr"``, confidence 0-100). A backend that can read a
whole PDF itself (Textract's asynchronous jobs) does so through :func:`ocr_pdf_pages`; Tesseract
answers ``None`` there and the caller OCRs rendered pages one by one.

:class:`TesseractOcr` turns one page image into a page: grey, optional orientation detection
(Tesseract OSD on a half-size copy, applied only when confident), Otsu binarisation and
despeckling, redaction boxes masked out, then a single recognition pass. Parallelism comes from
worker processes, so each engine is pinned to one thread (``OMP_THREAD_LIMIT=1`` is set before
tesserocr loads). Engines are created lazily and cached per process, keyed by tessdata folder and
language.

Reason codes raised here:

- ``ocr_unavailable``: no tessdata folder holds the configured language(s); set
  ``evidence.ocr.tessdata`` or ``TESSDATA_PREFIX``, or install the Tesseract language data.
"""

from __future__ import annotations

import os

os.environ["OMP_THREAD_LIMIT"] = "1"  # one engine per process; must precede the tesserocr import

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np
import tesserocr
from numpy.typing import NDArray
from PIL import Image

from chrono.core.config import OcrConfig
from chrono.core.errors import FileRejected
from chrono.evidence.extract.redaction import (
    Box,
    find_redactions,
    mask_boxes,
    otsu_threshold,
)
from chrono.evidence.model import Page

REDACTED_TOKEN = "[[REDACTED]]"

TESSDATA_FALLBACKS = (
    "/usr/share/tesseract-ocr/5/tessdata",
    "/usr/share/tesseract-ocr/4.00/tessdata",
)
OSD_HALF_SIZE_FROM = 1600
"""Images whose shorter side reaches this many pixels get orientation detection at half size."""
OSD_MIN_CHARACTERS = 20
"""Characters OSD classifies before deciding (Tesseract's default is 50; 20 is ~3x cheaper)."""
OSD_MIN_CONFIDENCE = 2.0
"""Orientation margin below which a page is left as it is."""
_TRANSPOSE = {
    90: Image.Transpose.ROTATE_90,
    180: Image.Transpose.ROTATE_180,
    270: Image.Transpose.ROTATE_270,
}

_engines: dict[tuple[int, str, str], tesserocr.PyTessBaseAPI] = {}
_osd_engines: dict[tuple[int, str], tesserocr.PyTessBaseAPI | None] = {}


@dataclass(frozen=True)
class S3Location:
    """Where a source document already lies in S3, so a backend may read it there."""

    bucket: str
    key: str


class OcrBackend(Protocol):
    """Reads page images (and, where it can, whole PDFs) into :class:`Page` records."""

    def read_page(self, image: Image.Image, number: int) -> Page:
        """The text of one page image; ``number`` is the 1-based page number it gets."""
        ...

    def read_pdf(
        self, path: Path, numbers: Sequence[int], passwords: tuple[str, ...] = (),
        s3_location: S3Location | None = None,
    ) -> dict[int, Page] | None:
        """Pages ``numbers`` of the PDF at ``path`` read as one document, by page number; ``None``
        when this backend (or this configuration) reads rendered page images only."""
        ...


_backends: dict[tuple[int, str], OcrBackend] = {}


def ocr_backend(cfg: OcrConfig) -> OcrBackend:
    """The backend ``cfg.backend`` names, built once per process and configuration."""
    key = (os.getpid(), cfg.model_dump_json())  # clients and engines must not cross a fork
    backend = _backends.get(key)
    if backend is None:
        if cfg.backend == "textract":
            from chrono.evidence.extract.textract import TextractOcr

            backend = TextractOcr(cfg)
        else:
            backend = TesseractOcr(cfg)
        _backends[key] = backend
    return backend


def ocr_image(image: Image.Image, number: int, cfg: OcrConfig) -> Page:
    """Read the text of one page image with the configured backend; ``number`` is its 1-based
    page number.

    ``Page.rotation`` is the counter-clockwise rotation applied before recognition,
    ``Page.redactions`` the count of black boxes masked and written as ``[[REDACTED]]``.
    """
    return ocr_backend(cfg).read_page(image, number)


def ocr_pdf_pages(
    path: Path, numbers: Sequence[int], cfg: OcrConfig, passwords: tuple[str, ...] = (),
    s3_location: S3Location | None = None,
) -> dict[int, Page] | None:
    """Pages ``numbers`` of a PDF read by the backend as one document (Textract's asynchronous
    job), by page number; ``None`` when the pages are to be rendered and passed to
    :func:`ocr_image` one by one (always for Tesseract)."""
    return ocr_backend(cfg).read_pdf(path, numbers, passwords, s3_location)


def find_tessdata(cfg: OcrConfig) -> str:
    """The first tessdata folder holding every language in ``cfg.language``."""
    languages = [lang for lang in cfg.language.split("+") if lang]
    if cfg.tessdata:
        candidates: tuple[str, ...] = (cfg.tessdata,)
    else:
        env = os.environ.get("TESSDATA_PREFIX")
        candidates = ((env,) if env else ()) + TESSDATA_FALLBACKS
    for folder in candidates:
        if all((Path(folder) / f"{lang}.traineddata").is_file() for lang in languages):
            return folder
    raise FileRejected(
        "ocr_unavailable",
        f"no tessdata folder with language '{cfg.language}'; set evidence.ocr.tessdata "
        "or TESSDATA_PREFIX, or install tesseract-ocr language data",
    )


def _engine(tessdata: str, language: str) -> tesserocr.PyTessBaseAPI:
    key = (os.getpid(), tessdata, language)  # a forked child must not share its parent's engine
    api = _engines.get(key)
    if api is None:
        try:
            api = tesserocr.PyTessBaseAPI(
                path=tessdata, lang=language, psm=tesserocr.PSM.AUTO, oem=tesserocr.OEM.DEFAULT
            )
        except RuntimeError:
            raise FileRejected(
                "ocr_unavailable", f"tesseract could not load language '{language}'"
            ) from None
        api.SetVariable("debug_file", os.devnull)
        _engines[key] = api
    return api


def _osd_engine(tessdata: str) -> tesserocr.PyTessBaseAPI | None:
    key = (os.getpid(), tessdata)
    if key not in _osd_engines:
        api = None
        if (Path(tessdata) / "osd.traineddata").is_file():
            try:
                api = tesserocr.PyTessBaseAPI(
                    path=tessdata, lang="osd", psm=tesserocr.PSM.OSD_ONLY
                )
                api.SetVariable("debug_file", os.devnull)
                api.SetVariable("min_characters_to_try", str(OSD_MIN_CHARACTERS))
            except RuntimeError:
                api = None
        _osd_engines[key] = api
    return _osd_engines[key]


def to_gray(image: Image.Image) -> Image.Image:
    """8-bit grey with transparency flattened onto white paper."""
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        paper = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(paper, rgba).convert("L")
    if image.mode.startswith("I;16") or image.mode in ("I", "F"):
        arr = np.asarray(image, dtype=np.float64)
        top = float(arr.max()) or 1.0
        return Image.fromarray((arr * (255.0 / top)).clip(0, 255).astype(np.uint8), "L")
    return image if image.mode == "L" else image.convert("L")


def detect_rotation(gray: Image.Image, tessdata: str) -> int:
    """Counter-clockwise degrees (0/90/180/270) that make the page upright; 0 when unsure."""
    osd = _osd_engine(tessdata)
    if osd is None:
        return 0
    sample = gray.reduce(2) if min(gray.size) >= OSD_HALF_SIZE_FROM else gray
    _set_image(osd, np.asarray(sample))
    try:
        result = osd.DetectOrientationScript()
    except RuntimeError:
        result = None
    finally:
        osd.Clear()
    if not result:
        return 0
    degrees = int(result["orient_deg"]) % 360
    if degrees not in _TRANSPOSE or float(result["orient_conf"]) < OSD_MIN_CONFIDENCE:
        return 0
    return degrees


def despeckle(dark: NDArray[np.bool_]) -> NDArray[np.bool_]:
    """Drop ink pixels with no inked neighbour: dust that OCR would read as ``.`` or ``'``."""
    padded = np.pad(dark, 1).view(np.uint8)
    height, width = dark.shape
    neighbours = np.zeros((height, width), dtype=np.uint8)
    for dy in (0, 1, 2):
        for dx in (0, 1, 2):
            if dy != 1 or dx != 1:
                neighbours += padded[dy:dy + height, dx:dx + width]
    return dark & (neighbours > 0)


def _set_image(api: tesserocr.PyTessBaseAPI, pixels: NDArray[np.uint8]) -> None:
    # Raw bytes: tesserocr's SetImage(PIL) would encode a PNG first, which costs real time.
    pixels = np.ascontiguousarray(pixels, dtype=np.uint8)
    height, width = pixels.shape
    api.SetImageBytes(pixels.tobytes(), width, height, 1, width)


def image_dpi(image: Image.Image) -> float | None:
    """The resolution an image declares, when it is a plausible one (50 dpi or more)."""
    dpi = image.info.get("dpi")
    try:
        value = float(dpi[0]) if isinstance(dpi, tuple) else float(dpi) if dpi else None
    except (TypeError, ValueError):
        return None
    return value if value and value >= 50 else None


class TesseractOcr:
    """The ``tesseract`` backend: one in-process engine per worker, page images only."""

    def __init__(self, cfg: OcrConfig) -> None:
        self.cfg = cfg

    def read_page(self, image: Image.Image, number: int) -> Page:
        cfg = self.cfg
        tessdata = find_tessdata(cfg)
        api = _engine(tessdata, cfg.language)
        dpi = image_dpi(image)
        gray = to_gray(image)
        rotation = detect_rotation(gray, tessdata) if cfg.detect_orientation else 0
        if rotation:
            gray = gray.transpose(_TRANSPOSE[rotation])
        pixels = np.asarray(gray)
        dark = despeckle(pixels <= otsu_threshold(pixels))
        binary = np.where(dark, 0, 255).astype(np.uint8)
        boxes = find_redactions(dark, dpi) if cfg.detect_redactions else []
        if boxes:
            mask_boxes(binary, boxes, margin=2)
        _set_image(api, binary)
        if dpi:
            api.SetSourceResolution(round(dpi))
        try:
            api.Recognize()
            text = _text_with_redactions(api, boxes) if boxes else api.GetUTF8Text()
            confidence = float(api.MeanTextConf())
        finally:
            api.Clear()
        return Page(
            number=number, text=text.strip(), method="ocr", confidence=confidence,
            redactions=len(boxes), rotation=rotation,
        )

    def read_pdf(
        self, path: Path, numbers: Sequence[int], passwords: tuple[str, ...] = (),
        s3_location: S3Location | None = None,
    ) -> dict[int, Page] | None:
        return None  # Tesseract reads rendered page images only


@dataclass
class OcrLine:
    """One recognised line with its box in pixels, as redaction tokens are placed among them."""

    block: int
    """Index of the text block the line belongs to (a blank line separates blocks)."""
    box: Box
    words: list[tuple[float, str]] = field(default_factory=list)
    """(horizontal centre, text) of each word or inserted token."""


def _read_lines(api: tesserocr.PyTessBaseAPI) -> list[OcrLine]:
    lines: list[OcrLine] = []
    iterator = api.GetIterator()
    if iterator is None:
        return lines
    block = -1
    level = tesserocr.RIL.WORD
    for word in tesserocr.iterate_level(iterator, level):
        if word.IsAtBeginningOf(tesserocr.RIL.BLOCK):
            block += 1
        if word.IsAtBeginningOf(tesserocr.RIL.TEXTLINE) or not lines:
            line_box = word.BoundingBox(tesserocr.RIL.TEXTLINE)
            if line_box is None:
                continue
            lines.append(OcrLine(max(block, 0), Box(*line_box)))
        text = word.GetUTF8Text(level)
        word_box = word.BoundingBox(level)
        if text and text.strip() and word_box:
            lines[-1].words.append(((word_box[0] + word_box[2]) / 2, text))
    return lines


def _text_with_redactions(api: tesserocr.PyTessBaseAPI, boxes: list[Box]) -> str:
    """Page text with ``[[REDACTED]]`` on the line each box covers, or as a line of its own."""
    return place_redactions(_read_lines(api), boxes)


def place_redactions(lines: list[OcrLine], boxes: list[Box]) -> str:
    """Join ``lines`` into page text with ``[[REDACTED]]`` on the line each box covers, or as a
    line of its own where it covers none; ``lines`` (top to bottom) gains the tokens."""
    for box in boxes:
        line = _covered_line(lines, box)
        if line is not None:
            line.words.append((box.center_x, REDACTED_TOKEN))
            continue
        at = _insert_position(lines, box)
        block = lines[at].block if at < len(lines) else (lines[-1].block if lines else 0)
        lines.insert(at, OcrLine(block, box, [(box.center_x, REDACTED_TOKEN)]))
    out: list[str] = []
    lines = [line for line in lines if line.words]
    for i, line in enumerate(lines):
        if i and line.block != lines[i - 1].block:
            out.append("")
        out.append(" ".join(text for _, text in sorted(line.words, key=lambda w: w[0])))
    return "\n".join(out)


def _covered_line(lines: list[OcrLine], box: Box) -> OcrLine | None:
    """The line ``box`` sits on: half the line's height overlapped, nearest horizontally."""
    best, best_gap = None, float("inf")
    for line in lines:
        lb = line.box
        overlap = min(lb.bottom, box.bottom) - max(lb.top, box.top)
        if overlap < 0.5 * min(lb.bottom - lb.top, box.bottom - box.top):
            continue
        gap = max(0, lb.left - box.right, box.left - lb.right)
        if gap < best_gap:
            best, best_gap = line, gap
    return best


def _insert_position(lines: list[OcrLine], box: Box) -> int:
    """Index of the first line below ``box`` (preferring one in the same column)."""
    below = [i for i, line in enumerate(lines) if line.box.center_y > box.center_y]
    same_column = [i for i in below
                   if min(lines[i].box.right, box.right) > max(lines[i].box.left, box.left)]
    if same_column:
        return same_column[0]
    return below[0] if below else len(lines)
