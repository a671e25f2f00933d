"""Manual corrections of persons and devices: the append-only audit log and its four actions.

``merge_persons``, ``unmerge_person``, ``merge_devices`` and ``unmerge_device`` check that the
named ids exist, append one ``corrections`` row (who, when, the ids named, and the identifier
groups the decision is about), and change the derived tables in the same transaction, so an
export right after shows the decision. Nothing here ever updates or deletes a correction.

Decisions are kept in identifier ids, not person or device ids, because re-clustering may give a
person a new id; ``run_persons`` and ``run_devices`` replay every correction in order on each run
(see :func:`chrono.evidence.persons.person_constraints` and
:func:`chrono.evidence.devices.plan_devices`).

Semantics:

* **merge persons** -- ``identifier_groups`` holds every identifier id of each named person (one
  list each). Re-runs must-link all of them, and a later merge lifts earlier cannot-links between
  them. Right away, the identifiers move to ``stable_id("person", smallest key)``; identifiers of
  the persons merged in get method ``manual`` (score 1.0); person-device links are combined.
* **unmerge person** -- if the person holds identifiers of two or more groups of an earlier
  manual merge, the latest such merge is undone: the groups are that merge's groups (restricted to
  the person's identifiers; identifiers in none of them join the first group). Otherwise the person
  is split into one group per identifier that is not a name; a person with one such identifier
  cannot be unmerged. Re-runs cannot-link every pair of keys across the groups and drop earlier
  must-links across them. Right away, each group becomes a person; a name identifier goes to the
  first group whose identifiers were seen beside that name (else the first group), and each
  person-device link goes to the groups holding an identifier of that device (else the first).
* **merge devices** -- every named device but the first gets ``merged_into`` = the first one's
  root; the device rows stay, so the identifiers keep their own cleaned values.
* **unmerge device** -- if the device is part of a manual merge, that merge set is dissolved
  (groups: the identifier ids of each device in it); otherwise a device with several identifiers
  is split into one device per identifier; a device with one identifier and no merge cannot be
  unmerged.

Errors name only opaque ids and counts (never names, addresses or numbers).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.engine import Connection, Engine

from chrono.core.config import IdentityConfig
from chrono.core.errors import TerminalError
from chrono.db import schema

MAX_USER_CHARS = 128
ENTITIES = ("person", "device")


class CorrectionError(TerminalError):
    """A manual correction cannot be applied as asked (unknown id, nothing to undo, ...)."""

    default_code = "correction_invalid"


@dataclass(frozen=True)
class Correction:
    """One row of the audit log."""

    correction_id: int
    at: datetime
    by_user: str
    entity: str
    """person | device"""
    action: str
    """merge | unmerge"""
    target_ids: list[str]
    identifier_groups: list[list[str]]


def _as_utc(value: datetime) -> datetime:
    # SQLite gives naive datetimes back; every stored time is UTC.
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def read_corrections(conn: Connection, entity: str | None = None) -> list[Correction]:
    """Corrections in the order they were made (all, or one entity's)."""
    c = schema.corrections
    q = select(c).order_by(c.c.correction_id)
    if entity is not None:
        q = q.where(c.c.entity == entity)
    return [
        Correction(
            correction_id=r.correction_id, at=_as_utc(r.at), by_user=r.by_user, entity=r.entity,
            action=r.action, target_ids=list(r.target_ids),
            identifier_groups=[list(g) for g in r.identifier_groups],
        )
        for r in conn.execute(q)
    ]


def list_corrections(engine: Engine, entity: str | None = None) -> list[Correction]:
    with engine.connect() as conn:
        return read_corrections(conn, entity)


def _check_user(by: str) -> str:
    by = by.strip()
    if not by:
        raise CorrectionError("correction_user_missing", "--by must name who makes the change")
    if len(by) > MAX_USER_CHARS:
        raise CorrectionError("correction_user_too_long",
                              f"--by is longer than {MAX_USER_CHARS} characters")
    return by


def append_correction(
    conn: Connection, by: str, entity: str, action: str, target_ids: Sequence[str],
    groups: Sequence[Sequence[str]],
) -> Correction:
    """Append one audit row (in the caller's transaction) and return it."""
    at = datetime.now(UTC)
    row: dict[str, Any] = {
        "at": at, "by_user": by, "entity": entity, "action": action,
        "target_ids": list(target_ids), "identifier_groups": [list(g) for g in groups],
    }
    result = conn.execute(insert(schema.corrections).values(**row))
    key = result.inserted_primary_key
    assert key is not None
    return Correction(correction_id=int(key[0]), at=at, by_user=by, entity=entity,
                      action=action, target_ids=list(target_ids),
                      identifier_groups=[list(g) for g in groups])


def _distinct_ids(ids: Sequence[str], what: str) -> list[str]:
    unique = list(dict.fromkeys(i.strip() for i in ids if i.strip()))
    if len(unique) < 2:
        raise CorrectionError("merge_needs_two", f"a merge needs two or more distinct {what} ids")
    return unique


def merge_persons(
    engine: Engine, ids: Sequence[str], by: str, config: IdentityConfig | None = None,
    region: str = "US",
) -> Correction:
    """Merge the named persons into one and record who did it."""
    from chrono.evidence.persons import apply_person_merge, person_identifier_ids

    by = _check_user(by)
    unique = _distinct_ids(ids, "person")
    with engine.begin() as conn:
        groups = [person_identifier_ids(conn, pid) for pid in unique]
        for pid, group in zip(unique, groups, strict=True):
            if not group:
                raise CorrectionError("person_unknown", f"no person with id {pid}")
        correction = append_correction(conn, by, "person", "merge", unique, groups)
        apply_person_merge(conn, unique, config, region)
    return correction


def unmerge_person(
    engine: Engine, person_id: str, by: str, config: IdentityConfig | None = None,
    region: str = "US",
) -> Correction:
    """Undo the manual merge that formed this person, or split it into its identifiers."""
    from chrono.evidence.persons import apply_person_split, person_identifier_ids, unmerge_groups

    by = _check_user(by)
    person_id = person_id.strip()
    with engine.begin() as conn:
        if not person_identifier_ids(conn, person_id):
            raise CorrectionError("person_unknown", f"no person with id {person_id}")
        groups = unmerge_groups(conn, person_id, read_corrections(conn, "person"))
        if len(groups) < 2:
            raise CorrectionError(
                "nothing_to_unmerge", f"person {person_id} has a single identifier")
        correction = append_correction(conn, by, "person", "unmerge", [person_id], groups)
        apply_person_split(conn, person_id, groups, config, region)
    return correction


def _device_groups(conn: Connection, device_ids: Sequence[str]) -> list[list[str]]:
    ch = schema.device_changes
    groups = []
    for did in device_ids:
        q = select(ch.c.identifier_id).where(ch.c.device_id == did).order_by(ch.c.identifier_id)
        groups.append([r.identifier_id for r in conn.execute(q)])
    return groups


def _device_roots(conn: Connection) -> dict[str, str | None]:
    d = schema.devices
    return {r.device_id: r.merged_into for r in conn.execute(select(d.c.device_id,
                                                                    d.c.merged_into))}


def _rebuild_devices(conn: Connection, config: IdentityConfig | None, region: str) -> None:
    from chrono.evidence.devices import plan_devices, read_device_identifiers, replace_devices

    plan = plan_devices(read_device_identifiers(conn), read_corrections(conn, "device"),
                        config, region)
    replace_devices(conn, plan)


def merge_devices(
    engine: Engine, ids: Sequence[str], by: str, config: IdentityConfig | None = None,
    region: str = "US",
) -> Correction:
    """Mark the named devices as one (all point at the first) and record who did it."""
    by = _check_user(by)
    unique = _distinct_ids(ids, "device")
    with engine.begin() as conn:
        roots = _device_roots(conn)
        for did in unique:
            if did not in roots:
                raise CorrectionError("device_unknown", f"no device with id {did}")
        if len({roots[d] or d for d in unique}) < 2:
            raise CorrectionError("already_merged", "the named devices are already one device")
        correction = append_correction(conn, by, "device", "merge", unique,
                                       _device_groups(conn, unique))
        _rebuild_devices(conn, config, region)
    return correction


def unmerge_device(
    engine: Engine, device_id: str, by: str, config: IdentityConfig | None = None,
    region: str = "US",
) -> Correction:
    """Dissolve the manual merge this device is part of, or split it into its identifiers."""
    by = _check_user(by)
    device_id = device_id.strip()
    with engine.begin() as conn:
        roots = _device_roots(conn)
        if device_id not in roots:
            raise CorrectionError("device_unknown", f"no device with id {device_id}")
        root = roots[device_id] or device_id
        members = sorted(d for d, r in roots.items() if d == root or r == root)
        if len(members) > 1:
            groups = _device_groups(conn, members)
        else:
            groups = [[i] for i in _device_groups(conn, [device_id])[0]]
        if len(groups) < 2:
            raise CorrectionError(
                "nothing_to_unmerge", f"device {device_id} has a single identifier and no merge")
        correction = append_correction(conn, by, "device", "unmerge", [device_id], groups)
        _rebuild_devices(conn, config, region)
    return correction
