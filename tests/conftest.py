"""Shared fixtures: the real-world corpus and a per-test output folder."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CORPUS = (ROOT / ".." / "shared" / "corpus").resolve()


@pytest.fixture(scope="session")
def corpus() -> Path:
    """``../shared/corpus``; missing it fails under CI=true and skips elsewhere."""
    if not CORPUS.is_dir():
        if os.environ.get("CI") == "true":
            pytest.fail(f"corpus folder {CORPUS} is missing (CI must have ../shared/corpus)")
        pytest.skip("../shared/corpus not present")
    return CORPUS
