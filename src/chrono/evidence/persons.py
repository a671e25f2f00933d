"""Person creation (step ``persons``): identifiers seen in the evidence clustered into persons.

Observations (one per sighting of an identifier) come from three places:

* every participant of every event: its email, phone or handle (cleaned as the devices step
  cleans it, so junk such as ``unknown`` or a short code never links two people), the display name
  beside it, and the event id as evidence. Method ``header_pair`` when a display name is beside an
  address or number, else ``participant``; a participant that is a bare name gives a name-only
  observation;
* the owners of phone exports and carrier records (method ``owner``, see :func:`find_owners`);
* contact entries of the run's artifacts (method ``contact``, the file id as evidence): contacts
  are not events, so they are read from ``artifacts``; the rows of one entry share a ``group``.

:func:`chrono.evidence.resolve.resolve` clusters them (shared identifiers, groups, name matching
with the thresholds of ``IdentityConfig``; conflicting identifiers never merge on a name alone).
Manual corrections are replayed as constraints (:func:`person_constraints`).

What is stored, replacing both tables in one transaction:

* ``persons``: ``person_id = stable_id("person", key)``, where ``key`` is the smallest identifier
  key (``email:<v>``, ``phone:<v>``, ``handle:<v>``) of the cluster that has an identifier row --
  the same rule the manual corrections use, so a correction and a re-run agree on ids. ``origin``
  is ``manual`` when a correction constrains one of the person's keys.
* ``person_identifiers``: one row per identifier id of each key (two stored values that clean to
  one key are one key), with the resolver's method and score, and evidence ``{"events": [...],
  "files": [...], "count": n}`` -- the events and files (contact lists) the identifier was seen
  in (at most 20 of each, sorted) and how many observations it has. Name identifiers
  (participants that are a bare name) go to the person most of their observations were resolved
  to (ties: the smallest person id), method ``name_match``, score the token-sort similarity of
  the name and the person's name.

``artifacts`` is read once (a generator that loads one artifact at a time is fine); without it
there are no contact observations, so links that only a contact list shows are missing.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any

import polars as pl
from rapidfuzz import fuzz
from sqlalchemy import delete, func, select, update
from sqlalchemy.engine import Connection, Engine

from chrono.core.config import IdentityConfig
from chrono.db import schema
from chrono.db.load import chunked, insert_ignore
from chrono.evidence.context import stable_id
from chrono.evidence.corrections import Correction, read_corrections
from chrono.evidence.devices import clean_identifier, junk_set
from chrono.evidence.model import Artifact
from chrono.evidence.resolve import Constraints, resolve

KEY_KINDS = ("email", "phone", "handle")
OWNER_ROLES = ("owner", "custodian")
COMM_TYPES = ("call", "message")
MAX_EVIDENCE = 20
INSERT_CHUNK_ROWS = 5000
MIN_NAME_CHARS = 2

OBSERVATION_SCHEMA: dict[str, Any] = {
    "obs_id": pl.String, "name": pl.String, "email": pl.String, "phone": pl.String,
    "handle": pl.String, "method": pl.String, "evidence": pl.String, "group": pl.String,
}

_SPACES = re.compile(r"\s+")
_DIGITS = re.compile(r"\d")


def person_id_for(key: str) -> str:
    return stable_id("person", key)


def identifier_key(kind: str, value: str, region: str, config: IdentityConfig) -> str | None:
    """The resolver's key of one stored identifier, or None for names, IMEIs and junk."""
    if kind not in KEY_KINDS:
        return None
    cleaned = clean_identifier(kind, value, region, config)
    return None if cleaned.value is None else f"{cleaned.kind}:{cleaned.value}"


def clean_name(value: str | None, config: IdentityConfig) -> str | None:
    """A display name worth matching on, or None (blank, junk, or an address/number itself)."""
    if not value:
        return None
    name = _SPACES.sub(" ", value.strip().strip("'\"").strip())
    if len(name) < MIN_NAME_CHARS or "@" in name:
        return None
    if name.casefold() in junk_set(tuple(config.junk_values)):
        return None
    if len(_DIGITS.findall(name)) * 2 >= len(name.replace(" ", "")):
        return None  # mostly digits: a number shown where a name would be
    return name


# --- owners of phone exports ---------------------------------------------------------------


def find_owners(conn: Connection) -> dict[str, set[str]]:
    """file_id -> identifier ids of the owner of the phone export or carrier record file.

    An owner is a participant with role ``owner`` or ``custodian``, or else the one identifier
    present in every call and message of a file that has at least two of them (a phone export
    lists the owner's number, or the caller/callee it becomes, on every row). Two identifiers on
    every row (two calls between the same two numbers) name no owner.
    """
    e, p, i = schema.events, schema.participants, schema.identifiers
    owners: dict[str, set[str]] = defaultdict(set)
    q_roles = (select(e.c.file_id, p.c.identifier_id).join(p, p.c.event_id == e.c.event_id)
               .where(e.c.type.in_(COMM_TYPES), p.c.role.in_(OWNER_ROLES)).distinct())
    for row in conn.execute(q_roles):
        owners[row.file_id].add(row.identifier_id)
    q_events = (select(e.c.file_id, func.count().label("n")).where(e.c.type.in_(COMM_TYPES))
                .group_by(e.c.file_id))
    per_file = {r.file_id: int(r.n) for r in conn.execute(q_events)}
    q_ids = (
        select(e.c.file_id, p.c.identifier_id,
               func.count(func.distinct(p.c.event_id)).label("n"))
        .join(p, p.c.event_id == e.c.event_id).join(i, i.c.identifier_id == p.c.identifier_id)
        .where(e.c.type.in_(COMM_TYPES), i.c.kind.in_(KEY_KINDS))
        .group_by(e.c.file_id, p.c.identifier_id)
    )
    everywhere: dict[str, list[str]] = defaultdict(list)
    for row in conn.execute(q_ids):
        n = per_file.get(row.file_id, 0)
        if n >= 2 and int(row.n) == n:
            everywhere[row.file_id].append(row.identifier_id)
    for file_id, ids in everywhere.items():
        if len(ids) == 1 and file_id not in owners:
            owners[file_id].add(ids[0])
    return dict(owners)


# --- observations --------------------------------------------------------------------------


@dataclass
class Observations:
    """What the resolver gets, and what is needed to store its answer."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    key_ids: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    """key -> identifier ids (stored identifiers only)."""
    key_of: dict[str, str] = field(default_factory=dict)
    """identifier id -> key."""
    key_count: Counter[str] = field(default_factory=Counter)
    name_obs: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    """name identifier id -> obs ids of its bare-name observations."""
    name_value: dict[str, str] = field(default_factory=dict)
    files: set[str] = field(default_factory=set)
    """Evidence values that are file ids (the rest are event ids)."""

    def add(self, obs_id: str, kind: str | None, value: str | None, name: str | None,
            method: str, evidence: str, group: str | None = None) -> None:
        row = {"obs_id": obs_id, "name": name, "email": None, "phone": None, "handle": None,
               "method": method, "evidence": evidence, "group": group}
        if kind is not None:
            row[kind] = value
            self.key_count[f"{kind}:{value}"] += 1
        self.rows.append(row)

    def frame(self) -> pl.DataFrame:
        return pl.DataFrame(self.rows, schema=OBSERVATION_SCHEMA, orient="row")


def participant_observations(
    conn: Connection, obs: Observations, config: IdentityConfig, region: str
) -> None:
    """One observation per event participant (email, phone, handle or bare name)."""
    e, p, i = schema.events, schema.participants, schema.identifiers
    owners = find_owners(conn)
    q = (
        select(p.c.event_id, p.c.position, p.c.identifier_id, p.c.value, p.c.name,
               i.c.kind, i.c.value.label("stored"), e.c.file_id)
        .join(i, i.c.identifier_id == p.c.identifier_id)
        .join(e, e.c.event_id == p.c.event_id)
        .order_by(p.c.event_id, p.c.position)
    )
    keys: dict[str, str | None] = {}  # cleaning parses phone numbers: once per identifier
    for row in conn.execute(q):
        obs_id = f"p:{row.event_id}:{row.position}"
        if row.kind == "name":
            name = clean_name(row.value, config)
            if name is not None:
                obs.name_obs[row.identifier_id].append(obs_id)
                obs.name_value[row.identifier_id] = row.stored
                obs.add(obs_id, None, None, name, "participant", row.event_id)
            continue
        if row.identifier_id not in keys:
            keys[row.identifier_id] = identifier_key(row.kind, row.stored, region, config)
        key = keys[row.identifier_id]
        if key is None:
            continue
        kind, _, value = key.partition(":")
        obs.key_ids[key].add(row.identifier_id)
        obs.key_of[row.identifier_id] = key
        name = clean_name(row.name, config)
        if row.identifier_id in owners.get(row.file_id, ()):
            method = "owner"
        else:
            method = "header_pair" if name else "participant"
        obs.add(obs_id, kind, value, name, method, row.event_id)


def contact_observations(
    artifacts: Iterable[tuple[str, Artifact]], obs: Observations, config: IdentityConfig,
    region: str,
) -> int:
    """One observation group per contact entry; returns how many entries were used."""
    entries = 0
    for file_id, artifact in artifacts:
        for rec in artifact.records:
            if rec.type != "contact":
                continue
            names = [clean_name(p.name or (p.value if p.kind == "name" else None), config)
                     for p in rec.participants]
            name = next((n for n in names if n), None)
            group = f"contact:{file_id}:{rec.locator}"
            used = False
            for n, part in enumerate(rec.participants):
                if part.kind not in KEY_KINDS:
                    continue
                cleaned = clean_identifier(part.kind, part.value, region, config)
                if cleaned.value is None:
                    continue
                obs.add(f"c:{file_id}:{rec.locator}:{n}", cleaned.kind, cleaned.value, name,
                        "contact", file_id, group)
                used = True
            if used:
                obs.files.add(file_id)
                entries += 1
    return entries


# --- corrections as constraints ------------------------------------------------------------


def _group_keys(groups: Sequence[Sequence[str]], key_of: dict[str, str]) -> list[list[str]]:
    out = []
    for group in groups:
        keys = sorted({key_of[i] for i in group if i in key_of})
        if keys:
            out.append(keys)
    return out


def _crossing(pair: frozenset[str], groups: list[list[str]]) -> bool:
    a, b = sorted(pair) if len(pair) == 2 else (next(iter(pair)),) * 2
    ga = {n for n, g in enumerate(groups) if a in g}
    gb = {n for n, g in enumerate(groups) if b in g}
    return bool(ga and gb and ga != gb)


def _component_of(pairs: Iterable[frozenset[str]]) -> dict[str, str]:
    """key -> smallest key of its must-link component."""
    parent: dict[str, str] = {}

    def find(k: str) -> str:
        while parent.get(k, k) != k:
            k = parent[k]
        return k

    for pair in pairs:
        roots = sorted({find(k) for k in pair})
        for other in roots[1:]:
            parent[other] = roots[0]
    return {k: find(k) for k in set(parent) | set(parent.values())}


def person_constraints(
    corrections: Sequence[Correction], key_of: dict[str, str]
) -> tuple[Constraints, set[str]]:
    """Must- and cannot-links from the person corrections, replayed in order; and the keys
    they touch (their persons get origin ``manual``).

    A merge must-links every key of every group (a chain through all of them) and lifts earlier
    cannot-links inside what it now holds together; an unmerge cannot-links every pair across
    its groups and lifts earlier must-links across them, so the later decision always wins.
    """
    must: set[frozenset[str]] = set()
    cannot: set[frozenset[str]] = set()
    for c in corrections:
        if c.entity != "person":
            continue
        groups = _group_keys(c.identifier_groups, key_of)
        if len(groups) < 2 and c.action == "unmerge":
            continue
        if c.action == "merge":
            chain = list(dict.fromkeys(k for g in groups for k in g))
            must.update(frozenset(pair) for pair in pairwise(chain))
            # Whatever the merge now holds together may no longer be kept apart.
            component = _component_of(must)
            cannot = {pair for pair in cannot
                      if len({component.get(k, k) for k in pair}) == 2}
        else:
            must = {pair for pair in must if not _crossing(pair, groups)}
            for n, left in enumerate(groups):
                for right in groups[n + 1:]:
                    cannot.update(frozenset((a, b)) for a in left for b in right if a != b)
    must_pairs = sorted(tuple(sorted(p)) for p in must if len(p) == 2)
    cannot_pairs = sorted(tuple(sorted(p)) for p in cannot if len(p) == 2)
    touched = {k for pair in must_pairs + cannot_pairs for k in pair}
    constraints = Constraints(
        must_link=[(a, b) for a, b in must_pairs], cannot_link=[(a, b) for a, b in cannot_pairs]
    )
    return constraints, touched


# --- the step ------------------------------------------------------------------------------


def _evidence(values: Iterable[str], files: set[str], count: int) -> dict[str, Any]:
    values = sorted(set(values))
    return {
        "events": [v for v in values if v not in files][:MAX_EVIDENCE],
        "files": [v for v in values if v in files][:MAX_EVIDENCE],
        "count": count,
    }


@dataclass
class PersonRows:
    persons: list[dict[str, Any]] = field(default_factory=list)
    identifiers: list[dict[str, Any]] = field(default_factory=list)


def build_person_rows(
    obs: Observations, resolution: Any, manual_keys: set[str]
) -> PersonRows:
    """Turn the resolver's answer into ``persons`` and ``person_identifiers`` rows."""
    clusters = resolution.clusters.sort("key")
    members: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in clusters.iter_rows(named=True):
        members[row["person"]].append(row)
    names = {r["person"]: r["name"] for r in resolution.names.iter_rows(named=True)}
    out = PersonRows()
    person_of_cluster: dict[str, str] = {}
    for cluster, rows in sorted(members.items()):
        stored = [r for r in rows if obs.key_ids.get(r["key"])]
        if not stored:
            continue  # only contact-list identifiers that never occur in an event
        pid = person_id_for(min(r["key"] for r in stored))
        person_of_cluster[cluster] = pid
        for r in stored:
            evidence = _evidence(r["evidence"] or [], obs.files, obs.key_count[r["key"]])
            for ident in sorted(obs.key_ids[r["key"]]):
                out.identifiers.append({
                    "identifier_id": ident, "person_id": pid, "method": r["method"],
                    "score": round(float(r["score"]), 6), "evidence": evidence,
                })
    out.identifiers.extend(_name_identifier_rows(obs, resolution, person_of_cluster))
    counts = Counter(r["person_id"] for r in out.identifiers)
    for cluster, pid in sorted(person_of_cluster.items(), key=lambda kv: kv[1]):
        keys = {r["key"] for r in members[cluster]}
        out.persons.append({
            "person_id": pid, "name": names.get(cluster), "identifier_count": counts[pid],
            "origin": "manual" if keys & manual_keys else "auto",
        })
    out.identifiers.sort(key=lambda r: r["identifier_id"])
    return out


def _name_identifier_rows(
    obs: Observations, resolution: Any, person_of_cluster: dict[str, str]
) -> list[dict[str, Any]]:
    obs_person = {
        r["obs_id"]: r["person"] for r in resolution.obs_person.iter_rows(named=True)
        if r["person"] is not None
    }
    names = {r["person"]: r["name"] for r in resolution.names.iter_rows(named=True)}
    cluster_of_person = {pid: cluster for cluster, pid in person_of_cluster.items()}
    rows = []
    for ident, obs_ids in sorted(obs.name_obs.items()):
        votes = Counter(
            person_of_cluster[c] for o in obs_ids
            if (c := obs_person.get(o)) is not None and c in person_of_cluster
        )
        if not votes:
            continue
        best = max(votes.values())
        pid = min(p for p, n in votes.items() if n == best)
        person_name = (names.get(cluster_of_person[pid]) or "").casefold()
        score = fuzz.token_sort_ratio(person_name, obs.name_value[ident]) / 100
        rows.append({
            "identifier_id": ident, "person_id": pid, "method": "name_match",
            "score": round(score, 6),
            "evidence": _evidence((o.split(":")[1] for o in obs_ids), obs.files, len(obs_ids)),
        })
    return rows


def replace_persons(conn: Connection, rows: PersonRows) -> None:
    """Swap ``persons`` and ``person_identifiers`` for these rows (caller's transaction)."""
    conn.execute(delete(schema.person_identifiers))
    conn.execute(delete(schema.persons))
    for chunk in chunked(rows.persons, INSERT_CHUNK_ROWS):
        insert_ignore(conn, schema.persons, chunk)
    for chunk in chunked(rows.identifiers, INSERT_CHUNK_ROWS):
        insert_ignore(conn, schema.person_identifiers, chunk)


def run_persons(
    engine: Engine, config: IdentityConfig | None = None,
    artifacts: Iterable[tuple[str, Artifact]] | None = None, region: str = "US",
) -> dict[str, int]:
    """Step ``persons``: cluster identifiers into persons and rebuild the person tables."""
    config = config or IdentityConfig()
    obs = Observations()
    with engine.begin() as conn:
        participant_observations(conn, obs, config, region)
        contacts = contact_observations(artifacts or (), obs, config, region)
        constraints, manual_keys = person_constraints(read_corrections(conn, "person"),
                                                      obs.key_of)
        resolution = resolve(obs.frame(), config, constraints)
        rows = build_person_rows(obs, resolution, manual_keys)
        replace_persons(conn, rows)
    methods = Counter(r["method"] for r in rows.identifiers)
    return {
        "persons": len(rows.persons),
        "persons_manual": sum(1 for p in rows.persons if p["origin"] == "manual"),
        "person_identifiers": len(rows.identifiers),
        "observations": len(obs.rows),
        "contact_entries": contacts,
        **{f"links_{m}": n for m, n in sorted(methods.items())},
    }


# --- what the manual corrections need ------------------------------------------------------


def person_identifier_ids(conn: Connection, person_id: str) -> list[str]:
    pi = schema.person_identifiers
    q = select(pi.c.identifier_id).where(pi.c.person_id == person_id).order_by(
        pi.c.identifier_id)
    return [r.identifier_id for r in conn.execute(q)]


def _identifier_kinds(conn: Connection, ids: Iterable[str]) -> dict[str, tuple[str, str]]:
    i = schema.identifiers
    out: dict[str, tuple[str, str]] = {}
    id_list = sorted(set(ids))
    for n in range(0, len(id_list), 500):
        q = select(i.c.identifier_id, i.c.kind, i.c.value).where(
            i.c.identifier_id.in_(id_list[n:n + 500]))
        out.update({r.identifier_id: (r.kind, r.value) for r in conn.execute(q)})
    return out


def unmerge_groups(
    conn: Connection, person_id: str, corrections: Sequence[Correction]
) -> list[list[str]]:
    """The identifier groups an unmerge of this person splits it into (see corrections)."""
    ids = person_identifier_ids(conn, person_id)
    kinds = _identifier_kinds(conn, ids)
    keyed = [i for i in ids if kinds.get(i, ("name", ""))[0] != "name"]
    keyed_set = set(keyed)
    for c in reversed(corrections):
        if c.entity != "person" or c.action != "merge":
            continue
        hits = [[i for i in g if i in keyed_set] for g in c.identifier_groups]
        hits = [h for h in hits if h]
        if len(hits) >= 2:
            covered = {i for h in hits for i in h}
            hits[0].extend(i for i in keyed if i not in covered)
            return [sorted(h) for h in hits]
    return [[i] for i in keyed]


def _display_names(conn: Connection, ids: Sequence[str]) -> dict[str, Counter[str]]:
    p = schema.participants
    out: dict[str, Counter[str]] = defaultdict(Counter)
    for n in range(0, len(ids), 500):
        q = select(p.c.identifier_id, p.c.name).where(
            p.c.identifier_id.in_(ids[n:n + 500]), p.c.name.is_not(None))
        for r in conn.execute(q):
            out[r.identifier_id][_SPACES.sub(" ", r.name.strip())] += 1
    return out


def _group_key(ids: Iterable[str], kinds: dict[str, tuple[str, str]], region: str,
               config: IdentityConfig) -> str | None:
    keys = [k for i in ids if (k := identifier_key(*kinds.get(i, ("name", "")), region, config))]
    return min(keys) if keys else None


def _upsert_person(conn: Connection, pid: str, name: str | None, count: int) -> None:
    ps = schema.persons
    exists = conn.execute(select(ps.c.person_id).where(ps.c.person_id == pid)).first()
    values = {"name": name, "identifier_count": count, "origin": "manual"}
    if exists:
        conn.execute(update(ps).where(ps.c.person_id == pid).values(**values))
    else:
        conn.execute(ps.insert().values(person_id=pid, **values))


def apply_person_merge(
    conn: Connection, person_ids: Sequence[str], config: IdentityConfig | None = None,
    region: str = "US",
) -> str:
    """Merge these persons in the derived tables now; returns the merged person's id."""
    from chrono.evidence.mapping import combine_links

    config = config or IdentityConfig()
    ps, pi, pd = schema.persons, schema.person_identifiers, schema.person_devices
    groups = {pid: person_identifier_ids(conn, pid) for pid in person_ids}
    kinds = _identifier_kinds(conn, (i for g in groups.values() for i in g))
    group_keys = {pid: _group_key(g, kinds, region, config) for pid, g in groups.items()}
    keyed = {pid: k for pid, k in group_keys.items() if k is not None}
    host = min(keyed, key=lambda pid: keyed[pid]) if keyed else person_ids[0]
    new_pid = person_id_for(keyed[host]) if keyed else host
    people = {r.person_id: r for r in conn.execute(select(ps).where(ps.c.person_id.in_(
        list(person_ids))))}
    sizes = [(len(groups[pid]), -n, pid) for n, pid in enumerate(person_ids)
             if people.get(pid) is not None and people[pid].name]
    name = people[max(sizes)[2]].name if sizes else None
    _upsert_person(conn, new_pid, name, sum(len(g) for g in groups.values()))
    for pid, ids in groups.items():
        values: dict[str, Any] = {"person_id": new_pid}
        if pid != host:
            values.update(method="manual", score=1.0)
        conn.execute(update(pi).where(pi.c.identifier_id.in_(ids)).values(**values))
    links = [dict(r._mapping) for r in conn.execute(
        select(pd).where(pd.c.person_id.in_(list(person_ids))))]
    conn.execute(delete(pd).where(pd.c.person_id.in_(list(person_ids))))
    by_device: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for link in links:
        by_device[link["device_id"]].append(link)
    insert_ignore(conn, pd, [
        {"person_id": new_pid, "device_id": device, **combine_links(rows)}
        for device, rows in sorted(by_device.items())
    ])
    conn.execute(delete(ps).where(ps.c.person_id.in_([p for p in person_ids if p != new_pid])))
    return new_pid


def apply_person_split(
    conn: Connection, person_id: str, groups: Sequence[Sequence[str]],
    config: IdentityConfig | None = None, region: str = "US",
) -> list[str]:
    """Split this person into one person per identifier group now; returns the new ids."""
    config = config or IdentityConfig()
    ps, pi, pd, ch = (schema.persons, schema.person_identifiers, schema.person_devices,
                      schema.device_changes)
    ids = person_identifier_ids(conn, person_id)
    kinds = _identifier_kinds(conn, ids)
    present = set(ids)
    parts = [[i for i in g if i in present] for g in groups]
    parts = [g for g in parts if g]
    names_beside = _display_names(conn, [i for g in parts for i in g])
    for ident in ids:
        if kinds.get(ident, ("", ""))[0] != "name" or any(ident in g for g in parts):
            continue
        value = kinds[ident][1]
        target = next((g for g in parts if any(
            value == n.casefold() for i in g for n in names_beside.get(i, ()))), parts[0])
        target.append(ident)
    new_ids = []
    for part in parts:
        key = _group_key(part, kinds, region, config)
        new_pid = person_id_for(key) if key else stable_id("person", "split", part[0])
        seen: Counter[str] = Counter()
        for ident in part:
            seen.update(names_beside.get(ident, Counter()))
        best = max(seen.values(), default=0)
        name = min((n for n, c in seen.items() if c == best), default=None)
        new_ids.append(new_pid)
        _upsert_person(conn, new_pid, name, len(part))
        conn.execute(update(pi).where(pi.c.identifier_id.in_(part)).values(person_id=new_pid))
    links = [dict(r._mapping) for r in conn.execute(select(pd).where(pd.c.person_id == person_id))]
    conn.execute(delete(pd).where(pd.c.person_id == person_id))
    device_of = {r.identifier_id: r.device_id for r in conn.execute(
        select(ch.c.identifier_id, ch.c.device_id).where(ch.c.identifier_id.in_(ids)))}
    new_links: list[dict[str, Any]] = []
    for link in links:
        owners = [pid for pid, part in zip(new_ids, parts, strict=True)
                  if any(device_of.get(i) == link["device_id"] for i in part)] or new_ids[:1]
        new_links.extend({**link, "person_id": pid} for pid in owners)
    insert_ignore(conn, pd, new_links)
    if person_id not in new_ids:
        conn.execute(delete(ps).where(ps.c.person_id == person_id))
    return new_ids
