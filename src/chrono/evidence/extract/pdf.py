"""PDF extractor: text layer through pypdfium2, OCR for scanned pages, repair through pikepdf.

Each page's text layer is read with PDFium. The pages whose layer is empty or negligible and which
hold an image (or any drawing at all when the layer is empty) go to OCR: first all together to
:func:`~chrono.evidence.extract.ocr.ocr_pdf_pages` (the ``textract`` backend reads several pages
as one asynchronous job), and those it leaves are rendered at ``ocr.dpi`` and read one by one with
:func:`~chrono.evidence.extract.ocr.ocr_image`. Encrypted files are opened with no password,
then with each of ``ctx.passwords``. A file PDFium cannot open is rewritten by pikepdf (qpdf's
reconstruction) into a temp file inside the artifact dir, opened again, and the temp file removed.

Reason codes raised here:

- ``password_required``: the PDF is encrypted and no password was given.
- ``wrong_password``: the PDF is encrypted and none of the given passwords opens it.
- ``corrupt_pdf``: neither PDFium nor pikepdf's repair can read the file (or it is not a PDF).
- ``limit_pages`` / ``limit_pixels``: from the context's limits (page count, rendered page size).

Warnings: ``pdf_repaired`` (the file only opened after pikepdf rewrote it),
``pdf_page_unreadable`` (PDFium could not load one page; it is kept as an empty page).
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pikepdf
import pypdfium2 as pdfium
import pypdfium2.raw as pdfium_c

from chrono.core.errors import FileRejected
from chrono.evidence.extract.base import ExtractContext, Extractor, SourceFile, register
from chrono.evidence.extract.ocr import ocr_image, ocr_pdf_pages
from chrono.evidence.model import Artifact, Page

MIN_TEXT_LAYER_CHARS = 32
"""Fewer non-blank characters than this (a Bates stamp, a stray header) do not count as text."""
POINTS_PER_INCH = 72


class _Unreadable(Exception):
    """PDFium could not open the file for a reason other than a password."""


@register
class PdfExtractor(Extractor):
    """Reads PDFs: text layer per page, OCR for pages without one, metadata."""

    NAME = "pdf"
    KINDS = ("pdf",)

    def extract(self, source: SourceFile, ctx: ExtractContext) -> Artifact:
        artifact = self.new_artifact(source)
        with open_pdf(source.path, ctx) as pdf:
            count = len(pdf)
            ctx.check_pages(count)
            artifact.metadata = pdf_metadata(pdf, count)
            pages: list[Page | None] = []
            for index in range(count):
                try:
                    page = pdf[index]
                except pdfium.PdfiumError:
                    ctx.warn("pdf_page_unreadable")
                    pages.append(Page(number=index + 1, text="", method="none"))
                    continue
                try:
                    pages.append(read_text_layer(page, index + 1))
                finally:
                    page.close()
            pending = [number for number, page in enumerate(pages, start=1) if page is None]
            # A backend that reads many pages as one job (Textract) takes them all at once.
            read = (ocr_pdf_pages(source.path, pending, ctx.config.ocr, ctx.passwords)
                    if pending else None) or {}
            for number in pending:
                if number in read:
                    pages[number - 1] = read[number]
                    continue
                page = pdf[number - 1]
                try:
                    pages[number - 1] = ocr_page(page, number, ctx)
                finally:
                    page.close()
            artifact.pages = [page for page in pages if page is not None]
        return artifact


@contextmanager
def open_pdf(path: Path, ctx: ExtractContext) -> Iterator[pdfium.PdfDocument]:
    """Open ``path`` with PDFium (trying ``ctx.passwords``), repairing it with pikepdf if needed."""
    try:
        pdf = _open_with_passwords(str(path), ctx.passwords)
    except _Unreadable:
        pdf = None
    if pdf is not None:
        try:
            yield pdf
        finally:
            pdf.close()
        return
    repaired = _repair(path, ctx)
    try:
        try:
            pdf = _open_with_passwords(str(repaired), ())
        except (_Unreadable, FileRejected):
            raise FileRejected("corrupt_pdf", "unreadable after repair") from None
        ctx.warn("pdf_repaired")
        try:
            yield pdf
        finally:
            pdf.close()
    finally:
        repaired.unlink(missing_ok=True)


def _open_with_passwords(path: str, passwords: tuple[str, ...]) -> pdfium.PdfDocument:
    for password in (None, *passwords):
        try:
            return pdfium.PdfDocument(path, password=password)
        except pdfium.PdfiumError as exc:
            if exc.err_code != pdfium_c.FPDF_ERR_PASSWORD:
                raise _Unreadable() from None
    if passwords:
        raise FileRejected("wrong_password", f"none of {len(passwords)} given opened it")
    raise FileRejected("password_required", "encrypted; none given")


def _repair(path: Path, ctx: ExtractContext) -> Path:
    """Rewrite ``path`` with pikepdf into a decrypted temp file in the artifact dir."""
    ctx.artifact_dir.mkdir(parents=True, exist_ok=True)
    pdf = None
    for password in ("", *ctx.passwords):
        try:
            pdf = pikepdf.open(path, password=password)
            break
        except pikepdf.PasswordError:
            continue
        except (pikepdf.PdfError, OSError, ValueError) as exc:
            raise FileRejected("corrupt_pdf", type(exc).__name__) from None
    if pdf is None:
        if not ctx.passwords:
            raise FileRejected("password_required", "encrypted; none given")
        raise FileRejected("wrong_password", f"none of {len(ctx.passwords)} given opened it")
    fd, name = tempfile.mkstemp(dir=ctx.artifact_dir, prefix=".repair-", suffix=".pdf")
    os.close(fd)
    target = Path(name)
    try:
        with pdf:
            pdf.save(target)
    except (pikepdf.PdfError, OSError, ValueError) as exc:
        target.unlink(missing_ok=True)
        raise FileRejected("corrupt_pdf", type(exc).__name__) from None
    except BaseException:
        target.unlink(missing_ok=True)
        raise
    return target


def read_page(page: pdfium.PdfPage, number: int, ctx: ExtractContext) -> Page:
    """Text layer of ``page``, or OCR of its rendering when the layer is negligible."""
    return read_text_layer(page, number) or ocr_page(page, number, ctx)


def read_text_layer(page: pdfium.PdfPage, number: int) -> Page | None:
    """The page from its text layer; ``None`` when the layer is negligible and OCR may help."""
    textpage = page.get_textpage()
    try:
        text = _clean(textpage.get_text_bounded())
    finally:
        textpage.close()
    solid_chars = len("".join(text.split()))
    if solid_chars >= MIN_TEXT_LAYER_CHARS or not _worth_ocr(page, solid_chars):
        return Page(number=number, text=text, method="text_layer" if text else "none")
    return None


def ocr_page(page: pdfium.PdfPage, number: int, ctx: ExtractContext) -> Page:
    """OCR of ``page`` rendered at ``ocr.dpi`` (its size checked against the pixel limit first)."""
    dpi = ctx.config.ocr.dpi
    scale = dpi / POINTS_PER_INCH
    width, height = page.get_size()
    ctx.check_pixels(round(width * scale), round(height * scale))
    bitmap = page.render(scale=scale, grayscale=True)
    try:
        image = bitmap.to_pil()
    finally:
        bitmap.close()
    image.info["dpi"] = (dpi, dpi)
    return ocr_image(image, number, ctx.config.ocr)


def _worth_ocr(page: pdfium.PdfPage, solid_chars: int) -> bool:
    """A page with an image, or with no text at all but something drawn, may hold scanned text."""
    for obj in page.get_objects(max_depth=2):
        if obj.type == pdfium_c.FPDF_PAGEOBJ_IMAGE or solid_chars == 0:
            return True
    return False


_CONTROL_CHARS: dict[int, str | None] = {c: None for c in range(32) if chr(c) not in "\n\t"}
_CONTROL_CHARS[2] = "-"  # PDFium joins a word hyphenated across lines and marks the break with 0x02


def _clean(text: str) -> str:
    """Newlines for PDFium's CRLF, line-end hyphens as ``-``, other control characters dropped."""
    return text.replace("\r\n", "\n").replace("\r", "\n").translate(_CONTROL_CHARS).strip()


_PDF_DATE = re.compile(
    r"^D?:?(?P<y>\d{4})(?P<mo>\d{2})?(?P<d>\d{2})?(?P<h>\d{2})?(?P<mi>\d{2})?(?P<s>\d{2})?"
    r"(?P<tz>[Zz]|[+-]\d{2}'?(\d{2})?'?)?"
)


def pdf_date_to_iso(raw: str | None) -> str | None:
    """``D:20150604133406-06'00'`` -> ``2015-06-04T13:34:06-06:00``; naive when no offset given."""
    match = _PDF_DATE.match((raw or "").strip())
    if not match:
        return None
    try:
        moment = datetime(
            int(match["y"]), int(match["mo"] or 1), int(match["d"] or 1),
            int(match["h"] or 0), int(match["mi"] or 0), int(match["s"] or 0),
        )
    except ValueError:
        return None
    tz = match["tz"]
    if tz:
        if tz in "Zz":
            moment = moment.replace(tzinfo=UTC)
        else:
            digits = tz[1:].replace("'", "")
            hours, minutes = int(digits[:2]), int(digits[2:4] or 0)
            if hours > 23 or minutes > 59:
                return moment.isoformat()
            offset = timedelta(hours=hours, minutes=minutes)
            moment = moment.replace(tzinfo=timezone(-offset if tz[0] == "-" else offset))
    return moment.isoformat()


def pdf_metadata(pdf: pdfium.PdfDocument, page_count: int) -> dict[str, object]:
    """``page_count``, ``title``, ``created`` and ``modified`` (ISO 8601) of an open document."""
    info = pdf.get_metadata_dict(skip_empty=True)
    metadata: dict[str, object] = {"page_count": page_count}
    title = _clean(info.get("Title", ""))
    if title:
        metadata["title"] = title
    for key, field in (("CreationDate", "created"), ("ModDate", "modified")):
        value = pdf_date_to_iso(info.get(key))
        if value:
            metadata[field] = value
    return metadata
