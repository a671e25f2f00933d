"""Scoring exported events, persons and devices against a sample production's truth.json.

An exported event matches a truth event when the types are equal, the start times are within
``TIME_TOLERANCE_S`` (printed emails show minutes only) and the identifier sets overlap in at
least half of the truth event's identifiers (at least one). Several exported events may match one
truth event: before dedupe, each source that shows an event yields its own copy.

Beyond :func:`score_events`:

* :func:`score_duplicates` -- pairwise precision/recall of the dedupe step's ``duplicate_of``.
* :func:`score_persons` -- pairwise F1 of person clustering over email/phone identifiers.
* :func:`namesake_merges` -- namesake groups (distinct people, one name) wrongly made one person.
* :func:`non_e164_phones` -- phone values that are possible numbers but not written in E.164.

Details returned alongside a score name events and persons by id and give counts, never an
identifier's value (values are PII in a real production).
"""

from __future__ import annotations

import bisect
import math
import re
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import phonenumbers

TIME_TOLERANCE_S = 90
COMM_TYPES = {"email", "call", "message"}
IDENTITY_KINDS = ("email", "phone")
"""Identifier kinds person clustering is scored on."""
E164 = re.compile(r"^\+[1-9]\d{6,14}$")
DETAIL_EXAMPLES = 10
"""Most example ids listed per kind of error in a details dict."""


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


# --- duplicates -------------------------------------------------------------------------------


def match_truth(truth_events: list[dict[str, Any]], exported: list[dict[str, Any]]
                ) -> dict[str, str]:
    """Exported event id -> id of the truth event it shows, by :func:`score_events`'s rule.

    Where several truth events qualify, the one sharing most identifiers wins, then the nearest
    in time, then the lowest id. Exported events matching none (or not email/call/message, or
    without a start) are left out.
    """
    index: dict[str, tuple[list[float], list[tuple[set[str], str]]]] = {}
    for t in sorted(truth_events, key=lambda t: (_ts(t["start"]), t["id"])):
        times, entries = index.setdefault(t["type"], ([], []))
        times.append(_ts(t["start"]))
        entries.append((_ids(t["participants"], "value"), t["id"]))
    mapping: dict[str, str] = {}
    for ev in exported:
        if ev.get("type") not in COMM_TYPES or not ev.get("start"):
            continue
        times, entries = index.get(ev["type"], ([], []))
        when, ids = _ts(ev["start"]), _ids(ev["participants"], "normalized")
        lo = bisect.bisect_left(times, when - TIME_TOLERANCE_S)
        hi = bisect.bisect_right(times, when + TIME_TOLERANCE_S)
        best: tuple[int, float, str] | None = None
        for k in range(lo, hi):
            t_ids, t_id = entries[k]
            shared = len(ids & t_ids)
            if shared >= max(1, math.ceil(len(t_ids) / 2)):
                key = (-shared, abs(when - times[k]), t_id)
                best = key if best is None or key < best else best
        if best is not None:
            mapping[ev["id"]] = best[2]
    return mapping


def _survivor(event_id: str, duplicate_of: dict[str, str | None]) -> str:
    """The event a chain of ``duplicate_of`` links ends at (a cycle ends where it closes)."""
    seen = {event_id}
    current = event_id
    while (nxt := duplicate_of.get(current)) and nxt not in seen:
        seen.add(nxt)
        current = nxt
    return current


def _pairs(counts: Counter[Any]) -> int:
    return sum(n * (n - 1) // 2 for n in counts.values())


def score_duplicates(truth: dict[str, Any], exported_events: list[dict[str, Any]]
                     ) -> tuple[float, float, dict[str, Any]]:
    """Pairwise ``(precision, recall, details)`` of duplicate detection.

    Only exported events that map to a truth event (:func:`match_truth`) take part. Predicted
    duplicate pairs: two such events with the same survivor (the event itself, or where its
    ``duplicate_of`` chain ends). True pairs: two such events showing the same truth event.
    With no predicted (true) pairs, precision (recall) is 1.0.
    """
    mapping = match_truth(truth["events"], exported_events)
    duplicate_of = {e["id"]: e.get("duplicate_of") for e in exported_events}
    survivor = {eid: _survivor(eid, duplicate_of) for eid in mapping}
    predicted = Counter(survivor.values())
    actual = Counter(mapping.values())
    cells = Counter((survivor[eid], mapping[eid]) for eid in mapping)
    correct, predicted_pairs, actual_pairs = _pairs(cells), _pairs(predicted), _pairs(actual)
    precision = correct / predicted_pairs if predicted_pairs else 1.0
    recall = correct / actual_pairs if actual_pairs else 1.0
    truths_of: dict[str, set[str]] = {}
    survivors_of: dict[str, set[str]] = {}
    for (surv, t_id) in cells:
        truths_of.setdefault(surv, set()).add(t_id)
        survivors_of.setdefault(t_id, set()).add(surv)
    merged = sorted(s for s, ts in truths_of.items() if len(ts) > 1)
    split = sorted(t for t, ss in survivors_of.items() if len(ss) > 1)
    details = {
        "precision": precision, "recall": recall,
        "pairs_predicted": predicted_pairs, "pairs_true": actual_pairs, "pairs_correct": correct,
        "mapped_events": len(mapping),
        "unmapped_events": sum(1 for e in exported_events
                               if e.get("type") in COMM_TYPES and e["id"] not in mapping),
        "merged_survivors": len(merged),
        "merged_examples": [{"survivor": s, "truth_events": sorted(truths_of[s])}
                            for s in merged[:DETAIL_EXAMPLES]],
        "split_truth_events": len(split),
        "split_examples": [{"truth_event": t, "survivors": len(survivors_of[t])}
                           for t in split[:DETAIL_EXAMPLES]],
    }
    return precision, recall, details


# --- persons ----------------------------------------------------------------------------------


def _key(kind: str, value: str) -> tuple[str, str]:
    return kind, (value.strip().lower() if kind == "email" else value.strip())


def truth_identifiers(person: dict[str, Any]) -> list[tuple[str, str]]:
    """(kind, value) of a truth person's emails and phones."""
    if "identifiers" in person:
        return [_key(i["kind"], i["value"]) for i in person["identifiers"]
                if i["kind"] in IDENTITY_KINDS]
    return ([_key("email", e) for e in person.get("emails", [])]
            + [_key("phone", n) for n in person.get("phones", [])])


def _export_owners(exported_persons: list[dict[str, Any]]
                   ) -> tuple[dict[tuple[str, str], str], int]:
    """(kind, value) -> exported person id, and how many identifiers two persons both claim."""
    owner: dict[tuple[str, str], str] = {}
    conflicts = 0
    for person in exported_persons:
        for ident in person.get("identifiers") or []:
            if ident.get("kind") not in IDENTITY_KINDS or not ident.get("value"):
                continue
            key = _key(ident["kind"], ident["value"])
            if key in owner and owner[key] != person["id"]:
                conflicts += 1
                continue
            owner[key] = person["id"]
    return owner, conflicts


def score_persons(truth: dict[str, Any], exported_persons: list[dict[str, Any]]
                  ) -> tuple[float, dict[str, Any]]:
    """Pairwise F1 of person clustering, and details.

    Scored over the email/phone identifiers both the truth and the export know: two identifiers
    are a true pair when one truth person owns both, a predicted pair when one exported person
    lists both. With no identifier in common the F1 is 0.0 (nothing was scored).
    """
    truth_owner: dict[tuple[str, str], str] = {}
    for person in truth["persons"]:
        for key in truth_identifiers(person):
            truth_owner[key] = person["id"]
    export_owner, conflicts = _export_owners(exported_persons)
    common = [k for k in truth_owner if k in export_owner]
    cells = Counter((truth_owner[k], export_owner[k]) for k in common)
    correct = _pairs(cells)
    actual = _pairs(Counter(truth_owner[k] for k in common))
    predicted = _pairs(Counter(export_owner[k] for k in common))
    precision = correct / predicted if predicted else 1.0
    recall = correct / actual if actual else 1.0
    if not common:
        f1 = 0.0
    else:
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    truth_of: dict[str, set[str]] = {}
    exports_of: dict[str, set[str]] = {}
    for t_id, e_id in cells:
        truth_of.setdefault(e_id, set()).add(t_id)
        exports_of.setdefault(t_id, set()).add(e_id)
    merged = sorted(e for e, ts in truth_of.items() if len(ts) > 1)
    split = sorted(t for t, es in exports_of.items() if len(es) > 1)
    details = {
        "f1": f1, "precision": precision, "recall": recall,
        "identifiers_common": len(common),
        "identifiers_truth_only": len(truth_owner) - len(common),
        "identifiers_export_only": sum(1 for k in export_owner if k not in truth_owner),
        "identifier_conflicts": conflicts,
        "pairs_predicted": predicted, "pairs_true": actual, "pairs_correct": correct,
        "merged_persons": len(merged),
        "merged_examples": [{"exported": e, "truth_persons": sorted(truth_of[e])}
                            for e in merged[:DETAIL_EXAMPLES]],
        "split_persons": len(split),
        "split_examples": [{"truth_person": t, "exported": len(exports_of[t])}
                           for t in split[:DETAIL_EXAMPLES]],
    }
    return f1, details


def namesake_groups(truth: dict[str, Any]) -> dict[str, list[str]]:
    """Namesake trap id -> its truth person ids (from ``traps``, else ``namesake_group``)."""
    traps = (truth.get("traps") or {}).get("namesakes")
    if traps is not None:
        return {t["id"]: list(t["persons"]) for t in traps}
    groups: dict[str, list[str]] = {}
    for person in truth["persons"]:
        if person.get("namesake_group"):
            groups.setdefault(person["namesake_group"], []).append(person["id"])
    return groups


def namesake_merges(truth: dict[str, Any], exported_persons: list[dict[str, Any]]) -> int:
    """How many namesake groups have two of their people's identifiers in one exported person."""
    export_owner, _ = _export_owners(exported_persons)
    persons = {p["id"]: p for p in truth["persons"]}
    merged = 0
    for members in namesake_groups(truth).values():
        claimed: dict[str, str] = {}
        hit = False
        for person_id in members:
            for key in truth_identifiers(persons[person_id]):
                exported = export_owner.get(key)
                if exported is None:
                    continue
                if claimed.setdefault(exported, person_id) != person_id:
                    hit = True
        merged += hit
    return merged


# --- phones -----------------------------------------------------------------------------------


def _possible_number(value: str) -> bool:
    """Whether a phone value reads as a possible number (so it should have been E.164)."""
    digits = re.sub(r"\D", "", value)
    if len(digits) < 7:
        return False
    candidates = [value] if value.strip().startswith("+") else [value, "+" + digits]
    for candidate in candidates:
        try:
            if phonenumbers.is_possible_number(phonenumbers.parse(candidate, "US")):
                return True
        except phonenumbers.NumberParseException:
            continue
    return False


def _phone_values(item: dict[str, Any], where: str) -> list[tuple[str, str]]:
    """(reference, value) of every phone in a record: the record itself if it is a phone, its
    ``identifiers`` and its ``devices`` (recursively). Entries without a ``kind`` (a device's
    list of the raw identifiers folded into it) are not phones of their own: the device's
    cleaned ``value`` is what must be E.164."""
    found: list[tuple[str, str]] = []
    if item.get("kind") == "phone" and isinstance(item.get("value"), str):
        found.append((where, item["value"]))
    for key in ("identifiers", "devices"):
        for n, sub in enumerate(item.get(key) or []):
            if isinstance(sub, dict):
                found += _phone_values(sub, f"{where}/{key}/{n}")
    return found


def non_e164_phones(records: list[dict[str, Any]]) -> list[str]:
    """Opaque references (``"<record index>/identifiers/<n>"``...) to phone values of persons or
    devices export records that are possible numbers yet not E.164 (``^\\+[1-9]\\d{6,14}$``).

    Values that are no possible number at all (junk, short codes) are not counted: the
    acceptance target is that every *valid* number is in E.164. The references never carry the
    value, so they are safe in an assertion message.
    """
    bad: list[str] = []
    for index, record in enumerate(records):
        for where, value in _phone_values(record, str(index)):
            if not E164.match(value) and _possible_number(value):
                bad.append(where)
    return bad
