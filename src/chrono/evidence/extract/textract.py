"""The ``textract`` OCR backend: AWS Textract through boto3, per page image or per PDF job.

A page image (an image file's frame, a rendered PDF page) goes to the synchronous
``DetectDocumentText`` as PNG bytes (JPEG, then smaller, when the PNG is over the 10 MB limit).
Redaction boxes are found locally as for Tesseract, painted white before the image leaves the
machine, and written back as ``[[REDACTED]]`` among the LINE blocks by their geometry.

Several pages of one PDF go to one asynchronous job instead (:meth:`TextractOcr.read_pdf`): the
pages are copied into a PDF of their own with pikepdf (decrypted, the others left out), uploaded to
``textract_s3_bucket`` under ``textract_s3_prefix`` with an opaque key, read with
``StartDocumentTextDetection`` and ``GetDocumentTextDetection`` (polled until the job ends, then
paged through ``NextToken``), and the upload is deleted. A document that already lies in S3 is read
where it is. Without a bucket, or for a single page, the caller renders the pages instead.

Each page's text is its LINE blocks in Textract's reading order, one per line; its confidence is
the mean WORD confidence (0-100), 0 for a page with no words, as Tesseract reports a blank page.
Orientation is Textract's own concern, so ``Page.rotation`` stays 0.

Throttling, 5xx and lost connections are retried ``textract_max_attempts`` times with a doubling
backoff (botocore's own retries are off, so attempts do not multiply). Reason codes raised here,
with the AWS error code and the operation but never content:

- ``textract_failed``: a terminal AWS error, retries used up, a job that ended ``FAILED``, a page
  image over the synchronous size limit, or an upload to the job bucket that failed.
- ``textract_timeout``: an asynchronous job still running after ``textract_timeout_s``.
- ``textract_unavailable``: boto3 finds no AWS credentials.
"""

from __future__ import annotations

import hashlib
import io
import logging
import re
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from statistics import fmean
from typing import Any

import boto3
import numpy as np
import pikepdf
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    HTTPClientError,
    NoCredentialsError,
)
from botocore.exceptions import ConnectionError as BotoConnectionError
from PIL import Image

from chrono.core.config import OcrConfig
from chrono.core.errors import ChronoError, FileRejected
from chrono.core.logging import log_event
from chrono.evidence.extract.ocr import (
    OcrLine,
    S3Location,
    despeckle,
    image_dpi,
    place_redactions,
    to_gray,
)
from chrono.evidence.extract.redaction import Box, find_redactions, mask_boxes, otsu_threshold
from chrono.evidence.model import Page
from chrono.storage.s3 import S3Bucket, s3_region

SYNC_MAX_BYTES = 10 * 1024 * 1024
"""Largest document ``DetectDocumentText`` accepts."""
MAX_SIDE_PIXELS = 10_000
"""Longest image side Textract accepts; larger pages are scaled down (geometry is relative)."""
ASYNC_MAX_PAGES = 3000
"""Most pages one asynchronous job reads; longer selections are rendered page by page."""
RESULTS_PER_CALL = 1000
"""Blocks asked for per ``GetDocumentTextDetection`` call (Textract's maximum)."""
MAX_BACKOFF_S = 20.0
"""Longest wait between two tries of one call."""
JPEG_QUALITY = 85

_TRANSIENT_CODES = frozenset({
    "ThrottlingException", "ProvisionedThroughputExceededException", "LimitExceededException",
    "InternalServerError", "ServiceUnavailableException", "ServiceUnavailable",
    "RequestTimeout", "RequestTimeoutException", "TooManyRequestsException",
})
"""AWS error codes a retry may cure (besides any HTTP 5xx or 429); LimitExceeded is Textract's
"too many concurrent jobs"."""
_DONE = ("SUCCEEDED", "PARTIAL_SUCCESS")


def textract_client(cfg: OcrConfig, session: boto3.session.Session | None = None) -> Any:
    """A boto3 Textract client for ``cfg`` with bounded timeouts and no retries of its own."""
    return (session or boto3.session.Session()).client(
        "textract",
        region_name=cfg.textract_region or s3_region(),
        endpoint_url=cfg.textract_endpoint_url,
        config=Config(
            retries={"total_max_attempts": 1, "mode": "standard"},
            connect_timeout=10,
            read_timeout=120,
        ),
    )


def _job_bucket_client(cfg: OcrConfig, session: boto3.session.Session) -> Any:
    """An S3 client in Textract's region: a job reads only from a bucket in its own region."""
    options: dict[str, Any] = {
        "retries": {"max_attempts": 3, "mode": "standard"},
        "connect_timeout": 5,
        "read_timeout": 60,
    }
    if cfg.textract_s3_endpoint_url:
        options["s3"] = {"addressing_style": "path"}
    return session.client(
        "s3", region_name=cfg.textract_region or s3_region(),
        endpoint_url=cfg.textract_s3_endpoint_url, config=Config(**options),
    )


def _token(code: object) -> str:
    """A server-sent code cut down to a short token fit for a message."""
    return re.sub(r"[^A-Za-z0-9_.]", "", str(code or ""))[:64] or "Unknown"


class TextractOcr:
    """The ``textract`` backend; clients are made on first use (one backend per process).

    The backend has a boto3 session of its own: boto3's default session is module state shared
    with every other boto3 user in the process, and making clients from it is not thread-safe.
    """

    def __init__(self, cfg: OcrConfig) -> None:
        self.cfg = cfg
        self._session: boto3.session.Session | None = None
        self._client: Any | None = None
        self._s3: Any | None = None

    @property
    def session(self) -> boto3.session.Session:
        if self._session is None:
            self._session = boto3.session.Session()
        return self._session

    @property
    def client(self) -> Any:
        """The Textract client."""
        if self._client is None:
            self._client = textract_client(self.cfg, self.session)
        return self._client

    @property
    def s3(self) -> Any:
        """The S3 client for the job bucket."""
        if self._s3 is None:
            self._s3 = _job_bucket_client(self.cfg, self.session)
        return self._s3

    # --- one page image, synchronously ------------------------------------------------------

    def read_page(self, image: Image.Image, number: int) -> Page:
        gray = to_gray(image)
        boxes: list[Box] = []
        if self.cfg.detect_redactions:
            pixels = np.asarray(gray)
            boxes = find_redactions(despeckle(pixels <= otsu_threshold(pixels)), image_dpi(image))
            if boxes:
                # Masked before upload: what a redaction hides never leaves the machine.
                masked = pixels.copy()
                mask_boxes(masked, boxes, margin=2)
                gray = Image.fromarray(masked, "L")
        response = self._call(
            self.client.detect_document_text, Document={"Bytes": encode_page_image(gray)}
        )
        return page_from_blocks(response.get("Blocks", []), number, gray.size, boxes)

    # --- several pages of a PDF, as one asynchronous job --------------------------------------

    def read_pdf(
        self, path: Path, numbers: Sequence[int], passwords: tuple[str, ...] = (),
        s3_location: S3Location | None = None,
    ) -> dict[int, Page] | None:
        wanted = sorted({n for n in numbers if n >= 1})
        if not wanted or len(wanted) > ASYNC_MAX_PAGES:
            return None
        if s3_location is not None:
            blocks = self.run_job(s3_location)
            return pages_from_blocks(blocks, {n: n for n in wanted})
        if len(wanted) < 2 or not self.cfg.textract_s3_bucket:
            return None
        data = pdf_with_pages(path, wanted, passwords)
        if data is None:
            return None  # pikepdf cannot rewrite it: the caller renders the pages instead
        location = self._upload(data)
        try:
            blocks = self.run_job(location)
        finally:
            self._delete(location)
        return pages_from_blocks(blocks, dict(enumerate(wanted, start=1)))

    def run_job(self, location: S3Location) -> list[dict[str, Any]]:
        """Every block of a text-detection job over ``location``, in Textract's order."""
        cfg = self.cfg
        started = self._call(
            self.client.start_document_text_detection,
            DocumentLocation={"S3Object": {"Bucket": location.bucket, "Name": location.key}},
            ClientRequestToken=uuid.uuid4().hex,  # a retried start reuses the same job
        )
        job_id = str(started["JobId"])
        deadline = time.monotonic() + cfg.textract_timeout_s
        while True:
            result = self._call(
                self.client.get_document_text_detection, JobId=job_id,
                MaxResults=RESULTS_PER_CALL,
            )
            status = str(result.get("JobStatus") or "")
            if status in _DONE:
                break
            if status != "IN_PROGRESS":
                raise FileRejected("textract_failed", f"job status {_token(status)}")
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise FileRejected("textract_timeout",
                                   f"job not done after {cfg.textract_timeout_s:g}s")
            time.sleep(min(cfg.textract_poll_interval_s, remaining))
        blocks: list[dict[str, Any]] = list(result.get("Blocks", []))
        next_token = result.get("NextToken")
        while next_token:
            if time.monotonic() > deadline:
                raise FileRejected("textract_timeout",
                                   f"results not read after {cfg.textract_timeout_s:g}s")
            result = self._call(
                self.client.get_document_text_detection, JobId=job_id,
                MaxResults=RESULTS_PER_CALL, NextToken=next_token,
            )
            blocks.extend(result.get("Blocks", []))
            next_token = result.get("NextToken")
        return blocks

    def _upload(self, data: bytes) -> S3Location:
        bucket_name = str(self.cfg.textract_s3_bucket)
        prefix = self.cfg.textract_s3_prefix.strip("/")
        # Opaque and unique: no file name in S3, and two workers never share (or delete) a key.
        name = f"{hashlib.sha256(data).hexdigest()}-{uuid.uuid4().hex[:12]}.pdf"
        key = f"{prefix}/{name}" if prefix else name
        try:
            S3Bucket(bucket_name, client=self.s3).put_bytes(key, data)
        except ChronoError as err:
            detail = f"upload for the job failed ({err.code})"
            raise FileRejected("textract_failed", detail) from None
        return S3Location(bucket_name, key)

    def _delete(self, location: S3Location) -> None:
        try:
            S3Bucket(location.bucket, client=self.s3).delete(location.key)
        except ChronoError as err:
            log_event("textract_cleanup_failed", logging.WARNING, code=err.code)

    # --- calls, retries and error codes ------------------------------------------------------

    def _call(self, method: Callable[..., Any], **kwargs: Any) -> Any:
        """One Textract call, retried with backoff while AWS says a retry may help."""
        operation = getattr(method, "__name__", "call")
        attempts = self.cfg.textract_max_attempts
        for attempt in range(1, attempts + 1):
            try:
                return method(**kwargs)
            except NoCredentialsError:
                raise FileRejected(
                    "textract_unavailable",
                    "no AWS credentials; configure boto3 credentials or use ocr.backend tesseract",
                ) from None
            except ClientError as exc:
                code = _token(exc.response.get("Error", {}).get("Code"))
                status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
                transient = code in _TRANSIENT_CODES or status >= 500 or status == 429
            except (BotoConnectionError, HTTPClientError) as exc:
                code, transient = type(exc).__name__, True
            except BotoCoreError as exc:
                code, transient = type(exc).__name__, False
            if not transient or attempt == attempts:
                # The cause is dropped: AWS messages may quote parameters.
                raise FileRejected(
                    "textract_failed",
                    f"aws_code={code} operation={operation} attempts={attempt}",
                )
            log_event("textract_retry", logging.WARNING, aws_code=code, attempt=attempt)
            time.sleep(min(self.cfg.textract_backoff_s * 2 ** (attempt - 1), MAX_BACKOFF_S))
        raise AssertionError("unreachable")  # the loop returns or raises on its last attempt


def encode_page_image(gray: Image.Image) -> bytes:
    """PNG bytes of ``gray`` within Textract's synchronous limits (JPEG or halved when not)."""
    image = gray
    if max(image.size) > MAX_SIDE_PIXELS:
        scale = MAX_SIDE_PIXELS / max(image.size)
        image = image.resize((max(1, int(image.width * scale)), max(1, int(image.height * scale))))
    for _ in range(4):
        for fmt, options in (("PNG", {"compress_level": 3}), ("JPEG", {"quality": JPEG_QUALITY})):
            buffer = io.BytesIO()
            image.save(buffer, fmt, **options)
            if buffer.tell() <= SYNC_MAX_BYTES:
                return buffer.getvalue()
        image = image.reduce(2)
    raise FileRejected("textract_failed", f"page image over {SYNC_MAX_BYTES} bytes when encoded")


def pdf_with_pages(path: Path, numbers: Sequence[int], passwords: tuple[str, ...] = ()
                   ) -> bytes | None:
    """An unencrypted PDF of pages ``numbers`` (1-based, in that order) of the PDF at ``path``;
    the file's own bytes when that is all of it, ``None`` when pikepdf cannot open it."""
    source = None
    for password in ("", *passwords):
        try:
            source = pikepdf.open(path, password=password)
            break
        except pikepdf.PasswordError:
            continue
        except (pikepdf.PdfError, OSError, ValueError):
            return None
    if source is None:
        return None
    with source:
        count = len(source.pages)
        if any(n > count for n in numbers):
            return None
        if list(numbers) == list(range(1, count + 1)) and not source.is_encrypted:
            return path.read_bytes()
        with pikepdf.new() as out:
            for n in numbers:
                out.pages.append(source.pages[n - 1])
            buffer = io.BytesIO()
            out.save(buffer)
    return buffer.getvalue()


def page_from_blocks(
    blocks: Sequence[dict[str, Any]], number: int, size: tuple[int, int] | None = None,
    boxes: Sequence[Box] = (),
) -> Page:
    """The :class:`Page` numbered ``number`` from one page's Textract blocks; ``size`` (pixels)
    places the ``[[REDACTED]]`` tokens for ``boxes`` among the lines."""
    lines = [b for b in blocks if b.get("BlockType") == "LINE"]
    words = {str(b.get("Id")): b for b in blocks if b.get("BlockType") == "WORD"}
    if boxes and size:
        text = place_redactions(_ocr_lines(lines, words, size), list(boxes))
    else:
        text = "\n".join(t for t in (str(b.get("Text") or "").strip() for b in lines) if t)
    scores = [float(w["Confidence"]) for w in words.values() if "Confidence" in w] or [
        float(b["Confidence"]) for b in lines if "Confidence" in b
    ]
    confidence = round(fmean(scores), 2) if scores else 0.0
    return Page(
        number=number, text=text.strip(), method="ocr", confidence=confidence,
        redactions=len(boxes),
    )


def pages_from_blocks(
    blocks: Sequence[dict[str, Any]], numbering: dict[int, int]
) -> dict[int, Page]:
    """Pages of a job's blocks by page number; ``numbering`` maps the job's page numbers to the
    ones the pages get (the job may have read a copy holding only some pages)."""
    by_page: dict[int, list[dict[str, Any]]] = {page: [] for page in numbering}
    for block in blocks:
        page = int(block.get("Page") or 1)
        if page in by_page:
            by_page[page].append(block)
    return {numbering[page]: page_from_blocks(found, numbering[page])
            for page, found in by_page.items()}


def _ocr_lines(
    lines: Sequence[dict[str, Any]], words: dict[str, dict[str, Any]], size: tuple[int, int]
) -> list[OcrLine]:
    """LINE blocks as :class:`OcrLine` in pixels, each with its WORD children's centres."""
    out: list[OcrLine] = []
    for line in lines:
        box = _pixel_box(line, size)
        if box is None:
            continue
        children = [
            words[i] for rel in line.get("Relationships") or [] if rel.get("Type") == "CHILD"
            for i in rel.get("Ids") or [] if i in words
        ]
        placed: list[tuple[float, str]] = []
        for word in children:
            word_box = _pixel_box(word, size)
            text = str(word.get("Text") or "").strip()
            if word_box is not None and text:
                placed.append((word_box.center_x, text))
        if not placed and str(line.get("Text") or "").strip():
            placed.append((box.center_x, str(line["Text"]).strip()))
        out.append(OcrLine(0, box, placed))
    return out


def _pixel_box(block: dict[str, Any], size: tuple[int, int]) -> Box | None:
    """A block's relative bounding box in pixels of an image of ``size``."""
    rel = (block.get("Geometry") or {}).get("BoundingBox") or {}
    try:
        left, top = float(rel["Left"]) * size[0], float(rel["Top"]) * size[1]
        width, height = float(rel["Width"]) * size[0], float(rel["Height"]) * size[1]
    except (KeyError, TypeError, ValueError):
        return None
    return Box(round(left), round(top), round(left + width), round(top + height))
