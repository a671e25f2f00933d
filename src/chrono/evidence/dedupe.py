"""Dedupe step: marks events that are one communication seen through several sources.

An email can reach the timeline as an .eml, as a load-file (DAT) row and as a printed page; a call
as a row of the caller's carrier records and a row of the other party's phone export. Dedupe
groups such copies and marks every copy but one (``duplicate_of`` = the survivor's event id,
``duplicate_reason`` = the link that joined it). Nothing is deleted: a copy's provenance stays
reachable from the survivor through the events whose ``duplicate_of`` names it.

Links (reason codes):

* ``message_id``: two emails with the same Message-ID (angle brackets and case ignored).
* ``email_fields``: same sender, To/Cc set, subject, normalised body and second.
* ``email_print`` / ``email_loadfile``: a re-rendered copy (a printout on a PDF text layer or
  OCR page; a load-file (DAT) row) and any other copy: same sender (address or display name),
  starts within ``email_time_tolerance_s``, the same ``Re:``/``Fwd:`` prefixes, a near-equal
  subject, overlapping recipients when both list addresses, and a similar body (a printout may
  hold only part of the body, or OCR noise). ``email_print`` when either copy is a printout.
* ``call_match``: same unordered set of phone numbers (digits only, so ``+1555...`` equals
  ``1555...``; direction ignored, as each side sees it differently), starts within
  ``call_time_tolerance_s``, durations within ``call_duration_tolerance_s``.
* ``message_match``: same participants and normalised text, within ``message_time_tolerance_s``.

Two emails with different Message-IDs never share a group, and a call or message group never holds
two rows of the same file (one log does not list one call twice, so two such rows are two calls).

Chains: grouping is the transitive closure of links (union-find), so A~B and B~C group A, B and C
even when A and C are further apart than one tolerance. Each link is evidence on its own, and any
rule that cuts a chain would make the result depend on where the cut falls. The two guards above
bound runaway chains: links are applied strongest first, then closest in time first, and a link
that would break a guard is skipped, so the best pairing wins deterministically. Groups that
span more than their tolerance are counted (``chained_groups``) so they can be reviewed.

The result depends only on the events' content, not on their order or on marks from an earlier
run: the survivor is the best-ranked member (most native source first: .eml/.msg/mbox, then a
load-file or sheet row, then a PDF text layer, then OCR; then more participants; then the
smallest event id). Time matching uses blocking (type + participant key) and sorted sweeps, never
a comparison of all pairs.
"""

from __future__ import annotations

import hashlib
import posixpath
import re
import unicodedata
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from rapidfuzz import fuzz
from sqlalchemy import bindparam, case, select, update
from sqlalchemy.engine import Connection, Engine

from chrono.core.config import DedupeConfig
from chrono.db import schema

REASONS = ("message_id", "email_fields", "email_loadfile", "email_print", "call_match",
           "message_match")
"""Reason codes, strongest first: the order links are applied and reasons are preferred in."""
_PRIORITY = {reason: n for n, reason in enumerate(REASONS)}

# Source ranks, most native first.
RANK_NATIVE, RANK_RECORD, RANK_TEXT_LAYER, RANK_OCR = 0, 1, 2, 3
_NATIVE_SUFFIXES = frozenset({".eml", ".msg", ".mbox", ".mbx", ".emlx", ".pst", ".ost"})
_IMAGE_SUFFIXES = frozenset({".tif", ".tiff", ".jpg", ".jpeg", ".png", ".gif", ".bmp"})

SUBJECT_MIN_SIMILARITY = 90.0
"""Smallest rapidfuzz ratio (0-100) of two subjects (prefixes removed) that still match."""
BODY_MIN_SIMILARITY = 80.0
"""Smallest rapidfuzz partial ratio of two bodies: OCR noise and cut-off pages score 80-100."""
ADDRESS_MIN_SIMILARITY = 85.0
"""Smallest ratio of two addresses that OCR may have garbled into each other."""
BODY_HEAD_CHARS = 1_000
"""Only the start of each body is compared fuzzily; a printout's first page carries it."""
SHORT_BODY_CHARS = 20
"""Below this a body is compared whole, so that a short text inside a long one is no match."""
MAX_RECIPIENTS_COMPARED = 50

_NON_WORD = re.compile(r"[\W_]+")
_NON_DIGIT = re.compile(r"\D+")
_SUBJECT_TAG = re.compile(r"^\s*(re|aw|sv|antw|fwd?|wg|tr|rv)\s*(?:\[\d+\])?\s*[:;]\s*")
_FORWARD_TAGS = frozenset({"fw", "fwd", "wg", "tr", "rv"})
_RECIPIENT_ROLES = frozenset({"to", "cc"})
"""Bcc is left out: only the sender's copy of an email shows it."""


@dataclass(frozen=True)
class DuplicateMark:
    """One event that is a copy of another: ``duplicate_of`` is the surviving event's id."""

    event_id: str
    duplicate_of: str
    reason: str


@dataclass(slots=True)
class _Item:
    """What dedupe compares of one event: small, so that 100k events fit easily in memory."""

    id: str
    type: str
    time: int | None
    """Start in whole seconds since the epoch (UTC)."""
    rank: tuple[int, int, str]
    """Survivor order: source rank, minus participant count, event id."""
    file: str
    message_id: str | None = None
    sender_keys: tuple[str, ...] = ()
    sender_address: str | None = None
    recipients: tuple[str, ...] = ()
    subject_tags: tuple[str, ...] = ()
    subject_base: str = ""
    body_head: str = ""
    fields_key: str | None = None
    party_key: tuple[str, ...] = ()
    text_hash: str = ""
    duration: float | None = None


@dataclass(frozen=True, order=True)
class _Link:
    priority: int
    gap: int
    a: int
    b: int


@dataclass
class DedupeResult:
    """Marks plus the counts the step reports."""

    marks: list[DuplicateMark]
    events: int
    groups: int
    chained_groups: int
    by_reason: dict[str, int] = field(default_factory=dict)


# --- features -----------------------------------------------------------------------------------


def normalize_text(text: str | None) -> str:
    """Case-folded words joined by single spaces: punctuation, layout and OCR spacing vanish."""
    if not text:
        return ""
    return _NON_WORD.sub(" ", unicodedata.normalize("NFKC", text).casefold()).strip()


def normalize_message_id(value: str | None) -> str | None:
    if not value:
        return None
    cleaned = value.strip().strip("<>").strip().casefold()
    return cleaned or None


def split_subject(subject: str | None) -> tuple[tuple[str, ...], str]:
    """The reply/forward prefixes (as ``re``/``fwd`` tags) and the normalised rest."""
    rest = unicodedata.normalize("NFKC", subject or "").casefold()
    tags: list[str] = []
    while match := _SUBJECT_TAG.match(rest):
        tags.append("fwd" if match.group(1) in _FORWARD_TAGS else "re")
        rest = rest[match.end():]
    return tuple(tags), normalize_text(rest)


def phone_key(value: str) -> str:
    """Digits only: ``+15555215554`` and ``15555215554`` are one number."""
    return _NON_DIGIT.sub("", value) or value


def _name_key(name: str | None) -> str | None:
    """Display-name tokens in sorted order, so ``Doe, Jane`` and ``Jane Doe`` agree."""
    words = normalize_text(name).split()
    return " ".join(sorted(words)) if words else None


def source_rank(event: dict[str, Any]) -> int:
    """How native the event's source is (lower is better), from its path and locator."""
    source = event.get("source") or {}
    suffix = posixpath.splitext(str(source.get("path") or "").lower())[1]
    locator = str(source.get("locator") or "")
    attributes = event.get("attributes") or {}
    printed = (locator.endswith(":printed") or locator.startswith("page:")
               or attributes.get("printed") is True)
    if printed:
        return RANK_OCR if suffix in _IMAGE_SUFFIXES else RANK_TEXT_LAYER
    if suffix in _NATIVE_SUFFIXES or locator.startswith("msg:"):
        return RANK_NATIVE
    if "row:" in locator:
        return RANK_RECORD
    return RANK_OCR if suffix in _IMAGE_SUFFIXES else RANK_TEXT_LAYER


def _epoch_seconds(start: Any) -> int | None:
    if not start:
        return None
    if isinstance(start, datetime):
        moment = start
    else:
        try:
            moment = datetime.fromisoformat(str(start).replace("Z", "+00:00"))
        except ValueError:
            return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp())  # milliseconds dropped: sources disagree on them


def _identifier(participant: dict[str, Any]) -> str:
    value = str(participant.get("normalized") or participant.get("value") or "")
    if participant.get("kind") == "phone":
        return phone_key(value)
    return value.lower()


def _digest(*parts: str) -> str:
    return hashlib.blake2b("\x1f".join(parts).encode("utf-8"), digest_size=16).hexdigest()


def _item(event: dict[str, Any]) -> _Item:
    participants = event.get("participants") or []
    source = event.get("source") or {}
    etype = str(event.get("type") or "")
    item = _Item(
        id=str(event["id"]), type=etype, time=_epoch_seconds(event.get("start")),
        rank=(source_rank(event), -len(participants), str(event["id"])),
        file=str(source.get("sha256") or source.get("file_id") or source.get("path") or ""),
    )
    if etype == "email":
        _email_features(item, event, participants)
    elif etype in ("call", "message"):
        kinds = ("phone",) if etype == "call" else ("phone", "email", "handle")
        item.party_key = tuple(sorted({_identifier(p) for p in participants
                                       if p.get("kind") in kinds}))
        if etype == "call":
            item.duration = event.get("duration_s")
        else:
            item.text_hash = _digest(normalize_text(event.get("body")))
    return item


def _email_features(item: _Item, event: dict[str, Any], participants: list[dict[str, Any]]) -> None:
    item.message_id = normalize_message_id(event.get("message_id"))
    sender = next((p for p in participants if p.get("role") in ("from", "sender")), None)
    keys: list[str] = []
    if sender is not None:
        if sender.get("kind") == "email":
            item.sender_address = _identifier(sender)
            keys.append("address:" + item.sender_address)
            display = sender.get("name")
        else:
            display = sender.get("value")
        name = _name_key(display)
        if name:
            keys.append("name:" + name)
    item.sender_keys = tuple(keys)
    item.recipients = tuple(sorted({
        _identifier(p) for p in participants
        if p.get("role") in _RECIPIENT_ROLES and p.get("kind") == "email"
    }))
    item.subject_tags, item.subject_base = split_subject(event.get("subject"))
    body = normalize_text(event.get("body"))
    item.body_head = body[:BODY_HEAD_CHARS]
    if keys:
        item.fields_key = _digest(
            keys[0], ",".join(item.recipients), " ".join(item.subject_tags), item.subject_base,
            _digest(body), str(item.time),
        )


# --- candidate links ----------------------------------------------------------------------------


def _exact_links(items: list[_Item], key: Callable[[_Item], str | None], reason: str,
                 ) -> Iterator[_Link]:
    """Star links from the smallest index of every group sharing ``key``."""
    first: dict[str, int] = {}
    for index, item in enumerate(items):  # items are sorted by id, so first = smallest id
        value = key(item)
        if value is None:
            continue
        if value in first:
            yield _Link(_PRIORITY[reason], 0, first[value], index)
        else:
            first[value] = index


def _sweep(blocks: dict[Any, list[int]], items: list[_Item], tolerance: float,
           matches: Callable[[_Item, _Item], str | None]) -> set[_Link]:
    """Links between members of each block whose starts are within ``tolerance`` seconds and
    that ``matches`` gives a reason for."""
    links: set[_Link] = set()
    for members in blocks.values():
        if len(members) < 2:
            continue
        members.sort(key=lambda i: (items[i].time, i))
        for pos, i in enumerate(members):
            start = items[i].time
            assert start is not None
            for j in members[pos + 1:]:
                later = items[j].time
                assert later is not None
                if later - start > tolerance:
                    break
                reason = matches(items[i], items[j])
                if reason is not None:
                    a, b = min(i, j), max(i, j)
                    links.add(_Link(_PRIORITY[reason], later - start, a, b))
    return links


def _similar(a: str, b: str, minimum: float) -> bool:
    return a == b or (bool(a) and bool(b) and fuzz.ratio(a, b) >= minimum)


def _recipients_overlap(a: tuple[str, ...], b: tuple[str, ...]) -> bool:
    if not a or not b or not set(a).isdisjoint(b):
        return True
    return any(
        fuzz.ratio(x, y) >= ADDRESS_MIN_SIMILARITY
        for x in a[:MAX_RECIPIENTS_COMPARED] for y in b[:MAX_RECIPIENTS_COMPARED]
    )


def _bodies_agree(a: _Item, b: _Item) -> bool:
    if a.body_head == b.body_head:
        return bool(a.body_head) or bool(a.subject_base)
    if not a.body_head or not b.body_head:
        # A printout whose body was not captured: the subject has to carry the identity.
        return bool(a.subject_base)
    if min(len(a.body_head), len(b.body_head)) < SHORT_BODY_CHARS:
        return fuzz.ratio(a.body_head, b.body_head) >= BODY_MIN_SIMILARITY
    return fuzz.partial_ratio(a.body_head, b.body_head) >= BODY_MIN_SIMILARITY


def _rendered_copy(a: _Item, b: _Item) -> str | None:
    """The reason two emails of one sender block are one email, at least one re-rendered."""
    worst = max(a.rank[0], b.rank[0])
    if worst == RANK_NATIVE:
        return None  # two natives are the same email only by Message-ID or all fields
    if a.message_id and b.message_id:
        return None  # equal: linked already by Message-ID; different: never one email
    if a.fields_key is not None and a.fields_key == b.fields_key:
        return None  # linked already, more strongly
    if a.subject_tags != b.subject_tags:
        return None  # a reply or forward quoting the email is another email
    if not _similar(a.subject_base, b.subject_base, SUBJECT_MIN_SIMILARITY):
        return None
    if (a.sender_address and b.sender_address
            and not _similar(a.sender_address, b.sender_address, ADDRESS_MIN_SIMILARITY)):
        return None
    if not (_recipients_overlap(a.recipients, b.recipients) and _bodies_agree(a, b)):
        return None
    return "email_loadfile" if worst == RANK_RECORD else "email_print"


def _call_match(duration_tolerance: float) -> Callable[[_Item, _Item], str | None]:
    def matches(a: _Item, b: _Item) -> str | None:
        if a.file == b.file:
            return None
        # A missing duration is what a log shows for an unanswered call: compare it as 0.
        if abs((a.duration or 0.0) - (b.duration or 0.0)) > duration_tolerance:
            return None
        return "call_match"
    return matches


def _message_match(a: _Item, b: _Item) -> str | None:
    return "message_match" if a.file != b.file else None


def _candidate_links(items: list[_Item], config: DedupeConfig) -> list[_Link]:
    links: set[_Link] = set()
    emails = [i for i, item in enumerate(items) if item.type == "email"]
    email_items = [items[i] for i in emails]
    exact: tuple[tuple[str, Callable[[_Item], str | None]], ...] = (
        ("message_id", lambda it: it.message_id), ("email_fields", lambda it: it.fields_key))
    for reason, group_key in exact:
        for link in _exact_links(email_items, group_key, reason):
            links.add(_Link(link.priority, 0, emails[link.a], emails[link.b]))

    senders: dict[str, list[int]] = defaultdict(list)
    calls: dict[tuple[str, ...], list[int]] = defaultdict(list)
    messages: dict[tuple[tuple[str, ...], str], list[int]] = defaultdict(list)
    for index, item in enumerate(items):
        if item.time is None:
            continue
        if item.type == "email":
            for key in item.sender_keys:
                senders[key].append(index)
        elif item.type == "call" and item.party_key:
            calls[item.party_key].append(index)
        elif item.type == "message" and item.party_key:
            messages[(item.party_key, item.text_hash)].append(index)
    links |= _sweep(senders, items, config.email_time_tolerance_s, _rendered_copy)
    links |= _sweep(calls, items, config.call_time_tolerance_s,
                    _call_match(config.call_duration_tolerance_s))
    links |= _sweep(messages, items, config.message_time_tolerance_s, _message_match)
    return sorted(links)


# --- grouping -----------------------------------------------------------------------------------


class _Groups:
    """Union-find over item indexes, with the Message-ID and one-row-per-file guards."""

    def __init__(self, items: list[_Item]) -> None:
        self.parent = list(range(len(items)))
        self.size = [1] * len(items)
        self.message_id: list[str | None] = [it.message_id for it in items]
        self.files: list[set[str] | None] = [None] * len(items)
        self.items = items

    def find(self, i: int) -> int:
        root = i
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[i] != root:
            self.parent[i], i = root, self.parent[i]
        return root

    def _files(self, root: int) -> set[str]:
        files = self.files[root]
        if files is None:
            files = self.files[root] = {self.items[root].file}
        return files

    def link(self, a: int, b: int, one_row_per_file: bool) -> bool:
        """Join the groups of ``a`` and ``b``: True once they are one group, False if a guard
        refuses."""
        ra, rb = self.find(a), self.find(b)
        if ra == rb:
            return True
        mid_a, mid_b = self.message_id[ra], self.message_id[rb]
        if mid_a and mid_b and mid_a != mid_b:
            return False
        files_a, files_b = self._files(ra), self._files(rb)
        if one_row_per_file and not files_a.isdisjoint(files_b):
            return False
        if self.size[ra] < self.size[rb]:
            ra, rb, files_a, files_b = rb, ra, files_b, files_a
        self.parent[rb] = ra
        self.size[ra] += self.size[rb]
        self.message_id[ra] = mid_a or mid_b
        files_a |= files_b
        self.files[rb] = None
        return True


def _collect(events: Iterable[dict[str, Any]]) -> list[_Item]:
    """One item per event id, sorted by id; of two events with one id the content decides."""
    by_id: dict[str, _Item] = {}
    for event in events:
        item = _item(event)
        held = by_id.get(item.id)
        if held is None or repr(item) < repr(held):
            by_id[item.id] = item
    return [by_id[key] for key in sorted(by_id)]


def _tolerance(etype: str, config: DedupeConfig) -> float:
    return {"email": config.email_time_tolerance_s, "call": config.call_time_tolerance_s,
            "message": config.message_time_tolerance_s}.get(etype, 0.0)


def dedupe_events(events: Iterable[dict[str, Any]], config: DedupeConfig | None = None,
                  ) -> DedupeResult:
    """Marks and counts for ``events`` (event dicts; their current marks are ignored)."""
    config = config or DedupeConfig()
    items = _collect(events)
    groups = _Groups(items)
    kept: dict[tuple[int, int], int] = {}
    for link in _candidate_links(items, config):
        reason = REASONS[link.priority]
        if groups.link(link.a, link.b, reason in ("call_match", "message_match")):
            kept.setdefault((link.a, link.b), link.priority)
    members: dict[int, list[int]] = defaultdict(list)
    for index in {i for pair in kept for i in pair}:
        members[groups.find(index)].append(index)
    best_incident: dict[int, int] = {}
    for (a, b), priority in kept.items():
        for end in (a, b):
            best_incident[end] = min(best_incident.get(end, priority), priority)

    marks: list[DuplicateMark] = []
    chained = 0
    for group in members.values():
        survivor = min(group, key=lambda i: items[i].rank)
        times = [t for i in group if (t := items[i].time) is not None]
        if times and max(times) - min(times) > _tolerance(items[survivor].type, config):
            chained += 1
        for index in group:
            if index == survivor:
                continue
            priority = kept.get((min(index, survivor), max(index, survivor)),
                                best_incident[index])
            marks.append(DuplicateMark(items[index].id, items[survivor].id, REASONS[priority]))
    marks.sort(key=lambda m: m.event_id)
    return DedupeResult(
        marks=marks, events=len(items), groups=len(members), chained_groups=chained,
        by_reason=dict(sorted(Counter(m.reason for m in marks).items())),
    )


def find_duplicates(events: Iterable[dict[str, Any]], config: DedupeConfig | None = None,
                    ) -> list[DuplicateMark]:
    """The duplicate events among ``events``, sorted by event id (survivors are not listed)."""
    return dedupe_events(events, config).marks


# --- database -----------------------------------------------------------------------------------

FETCH_ROWS = 5_000
UPDATE_CHUNK_ROWS = 10_000


def _start_text(value: datetime | None) -> str | None:
    if value is None:
        return None
    if value.tzinfo is not None:
        value = value.astimezone(UTC)
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


def _db_events(conn: Connection, marked: dict[str, tuple[str | None, str | None]],
               ) -> Iterator[dict[str, Any]]:
    """Every event as an event dict, streamed; fills ``marked`` with the current marks.

    Events and participants are read as two streams ordered by event id and zipped, so memory
    holds one event at a time. Bodies are read only where dedupe looks at them.
    """
    ev, pa, ident = schema.events, schema.participants, schema.identifiers
    body = case((ev.c.type.in_(("email", "message")), ev.c.body), else_=None)
    event_rows = conn.execute(
        select(ev.c.event_id, ev.c.type, ev.c.start_utc, ev.c.offset_minutes, ev.c.timezone,
               ev.c.subject, body.label("body"), ev.c.duration_s, ev.c.direction,
               ev.c.message_id, ev.c.file_id, ev.c.sha256, ev.c.path, ev.c.locator, ev.c.page,
               ev.c.row, ev.c.bates, ev.c.duplicate_of, ev.c.duplicate_reason, ev.c.attributes)
        .order_by(ev.c.event_id).execution_options(yield_per=FETCH_ROWS)
    )
    part_rows = iter(conn.execute(
        select(pa.c.event_id, pa.c.role, pa.c.value, pa.c.name, ident.c.kind,
               ident.c.value.label("normalized"))
        .join(ident, ident.c.identifier_id == pa.c.identifier_id)
        .order_by(pa.c.event_id, pa.c.position).execution_options(yield_per=FETCH_ROWS)
    ))
    pending = next(part_rows, None)
    for (event_id, etype, start_utc, offset_minutes, zone, subject, body_text, duration_s,
         direction, message_id, file_id, sha256, path, locator, page, row_number, bates,
         duplicate_of, duplicate_reason, attributes) in event_rows:
        # Both streams use the database's order of event ids; equality is all the zip needs.
        participants = []
        while pending is not None and pending[0] == event_id:
            _, role, value, name, kind, normalized = pending
            participants.append({"role": role, "kind": kind, "value": value, "name": name,
                                 "normalized": normalized})
            pending = next(part_rows, None)
        if duplicate_of is not None or duplicate_reason is not None:
            marked[event_id] = (duplicate_of, duplicate_reason)
        yield {
            "id": event_id, "type": etype, "start": _start_text(start_utc),
            "offset_minutes": offset_minutes, "timezone": zone, "subject": subject,
            "body": body_text, "duration_s": duration_s, "direction": direction,
            "message_id": message_id, "participants": participants,
            "source": {"file_id": file_id, "path": path, "sha256": sha256, "locator": locator,
                       "page": page, "row": row_number, "bates": bates},
            "duplicate_of": duplicate_of, "attributes": attributes or {},
        }


def _write_marks(conn: Connection, changes: list[dict[str, Any]]) -> None:
    ev = schema.events
    statement = (
        update(ev).where(ev.c.event_id == bindparam("b_event_id"))
        .values(duplicate_of=bindparam("b_duplicate_of"),
                duplicate_reason=bindparam("b_duplicate_reason"))
    )
    for start in range(0, len(changes), UPDATE_CHUNK_ROWS):
        conn.execute(statement, changes[start:start + UPDATE_CHUNK_ROWS])


def run_dedupe(engine: Engine, config: DedupeConfig | None = None) -> dict[str, int]:
    """Mark the duplicate events in the database, in one transaction; re-runs update nothing.

    Events no longer found to be duplicates get their marks cleared. Only rows whose marks
    change are written.
    """
    with engine.begin() as conn:
        current: dict[str, tuple[str | None, str | None]] = {}
        result = dedupe_events(_db_events(conn, current), config)
        changes: list[dict[str, Any]] = []
        for mark in result.marks:
            if current.pop(mark.event_id, (None, None)) != (mark.duplicate_of, mark.reason):
                changes.append({"b_event_id": mark.event_id, "b_duplicate_of": mark.duplicate_of,
                                "b_duplicate_reason": mark.reason})
        changes.extend({"b_event_id": event_id, "b_duplicate_of": None,
                        "b_duplicate_reason": None} for event_id in sorted(current))
        _write_marks(conn, changes)
    counts = {"events": result.events, "duplicates": len(result.marks), "groups": result.groups,
              "chained_groups": result.chained_groups, "updated": len(changes)}
    counts.update({f"by_reason:{reason}": n for reason, n in result.by_reason.items()})
    return counts


__all__ = ["REASONS", "DedupeResult", "DuplicateMark", "dedupe_events", "find_duplicates",
           "run_dedupe"]
