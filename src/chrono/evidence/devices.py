"""Device cleanup (step ``devices``): identifiers cleaned, junk dropped, duplicates merged.

Every identifier of kind phone, email, handle or imei gets one ``device_changes`` row saying what
cleanup did to it and why (``kept`` rows included), and every identifier that survives belongs to
exactly one device: the identifiers that clean to the same value are one device, whose id is
``stable_id("device", kind, cleaned value)``.

Cleaning (:func:`clean_identifier`, a pure function):

* phone -- parsed with ``phonenumbers`` in the default region and written in E.164. A number
  valid in its numbering plan has reason ``valid_e164``; one of possible length but not assigned
  in the plan (the 555 numbers of films and test data) ``possible_e164``. Fewer than
  ``min_phone_digits`` digits is a ``short_code``; a number without its area code is
  ``incomplete_phone``; anything else that does not parse is ``invalid_phone``.
* imei -- 15 digits whose last digit is the Luhn check digit (``valid_imei``), else
  ``invalid_imei``. IMEIs are also read from event attributes (keys containing ``imei``) and
  registered as identifiers of kind ``imei``, so they become devices like any other.
* email -- ``mailto:`` and angle brackets stripped, lower-cased, checked against a conservative
  address pattern (``valid_email`` / ``invalid_email``).
* handle -- leading ``@`` stripped, lower-cased (``valid_handle``); blanks inside make it
  ``invalid_handle``; an all-digit handle shorter than ``min_phone_digits`` is a ``short_code``.
* any kind -- a value in ``junk_values`` (case-insensitive) or made of zeros is ``junk_value``;
  an empty one ``empty_value``.

``action`` is ``kept`` when the cleaned value equals the stored one, ``normalized`` when it
differs, ``dropped`` when nothing usable is left, and ``merged`` (reason ``same_cleaned_value``)
for every identifier of a device but the first (kept before normalised, then by value).

Manual corrections (``chrono devices merge|unmerge``, see :mod:`chrono.evidence.corrections`) are
replayed in order on every run: a merge sets ``merged_into`` of every named device but the first
to the first one's root; an unmerge either undoes the manual merge the device is part of, or, for
a device with no manual merge, splits its identifiers into one device each (the first keeps the
device id, the others get ``stable_id("device", kind, value, "split", identifier_id)`` and reason
``manual_unmerge``).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Literal

import phonenumbers
from sqlalchemy import delete, select
from sqlalchemy.engine import Connection, Engine

from chrono.core.config import IdentityConfig
from chrono.db import schema
from chrono.db.load import chunked, insert_ignore
from chrono.evidence.context import stable_id
from chrono.evidence.corrections import Correction, read_corrections
from chrono.evidence.upload import identifier_id

DEVICE_KINDS = ("phone", "email", "handle", "imei")
Action = Literal["kept", "normalized", "dropped"]

IMEI_DIGITS = 15
MAX_EMAIL_CHARS = 254
MAX_EMAIL_LOCAL_CHARS = 64
INSERT_CHUNK_ROWS = 5000

# Conservative on purpose: a device must be an address mail could reach; quoted local parts and
# IP-literal domains do not occur in productions and would only let garbage through.
_EMAIL = re.compile(
    r"^[a-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[a-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
    r"@(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z][a-z0-9-]{0,61}[a-z0-9]$"
)
_NON_DIGITS = re.compile(r"\D")
_SEPARATORS = re.compile(r"[\s\-./]")
_SPACES = re.compile(r"\s")


@dataclass(frozen=True)
class CleanResult:
    """What cleanup made of one identifier value."""

    kind: str
    value: str | None
    """Cleaned value (E.164, lower-case address, ...); None when dropped."""
    action: Action
    reason: str


def luhn_valid(digits: str) -> bool:
    """True when the last digit of ``digits`` is its Luhn check digit."""
    if not digits.isdigit():
        return False
    total = 0
    for position, char in enumerate(reversed(digits)):
        d = int(char)
        if position % 2 == 1:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def _result(kind: str, original: str, cleaned: str, reason: str) -> CleanResult:
    return CleanResult(kind, cleaned, "kept" if cleaned == original else "normalized", reason)


def _dropped(kind: str, reason: str) -> CleanResult:
    return CleanResult(kind, None, "dropped", reason)


def clean_phone(value: str, region: str, min_digits: int) -> CleanResult:
    digits = _NON_DIGITS.sub("", value)
    if not digits:
        return _dropped("phone", "invalid_phone")
    if len(digits) < min_digits:
        return _dropped("phone", "short_code")
    text = value.strip()
    if text.lower().startswith("tel:"):
        text = text[4:]
    candidates = [text]
    # A country code written without "+" (15555215554) parses as a national number in most
    # regions; try it as international too.
    if not text.startswith("+") and len(digits) > 10:
        candidates.append("+" + digits)
    incomplete = False
    for candidate in candidates:
        try:
            number = phonenumbers.parse(candidate, region)
        except phonenumbers.NumberParseException:
            continue
        possible = phonenumbers.is_possible_number_with_reason(number)
        if possible == phonenumbers.ValidationResult.IS_POSSIBLE:
            e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
            reason = "valid_e164" if phonenumbers.is_valid_number(number) else "possible_e164"
            return _result("phone", value, e164, reason)
        incomplete = incomplete or possible == phonenumbers.ValidationResult.IS_POSSIBLE_LOCAL_ONLY
    return _dropped("phone", "incomplete_phone" if incomplete else "invalid_phone")


def clean_imei(value: str) -> CleanResult:
    digits = _SEPARATORS.sub("", value)
    if len(digits) != IMEI_DIGITS or not luhn_valid(digits):
        return _dropped("imei", "invalid_imei")
    return _result("imei", value, digits, "valid_imei")


def clean_email(value: str) -> CleanResult:
    text = value.strip()
    if text.lower().startswith("mailto:"):
        text = text[7:]
    text = text.strip().strip("<>").strip().lower()
    local, _, _domain = text.partition("@")
    if (len(text) > MAX_EMAIL_CHARS or len(local) > MAX_EMAIL_LOCAL_CHARS
            or not _EMAIL.match(text)):
        return _dropped("email", "invalid_email")
    return _result("email", value, text, "valid_email")


def clean_handle(value: str, min_digits: int) -> CleanResult:
    text = value.strip().lstrip("@").strip().lower()
    if not text:
        return _dropped("handle", "empty_value")
    if _SPACES.search(text):
        return _dropped("handle", "invalid_handle")
    digits = _NON_DIGITS.sub("", text)
    if len(digits) == len(text.lstrip("+#*")) and len(digits) < min_digits:
        return _dropped("handle", "short_code")  # 611, *86, #123: carrier service codes
    return _result("handle", value, text, "valid_handle")


@lru_cache(maxsize=64)
def junk_set(values: tuple[str, ...]) -> frozenset[str]:
    return frozenset(v.strip().casefold() for v in values)


def clean_identifier(
    kind: str, value: str, region: str = "US", config: IdentityConfig | None = None
) -> CleanResult:
    """Clean one identifier value; see the module docstring for the rules and reason codes."""
    config = config or IdentityConfig()
    text = value.strip()
    if not text:
        return _dropped(kind, "empty_value")
    bare = text.lstrip("@").strip().casefold()
    if bare in junk_set(tuple(config.junk_values)) or (bare.strip("0+- ") == "" and "0" in bare):
        return _dropped(kind, "junk_value")
    if kind == "phone":
        return clean_phone(text, region, config.min_phone_digits)
    if kind == "imei":
        return clean_imei(text)
    if kind == "email":
        return clean_email(text)
    if kind == "handle":
        return clean_handle(text, config.min_phone_digits)
    raise ValueError(f"unknown device kind {kind}")


def device_id(kind: str, value: str) -> str:
    return stable_id("device", kind, value)


# --- IMEIs from event attributes -----------------------------------------------------------


def imeis_in_attributes(attributes: dict[str, Any] | None) -> list[str]:
    """Values of attribute keys that name an IMEI (``imei``, ``IMEI Number``...)."""
    if not attributes:
        return []
    return sorted({
        str(v).strip() for k, v in attributes.items()
        if "imei" in str(k).lower() and isinstance(v, str | int) and str(v).strip()
    })


def iter_event_imeis(conn: Connection) -> Iterator[tuple[str, str, str]]:
    """(event_id, file_id, imei as written) for every call or message that names an IMEI."""
    e = schema.events
    q = (select(e.c.event_id, e.c.file_id, e.c.attributes)
         .where(e.c.type.in_(("call", "message")), e.c.attributes.is_not(None))
         .order_by(e.c.event_id))
    for row in conn.execute(q):
        attributes = row.attributes if isinstance(row.attributes, dict) else None
        for imei in imeis_in_attributes(attributes):
            yield row.event_id, row.file_id, imei


def register_imei_identifiers(conn: Connection) -> int:
    """Add identifiers of kind ``imei`` for IMEIs seen in event attributes (idempotent)."""
    rows = {
        identifier_id("imei", imei): {
            "identifier_id": identifier_id("imei", imei), "kind": "imei", "value": imei}
        for _event, _file, imei in iter_event_imeis(conn)
    }
    for chunk in chunked(rows.values(), INSERT_CHUNK_ROWS):
        insert_ignore(conn, schema.identifiers, chunk)
    return len(rows)


# --- planning --------------------------------------------------------------------------------


@dataclass(frozen=True)
class IdentifierRow:
    identifier_id: str
    kind: str
    value: str


@dataclass
class DevicePlan:
    """The rows one devices run writes."""

    devices: list[dict[str, Any]] = field(default_factory=list)
    changes: list[dict[str, Any]] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        actions = [c["action"] for c in self.changes]
        return {
            "devices": len(self.devices),
            "devices_merged_manually": sum(1 for d in self.devices if d["merged_into"]),
            "identifiers": len(self.changes),
            **{f"identifiers_{a}": actions.count(a)
               for a in ("kept", "normalized", "merged", "dropped")},
        }


_ACTION_ORDER = {"kept": 0, "normalized": 1}


class _ManualState:
    """Replays device corrections: splits of identifiers and merged_into between devices."""

    def __init__(self, device_of: dict[str, str]) -> None:
        self.device_of = dict(device_of)
        """identifier_id -> device id after splits."""
        self.split: dict[str, str] = {}
        """identifier_id -> identifier it was split off with (the first of its group)."""
        self.parent: dict[str, str] = {}
        """device id -> root device it is merged into."""

    def _device(self, group: Sequence[str]) -> str | None:
        for ident in group:
            if ident in self.device_of:
                return self.device_of[ident]
        return None

    def root(self, device: str) -> str:
        return self.parent.get(device, device)

    def merge(self, groups: Sequence[Sequence[str]]) -> None:
        devices = [d for g in groups if (d := self._device(g)) is not None]
        if len(devices) < 2:
            return
        survivor = self.root(devices[0])
        for other in devices[1:]:
            old_root = self.root(other)
            if old_root == survivor:
                continue
            for member, root in list(self.parent.items()):
                if root == old_root:
                    self.parent[member] = survivor
            self.parent[old_root] = survivor

    def _detach(self, device: str) -> None:
        self.parent.pop(device, None)
        for member, root in list(self.parent.items()):
            if root == device:
                del self.parent[member]

    def unmerge(self, groups: Sequence[Sequence[str]], kind_value: dict[str, tuple[str, str]]
                ) -> None:
        present = [sorted(i for i in g if i in self.device_of) for g in groups]
        present = [g for g in present if g]
        if len(present) < 2:
            return
        seen: list[str] = []
        for group in present:
            device = self.device_of[group[0]]
            if device not in seen:
                seen.append(device)
                continue
            # A second group on the same device: its identifiers become a device of their own.
            kind, value = kind_value[group[0]]
            new_device = stable_id("device", kind, value, "split", group[0])
            for ident in group:
                self.device_of[ident] = new_device
                self.split[ident] = group[0]
        if len(seen) > 1:
            for device in seen:
                self._detach(device)


def plan_devices(
    identifiers: Sequence[IdentifierRow], corrections: Sequence[Correction],
    config: IdentityConfig | None = None, region: str = "US",
) -> DevicePlan:
    """The devices and device_changes rows for these identifiers and manual corrections."""
    config = config or IdentityConfig()
    cleaned: dict[str, CleanResult] = {}
    groups: dict[tuple[str, str], list[str]] = {}
    by_id = {row.identifier_id: row for row in identifiers}
    for row in sorted(identifiers, key=lambda r: r.identifier_id):
        result = clean_identifier(row.kind, row.value, region, config)
        cleaned[row.identifier_id] = result
        if result.value is not None:
            groups.setdefault((result.kind, result.value), []).append(row.identifier_id)
    device_of: dict[str, str] = {}
    kind_value: dict[str, tuple[str, str]] = {}
    for (kind, value), members in groups.items():
        for ident in members:
            device_of[ident] = device_id(kind, value)
            kind_value[ident] = (kind, value)
    state = _ManualState(device_of)
    for c in corrections:
        if c.entity != "device":
            continue
        if c.action == "merge":
            state.merge(c.identifier_groups)
        else:
            state.unmerge(c.identifier_groups, kind_value)

    plan = DevicePlan()
    members_of: dict[str, list[str]] = {}
    for ident, device in state.device_of.items():
        members_of.setdefault(device, []).append(ident)
    for device, members in sorted(members_of.items()):
        members.sort(key=lambda i: (_ACTION_ORDER.get(cleaned[i].action, 2),
                                    by_id[i].value, i))
        kind, value = kind_value[members[0]]
        root = state.root(device)
        plan.devices.append({
            "device_id": device, "kind": kind, "value": value,
            "identifier_count": len(members),
            "merged_into": root if root != device else None,
        })
        for position, ident in enumerate(members):
            result = cleaned[ident]
            action: str = result.action
            reason = result.reason
            if ident in state.split:
                reason = "manual_unmerge"
            elif position > 0:
                action, reason = "merged", "same_cleaned_value"
            plan.changes.append({"identifier_id": ident, "device_id": device,
                                 "action": action, "reason": reason})
    for ident, result in sorted(cleaned.items()):
        if result.value is None:
            plan.changes.append({"identifier_id": ident, "device_id": None,
                                 "action": "dropped", "reason": result.reason})
    plan.changes.sort(key=lambda c: c["identifier_id"])
    return plan


def read_device_identifiers(conn: Connection) -> list[IdentifierRow]:
    i = schema.identifiers
    q = select(i.c.identifier_id, i.c.kind, i.c.value).where(i.c.kind.in_(DEVICE_KINDS))
    return [IdentifierRow(r.identifier_id, r.kind, r.value) for r in conn.execute(q)]


def replace_devices(conn: Connection, plan: DevicePlan) -> None:
    """Swap the devices and device_changes tables for the plan's rows (caller's transaction)."""
    conn.execute(delete(schema.device_changes))
    conn.execute(delete(schema.devices))
    for chunk in chunked(plan.devices, INSERT_CHUNK_ROWS):
        insert_ignore(conn, schema.devices, chunk)
    for chunk in chunked(plan.changes, INSERT_CHUNK_ROWS):
        insert_ignore(conn, schema.device_changes, chunk)


def run_devices(
    engine: Engine, config: IdentityConfig | None = None, region: str = "US"
) -> dict[str, int]:
    """Step ``devices``: clean every device identifier and rebuild the device tables at once."""
    with engine.begin() as conn:
        imeis = register_imei_identifiers(conn)
        plan = plan_devices(read_device_identifiers(conn), read_corrections(conn, "device"),
                            config, region)
        replace_devices(conn, plan)
    return {**plan.counts(), "imeis_from_attributes": imeis}
