"""Scoring exported events against a sample production's truth.json.

An exported event matches a truth event when the types are equal, the start times are within
``TIME_TOLERANCE_S`` (printed emails show minutes only) and the identifier sets overlap in at
least half of the truth event's identifiers (at least one). Several exported events may match one
truth event: before dedupe, each source that shows an event yields its own copy.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from typing import Any

TIME_TOLERANCE_S = 90
COMM_TYPES = {"email", "call", "message"}


def _ts(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def _ids(participants: list[dict[str, Any]], key: str) -> set[str]:
    return {p[key] for p in participants if p.get("kind") in ("email", "phone") and p.get(key)}


@dataclass
class Score:
    recall: float
    precision: float
    truth: int
    exported: int
    missed: list[dict[str, Any]]
    unmatched: list[dict[str, Any]]


def score_events(truth_events: list[dict[str, Any]], exported: list[dict[str, Any]]) -> Score:
    comm = [e for e in exported if e["type"] in COMM_TYPES]
    index: dict[str, list[tuple[float, set[str], dict[str, Any]]]] = {}
    for t in truth_events:
        entry = (_ts(t["start"]), _ids(t["participants"], "value"), t)
        index.setdefault(t["type"], []).append(entry)
    matched_truth: set[str] = set()
    unmatched = []
    for ev in comm:
        ok = False
        if ev.get("start"):
            when, ids = _ts(ev["start"]), _ids(ev["participants"], "normalized")
            for t_when, t_ids, t in index.get(ev["type"], []):
                need = max(1, math.ceil(len(t_ids) / 2))
                if abs(when - t_when) <= TIME_TOLERANCE_S and len(ids & t_ids) >= need:
                    matched_truth.add(t["id"])
                    ok = True
        if not ok:
            unmatched.append(ev)
    missed = [t for t in truth_events if t["id"] not in matched_truth]
    recall = 1 - len(missed) / len(truth_events) if truth_events else 1.0
    precision = 1 - len(unmatched) / len(comm) if comm else 1.0
    return Score(recall, precision, len(truth_events), len(comm), missed, unmatched)
