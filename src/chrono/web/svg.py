"""Charts as inline SVG, drawn on the server: the timeline histogram and a mean/min-max band."""

from __future__ import annotations

from html import escape
from typing import Any


def histogram_svg(bars: list[dict[str, Any]], bucket: str, width: int = 960,
                  height: int = 140) -> str:
    """One bar per bucket; each bar links to the timeline from that bucket's start."""
    if not bars:
        return '<p class="muted">No dated events match.</p>'
    top = max(b["count"] for b in bars) or 1
    pad, base = 30, height - 18
    step = (width - pad) / len(bars)
    parts = [f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" '
             f'aria-label="events per {escape(bucket)}">',
             f'<text x="0" y="12" class="axis">{top}</text>',
             f'<line x1="{pad}" y1="{base}" x2="{width}" y2="{base}" class="axisline"/>']
    for n, b in enumerate(bars):
        h = max(1.0, (base - 16) * b["count"] / top)
        x = pad + n * step
        day = escape(str(b["start"])[:10])
        parts.append(
            f'<a href="?start={day}" data-start="{day}"><rect class="bar" x="{x:.1f}" '
            f'y="{base - h:.1f}" width="{max(1.0, step - 1):.1f}" height="{h:.1f}">'
            f'<title>{escape(str(b["start"]))}: {b["count"]}</title></rect></a>')
    parts.append(f'<text x="{pad}" y="{height - 4}" class="axis">'
                 f'{escape(str(bars[0]["start"]))}</text>')
    parts.append(f'<text x="{width}" y="{height - 4}" class="axis" text-anchor="end">'
                 f'{escape(str(bars[-1]["start"]))}</text></svg>')
    return "".join(parts)


def band_svg(points: list[dict[str, Any]], title: str, width: int = 460,
             height: int = 150) -> str:
    """The mean as a line over a shaded min-max band."""
    pts = [p for p in points if p.get("mean") is not None]
    if not pts:
        return f'<p class="muted">{escape(title)}: no windows in range.</p>'
    lows = [p["min"] if p.get("min") is not None else p["mean"] for p in pts]
    highs = [p["max"] if p.get("max") is not None else p["mean"] for p in pts]
    low, high = min(lows), max(highs)
    span = (high - low) or 1.0
    left, right, top, bottom = 44, width - 6, 18, height - 18

    def x(i: int) -> float:
        return left + (right - left) * (i / max(1, len(pts) - 1))

    def y(v: float) -> float:
        return bottom - (bottom - top) * (v - low) / span

    upper = " ".join(f"{x(i):.1f},{y(v):.1f}" for i, v in enumerate(highs))
    lower = " ".join(f"{x(i):.1f},{y(v):.1f}" for i, v in reversed(list(enumerate(lows))))
    mean = " ".join(f"{x(i):.1f},{y(p['mean']):.1f}" for i, p in enumerate(pts))
    return (f'<svg class="chart band" viewBox="0 0 {width} {height}" role="img" '
            f'aria-label="{escape(title)}"><text x="0" y="12" class="title">{escape(title)}'
            f'</text><text x="0" y="{top + 8}" class="axis">{high:.4g}</text>'
            f'<text x="0" y="{bottom}" class="axis">{low:.4g}</text>'
            f'<polygon class="range" points="{upper} {lower}"/>'
            f'<polyline class="mean" points="{mean}"/>'
            f'<text x="{left}" y="{height - 4}" class="axis">{escape(str(pts[0]["t"]))}</text>'
            f'<text x="{right}" y="{height - 4}" class="axis" text-anchor="end">'
            f'{escape(str(pts[-1]["t"]))}</text></svg>')
