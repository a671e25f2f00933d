"""One scan whose OCR takes far longer than ``limits.max_seconds_per_file`` is stopped at the
limit, inside Tesseract's recognition (tesserocr lets the alarm through): the file is recorded
``limit_time``, the run goes on and the other files are processed."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

LIMIT_S = 5
EML = (
    "From: Jane Doe <jane@example.com>\r\nTo: Bob Roe <bob@example.org>\r\n"
    "Subject: Quarterly numbers\r\nDate: Mon, 3 Mar 2025 10:15:00 -0500\r\n"
    "Message-ID: <stuck-1@example.com>\r\n\r\nSee attached.\r\n"
)


def dense_page(path: Path) -> None:
    """A page packed with text: its recognition alone takes Tesseract well over the limit."""
    img = Image.new("L", (3300, 4600), 255)
    draw = ImageDraw.Draw(img)
    font = ImageFont.truetype("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf", 26)
    line = "The quick brown fox jumps over the lazy dog 0123456789 " * 3
    for y in range(40, 4560, 34):
        draw.text((40, y), line, fill=0, font=font)
    img.save(path, dpi=(300, 300))


def test_a_stuck_ocr_call_is_stopped_and_the_run_goes_on(tmp_path: Path) -> None:
    src = tmp_path / "prod"
    src.mkdir()
    dense_page(src / "huge-scan.png")
    (src / "a.eml").write_text(EML)
    (src / "notes.txt").write_text("Meeting moved to 3 March 2025.\n")
    config = tmp_path / "chrono.yaml"
    config.write_text(
        "evidence:\n"
        f"  limits: {{max_seconds_per_file: {LIMIT_S}}}\n"
        "  ocr: {detect_orientation: false, detect_redactions: false}\n"
    )
    art = tmp_path / "art"
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "chrono.cli.main", "run", str(src), str(art), "--quiet",
         "--config", str(config), "--workers", "1",
         "--steps", "inventory,extraction,events,upload"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )
    took = time.monotonic() - started
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads((art / "report.json").read_text())
    by_path = {f["path"]: f for f in report["files"]}
    assert by_path["huge-scan.png"]["outcome"] == "failed"
    assert by_path["huge-scan.png"]["reason"] == "limit_time"
    assert by_path["a.eml"]["outcome"] == "processed"
    assert by_path["notes.txt"]["outcome"] == "processed"
    artifacts = [json.loads(p.read_text()) for p in (art / "artifacts").rglob("*.json")]
    (stopped,) = [a for a in artifacts if a["reason"] == "limit_time"]
    # Stopped at the limit, not after the page's full recognition (about 13 s here).
    assert LIMIT_S <= stopped["seconds"] < LIMIT_S + 1.5, stopped["seconds"]
    assert took < LIMIT_S + 20, took
