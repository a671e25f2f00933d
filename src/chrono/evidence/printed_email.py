"""Recognise a printed email in page text (PDF text layer or OCR) and turn it into a Record.

A printed email is a page whose top carries an email header block: Outlook's
``From: / Sent: / To: / Cc: / Subject:``, Gmail's ``From: / Date: ... at ... / To:`` or an RFC 5322
style ``Date: Mon, 3 Mar 2025 10:15:00 -0500``. The text may come from Tesseract, so labels are
matched fuzzily (``Frorn:``, ``Sent :``, ``T0:``, ``Subiect:``, ``Cc;``), addresses may carry
stray spaces around ``@`` and ``.`` and their angle brackets may be read as ``( )``, ``« »``,
``{ }`` or lost. An address that does not validate as ``local@domain.tld`` is never repaired into
one: the recipient is kept as a name.

A page counts as a printed email when, within its first ``TOP_LINES`` non-empty lines, a header
block starts that has a From line, a date line (``Sent:``/``Date:``) and a To or Subject line,
and the block looks like an email rather than a memo: its date shows a time of day, or one of its
people carries a valid address. Memos (``TO: / FROM: / DATE: March 3, 2025 / RE:``) and invoices
therefore stay documents.

This module raises nothing: a page that is not a printed email gives ``None``.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from dateutil import parser as date_parser
from rapidfuzz import fuzz

from chrono.evidence.model import Participant, Record, Role

TOP_LINES = 25
"""The From line must be among this many non-empty lines at the top of the page."""
MAX_BODY_CHARS = 20_000
"""Body text kept after the header block."""
MAX_LINE_CHARS = 2_000
"""Longer lines are cut before any pattern runs on them."""
MAX_HEADER_LINES = 60
"""A header block (labels plus wrapped recipient lines) never spans more lines than this."""

HeaderStyle = Literal["outlook", "gmail", "generic"]

# Normalised label spelling -> field. Skipped labels are part of the block but carry nothing kept.
_LABELS: dict[str, str] = {
    "from": "from",
    "sent": "sent",
    "date": "date",
    "to": "to",
    "cc": "cc",
    "bcc": "bcc",
    "subject": "subject",
    "replyto": "reply_to",
    "importance": "skip",
    "attachments": "skip",
    "attachment": "skip",
    "sensitivity": "skip",
    "categories": "skip",
    "followupflag": "skip",
    "flagstatus": "skip",
    "mailedby": "skip",
    "signedby": "skip",
    "security": "skip",
}
# Labels too short for fuzzy matching: the OCR misreadings seen for them, spelled out.
_SHORT_ALIASES: dict[str, str] = {
    "to": "to", "t0": "to", "tc": "to", "io": "to", "7o": "to", "ta": "to", "lo": "to", "ao": "to",
    "cc": "cc", "cec": "cc", "ce": "cc", "co": "cc", "cq": "cc", "ec": "cc", "oc": "cc",
    "bcc": "bcc", "bce": "bcc", "bec": "bcc", "8cc": "bcc", "occ": "bcc",
}
# Misreadings that are also common text ("10:" is a time): taken only before an address list.
_WEAK_ALIASES = frozenset({"tc", "io", "7o", "ta", "lo", "ao"})
# Real words one edit away from a label; a page with "Form:" or "Dated:" is not an email header.
_NOT_LABELS = frozenset({"form", "data", "dated", "dale", "note", "seat", "sans", "rate", "gate"})
_FUZZY_MIN_RATIO = 75.0
_LABEL_DIGITS = str.maketrans("015", "ols")
_LABEL_RE = re.compile(r"^\s*([A-Za-z0-9$|][A-Za-z0-9$| '\-]{0,18}?)\s{0,3}[:;]\s*(.*)$")
_BARE_LABEL_RE = re.compile(r"^\s*([A-Za-z]{2,7})\s+(\S.*)$")

_ROLE_FIELDS: tuple[tuple[str, Role], ...] = (
    ("from", "from"), ("to", "to"), ("cc", "cc"), ("bcc", "bcc"), ("reply_to", "reply_to"),
)
_RECIPIENT_FIELDS = frozenset({"from", "to", "cc", "bcc", "reply_to"})

# Address pieces. A dot may have OCR spaces around it only when a lower-case letter or digit
# follows, so "example.com. Bob" does not swallow the next word.
# OCR also splits a local part at an underscore ("noah _johnson"), which is joined back. An
# address starts after a space, bracket, separator or "mailto:", never inside a word ("uma/76@").
_ATOM = r"[A-Za-z0-9_%+'\-]+"
_DOT = r"(?:\.|\s{0,2}\.\s{0,2}(?=[a-z0-9]))"
_LOCAL_JOIN = rf"(?:{_DOT}|\s_\s?|_\s)"
_ADDRESS_RE = re.compile(
    rf"(?<![^\s<(\[{{«‹:;,\"]){_ATOM}(?:{_LOCAL_JOIN}{_ATOM})*\s{{0,2}}@\s{{0,2}}"
    rf"[A-Za-z0-9\-]+(?:{_DOT}[A-Za-z0-9\-]+)+"
)
# A lower-case word right before a bare address is most likely the front of that address, cut
# off where OCR lost an underscore or a dot: the address would be a wrong one.
_CUT_ADDRESS_FRONT_RE = re.compile(r"(?:^|(?<=[\s<(\[{«‹:]))[a-z0-9._%+'\-]+\s$")
_TLD_DIGITS = str.maketrans("0158", "olsb")
_COMMON_TLDS = frozenset({
    "com", "org", "net", "edu", "gov", "mil", "int", "biz", "info", "name", "pro", "law", "legal",
    "email", "mail", "app", "dev", "cloud", "online", "site", "tech", "company", "group", "bank",
    "insurance",
})
_VALID_ADDRESS_RE = re.compile(
    r"^[a-z0-9_%+'\-]+(?:\.[a-z0-9_%+'\-]+)*@(?:[a-z0-9](?:[a-z0-9\-]{0,61}[a-z0-9])?\.)+"
    r"[a-z]{2,24}$"
)
_OPEN_BRACKETS = "<([{«‹"
_CLOSE_BRACKETS = ">)]}»›"
_MAILTO_RE = re.compile(r"ma[il1|]{1,2}\s?to\s?[:;]?", re.IGNORECASE)
_GARBLED_BRACKET_RE = re.compile(r"[<(\[{«‹][^<(\[{«‹]*@.*$")
_NAME_JUNK = " \t\"'`<>()[]{}«»‹›;:,|*_"

_WEEKDAY_RE = re.compile(
    r"\b(?:mon|tue|tues|wed|thu|thur|thurs|fri|sat|sun)(?:day|nesday|rsday|urday)?\b\.?,?",
    re.IGNORECASE,
)
_TIME_RE = re.compile(r"\d{1,2}\s?[:.;]\s?\d{2}")
_DATE_WORD_AT_RE = re.compile(r"\bat\b", re.IGNORECASE)

_ORIGINAL_MESSAGE_RE = re.compile(r"^-{2,}\s*original\s+message\s*-{2,}$", re.IGNORECASE)
_FORWARDED_RE = re.compile(r"^-{2,}\s*forwarded\s+message\s*-{2,}$", re.IGNORECASE)
_WROTE_RE = re.compile(r"^on\b.{5,300}\bwrote\s?:?$", re.IGNORECASE)


@dataclass
class _Line:
    text: str
    """The whole line (kept for the body)."""
    head: str
    """The line cut to ``MAX_LINE_CHARS``: what header patterns look at."""
    label: str | None = None
    """Field the line's label names (``from``, ``sent``... or ``skip``), ``None`` if unlabeled."""
    value: str = ""


@dataclass
class _Block:
    fields: dict[str, str] = field(default_factory=dict)
    end: int = 0
    """Index (into all lines) of the first line after the block."""
    stray: list[str] = field(default_factory=list)
    """Body lines OCR placed between a label column and its value column."""


def find_printed_email(text: str) -> Record | None:
    """Return the email Record printed on ``text``'s page, or ``None`` if it shows no email.

    The top header block is the page's email; later header blocks (replies, forwards) are quoted
    history and only counted in ``attributes["quoted_headers"]``. ``locator`` is left empty.
    """
    lines = [_read_line(raw) for raw in text.splitlines()]
    block = _find_header_block(lines)
    if block is None:
        return None
    fields = block.fields
    participants = _participants(fields)
    start = _parse_printed_date(fields.get("sent") or fields.get("date") or "")
    if not _looks_like_email(fields, participants):
        return None
    body = "\n".join([*block.stray, *(line.text for line in lines[block.end :])]).strip()
    attributes: dict[str, object] = {
        "printed": True,
        "header_style": _header_style(fields, lines),
        "quoted_headers": _count_quoted_headers(lines, block.end),
    }
    subject = " ".join(fields.get("subject", "").split()) or None
    return Record(
        type="email",
        locator="",
        start=start,
        participants=participants,
        subject=subject,
        body=body[:MAX_BODY_CHARS] or None,
        attributes=attributes,
    )


# --- header block -------------------------------------------------------------------------------


def _read_line(raw: str) -> _Line:
    line = _Line(text=raw.rstrip(), head=raw[:MAX_LINE_CHARS].rstrip())
    found = _label_of(line.head)
    if found is not None:
        line.label, line.value = found
    return line


def _label_of(raw: str) -> tuple[str, str] | None:
    """Recognise a header label at the start of ``raw``; return (field, value)."""
    match = _LABEL_RE.match(raw)
    if match is not None:
        name = _match_label(match.group(1), exact_only=False)
        value = match.group(2).strip()
        weak = _normalise_label(match.group(1)) in _WEAK_ALIASES
        if name is not None and (not weak or "@" in value or ";" in value):
            return name, value
    # OCR sometimes drops the colon; accept that only for an exact label whose value clearly
    # has the right shape, so prose starting with "To" or "From" is not taken for a header.
    match = _BARE_LABEL_RE.match(raw)
    if match is not None:
        name = _match_label(match.group(1), exact_only=True)
        value = match.group(2).strip()
        if name in ("from", "to", "cc", "bcc") and _ADDRESS_RE.search(value):
            return name, value
        if name in ("sent", "date") and _TIME_RE.search(value) and re.search(r"\d{4}", value):
            return name, value
    return None


def _match_label(candidate: str, *, exact_only: bool) -> str | None:
    key = _normalise_label(candidate)
    if not key or len(candidate.split()) > 3:
        return None
    if key in _LABELS:
        return _LABELS[key]
    if key in _SHORT_ALIASES:
        return _SHORT_ALIASES[key]
    if exact_only or len(key) < 4 or key in _NOT_LABELS:
        return None
    best: tuple[float, str] | None = None
    for spelled, name in _LABELS.items():
        if len(spelled) < 4 or abs(len(spelled) - len(key)) > 2:
            continue
        score = fuzz.ratio(key, spelled)
        if score >= _FUZZY_MIN_RATIO and (best is None or score > best[0]):
            best = (score, name)
    return best[1] if best else None


def _normalise_label(candidate: str) -> str:
    key = re.sub(r"[\s'\-]", "", candidate.lower())
    key = key.replace("rn", "m").replace("$", "s").replace("|", "l")
    return key.translate(_LABEL_DIGITS)  # digits in a label are OCR for letters ("T0", "5ent")


def _find_header_block(lines: list[_Line]) -> _Block | None:
    """Return the first qualifying header block that starts near the top of the page."""
    seen_non_empty = 0
    for index, line in enumerate(lines):
        if not line.text.strip():
            continue
        seen_non_empty += 1
        if seen_non_empty > TOP_LINES:
            return None
        if line.label is None or line.label == "skip":
            continue
        block = _read_block(lines, index)
        if "from" in block.fields and ("sent" in block.fields or "date" in block.fields) and (
            "to" in block.fields or "subject" in block.fields
        ):
            return block
    return None


def _read_block(lines: list[_Line], start: int) -> _Block:
    """Collect labeled lines (and wrapped continuations) from ``start`` until the block ends."""
    block = _Block()
    current: str | None = None
    index = start
    limit = min(len(lines), start + MAX_HEADER_LINES)
    while index < limit:
        line = lines[index]
        if not line.text.strip():
            index += 1
            continue
        if line.label is not None:
            if line.label != "skip" and line.label in block.fields:
                break  # a second From/Sent/...: the next header block starts here
            if line.label != "skip":
                block.fields[line.label] = line.value
            current = line.label
            index += 1
            continue
        bare = _bare_label_in_block(line.head, current, block.fields)
        if bare is not None:
            block.fields[bare[0]] = bare[1]
            current = bare[0]
            index += 1
            continue
        if current is None or not _is_continuation(lines, index, current, block.fields):
            break
        if current != "skip":
            previous = block.fields[current]
            # Inside an open bracket the wrap split an address: join without a space.
            glue = "" if _has_unclosed_bracket(previous) and not previous.endswith(" ") else " "
            block.fields[current] = f"{previous}{glue}{line.head.strip()}"
        index += 1
    block.end = index
    _align_value_column(lines, block)
    return block


def _align_value_column(lines: list[_Line], block: _Block) -> None:
    """Fill labels whose values OCR read as a separate column further down the page.

    Outlook prints values at a tab stop; Tesseract may then emit all labels first and the
    values afterwards, one paragraph each. The date paragraph anchors the alignment.
    """
    empty = [name for name, value in block.fields.items() if not value.strip()]
    if len(empty) < 3 or not ({"sent", "date"} & set(empty)):
        return
    paragraphs: list[tuple[list[str], int]] = []  # (lines, index after the paragraph)
    current: list[str] = []
    index = block.end
    while index < len(lines) and len(paragraphs) < len(empty) + 6:
        if lines[index].head.strip():
            current.append(lines[index].head.strip())
        elif current:
            paragraphs.append((current, index))
            current = []
        index += 1
    if current:
        paragraphs.append((current, index))
    date_slot = empty.index("sent" if "sent" in empty else "date")
    for number, (paragraph, _) in enumerate(paragraphs):
        text = " ".join(paragraph)
        if _TIME_RE.search(text) and _parse_printed_date(text):
            offset = number - date_slot
            break
    else:
        return
    if offset < 0 or offset + len(empty) > len(paragraphs):
        return
    for slot, name in enumerate(empty):
        block.fields[name] = " ".join(paragraphs[offset + slot][0])
    block.stray = [line for paragraph, _ in paragraphs[:offset] for line in paragraph]
    block.end = paragraphs[offset + len(empty) - 1][1]


def _bare_label_in_block(
    text: str, current: str | None, fields: dict[str, str]
) -> tuple[str, str] | None:
    """Inside a header block, a label whose colon OCR lost ("Ce Sam Roe"); else ``None``."""
    if current in fields and fields[current].rstrip().endswith((";", ",")):
        return None  # the list above goes on; its next line may start with any name
    match = _BARE_LABEL_RE.match(text)
    if match is None:
        return None
    name = _match_label(match.group(1), exact_only=True)
    if name in ("to", "cc", "bcc", "subject") and name not in fields:
        return name, match.group(2).strip()
    return None


def _is_continuation(lines: list[_Line], index: int, current: str, fields: dict[str, str]) -> bool:
    """Whether the unlabeled line at ``index`` continues the field above it."""
    following = _next_non_empty(lines, index + 1)
    if following is not None and following.label is not None and following.label not in fields:
        return True  # sandwiched between header labels
    if current not in _RECIPIENT_FIELDS:
        return False
    previous = fields[current].rstrip()
    if previous.endswith((";", ",")) or _has_unclosed_bracket(previous):
        return True
    return _looks_like_address_list(lines[index].head)


def _next_non_empty(lines: list[_Line], index: int) -> _Line | None:
    for line in lines[index : index + 4]:
        if line.text.strip():
            return line
    return None


def _has_unclosed_bracket(value: str) -> bool:
    opened = max(value.rfind(c) for c in _OPEN_BRACKETS)
    closed = max(value.rfind(c) for c in _CLOSE_BRACKETS)
    return opened > closed


def _looks_like_address_list(text: str) -> bool:
    """A wrapped recipient line: addresses and short names only, no sentence."""
    if "@" not in text and ";" not in text:
        return False
    rest = _ADDRESS_RE.sub(";", text)
    if re.search(r"[.!?]\s*$", rest.strip()) or "@" in rest:
        return False
    return all(len(chunk.split()) <= 5 for chunk in re.split(r"[;,]", rest))


def _header_style(fields: dict[str, str], lines: list[_Line]) -> HeaderStyle:
    if "sent" in fields:
        return "outlook"
    date_value = fields.get("date", "")
    if _DATE_WORD_AT_RE.search(date_value) or any(
        line.head.strip().lower().startswith("gmail") for line in lines[:5]
    ):
        return "gmail"
    return "generic"


def _looks_like_email(fields: dict[str, str], participants: list[Participant]) -> bool:
    """Tell an email header from a memo's TO/FROM/DATE: a time of day or a real address."""
    date_value = fields.get("sent") or fields.get("date") or ""
    return bool(_TIME_RE.search(date_value)) or any(p.kind == "email" for p in participants)


def _count_quoted_headers(lines: list[_Line], start: int) -> int:
    """Count quoted header blocks (replies, forwards) below the page's own header block."""
    count = 0
    armed_until = -1  # a From: right after a marker belongs to that marker's block
    index = start
    while index < len(lines):
        text = lines[index].head.strip()
        if not text:
            index += 1
            continue
        joined = f"{text} {lines[index + 1].head.strip()}" if index + 1 < len(lines) else text
        if _ORIGINAL_MESSAGE_RE.match(text) or _FORWARDED_RE.match(text):
            count += 1
            armed_until = index + 4
        elif _WROTE_RE.match(text) or (text.lower().startswith("on ") and _WROTE_RE.match(joined)):
            count += 1
            armed_until = index + 2
        elif lines[index].label == "from" and index > armed_until:
            nearby = {line.label for line in lines[index + 1 : index + 8]}
            if nearby & {"sent", "date"}:
                count += 1
        index += 1
    return count


# --- participants -------------------------------------------------------------------------------


def _participants(fields: dict[str, str]) -> list[Participant]:
    found: list[Participant] = []
    for field_name, role in _ROLE_FIELDS:
        value = fields.get(field_name)
        if not value:
            continue
        seen: set[tuple[str, str]] = set()
        for name, address in parse_address_list(value):
            if address is not None:
                participant = Participant(role=role, kind="email", value=address, name=name)
            elif name:
                participant = Participant(role=role, kind="name", value=name)
            else:
                continue
            key = (participant.kind, participant.value.lower())
            if key not in seen:
                seen.add(key)
                found.append(participant)
    return found


def parse_address_list(value: str) -> list[tuple[str | None, str | None]]:
    """Split a printed recipient list into ``(display name, address)`` pairs.

    The address is lower-cased and validated; an entry whose address does not validate keeps
    only its name (or its raw text when it has no name). Outlook separates entries with ``;``
    (names may hold commas: ``Doe, Jane``); Gmail separates them with ``,``.
    """
    # Once "mailto:" is gone a colon in a recipient list is OCR for a semicolon.
    value = _MAILTO_RE.sub(" ", value).replace(":", ";")
    if ";" in value:
        entries: list[tuple[str | None, str | None]] = []
        for chunk in value.split(";"):
            entries.extend(_parse_chunk(chunk, names_split_on_comma=False))
        return entries
    return _parse_chunk(value, names_split_on_comma=True)


def _parse_chunk(chunk: str, *, names_split_on_comma: bool) -> list[tuple[str | None, str | None]]:
    entries: list[tuple[str | None, str | None]] = []
    position = 0
    matches = list(_ADDRESS_RE.finditer(chunk))
    for number, match in enumerate(matches):
        before = chunk[position : match.start()]
        after_end = _skip_closing(chunk, match.end())
        position = after_end
        bracketed = before.rstrip().endswith(tuple(_OPEN_BRACKETS))
        if names_split_on_comma and not bracketed:
            # Gmail lists: text ending in a separator before a bare address is its own entry.
            cut = max(before.rfind(","), before.rfind(";"))
            if cut >= 0:
                entries.extend((n, None) for n in _split_names(before[:cut], True))
                before = before[cut + 1 :]
        cut_front = None if bracketed else _CUT_ADDRESS_FRONT_RE.search(before)
        if cut_front is not None:
            # The address lost its front to OCR: keep the display name, never the stub address.
            head = before[: cut_front.start()]
            fragment = before[cut_front.start() :] + match.group(0)
            entries.append((_clean_name(head) or _clean_name(fragment, keep_at=True), None))
            continue
        name = _clean_name(before)
        trailing = chunk[after_end:]
        if (
            name is None
            and number == len(matches) - 1
            and trailing.strip().startswith(tuple(_OPEN_BRACKETS))
        ):
            name = _clean_name(trailing)  # "jane@example.com (Jane Doe)"
            position = len(chunk)
        address = _validated(match.group(0))
        if address is None:
            entries.append((name or _clean_name(match.group(0), keep_at=True), None))
        else:
            entries.append((name if name and name.lower() != address else None, address))
    # Outlook's ";" read as "," still splits "Carol Smith, Quinn Wilson" (never "Doe, Jane").
    entries.extend((n, None) for n in _split_names(chunk[position:], True))
    return entries


def _skip_closing(chunk: str, end: int) -> int:
    rest = chunk[end:]
    stripped = rest.lstrip()
    if stripped[:1] and stripped[0] in _CLOSE_BRACKETS:
        return end + (len(rest) - len(stripped)) + 1
    return end


def _validated(raw: str) -> str | None:
    address = re.sub(r"\s+", "", raw).lower().strip(".")
    host, _, tld = address.rpartition(".")
    # A top-level domain is letters only, so digits there are OCR for look-alike letters; the
    # repair must land on a known domain ("i0" -> "io", never "io0" -> "ioo").
    repaired = tld.translate(_TLD_DIGITS)
    if repaired != tld and (repaired in _COMMON_TLDS or re.fullmatch(r"[a-z]{2}", repaired)):
        address = f"{host}.{repaired}"
    return address if _VALID_ADDRESS_RE.match(address) else None


def _split_names(text: str, split_on_comma: bool) -> list[str]:
    """Names-only entries: commas separate them only when every part is a multi-word name."""
    if split_on_comma and "," in text:
        parts = [p for p in (_clean_name(part) for part in text.split(",")) if p]
        if len(parts) > 1 and all(len(p.split()) >= 2 for p in parts):
            return parts
    name = _clean_name(text)
    return [name] if name else []


def _clean_name(text: str, *, keep_at: bool = False) -> str | None:
    if not keep_at and "@" in text:
        # An address too garbled to match: keep the name beside it, or the raw text if alone.
        without = _GARBLED_BRACKET_RE.sub(" ", text)
        without = " ".join(token for token in without.split() if "@" not in token)
        if re.search(r"[^\W\d_]{2}", without):
            text = without
    text = re.sub(r"[<>()\[\]{}«»‹›\"`]", " ", text)
    name = " ".join(text.split()).strip(_NAME_JUNK + ".").strip()
    return name if re.search(r"[^\W\d_]", name) else None


# --- dates --------------------------------------------------------------------------------------


def _parse_printed_date(value: str) -> str | None:
    """ISO 8601 text for a printed date: with its offset if one was printed, else naive.

    A date without a year gives ``None`` (a year must never be guessed); one without a time of
    day gives the date alone.
    """
    text = _normalise_date_text(value)
    if not text:
        return None
    parsed = []
    for default in (datetime(2000, 1, 1), datetime(2001, 2, 2)):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # unknown zone names ("EST") stay naive
                parsed.append(date_parser.parse(text, default=default, fuzzy=False))
        except (ValueError, OverflowError):
            return None
    first, second = parsed
    if first.date() != second.date():
        return None  # year, month or day came from the default
    if not _TIME_RE.search(text):
        return first.date().isoformat()
    return first.isoformat()


def _normalise_date_text(value: str) -> str:
    text = re.sub(r"\([^)]*\)\s*$", "", value.strip())  # "(EST)", "(UTC)" comments
    text = _WEEKDAY_RE.sub(" ", text)
    text = _DATE_WORD_AT_RE.sub(" ", text)
    # OCR inside numbers: O for 0, l/I/| for 1.
    text = re.sub(
        r"\b[\dOoIl|]*\d[\dOoIl|]*\b",
        lambda m: m.group(0).translate(str.maketrans("OoIl|", "00111")),
        text,
    )
    text = re.sub(r"(\d)\s?[;.]\s?(\d{2})(?=\s*[AaPp]\.?\s?[Mm]\b)", r"\1:\2", text)
    text = re.sub(r"(\d)\s?:\s?(\d)", r"\1:\2", text)
    text = re.sub(r"\b([AaPp])\.?\s?[Mm]\b\.?", lambda m: m.group(1).upper() + "M", text)
    return " ".join(text.split()).strip(" ,.;")
