"""Test helpers: render small text pages and run one file through ``run_extractor``."""

from __future__ import annotations

import hashlib
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont
from rapidfuzz.distance import Levenshtein

from chrono.core.config import EvidenceConfig
from chrono.evidence.extract.base import ExtractContext, SourceFile, run_extractor
from chrono.evidence.model import Artifact

FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"
BOLD_FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf"
LINES = (
    "The witness met the client on Monday morning",
    "and discussed the secret payment plan today",
    "before the board approved the final budget",
)


def render_lines(lines: tuple[str, ...] = LINES, font_px: int = 40, width: int = 1400,
                 top: int = 60, line_gap: int = 70) -> Image.Image:
    """A white 300-dpi grey page with ``lines`` of black text, tall enough for them."""
    font = ImageFont.truetype(FONT, font_px)
    image = Image.new("L", (width, top * 2 + line_gap * len(lines)), 255)
    draw = ImageDraw.Draw(image)
    for i, line in enumerate(lines):
        draw.text((60, top + i * line_gap), line, font=font, fill=0)
    image.info["dpi"] = (300, 300)
    return image


def cer(text: str, truth: str) -> float:
    """Character error rate on whitespace-normalised text."""
    hyp, ref = " ".join(text.split()), " ".join(truth.split())
    return Levenshtein.distance(hyp, ref) / max(len(ref), 1)


def extract(path: Path, kind: str, out: Path, passwords: tuple[str, ...] = (),
            config: EvidenceConfig | None = None) -> Artifact:
    """Run ``path`` through the public extraction path."""
    data = path.read_bytes()
    source = SourceFile(path=path, sha256=hashlib.sha256(data).hexdigest(), size=len(data),
                        kind=kind, name=path.name)
    ctx = ExtractContext(config=config or EvidenceConfig(), artifact_dir=out, passwords=passwords)
    return run_extractor(source, ctx)
