"""Benchmark: born-digital PDF text extraction pages/s through PdfExtractor on one core.

Usage: ``python bench/pdf_text.py [--quick] [--pages N]``. Progress goes to stderr; the last stdout
line is one JSON object with ``pages_per_s`` (Chrono, through ``run_extractor``) and, when pypdf is
installed, ``baseline_pages_per_s`` and ``speedup`` for the same files read with
``pypdf.PdfReader(...).pages[i].extract_text()``.

The corpus is generated with reportlab: files of 100 letter pages, each page about 50 lines of
text, 1000 pages in all (200 with ``--quick``). Everything runs in this one process.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import sys
import tempfile
import time
from pathlib import Path

from reportlab.lib.pagesizes import letter
from reportlab.pdfgen import canvas

from chrono.core.config import EvidenceConfig
from chrono.evidence.extract.base import (
    ExtractContext,
    SourceFile,
    load_extractors,
    run_extractor,
)

PAGES_PER_FILE = 100
WORDS = [
    "the", "meeting", "agreement", "counsel", "deposition", "invoice", "shipment", "contract",
    "payment", "schedule", "review", "draft", "exhibit", "witness", "account", "transfer",
    "record", "March", "April", "call", "office", "report", "confirmed", "signed", "notice",
]


def write_pdf(path: Path, pages: int, seed: int) -> int:
    """Write a text PDF of ``pages`` pages; return its total count of characters."""
    rng = random.Random(seed)
    pdf = canvas.Canvas(str(path), pagesize=letter)
    chars = 0
    for page in range(pages):
        text = pdf.beginText(54, 740)
        text.setFont("Helvetica", 10)
        for _ in range(52):
            line = " ".join(rng.choice(WORDS) for _ in range(14))
            text.textLine(line)
            chars += len(line)
        text.textLine(f"Page {page + 1}")
        pdf.drawText(text)
        pdf.showPage()
    pdf.save()
    return chars


def chrono_pass(files: list[Path], out: Path) -> tuple[int, float]:
    sources = [
        SourceFile(path=f, sha256=hashlib.sha256(f.read_bytes()).hexdigest(),
                   size=f.stat().st_size, kind="pdf", name=f.name)
        for f in files
    ]
    config = EvidenceConfig()
    load_extractors()  # module imports are not extraction work
    started = time.perf_counter()
    pages = 0
    for source in sources:
        artifact = run_extractor(source, ExtractContext(config=config, artifact_dir=out))
        if artifact.status != "processed":
            raise SystemExit(f"extraction failed: {artifact.reason}")
        pages += len(artifact.pages)
    return pages, time.perf_counter() - started


def pypdf_pass(files: list[Path]) -> tuple[int, float] | None:
    try:
        import pypdf
    except ImportError:
        return None
    started = time.perf_counter()
    pages = 0
    for f in files:
        for page in pypdf.PdfReader(f).pages:
            page.extract_text()
            pages += 1
    return pages, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="200 pages instead of 1000")
    parser.add_argument("--pages", type=int, default=None, help="total pages (multiple of 100)")
    args = parser.parse_args()
    total = args.pages or (200 if args.quick else 1000)
    n_files = max(1, total // PAGES_PER_FILE)
    with tempfile.TemporaryDirectory(prefix="chrono-bench-pdf-") as folder:
        root = Path(folder)
        print(f"generating {n_files} PDFs of {PAGES_PER_FILE} pages", file=sys.stderr)
        files = []
        for i in range(n_files):
            path = root / f"doc-{i:03d}.pdf"
            write_pdf(path, PAGES_PER_FILE, seed=i)
            files.append(path)
        print("chrono: PdfExtractor through run_extractor, one process", file=sys.stderr)
        pages, seconds = chrono_pass(files, root / "artifacts")
        print(f"  {pages} pages in {seconds:.2f}s", file=sys.stderr)
        result: dict[str, object] = {
            "n_pages": pages,
            "seconds": round(seconds, 3),
            "pages_per_s": round(pages / seconds, 1),
        }
        baseline = pypdf_pass(files)
        if baseline is not None:
            base_pages, base_seconds = baseline
            print(f"baseline pypdf: {base_pages} pages in {base_seconds:.2f}s", file=sys.stderr)
            result["baseline_pages_per_s"] = round(base_pages / base_seconds, 1)
            result["speedup"] = round(base_seconds / seconds, 2)
        else:
            print("baseline pypdf not installed: skipped", file=sys.stderr)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
