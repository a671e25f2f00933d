"""Worker limits in ``chrono schedule --execute``: a file over the time or memory limit fails
alone, with its reason, and the rest of its group is processed; the run does not wait it out."""

from __future__ import annotations

import json
import struct
import time
import zlib
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw, ImageFont

from tests.scale.conftest import bucket_args, cli, tiny_production

TIME_LIMIT_S = 2
SCAN_PAGES = 8
"""Full pages of small print: OCR of all of them takes many times the limit."""
MEMORY_CAP_BYTES = 450 * 1024 * 1024
"""A worker's address space: its libraries take about 300 MB of it."""


def scanned_tiff(path: Path, pages: int) -> None:
    """A multi-page 300 dpi letter scan packed with text lines, slow to OCR."""
    font = ImageFont.load_default(size=26)
    frames = []
    for page in range(pages):
        image = Image.new("L", (2550, 3300), 255)
        draw = ImageDraw.Draw(image)
        for line in range(95):
            draw.text((120, 100 + line * 33), f"Page {page} line {line}: the shipment of "
                      f"crates number {line * 7 + page} was signed for at the north dock.",
                      fill=0, font=font)
        frames.append(image.convert("1"))
    frames[0].save(path, save_all=True, append_images=frames[1:], compression="group4",
                   dpi=(300, 300))


def blank_png(path: Path, width: int, height: int) -> None:
    """An RGB PNG of ``width`` x ``height`` white pixels, written row by row: a few hundred KB
    on disk, ``4 * width * height`` bytes once decoded (Pillow keeps RGB in 4 bytes a pixel)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    packer = zlib.compressobj(9)
    row = b"\x00" + b"\xff" * (3 * width)
    idat = b"".join(packer.compress(row) for _ in range(height)) + packer.flush()
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat)
                     + chunk(b"IEND", b""))


def run_one_group(tmp: Path, prod: Path, limits: dict[str, int]) -> tuple[dict[str, Any], float]:
    """``chrono schedule --execute`` over ``prod`` as one group under ``limits``; the report
    and the wall time."""
    config = tmp / "chrono.yaml"
    config.write_text("evidence:\n  limits:\n" + "".join(
        f"    {key}: {value}\n" for key, value in limits.items()))
    started = time.monotonic()
    proc = cli("schedule", "--mode", "local", *bucket_args(tmp, prod), "--config", str(config),
               "--minimum-batch-size", "100", "--workers", "1", "--execute", "--quiet",
               cwd=tmp, timeout=300)
    seconds = time.monotonic() - started
    assert proc.returncode == 0, proc.stderr
    report = json.loads((tmp / "rep" / "report.json").read_text())
    assert report["status"] == "succeeded"
    summary = json.loads(next((tmp / "rep" / "schedules").glob("*.json")).read_text())
    assert len(summary["groups"]) == 1 and summary["groups"][0]["status"] == "done"
    return report, seconds


def outcomes(report: dict[str, Any]) -> dict[str, tuple[str, str | None]]:
    return {f["path"]: (f["outcome"], f["reason"]) for f in report["files"] if not f["depth"]}


def artifact_seconds(tmp: Path, report: dict[str, Any], path: str) -> float:
    sha = next(f["sha256"] for f in report["files"] if f["path"] == path)
    artifact = json.loads((tmp / "art" / "artifacts" / sha[:2] / f"{sha}.json").read_text())
    return float(artifact["seconds"])


def assert_others_processed(found: dict[str, tuple[str, str | None]], bad: str) -> None:
    others = {path: o for path, o in found.items() if path != bad}
    assert others == {
        # The first copy by path is the canonical one.
        "calls.csv": ("processed", None), "copy/m0-again.eml": ("processed", None),
        "mail/m0.eml": ("duplicate", "same_content"), "mail/m1.eml": ("processed", None),
        "notes.txt": ("processed", None),
    }


def test_a_scan_over_the_time_limit_fails_and_the_group_goes_on(tmp_path: Path) -> None:
    prod = tiny_production(tmp_path / "prod", emails=2)
    scanned_tiff(prod / "scan.tif", SCAN_PAGES)
    report, seconds = run_one_group(tmp_path, prod, {"max_seconds_per_file": TIME_LIMIT_S})
    found = outcomes(report)
    assert found["scan.tif"] == ("failed", "limit_time")
    assert_others_processed(found, "scan.tif")
    # The scan was given up at the limit (the alarm lands once the page being read is done),
    # not read to its end.
    spent = artifact_seconds(tmp_path, report, "scan.tif")
    assert TIME_LIMIT_S <= spent < 3 * TIME_LIMIT_S, spent
    assert seconds < TIME_LIMIT_S * len(found), seconds


def test_an_image_over_the_memory_limit_fails_and_the_group_goes_on(tmp_path: Path) -> None:
    prod = tiny_production(tmp_path / "prod", emails=2)
    side = 13_000  # 169 M pixels: under Pillow's own bomb guard (2 x 89 M), which would report
    # limit_pixels first
    blank_png(prod / "huge.png", side, side)
    assert (prod / "huge.png").stat().st_size < 2_000_000
    # Our pixel guard lets it through; decoding it (676 MB) does not fit the worker's
    # address-space cap, which the other files fit in easily.
    report, _seconds = run_one_group(tmp_path, prod, {
        "max_image_pixels": side * side + 1, "max_memory_bytes": MEMORY_CAP_BYTES,
    })
    found = outcomes(report)
    assert found["huge.png"] == ("failed", "limit_memory")
    assert_others_processed(found, "huge.png")
