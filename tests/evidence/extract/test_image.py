"""Image extractor: pages from images and TIFF frames; bombs and corrupt files fail with reasons."""

from __future__ import annotations

import struct
import time
import zlib
from pathlib import Path

from PIL import Image

from chrono.core.config import EvidenceConfig, ExtractionLimits

from .page_images import LINES, cer, extract, render_lines

TRUTH = "\n".join(LINES)


def png_declaring(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims ``width`` x ``height`` 1-bit pixels."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b""))


def test_png_page_is_read(tmp_path: Path) -> None:
    path = tmp_path / "page.png"
    render_lines().save(path, dpi=(300, 300))
    artifact = extract(path, "png", tmp_path / "out")
    assert artifact.status == "processed", artifact.reason
    assert artifact.extractor == "image"
    assert artifact.metadata["page_count"] == 1
    (page,) = artifact.pages
    assert page.method == "ocr" and page.number == 1
    assert cer(page.text, TRUTH) <= 0.01


def test_multipage_tiff_gives_one_page_per_frame(tmp_path: Path) -> None:
    first = render_lines()
    second = render_lines(("Second frame holds another line",))
    third = Image.new("L", (400, 300), 255)
    path = tmp_path / "scan.tif"
    first.save(path, save_all=True, append_images=[second, third], compression="tiff_lzw")
    artifact = extract(path, "tiff", tmp_path / "out")
    assert artifact.status == "processed", artifact.reason
    assert [p.number for p in artifact.pages] == [1, 2, 3]
    assert artifact.metadata["page_count"] == 3
    assert cer(artifact.pages[0].text, TRUTH) <= 0.01
    assert "Second frame" in artifact.pages[1].text
    assert artifact.pages[2].text == ""


def test_tiff_over_the_page_limit_fails(tmp_path: Path) -> None:
    frames = [Image.new("L", (50, 50), 255) for _ in range(3)]
    path = tmp_path / "many.tif"
    frames[0].save(path, save_all=True, append_images=frames[1:])
    config = EvidenceConfig(limits=ExtractionLimits(max_pages=2))
    artifact = extract(path, "tiff", tmp_path / "out", config=config)
    assert (artifact.status, artifact.reason) == ("failed", "limit_pages")


def test_declared_bomb_fails_fast_without_decoding(tmp_path: Path) -> None:
    path = tmp_path / "bomb.png"
    path.write_bytes(png_declaring(60_000, 60_000))
    started = time.perf_counter()
    artifact = extract(path, "png", tmp_path / "out")
    assert (artifact.status, artifact.reason) == ("failed", "limit_pixels")
    assert time.perf_counter() - started < 1.0


def test_declared_size_over_our_limit_fails_before_decoding(tmp_path: Path) -> None:
    path = tmp_path / "big.png"
    path.write_bytes(png_declaring(11_000, 11_000))  # under Pillow's guard, over ours
    artifact = extract(path, "png", tmp_path / "out")
    assert (artifact.status, artifact.reason) == ("failed", "limit_pixels")


def test_real_white_image_over_the_limit_fails(tmp_path: Path) -> None:
    path = tmp_path / "white.png"
    Image.new("1", (3000, 3000), 1).save(path)
    assert path.stat().st_size < 50_000
    config = EvidenceConfig(limits=ExtractionLimits(max_image_pixels=4_000_000))
    artifact = extract(path, "png", tmp_path / "out", config=config)
    assert (artifact.status, artifact.reason) == ("failed", "limit_pixels")


def test_corrupt_and_truncated_images_fail_with_reason(tmp_path: Path) -> None:
    junk = tmp_path / "junk.jpg"
    junk.write_bytes(b"\xff\xd8\xff\xe0" + b"not really a jpeg" * 20)
    assert extract(junk, "jpeg", tmp_path / "out").reason == "corrupt_image"
    whole = tmp_path / "whole.png"
    render_lines().save(whole)
    cut = tmp_path / "cut.png"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    artifact = extract(cut, "png", tmp_path / "out")
    assert (artifact.status, artifact.reason) == ("failed", "corrupt_image")


def test_exif_capture_time_becomes_created(tmp_path: Path) -> None:
    image = Image.new("RGB", (200, 100), "white")
    exif = Image.Exif()
    exif.get_ifd(0x8769)[36867] = "2021:03:04 05:06:07"
    exif.get_ifd(0x8769)[36881] = "+02:00"
    path = tmp_path / "photo.jpg"
    image.save(path, exif=exif)
    artifact = extract(path, "jpeg", tmp_path / "out")
    assert artifact.status == "processed", artifact.reason
    assert artifact.metadata["created"] == "2021-03-04T05:06:07+02:00"
