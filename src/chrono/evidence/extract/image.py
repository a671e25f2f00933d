"""Image extractor: scanned pages and photos (TIFF, JPEG, PNG, GIF, BMP) read with OCR.

Pillow opens an image lazily, reading only its header, so the declared size is checked against
``max_image_pixels`` before any pixel is decoded (a decompression bomb never gets allocated).
Pillow's own bomb guard stays on as a second line. Every frame of a multi-page TIFF is a page;
other formats give their first frame. EXIF orientation is applied before OCR, and an EXIF capture
time, when present, becomes ``metadata["created"]``.

Reason codes raised here:

- ``corrupt_image``: Pillow cannot identify or decode the image.
- ``limit_pixels``: a frame declares more pixels than ``max_image_pixels``.
- ``limit_pages``: a TIFF holds more frames than ``max_pages``.
"""

from __future__ import annotations

import re
import struct
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

from PIL import Image, ImageOps

from chrono.core.errors import FileRejected, LimitExceeded
from chrono.evidence.extract.base import ExtractContext, Extractor, SourceFile, register
from chrono.evidence.extract.ocr import ocr_image
from chrono.evidence.model import Artifact

MULTI_PAGE_FORMATS = ("TIFF",)
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, struct.error, IndexError)
"""What Pillow raises on malformed images (UnidentifiedImageError is an OSError)."""
EXIF_IFD = 0x8769
EXIF_DATETIME_ORIGINAL = 36867
EXIF_OFFSET_TIME_ORIGINAL = 36881
EXIF_DATETIME = 306
_EXIF_TIME = re.compile(r"^(\d{4}):(\d{2}):(\d{2}) (\d{2}):(\d{2}):(\d{2})$")
_EXIF_OFFSET = re.compile(r"^[+-]\d{2}:\d{2}$")


@register
class ImageExtractor(Extractor):
    """Reads image files page by page through OCR."""

    NAME = "image"
    KINDS = ("tiff", "jpeg", "png", "gif", "bmp")

    def extract(self, source: SourceFile, ctx: ExtractContext) -> Artifact:
        artifact = self.new_artifact(source)
        with open_image(source, ctx) as image:
            created = exif_created(image)
            for number, frame in enumerate(iter_frames(image, ctx), start=1):
                try:
                    upright = ImageOps.exif_transpose(frame) if number == 1 else frame
                    upright.load()
                except _DECODE_ERRORS as exc:
                    raise FileRejected("corrupt_image", type(exc).__name__) from None
                artifact.pages.append(ocr_image(upright, number, ctx.config.ocr))
        artifact.metadata["page_count"] = len(artifact.pages)
        if created:
            artifact.metadata["created"] = created
        return artifact


@contextmanager
def open_image(source: SourceFile, ctx: ExtractContext) -> Iterator[Image.Image]:
    """Open ``source`` header-only and check its declared size before anything is decoded."""
    try:
        with warnings.catch_warnings():
            # Our own pixel limit decides; Pillow's warning band is below it.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(source.path)
    except Image.DecompressionBombError:
        raise LimitExceeded("limit_pixels", "declared size over the decoder's bomb guard") from None
    except _DECODE_ERRORS as exc:
        raise FileRejected("corrupt_image", type(exc).__name__) from None
    try:
        ctx.check_pixels(*image.size)
        yield image
    finally:
        image.close()


def iter_frames(image: Image.Image, ctx: ExtractContext) -> Iterator[Image.Image]:
    """Each frame of a multi-page TIFF (size-checked before decoding), else the one image."""
    if image.format not in MULTI_PAGE_FORMATS:
        yield image
        return
    index = 0
    while True:
        try:
            image.seek(index)
        except EOFError:
            return
        except _DECODE_ERRORS as exc:
            raise FileRejected("corrupt_image", type(exc).__name__) from None
        ctx.check_pages(index + 1)
        ctx.check_pixels(*image.size)
        yield image
        index += 1


def exif_created(image: Image.Image) -> str | None:
    """EXIF capture time as ISO 8601 (with its offset when the EXIF records one)."""
    try:
        exif = image.getexif()
        sub = exif.get_ifd(EXIF_IFD)
    except _DECODE_ERRORS:
        return None
    raw = sub.get(EXIF_DATETIME_ORIGINAL) or exif.get(EXIF_DATETIME)
    match = _EXIF_TIME.match(str(raw).strip()) if raw else None
    if not match:
        return None
    y, mo, d, h, mi, s = match.groups()
    stamp = f"{y}-{mo}-{d}T{h}:{mi}:{s}"
    offset = str(sub.get(EXIF_OFFSET_TIME_ORIGINAL) or "").strip()
    return stamp + offset if _EXIF_OFFSET.match(offset) else stamp
