"""The ``textract`` OCR backend against moto's Textract and S3 over HTTP.

Two moto servers are used. The shared ``moto_endpoint`` (``python -m moto.server`` in a
subprocess) is moto as it ships: its Textract answers every call with the blocks in the class
attribute ``TextractBackend.BLOCKS`` (empty) and a job status of ``SUCCEEDED``, ignores
``MaxResults``/``NextToken`` and checks no S3 object; its moto-api has no endpoint to set Textract
results (it has them for Athena, SageMaker, RDS Data... only). So against it the tests assert the
structure of what comes back, and that the PDF for a job really lands in moto's S3.

For text, paging and failures a second moto server runs in this process
(``moto.server.ThreadedMotoServer``, still HTTP, still botocore's real serialisation), where the
tests set ``TextractBackend.BLOCKS`` and ``JOB_STATUS`` directly and extend moto's handlers with
what its server lacks: ``GetDocumentTextDetection`` paging by ``MaxResults``/``NextToken``, jobs
that stay ``IN_PROGRESS`` for some polls, and ``ThrottlingException`` answers.
"""

from __future__ import annotations

import base64
import io
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from statistics import fmean
from typing import Any

import boto3
import numpy as np
import pikepdf
import pytest
from moto.core.exceptions import JsonRESTError
from moto.server import ThreadedMotoServer
from moto.textract.models import TextractBackend
from moto.textract.responses import TextractResponse
from PIL import Image, ImageDraw, ImageFont

from chrono.core.config import EvidenceConfig, OcrConfig, load_config
from chrono.core.errors import ConfigError, FileRejected
from chrono.evidence.extract.ocr import (
    REDACTED_TOKEN,
    S3Location,
    TesseractOcr,
    ocr_backend,
    ocr_image,
    ocr_pdf_pages,
)
from chrono.evidence.extract.textract import TextractOcr, page_from_blocks

from .page_images import FONT, LINES, extract, render_lines

REGION = "us-east-1"
VOCABULARY = ("witness", "ledger", "invoice", "meeting", "transfer", "account", "board", "minutes",
              "payment", "schedule", "contract", "draft", "review", "budget", "signature")


@pytest.fixture(autouse=True)
def aws_test_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    """Dummy credentials for every test here (restored after each, whatever was set before)."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)


def textract_config(endpoint: str, **overrides: Any) -> OcrConfig:
    settings: dict[str, Any] = {
        "backend": "textract", "textract_region": REGION, "textract_endpoint_url": endpoint,
        "textract_s3_endpoint_url": endpoint, "textract_poll_interval_s": 0.02,
        "textract_timeout_s": 10.0, "textract_backoff_s": 0.01,
    }
    settings.update(overrides)
    return OcrConfig(**settings)


def s3(endpoint: str) -> Any:
    return boto3.client("s3", endpoint_url=endpoint, region_name=REGION)


def versioned_bucket(endpoint: str) -> str:
    """A fresh bucket that keeps deleted objects as versions, so an upload stays provable."""
    name = f"chrono-textract-{uuid.uuid4().hex[:10]}"
    client = s3(endpoint)
    client.create_bucket(Bucket=name)
    client.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
    return name


def uploads(endpoint: str, bucket: str) -> list[tuple[str, bytes]]:
    """(key, bytes) of every object version ever put in ``bucket``, and no live object left."""
    client = s3(endpoint)
    assert client.list_objects_v2(Bucket=bucket).get("KeyCount", 0) == 0
    versions = client.list_object_versions(Bucket=bucket).get("Versions", [])
    return [(v["Key"], client.get_object(Bucket=bucket, Key=v["Key"],
                                         VersionId=v["VersionId"])["Body"].read())
            for v in versions]


def scanned_pdf(path: Path, pages: int) -> Path:
    """An image-only PDF of ``pages`` small pages, each with a little text drawn on it."""
    font = ImageFont.truetype(FONT, 28)
    images = []
    for number in range(1, pages + 1):
        image = Image.new("L", (600, 200), 255)
        ImageDraw.Draw(image).text((30, 80), f"Scanned page number {number}", font=font, fill=0)
        images.append(image.convert("RGB"))
    images[0].save(path, save_all=True, append_images=images[1:], resolution=100)
    return path


def page_lines(page: int, count: int, words: int = 10) -> list[str]:
    return [" ".join(VOCABULARY[(page * 7 + line * 3 + k) % len(VOCABULARY)]
                     for k in range(words)) + f" p{page}l{line}"
            for line in range(count)]


def textract_blocks(pages: list[list[str]]) -> list[dict[str, Any]]:
    """Blocks as Textract lays them out: per page a PAGE, its LINEs, then their WORDs."""
    blocks: list[dict[str, Any]] = []
    for number, lines in enumerate(pages, start=1):
        page_blocks: list[dict[str, Any]] = []
        word_blocks: list[dict[str, Any]] = []
        for index, line in enumerate(lines):
            top = 0.02 + index * 0.95 / max(len(lines), 1)
            ids = []
            for k, word in enumerate(line.split()):
                word_id = f"w-{number}-{index}-{k}"
                ids.append(word_id)
                word_blocks.append({
                    "BlockType": "WORD", "Id": word_id, "Page": number, "Text": word,
                    "Confidence": 90.0 + (index + k) % 10, "TextType": "PRINTED",
                    "Geometry": {"BoundingBox": {"Left": 0.05 + 0.08 * k, "Top": top,
                                                 "Width": 0.07, "Height": 0.02}},
                })
            page_blocks.append({
                "BlockType": "LINE", "Id": f"l-{number}-{index}", "Page": number, "Text": line,
                "Confidence": 95.0,
                "Geometry": {"BoundingBox": {"Left": 0.05, "Top": top, "Width": 0.9,
                                             "Height": 0.02}},
                "Relationships": [{"Type": "CHILD", "Ids": ids}],
            })
        blocks.append({"BlockType": "PAGE", "Id": f"p-{number}", "Page": number,
                       "Relationships": [{"Type": "CHILD",
                                          "Ids": [b["Id"] for b in page_blocks]}]})
        blocks += page_blocks + word_blocks
    return blocks


def mean_word_confidence(blocks: list[dict[str, Any]], page: int) -> float:
    return round(fmean(b["Confidence"] for b in blocks
                       if b["BlockType"] == "WORD" and b["Page"] == page), 2)


# --- moto as it ships (subprocess server) ---------------------------------------------------


def test_image_through_the_extractor_against_stock_moto(moto_endpoint: str,
                                                        tmp_path: Path) -> None:
    path = tmp_path / "page.png"
    render_lines().save(path)
    config = EvidenceConfig(ocr=textract_config(moto_endpoint))
    artifact = extract(path, "png", tmp_path / "out", config=config)
    assert artifact.status == "processed", artifact.reason
    (page,) = artifact.pages
    # Stock moto detects no blocks at all: an OCR page with no text and Tesseract's blank score.
    assert (page.number, page.method, page.text, page.confidence) == (1, "ocr", "", 0.0)
    assert (page.redactions, page.rotation) == (0, 0)


def test_pdf_job_uploads_the_pages_to_s3_and_deletes_them_against_stock_moto(
    moto_endpoint: str, tmp_path: Path,
) -> None:
    bucket = versioned_bucket(moto_endpoint)
    pdf = scanned_pdf(tmp_path / "Smith deposition.pdf", 4)
    cfg = textract_config(moto_endpoint, textract_s3_bucket=bucket, textract_s3_prefix="jobs/ocr")
    everything = ocr_pdf_pages(pdf, [1, 2, 3, 4], cfg)
    some = ocr_pdf_pages(pdf, [2, 4], cfg)
    assert everything is not None and some is not None
    assert sorted(everything) == [1, 2, 3, 4] and sorted(some) == [2, 4]
    for number, page in [*everything.items(), *some.items()]:
        assert (page.number, page.method, page.text, page.confidence) == (number, "ocr", "", 0.0)
    sent = uploads(moto_endpoint, bucket)
    assert len(sent) == 2
    for key, _ in sent:
        assert key.startswith("jobs/ocr/") and key.endswith(".pdf")
        assert "Smith" not in key and "deposition" not in key
    page_counts = sorted(len(pikepdf.open(io.BytesIO(data)).pages) for _, data in sent)
    assert page_counts == [2, 4]  # all four as they are, then a copy holding pages 2 and 4
    assert pdf.read_bytes() in {data for _, data in sent}


# --- moto in this process, with canned results ----------------------------------------------


@dataclass
class CannedTextract:
    """Moto's Textract with canned blocks plus paging, slow jobs and throttling (see top)."""

    url: str
    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    throttles: int = 0
    """How many of the next calls answer ``ThrottlingException``."""
    in_progress_polls: int = 0
    """How many status checks of each job answer ``IN_PROGRESS`` before its real status."""
    _polls: dict[str, int] = field(default_factory=dict)

    def actions(self) -> list[str]:
        return [action for action, _ in self.calls]

    def record(self, action: str, body: bytes) -> dict[str, Any]:
        params: dict[str, Any] = json.loads(body or b"{}")
        self.calls.append((action, params))
        if self.throttles:
            self.throttles -= 1
            raise JsonRESTError("ThrottlingException", "Rate exceeded")
        return params


@pytest.fixture(scope="module")
def canned_server() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture
def canned(canned_server: str, monkeypatch: pytest.MonkeyPatch) -> CannedTextract:
    state = CannedTextract(canned_server)
    detect = TextractResponse.detect_document_text
    start = TextractResponse.start_document_text_detection

    def detect_document_text(self: TextractResponse) -> str:
        state.record("detect_document_text", self.body)
        return detect(self)

    def start_document_text_detection(self: TextractResponse) -> str:
        state.record("start_document_text_detection", self.body)
        return start(self)

    def get_document_text_detection(self: TextractResponse) -> str:
        params = state.record("get_document_text_detection", self.body)
        job_id = params["JobId"]
        result = dict(self.textract_backend.get_document_text_detection(job_id=job_id).to_dict())
        polls = state._polls[job_id] = state._polls.get(job_id, 0) + 1
        if polls <= state.in_progress_polls:
            return json.dumps({"JobStatus": "IN_PROGRESS"})
        offset, size = int(params.get("NextToken") or 0), int(params.get("MaxResults") or 1000)
        blocks = result["Blocks"]
        result["Blocks"] = blocks[offset:offset + size]
        if offset + size < len(blocks):
            result["NextToken"] = str(offset + size)
        return json.dumps(result)

    monkeypatch.setattr(TextractResponse, "detect_document_text", detect_document_text)
    monkeypatch.setattr(TextractResponse, "start_document_text_detection",
                        start_document_text_detection)
    monkeypatch.setattr(TextractResponse, "get_document_text_detection",
                        get_document_text_detection)
    monkeypatch.setattr(TextractBackend, "BLOCKS", [])
    monkeypatch.setattr(TextractBackend, "JOB_STATUS", "SUCCEEDED")
    return state


def test_image_through_the_extractor_carries_the_text_textract_returns(
    canned: CannedTextract, tmp_path: Path,
) -> None:
    blocks = textract_blocks([list(LINES)])
    TextractBackend.BLOCKS = blocks
    path = tmp_path / "page.png"
    render_lines().save(path)
    config = EvidenceConfig(ocr=textract_config(canned.url))
    artifact = extract(path, "png", tmp_path / "out", config=config)
    assert artifact.status == "processed", artifact.reason
    (page,) = artifact.pages
    assert page.method == "ocr" and page.number == 1
    assert page.text == "\n".join(LINES)
    assert page.confidence == mean_word_confidence(blocks, 1)
    assert canned.actions() == ["detect_document_text"]
    sent = Image.open(io.BytesIO(base64.b64decode(canned.calls[0][1]["Document"]["Bytes"])))
    assert sent.format == "PNG" and sent.size == render_lines().size


def test_scanned_pdf_pages_through_the_extractor_are_read_one_call_each(
    canned: CannedTextract, tmp_path: Path,
) -> None:
    """No job bucket configured: each rendered page goes to the synchronous call."""
    TextractBackend.BLOCKS = textract_blocks([["Exhibit 12 page text"]])
    pdf = scanned_pdf(tmp_path / "scan.pdf", 3)
    config = EvidenceConfig(ocr=textract_config(canned.url, dpi=150))
    artifact = extract(pdf, "pdf", tmp_path / "out", config=config)
    assert artifact.status == "processed", artifact.reason
    assert [(p.number, p.method, p.text) for p in artifact.pages] == [
        (n, "ocr", "Exhibit 12 page text") for n in (1, 2, 3)
    ]
    assert canned.actions() == ["detect_document_text"] * 3


def test_multi_page_job_pages_through_next_token_and_assembles_each_page(
    canned: CannedTextract, tmp_path: Path,
) -> None:
    pages = [page_lines(page, 40) for page in range(1, 6)]
    blocks = textract_blocks(pages)
    assert len(blocks) > 2000  # three result pages at Textract's 1000 blocks per call
    TextractBackend.BLOCKS = blocks
    canned.in_progress_polls = 2
    bucket = versioned_bucket(canned.url)
    pdf = scanned_pdf(tmp_path / "bundle.pdf", 5)
    cfg = textract_config(canned.url, textract_s3_bucket=bucket)
    result = ocr_pdf_pages(pdf, [1, 2, 3, 4, 5], cfg)
    assert result is not None and sorted(result) == [1, 2, 3, 4, 5]
    for number, page in result.items():
        assert page.text == "\n".join(pages[number - 1])
        assert page.method == "ocr" and page.confidence == mean_word_confidence(blocks, number)
    assert canned.actions() == ["start_document_text_detection"] + [
        "get_document_text_detection"] * 5
    start = canned.calls[0][1]
    (key, data), = uploads(canned.url, bucket)
    assert start["DocumentLocation"] == {"S3Object": {"Bucket": bucket, "Name": key}}
    assert key.startswith("chrono-textract/") and data == pdf.read_bytes()
    tokens = [params.get("NextToken") for action, params in canned.calls[1:]]
    assert tokens == [None, None, None, "1000", "2000"]  # two polls in progress, then 3 pages


def test_job_over_some_pages_numbers_them_as_in_the_source(
    canned: CannedTextract, tmp_path: Path,
) -> None:
    """Pages 2 and 4 travel as a two-page copy; the job's pages 1 and 2 come back as 2 and 4."""
    TextractBackend.BLOCKS = textract_blocks([["second page"], ["fourth page"]])
    bucket = versioned_bucket(canned.url)
    pdf = scanned_pdf(tmp_path / "bundle.pdf", 4)
    result = ocr_pdf_pages(pdf, [4, 2], textract_config(canned.url, textract_s3_bucket=bucket))
    assert result is not None
    assert {n: p.text for n, p in result.items()} == {2: "second page", 4: "fourth page"}
    assert [p.number for p in result.values()] == [2, 4]


def test_document_already_in_s3_is_read_where_it_lies(
    canned: CannedTextract, tmp_path: Path,
) -> None:
    TextractBackend.BLOCKS = textract_blocks([["one"], ["two"], ["three"]])
    bucket = versioned_bucket(canned.url)
    pdf = scanned_pdf(tmp_path / "bundle.pdf", 3)
    cfg = textract_config(canned.url, textract_s3_bucket=bucket)
    result = ocr_pdf_pages(pdf, [1, 3], cfg, s3_location=S3Location("evidence-lake", "in/x.pdf"))
    assert result is not None
    assert {n: p.text for n, p in result.items()} == {1: "one", 3: "three"}
    assert uploads(canned.url, bucket) == []
    assert canned.calls[0][1]["DocumentLocation"] == {
        "S3Object": {"Bucket": "evidence-lake", "Name": "in/x.pdf"}}


def test_single_page_or_no_bucket_leaves_rendering_to_the_caller(
    canned: CannedTextract, tmp_path: Path,
) -> None:
    pdf = scanned_pdf(tmp_path / "bundle.pdf", 3)
    with_bucket = textract_config(canned.url, textract_s3_bucket=versioned_bucket(canned.url))
    assert ocr_pdf_pages(pdf, [2], with_bucket) is None
    assert ocr_pdf_pages(pdf, [1, 2, 3], textract_config(canned.url)) is None
    assert ocr_pdf_pages(pdf, [1, 2, 3], OcrConfig()) is None  # Tesseract reads images only
    assert canned.calls == []


def test_job_still_running_past_the_timeout_is_textract_timeout(
    canned: CannedTextract, tmp_path: Path,
) -> None:
    TextractBackend.BLOCKS = textract_blocks([["secret plan"], ["more"]])
    canned.in_progress_polls = 10_000
    bucket = versioned_bucket(canned.url)
    cfg = textract_config(canned.url, textract_s3_bucket=bucket, textract_timeout_s=0.3)
    with pytest.raises(FileRejected) as err:
        ocr_pdf_pages(scanned_pdf(tmp_path / "b.pdf", 2), [1, 2], cfg)
    assert err.value.code == "textract_timeout"
    assert "secret" not in str(err.value)
    assert len(uploads(canned.url, bucket)) == 1  # uploaded, then deleted all the same
    assert canned.actions().count("get_document_text_detection") >= 3


def test_failed_job_is_textract_failed(canned: CannedTextract, tmp_path: Path) -> None:
    TextractBackend.JOB_STATUS = "FAILED"
    cfg = textract_config(canned.url, textract_s3_bucket=versioned_bucket(canned.url))
    with pytest.raises(FileRejected) as err:
        ocr_pdf_pages(scanned_pdf(tmp_path / "b.pdf", 2), [1, 2], cfg)
    assert (err.value.code, err.value.detail) == ("textract_failed", "job status FAILED")


def test_missing_job_bucket_is_textract_failed(canned: CannedTextract, tmp_path: Path) -> None:
    cfg = textract_config(canned.url, textract_s3_bucket=f"absent-{uuid.uuid4().hex[:8]}")
    with pytest.raises(FileRejected) as err:
        ocr_pdf_pages(scanned_pdf(tmp_path / "b.pdf", 2), [1, 2], cfg)
    assert err.value.code == "textract_failed" and "s3_no_such_bucket" in err.value.detail
    assert canned.calls == []


def test_throttling_is_retried_with_backoff(canned: CannedTextract) -> None:
    TextractBackend.BLOCKS = textract_blocks([["after the storm"]])
    canned.throttles = 2
    page = ocr_image(render_lines(), 3, textract_config(canned.url, textract_max_attempts=3))
    assert (page.number, page.text) == (3, "after the storm")
    assert canned.actions() == ["detect_document_text"] * 3


def test_throttling_past_the_attempts_fails_the_file_with_a_reason(
    canned: CannedTextract, tmp_path: Path,
) -> None:
    canned.throttles = 100
    path = tmp_path / "page.png"
    render_lines().save(path)
    config = EvidenceConfig(ocr=textract_config(canned.url, textract_max_attempts=2))
    artifact = extract(path, "png", tmp_path / "out", config=config)
    assert (artifact.status, artifact.reason) == ("failed", "textract_failed")
    assert canned.actions() == ["detect_document_text"] * 2


def test_terminal_aws_error_is_not_retried(canned: CannedTextract) -> None:
    backend = TextractOcr(textract_config(canned.url, textract_max_attempts=4))
    with pytest.raises(FileRejected) as err:
        backend._call(backend.client.get_document_text_detection, JobId="0" * 36)
    assert err.value.code == "textract_failed"
    assert err.value.detail == ("aws_code=InvalidJobIdException "
                                "operation=get_document_text_detection attempts=1")
    assert canned.actions() == ["get_document_text_detection"]


def test_redaction_box_is_masked_before_upload_and_becomes_a_token(
    canned: CannedTextract,
) -> None:
    page = render_lines()
    draw = ImageDraw.Draw(page)
    font = ImageFont.truetype(FONT, 40)
    start = 60 + draw.textlength("and discussed the ", font=font)
    end = 60 + draw.textlength("and discussed the secret payment", font=font)
    draw.rectangle((start - 4, 60 + 70 - 4, end + 4, 60 + 70 + 52), fill=0)
    width, height = page.size
    # What Textract reads off the masked page: every word but the two under the box.
    blocks: list[dict[str, Any]] = []
    for index, line in enumerate(LINES):
        top = 60 + 70 * index
        ids = []
        x = 60.0
        for k, word in enumerate(line.split()):
            word_width = draw.textlength(word, font=font)
            if not (index == 1 and word in ("secret", "payment")):
                ids.append(f"w{index}-{k}")
                blocks.append({"BlockType": "WORD", "Id": ids[-1], "Text": word,
                               "Confidence": 99.0, "Page": 1, "Geometry": {"BoundingBox": {
                                   "Left": x / width, "Top": top / height,
                                   "Width": word_width / width, "Height": 46 / height}}})
            x += word_width + draw.textlength(" ", font=font)
        seen = " ".join(b["Text"] for b in blocks if b["Id"] in ids)
        blocks.append({"BlockType": "LINE", "Id": f"l{index}", "Text": seen, "Confidence": 99.0,
                       "Page": 1, "Relationships": [{"Type": "CHILD", "Ids": ids}],
                       "Geometry": {"BoundingBox": {"Left": 60 / width, "Top": top / height,
                                                    "Width": (x - 60) / width,
                                                    "Height": 46 / height}}})
    TextractBackend.BLOCKS = blocks
    result = ocr_image(page, 1, textract_config(canned.url))
    assert result.redactions == 1
    assert result.text.splitlines() == [
        LINES[0], f"and discussed the {REDACTED_TOKEN} plan today", LINES[2]]
    sent = np.asarray(Image.open(io.BytesIO(
        base64.b64decode(canned.calls[0][1]["Document"]["Bytes"]))).convert("L"))
    box = sent[60 + 70:60 + 70 + 52, round(start):round(end)]
    assert box.min() == 255  # the box left the machine painted white
    without = ocr_image(page, 1, textract_config(canned.url, detect_redactions=False))
    assert without.redactions == 0 and REDACTED_TOKEN not in without.text


def test_no_aws_credentials_is_textract_unavailable(
    canned: CannedTextract, monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
                 "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_CREDENTIALS_FULL_URI",
                 "AWS_WEB_IDENTITY_TOKEN_FILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    with pytest.raises(FileRejected) as err:
        TextractOcr(textract_config(canned.url)).read_page(render_lines(), 1)
    assert err.value.code == "textract_unavailable"
    assert canned.calls == []


# --- blocks to pages, config -----------------------------------------------------------------


def test_blocks_become_a_page_in_reading_order() -> None:
    blocks = textract_blocks([["first line", "  ", "second line"]])
    page = page_from_blocks(blocks, 9)
    assert (page.number, page.text, page.method) == (9, "first line\nsecond line", "ocr")
    assert page.confidence == mean_word_confidence(blocks, 1)
    lines_only = [b for b in blocks if b["BlockType"] == "LINE"]
    assert page_from_blocks(lines_only, 1).confidence == 95.0
    assert page_from_blocks([], 1).confidence == 0.0


def test_chrono_yaml_selects_the_backend(tmp_path: Path) -> None:
    path = tmp_path / "chrono.yaml"
    path.write_text("evidence:\n  ocr:\n    backend: textract\n"
                    "    textract_s3_bucket: ocr-jobs\n    textract_region: eu-west-1\n")
    cfg = load_config(path).evidence.ocr
    assert (cfg.backend, cfg.textract_s3_bucket, cfg.textract_region) == (
        "textract", "ocr-jobs", "eu-west-1")
    assert isinstance(ocr_backend(cfg), TextractOcr)
    assert isinstance(ocr_backend(OcrConfig()), TesseractOcr)


def test_unknown_backend_is_a_readable_config_error(tmp_path: Path) -> None:
    path = tmp_path / "chrono.yaml"
    path.write_text("evidence:\n  ocr:\n    backend: abbyy-cloud\n")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    message = str(err.value)
    assert err.value.code == "config_invalid"
    assert f"{path}: key 'evidence.ocr.backend'" in message
    assert "'tesseract' or 'textract'" in message and "use one of the allowed values" in message
    assert "abbyy" not in message


def test_scanned_pdf_through_the_extractor_is_one_job_with_a_bucket(
    canned: CannedTextract, tmp_path: Path,
) -> None:
    """With a job bucket the PDF extractor hands its scanned pages to one asynchronous job."""
    pages = [["cover sheet"], ["page two text"], ["page three text"]]
    TextractBackend.BLOCKS = textract_blocks(pages)
    bucket = versioned_bucket(canned.url)
    pdf = scanned_pdf(tmp_path / "scan.pdf", 3)
    config = EvidenceConfig(ocr=textract_config(canned.url, textract_s3_bucket=bucket))
    artifact = extract(pdf, "pdf", tmp_path / "out", config=config)
    assert artifact.status == "processed", artifact.reason
    assert [(p.number, p.method, p.text) for p in artifact.pages] == [
        (1, "ocr", "cover sheet"), (2, "ocr", "page two text"), (3, "ocr", "page three text")]
    assert canned.actions() == ["start_document_text_detection", "get_document_text_detection"]
    (_, data), = uploads(canned.url, bucket)
    assert data == pdf.read_bytes()
