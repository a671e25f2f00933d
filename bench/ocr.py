"""Benchmark: OCR pages/s and character error rate, Chrono vs the seed's three-pass Tesseract chain.

Usage: ``python bench/ocr.py [--quick] [--pages N]``. Progress goes to stderr; the last stdout line
is one JSON object with ``n_pages``, ``chrono_pages_per_s``, ``baseline_pages_per_s``, ``speedup``,
``chrono_cer`` and ``baseline_cer``.

Pages are synthetic 300-dpi US-letter scans (DejaVu Sans text, mild noise, about one degree of
skew) whose ground truth is known. Both sides OCR the same PNG files with a pool of 2 processes:

- Chrono: :func:`chrono.evidence.extract.ocr.ocr_image` (one in-process engine per worker:
  orientation detection, binarisation, redaction detection, one recognition pass).
- Baseline, as the seed ran it in production: three ``tesseract`` CLI runs per page through
  pytesseract (plain ``image_to_string``; invert, dilate, invert and ``image_to_string`` again;
  ``image_to_data``). Its text is the plain pass. Its ``tesseract`` runs get
  ``OMP_THREAD_LIMIT=1`` like Chrono's engines, so both sides use one thread per worker; with
  ``--seed-threads`` they keep OpenMP's default threading as the seed did, which on a 2-core
  machine with 2 workers oversubscribes the cores and makes the baseline several times slower.

CER = Levenshtein distance / length of the truth, on whitespace-normalised text, over all pages.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont, ImageOps
from rapidfuzz.distance import Levenshtein

FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"
WORKERS = 2
DPI = 300
WORDS = [
    "the", "meeting", "agreement", "counsel", "deposition", "invoice", "shipment", "contract",
    "payment", "schedule", "review", "draft", "exhibit", "witness", "account", "transfer",
    "record", "March", "April", "call", "office", "report", "confirmed", "signed", "delivered",
    "notice", "request", "response", "client", "vendor", "board", "quarter", "budget", "of",
    "and", "to", "in", "for", "on", "with", "at", "by", "from", "as", "is", "was", "will", "be",
    "have", "this", "that",
]


def synthetic_page(index: int) -> tuple[Image.Image, str]:
    """A 300-dpi letter page of 10-point text with noise and skew, and its true text."""
    rng = random.Random(index)
    width, height, font_px, margin = 2550, 3300, 42, 225
    font = ImageFont.truetype(FONT, font_px)
    image = Image.new("L", (width, height), 255)
    draw = ImageDraw.Draw(image)
    lines, y, line_height = [], 250, int(font_px * 1.5)
    while y + line_height < height - 250:
        words: list[str] = []
        while True:
            word = str(rng.randint(1, 99999)) if rng.random() < 0.08 else rng.choice(WORDS)
            if draw.textlength(" ".join([*words, word]), font=font) > width - 2 * margin:
                break
            words.append(word)
        draw.text((margin, y), " ".join(words), font=font, fill=0)
        lines.append(" ".join(words))
        y += line_height
    image = image.rotate(rng.uniform(-1.0, 1.0), resample=Image.Resampling.BILINEAR, fillcolor=255)
    noise_rng = np.random.default_rng(index)
    pixels = np.asarray(image, dtype=np.int16) + noise_rng.normal(0, 12, (height, width))
    pixels[noise_rng.random((height, width)) < 0.0005] = 0
    page = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "L")
    return page, "\n".join(lines)


def _write_page(args: tuple[int, str]) -> str:
    index, folder = args
    page, truth = synthetic_page(index)
    path = Path(folder) / f"page-{index:04d}.png"
    page.save(path, dpi=(DPI, DPI))
    path.with_suffix(".txt").write_text(truth, encoding="utf-8")
    return str(path)


def _chrono_page(path: str) -> str:
    from chrono.core.config import OcrConfig
    from chrono.evidence.extract.ocr import ocr_image

    with Image.open(path) as image:
        return ocr_image(image, 1, OcrConfig()).text


def _set_omp_threads(limit: str | None) -> None:
    """Pool initializer: ``OMP_THREAD_LIMIT`` for this worker and the processes it starts."""
    if limit is None:
        os.environ.pop("OMP_THREAD_LIMIT", None)
    else:
        os.environ["OMP_THREAD_LIMIT"] = limit


def _baseline_page(path: str) -> str:
    import pytesseract

    with Image.open(path) as image:
        image.load()
    text = pytesseract.image_to_string(image)
    thickened = ImageOps.invert(ImageOps.invert(image).filter(ImageFilter.MaxFilter(3)))
    pytesseract.image_to_string(thickened)
    pytesseract.image_to_data(image)
    return text


def cer(texts: list[str], truths: list[str]) -> float:
    """Character error rate over all pages, on whitespace-normalised text."""
    distance = total = 0
    for text, truth in zip(texts, truths, strict=True):
        hyp, ref = " ".join(text.split()), " ".join(truth.split())
        distance += Levenshtein.distance(hyp, ref)
        total += len(ref)
    return distance / max(total, 1)


def _timed(
    worker: Callable[[str], str], paths: list[str], omp_threads: str | None
) -> tuple[list[str], float]:
    started = time.perf_counter()
    pool = ProcessPoolExecutor(WORKERS, initializer=_set_omp_threads, initargs=(omp_threads,))
    with pool:
        texts = list(pool.map(worker, paths))
    return texts, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="8 pages instead of 40")
    parser.add_argument("--pages", type=int, default=None, help="number of pages")
    parser.add_argument("--seed-threads", action="store_true",
                        help="baseline tesseract keeps OpenMP default threading (as the seed)")
    args = parser.parse_args()
    n_pages = args.pages or (8 if args.quick else 40)
    with tempfile.TemporaryDirectory(prefix="chrono-bench-ocr-") as folder:
        print(f"generating {n_pages} pages", file=sys.stderr)
        with ProcessPoolExecutor(WORKERS) as pool:
            paths = list(pool.map(_write_page, [(i, folder) for i in range(n_pages)]))
        truths = [Path(p).with_suffix(".txt").read_text(encoding="utf-8") for p in paths]
        print("chrono: ocr_image, 2 worker processes", file=sys.stderr)
        chrono_texts, chrono_s = _timed(_chrono_page, paths, "1")
        print(f"  {chrono_s:.1f}s", file=sys.stderr)
        print("baseline: 3 pytesseract passes per page, 2 worker processes", file=sys.stderr)
        base_texts, base_s = _timed(_baseline_page, paths, None if args.seed_threads else "1")
        print(f"  {base_s:.1f}s", file=sys.stderr)
    result = {
        "n_pages": n_pages,
        "workers": WORKERS,
        "baseline_threads": "openmp_default" if args.seed_threads else "1",
        "chrono_seconds": round(chrono_s, 2),
        "baseline_seconds": round(base_s, 2),
        "chrono_pages_per_s": round(n_pages / chrono_s, 3),
        "baseline_pages_per_s": round(n_pages / base_s, 3),
        "speedup": round(base_s / chrono_s, 2),
        "chrono_cer": round(cer(chrono_texts, truths), 5),
        "baseline_cer": round(cer(base_texts, truths), 5),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
