"""Parse loosely written address lists into :class:`Participant` objects.

Address lists reach us from RFC 5322 headers, Outlook display strings and load-file columns::

    Jane Roe <jane@example.com>; "Doe, John" <john@example.com>
    Roe, Jane <jane@example.com>, bob@example.com
    Jane Roe [mailto:jane@example.com]
    bob@example.com (Bob Smith)
    Roe, Jane; Doe, John                  # names only (Exchange display names)
    undisclosed-recipients:;

Rules, in order:

* ``;`` separates entries whenever it appears outside quotes and brackets; commas then belong
  to names (``Roe, Jane``) unless one entry holds several addresses.
* Without ``;``, commas separate entries, but a piece with no address followed by a
  ``Name <address>`` piece is its surname (``Roe, Jane <jane@…>`` is one person). Two one-word
  names and nothing else (``Roe, Jane``) read as one ``Last, First`` name.
* An address is lower-cased; a display name keeps its case, loses surrounding quotes, and is
  dropped when it merely repeats the address. ``mailto:``/``smtp:`` prefixes are removed.
* An entry with no ``@`` becomes a ``name`` participant (or a ``handle`` for an X.500 path such
  as ``/O=ORG/OU=…/CN=JROE`` with no display name).
* Group syntax (``team: a@x, b@y;``) yields the members; an empty group yields nothing.
* The same (role, value) is returned once; at most :data:`MAX_PARTICIPANTS` per list.
"""

from __future__ import annotations

import re
from email.header import decode_header, make_header

from chrono.evidence.model import Participant, Role

MAX_PARTICIPANTS = 500
"""Most participants read from one address list (a guard against pathological fields)."""
MAX_LIST_CHARS = 100_000
"""Longest address list looked at; the rest is ignored."""

_OPENERS = {'"': '"', "<": ">", "[": "]", "(": ")"}
_ADDRESS = re.compile(r"^[^@\s<>\[\]()\",;]+@[^@\s<>\[\]()\",;]+$")
_SCHEME = re.compile(r"^(?:mailto|smtp|sip|ex)\s*:\s*", re.IGNORECASE)
_ANGLE = re.compile(r"^(?P<name>.*?)<(?P<addr>[^<>]*)>\s*$", re.DOTALL)
_SQUARE = re.compile(r"^(?P<name>.*?)\[(?P<addr>[^\[\]]*)\]\s*$", re.DOTALL)
_COMMENT = re.compile(r"^(?P<addr>[^\s()]+@[^\s()]+)\s*\((?P<name>[^()]*)\)\s*$")
_GROUP = re.compile(r'^\s*(?P<label>[^"<>\[\]@:,;]+):(?P<rest>.*)$', re.DOTALL)


def parse_addresses(value: str | None, role: Role) -> list[Participant]:
    """Participants with ``role`` for every entry of the address list ``value``."""
    if not value:
        return []
    text = _decode_words(value[:MAX_LIST_CHARS]).replace("\r", " ").replace("\n", " ")
    participants: list[Participant] = []
    seen: set[tuple[str, str]] = set()
    for entry in split_address_list(text):
        name, address = parse_address(entry)
        participant = make_participant(role, address, name)
        if participant is None or (participant.role, participant.value) in seen:
            continue
        seen.add((participant.role, participant.value))
        participants.append(participant)
        if len(participants) >= MAX_PARTICIPANTS:
            break
    return participants


def make_participant(role: Role, address: str | None, name: str | None) -> Participant | None:
    """One participant from an address and/or display name already split apart."""
    address = _clean_address(address)
    name = _clean_name(name)
    if address and _ADDRESS.match(address):
        lowered = address.lower()
        if name and _clean_address(name).lower() == lowered:
            name = None
        return Participant(role=role, kind="email", value=lowered, name=name)
    if name:
        return Participant(role=role, kind="name", value=name)
    if address:
        return Participant(role=role, kind="handle", value=address)
    return None


def split_address_list(text: str) -> list[str]:
    """Split an address list into entries (see the module docstring for the rules)."""
    text = _strip_groups(text)
    if _split_outside(text, ";") != [text]:
        entries: list[str] = []
        for piece in _split_outside(text, ";"):
            if _count_addresses(piece) > 1:
                entries.extend(_merge_surnames(_split_outside(piece, ",")))
            else:
                entries.append(piece)
        return [e.strip(" ,") for e in entries if e.strip(" ,")]
    pieces = [p.strip() for p in _split_outside(text, ",") if p.strip()]
    if (
        len(pieces) == 2
        and not any("@" in p for p in pieces)
        and all(re.fullmatch(r"[^\s\"<>\[\]]+", p) for p in pieces)
    ):
        return [f"{pieces[0]}, {pieces[1]}"]
    return _merge_surnames(pieces)


def parse_address(entry: str) -> tuple[str | None, str | None]:
    """``(display name, address)`` of one entry; either may be ``None``."""
    entry = entry.strip()
    for pattern in (_ANGLE, _SQUARE):
        match = pattern.match(entry)
        if match:
            return match.group("name") or None, match.group("addr")
    match = _COMMENT.match(entry)
    if match:
        return match.group("name"), match.group("addr")
    bare = _clean_address(entry)
    if _ADDRESS.match(bare) or (bare.startswith("/") and "=" in bare):
        return None, bare
    return entry or None, None


def _decode_words(text: str) -> str:
    """Decode RFC 2047 encoded words (``=?utf-8?q?…?=``) left in a value."""
    if "=?" not in text:
        return text
    try:
        return str(make_header(decode_header(text)))
    except (ValueError, LookupError, UnicodeError):
        return text


def _split_outside(text: str, separator: str) -> list[str]:
    """Split on ``separator`` where it is not inside quotes or brackets."""
    pieces: list[str] = []
    current: list[str] = []
    closer: str | None = None
    escaped = False
    for char in text:
        if closer is not None:
            current.append(char)
            if escaped:
                escaped = False
            elif char == "\\" and closer == '"':
                escaped = True
            elif char == closer:
                closer = None
            continue
        if char == separator:
            pieces.append("".join(current))
            current = []
            continue
        if char in _OPENERS:
            closer = _OPENERS[char]
        current.append(char)
    pieces.append("".join(current))
    return pieces


def _strip_groups(text: str) -> str:
    """Drop RFC 5322 group labels (``team:`` … ``;``) so only members remain."""
    match = _GROUP.match(text)
    if match is None or "@" in match.group("label"):
        return text
    label = match.group("label").strip().lower()
    if label in {"mailto", "smtp", "sip", "ex"}:
        return text
    return match.group("rest")


def _count_addresses(piece: str) -> int:
    return sum(1 for part in _split_outside(piece, ",") if "@" in part)


def _merge_surnames(pieces: list[str]) -> list[str]:
    """Join ``Roe`` + ``Jane <jane@x>`` (one person written ``Roe, Jane <jane@x>``)."""
    merged: list[str] = []
    i = 0
    while i < len(pieces):
        piece = pieces[i].strip()
        following = pieces[i + 1].strip() if i + 1 < len(pieces) else ""
        if (
            piece
            and "@" not in piece
            and not piece.startswith('"')
            and following
            and not following.startswith(('"', "<", "["))
            and (_ANGLE.match(following) or _SQUARE.match(following))
        ):
            merged.append(f"{piece}, {following}")
            i += 2
            continue
        merged.append(piece)
        i += 1
    return [m for m in merged if m]


def _clean_address(address: str | None) -> str:
    if not address:
        return ""
    address = address.strip().strip("'\"").strip()
    return _SCHEME.sub("", address).strip()


def _clean_name(name: str | None) -> str | None:
    if not name:
        return None
    name = " ".join(name.split())
    if len(name) >= 2 and name[0] == name[-1] and name[0] in "\"'":
        name = name[1:-1]
    name = name.replace('\\"', '"').replace("\\\\", "\\").strip()
    return name if any(char.isalnum() for char in name) else None
