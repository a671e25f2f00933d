"""Born-digital PDFs (reportlab, with a text layer) and image-only PDFs of scanned pages.

``invariant=1`` fixes the document id, and a date formatter pins /CreationDate and /ModDate to
the date the plan chose, so no wall-clock time reaches the bytes.
"""

from __future__ import annotations

import io
import textwrap
from datetime import UTC, datetime

from PIL import Image
from reportlab.lib.pagesizes import LETTER
from reportlab.pdfgen.canvas import Canvas

MARGIN = 72
LINE_HEIGHT = 13
WRAP_CHARS = 95


def _canvas(buf: io.BytesIO, title: str, created: datetime) -> Canvas:
    canvas = Canvas(buf, pagesize=LETTER, invariant=1, pageCompression=1)
    stamp = created.astimezone(UTC).strftime("D:%Y%m%d%H%M%S+00'00'")
    canvas.setDateFormatter(lambda *_: stamp)
    canvas.setTitle(title)
    canvas.setAuthor("Chrono sample generator")
    canvas.setCreator("Chrono sample generator")
    canvas.setProducer("Chrono sample generator")
    return canvas


def text_pdf(pages: list[list[str]], title: str, created: datetime) -> bytes:
    """A PDF with one text page per entry of ``pages`` (lines are wrapped, never split across
    pages: callers keep each page short)."""
    buf = io.BytesIO()
    canvas = _canvas(buf, title, created)
    _, height = LETTER
    for lines in pages:
        y = height - MARGIN
        text = canvas.beginText(MARGIN, y)
        text.setFont("Helvetica", 10)
        text.setLeading(LINE_HEIGHT)
        for line in lines:
            for piece in textwrap.wrap(line, WRAP_CHARS, break_on_hyphens=False) or [""]:
                text.textLine(piece)
        canvas.drawText(text)
        canvas.showPage()
    canvas.save()
    return buf.getvalue()


def image_pdf(images: list[Image.Image], title: str, created: datetime, dpi: int = 300) -> bytes:
    """An image-only PDF (no text layer), one JPEG-encoded page per image (Pillow's writer is
    deterministic once the dates are given)."""
    stamp = created.astimezone(UTC).timetuple()
    buf = io.BytesIO()
    first, *rest = [image.convert("L") for image in images]
    first.save(buf, "PDF", save_all=True, append_images=rest, resolution=float(dpi),
               title=title, creationDate=stamp, modDate=stamp, quality=60)
    return buf.getvalue()
