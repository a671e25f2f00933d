"""Find black redaction boxes on a page image, so OCR can skip them and mark where they were.

A redaction box is a large, solid, near-rectangular dark area with light paper around it. The
page's dark-pixel mask is cut into small square cells; a cell counts as *solid* when almost all its
pixels are dark. Text strokes, even bold ones, rarely fill a whole cell and never a wide block of
them, and thin rules fill none. A connected group of solid cells is taken as a redaction when it is
at least a text line tall and a word wide, fills most of its bounding box, does not touch the image
edge (scanner borders) and is mostly surrounded by light pixels (a dark photograph is not). Pure
numpy plus a small flood fill over the (few) solid cells.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

SOLID_CELL_FRACTION = 0.92
"""Share of dark pixels that makes a cell solid."""
MIN_FILL_RATIO = 0.6
"""Share of a group's bounding box covered by solid cells (lower for skewed scans)."""
MIN_HEIGHT_INCH = 0.1
"""Least box height taken as a redaction (a 7-point line; thicker than bold strokes of headings)."""
MIN_WIDTH_INCH = 0.2
"""Least box width taken as a redaction (a short word)."""
MAX_HOLE_RATIO = 0.03
"""Most non-solid cells enclosed within rows of a box, relative to its solid cells."""
MAX_RING_DARK = 0.4
"""Most ink allowed in the band just outside a box (a box sits on paper, a photo does not)."""
ASSUMED_PAGE_INCHES = 11.0
"""Page length used to guess the resolution of an image that does not state one."""


@dataclass(frozen=True)
class Box:
    """A rectangle in pixels: ``left, top`` inclusive, ``right, bottom`` exclusive."""

    left: int
    top: int
    right: int
    bottom: int

    @property
    def center_x(self) -> float:
        return (self.left + self.right) / 2

    @property
    def center_y(self) -> float:
        return (self.top + self.bottom) / 2


def otsu_threshold(gray: NDArray[np.uint8]) -> int:
    """Grey level that best splits ``gray`` into ink and paper (Otsu's method)."""
    hist = np.bincount(gray.ravel(), minlength=256).astype(np.float64)
    total = hist.sum()
    if total == 0:
        return 128
    levels = np.arange(256, dtype=np.float64)
    weight_dark = np.cumsum(hist)
    weight_light = total - weight_dark
    sum_dark = np.cumsum(hist * levels)
    mean_dark = sum_dark / np.maximum(weight_dark, 1)
    mean_light = (sum_dark[-1] - sum_dark) / np.maximum(weight_light, 1)
    between = weight_dark * weight_light * (mean_dark - mean_light) ** 2
    return int(np.argmax(between))


def cell_size_for(dpi: float | None, shape: tuple[int, int]) -> int:
    """Side of the square cells, in pixels: about 1/40 inch, at least 3 pixels."""
    if not dpi or dpi < 50:
        dpi = max(shape) / ASSUMED_PAGE_INCHES
    return max(3, round(dpi / 40))


def find_redactions(dark: NDArray[np.bool_], dpi: float | None = None) -> list[Box]:
    """Return the redaction boxes in ``dark`` (True = ink), top to bottom, in pixels."""
    height, width = dark.shape
    cell = cell_size_for(dpi, (height, width))
    rows, cols = height // cell, width // cell
    if rows == 0 or cols == 0:
        return []
    blocks = dark[: rows * cell, : cols * cell].reshape(rows, cell, cols, cell)
    solid = blocks.mean(axis=(1, 3), dtype=np.float32) >= SOLID_CELL_FRACTION
    if not solid.any():
        return []
    resolution = dpi if dpi and dpi >= 50 else max(height, width) / ASSUMED_PAGE_INCHES
    min_height = max(2, int(MIN_HEIGHT_INCH * resolution / cell))
    min_width = max(4, int(MIN_WIDTH_INCH * resolution / cell))
    boxes = []
    for runs in _groups(solid):
        top, bottom = runs[0][0], runs[-1][0] + 1
        left, right = min(r[1] for r in runs), max(r[2] for r in runs)
        if bottom - top < min_height or right - left < min_width:
            continue
        if top == 0 or left == 0 or bottom >= rows or right >= cols:
            continue  # a scanner border or a full-bleed picture, not a box drawn on the page
        filled = sum(r[2] - r[1] for r in runs)
        if filled / ((bottom - top) * (right - left)) < MIN_FILL_RATIO:
            continue
        if _row_gaps(runs) > MAX_HOLE_RATIO * filled:
            continue  # speckled inside: a dark photograph, not a box
        box = _snap(dark, top * cell, bottom * cell, left * cell, right * cell, cell)
        if _ring_dark_fraction(dark, box, cell) <= MAX_RING_DARK:
            boxes.append(box)
    return sorted(boxes, key=lambda b: (b.top, b.left))


Run = tuple[int, int, int]
"""A horizontal run of solid cells: (row, first column, column after the last)."""


def _groups(solid: NDArray[np.bool_]) -> list[list[Run]]:
    """4-connected groups of solid cells, each as its runs sorted by row (union-find on runs)."""
    rows = solid.shape[0]
    edges = np.diff(np.pad(solid.astype(np.int8), ((0, 0), (1, 1))), axis=1)
    starts, ends = np.argwhere(edges == 1), np.argwhere(edges == -1)
    runs: list[Run] = [(int(s[0]), int(s[1]), int(e[1])) for s, e in zip(starts, ends, strict=True)]
    parent = list(range(len(runs)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    by_row: list[list[int]] = [[] for _ in range(rows)]
    for i, run in enumerate(runs):
        by_row[run[0]].append(i)
    for row in range(1, rows):
        above = by_row[row - 1]
        for i in by_row[row]:
            for j in above:
                if runs[i][1] < runs[j][2] and runs[j][1] < runs[i][2]:
                    parent[find(i)] = find(j)
    groups: dict[int, list[Run]] = {}
    for i, run in enumerate(runs):
        groups.setdefault(find(i), []).append(run)
    return [sorted(g) for g in groups.values()]


def _row_gaps(runs: list[Run]) -> int:
    """Non-solid cells lying between solid cells of the same row (holes and notches)."""
    spans: dict[int, list[int]] = {}
    for row, first, after in runs:
        span = spans.setdefault(row, [first, after, 0])
        span[0], span[1] = min(span[0], first), max(span[1], after)
        span[2] += after - first
    return sum(after - first - count for first, after, count in spans.values())


def _ring_dark_fraction(dark: NDArray[np.bool_], box: Box, width: int) -> float:
    """Share of ink in the band ``width`` pixels wide starting ``width`` pixels outside ``box``."""
    height, page_width = dark.shape
    inner = (max(0, box.top - width), min(height, box.bottom + width),
             max(0, box.left - width), min(page_width, box.right + width))
    outer = (max(0, box.top - 2 * width), min(height, box.bottom + 2 * width),
             max(0, box.left - 2 * width), min(page_width, box.right + 2 * width))
    outer_sum = int(dark[outer[0]:outer[1], outer[2]:outer[3]].sum())
    inner_sum = int(dark[inner[0]:inner[1], inner[2]:inner[3]].sum())
    outer_area = (outer[1] - outer[0]) * (outer[3] - outer[2])
    inner_area = (inner[1] - inner[0]) * (inner[3] - inner[2])
    ring_area = outer_area - inner_area
    return (outer_sum - inner_sum) / ring_area if ring_area > 0 else 1.0


def _snap(dark: NDArray[np.bool_], top: int, bottom: int, left: int, right: int,
          cell: int) -> Box:
    """Grow a cell-aligned box outwards, at most one cell per side, over rows/columns of ink."""
    height, width = dark.shape

    def mostly_dark(region: NDArray[np.bool_]) -> bool:
        return region.size > 0 and float(region.mean()) >= 0.5

    for _ in range(cell):
        if top > 0 and mostly_dark(dark[top - 1, left:right]):
            top -= 1
        if bottom < height and mostly_dark(dark[bottom, left:right]):
            bottom += 1
        if left > 0 and mostly_dark(dark[top:bottom, left - 1]):
            left -= 1
        if right < width and mostly_dark(dark[top:bottom, right]):
            right += 1
    return Box(left=left, top=top, right=right, bottom=bottom)


def mask_boxes(binary: NDArray[np.uint8], boxes: list[Box], margin: int) -> None:
    """Paint ``boxes`` (grown by ``margin`` pixels) white in a 0/255 image, in place."""
    height, width = binary.shape
    for box in boxes:
        binary[max(0, box.top - margin): min(height, box.bottom + margin),
               max(0, box.left - margin): min(width, box.right + margin)] = 255
