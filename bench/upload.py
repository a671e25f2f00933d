"""Benchmark: events/s loaded into PostgreSQL, Chrono's upload path vs row-by-row INSERTs.

Usage: ``python bench/upload.py [--quick] [--events N] [--batch-size N] [--pg URL]``. Progress
goes to stderr; the last stdout line is one JSON object with ``chrono_events_per_s``,
``baseline_events_per_s``, ``speedup``, ``events`` and ``participants``.

The input is N synthetic events (200,000; 20,000 with ``--quick``) in the evidence event format:
40% emails with a subject and a 40-word body, 35% calls with a duration, 25% messages with a
10-word body; each has 2 or 3 participants drawn from 20,000 people (an address or a phone
number), so identifiers recur across batches as they do in a real mailbox. Both sides load the
same events into their own fresh database (created and dropped on the server ``--pg`` names,
schema built by ``ensure_schema``) and are timed from the event dicts to the last commit, with the
rows of events, identifiers and participants built inside the timing:

- Chrono: :func:`chrono.evidence.upload.upload_events`, the function the upload step runs:
  ``event_rows`` and ``bulk_upsert`` (binary COPY into a staging table, then ``INSERT ... SELECT
  ... ON CONFLICT DO NOTHING``), one transaction per batch of ``--batch-size`` events.
- Baseline: the same rows and batches, each table loaded with psycopg ``cursor.executemany`` of a
  single-row ``INSERT ... ON CONFLICT DO NOTHING``, the way a loader without COPY writes.

The Chrono load then runs a second time on the same events and must add no row.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg import sql
from psycopg.types.json import Json

from chrono.core.config import EvidenceConfig
from chrono.db import schema
from chrono.db.load import count_rows
from chrono.evidence.upload import event_rows, identifier_id, upload_events

PEOPLE = 20_000
NAMESPACE = uuid.UUID("3b7f1f8e-6a51-4c1e-9d0e-6b3f0c2a9e41")
WORDS = [
    "the", "meeting", "agreement", "counsel", "deposition", "invoice", "shipment", "contract",
    "payment", "schedule", "review", "draft", "exhibit", "witness", "account", "transfer",
    "record", "call", "office", "report", "confirmed", "signed", "delivered", "notice", "of",
    "and", "to", "in", "for", "on", "with", "at", "by", "from", "is", "was", "will", "be",
]
TABLES = (schema.identifiers, schema.events, schema.participants)


def make_events(n: int, seed: int = 7) -> list[dict[str, Any]]:
    """``n`` events in the format ``events_for_artifact`` returns, 500 per source file."""
    rng = random.Random(seed)
    people = [(f"person{i}.family{i % 997}@example{i % 50}.com", f"Person{i} Family{i % 997}",
               f"+1555{i:07d}") for i in range(PEOPLE)]
    events = []
    for k in range(n):
        draw = rng.random()
        kind = "email" if draw < 0.40 else "call" if draw < 0.75 else "message"
        sha = f"{k // 500:064x}"
        locator = f"msg:{k}" if kind == "email" else f"row:{k}"
        participants: list[dict[str, str | None]] = []
        for position in range(rng.choice((2, 3))):
            address, name, phone = people[rng.randrange(PEOPLE)]
            if kind == "email":
                participants.append({"role": "from" if position == 0 else "to", "kind": "email",
                                     "value": address.title(), "name": name,
                                     "normalized": address})
            else:
                participants.append({"role": "caller" if position == 0 else "callee",
                                     "kind": "phone", "value": phone, "name": None,
                                     "normalized": phone})
        words = 40 if kind == "email" else 10
        events.append({
            "id": str(uuid.uuid5(NAMESPACE, sha + locator)), "type": kind,
            "start": f"2025-{1 + k % 12:02d}-{1 + k % 28:02d}T{k % 24:02d}:{k % 60:02d}:"
                     f"{k * 7 % 60:02d}Z",
            "offset_minutes": -300, "timezone": "America/New_York",
            "subject": ("Re: " + " ".join(rng.choices(WORDS, k=4))) if kind == "email" else None,
            "body": None if kind == "call" else " ".join(rng.choices(WORDS, k=words)),
            "duration_s": float(rng.randrange(5, 900)) if kind == "call" else None,
            "direction": rng.choice(("incoming", "outgoing")),
            "message_id": f"<{k}@mail.example.com>" if kind == "email" else None,
            "participants": participants,
            "source": {"file_id": str(uuid.uuid5(NAMESPACE, sha)),
                       "path": f"custodian/export-{k // 500:04d}.pst", "sha256": sha,
                       "locator": locator, "page": None, "row": None if kind == "email" else k,
                       "bates": None},
            "duplicate_of": None,
            "attributes": {"folder": "Inbox"} if kind == "email" else {},
        })
    return events


@contextmanager
def fresh_database(admin_url: str, label: str) -> Iterator[str]:
    """A new, empty database on the server of ``admin_url``; dropped afterwards."""
    name = f"chrono_bench_{label}_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        try:
            url = admin_url.rsplit("/", 1)[0] + "/" + name
            engine = schema.make_engine(url)
            schema.ensure_schema(engine)
            engine.dispose()
            yield url
        finally:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                sql.Identifier(name)))


def run_chrono(url: str, events: list[dict[str, Any]],
               batch_size: int) -> tuple[float, float, int]:
    """Seconds for the first load, seconds for a second load of the same events, and the
    number of rows that second load added (must be 0)."""
    engine = schema.make_engine(url)
    identifier_id.cache_clear()  # both sides start cold
    try:
        started = time.perf_counter()
        upload_events(engine, events, batch_size)
        first = time.perf_counter() - started
        rows = sum(count_rows(engine, t) for t in TABLES)
        started = time.perf_counter()
        upload_events(engine, events, batch_size)
        second = time.perf_counter() - started
        added = sum(count_rows(engine, t) for t in TABLES) - rows
    finally:
        engine.dispose()
    return first, second, added


def run_baseline(url: str, events: list[dict[str, Any]], batch_size: int) -> float:
    inserts = {}
    for table in TABLES:
        names = [c.name for c in table.columns]
        inserts[table.name] = (names, sql.SQL(
            "INSERT INTO {} ({}) VALUES ({}) ON CONFLICT DO NOTHING").format(
            sql.Identifier(table.name), sql.SQL(", ").join(map(sql.Identifier, names)),
            sql.SQL(", ").join(sql.Placeholder() * len(names))))
    identifier_id.cache_clear()
    with psycopg.connect(url) as conn:
        started = time.perf_counter()
        for i in range(0, len(events), batch_size):
            ev_rows, id_rows, part_rows = event_rows(events[i : i + batch_size])
            with conn.transaction(), conn.cursor() as cur:
                for table, rows in zip(TABLES, (id_rows, ev_rows, part_rows), strict=True):
                    names, statement = inserts[table.name]
                    cur.executemany(statement, [
                        tuple(Json(row[c]) if c == "attributes" else row[c] for c in names)
                        for row in rows])
        return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="20,000 events instead of 200,000")
    parser.add_argument("--events", type=int, default=None, help="number of events")
    parser.add_argument("--batch-size", type=int, default=EvidenceConfig().upload_chunk_rows,
                        help="events per transaction (default: upload_chunk_rows)")
    parser.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432/postgres",
                        help="maintenance database URL; throwaway databases are made beside it")
    args = parser.parse_args()
    n = args.events or (20_000 if args.quick else 200_000)
    print(f"generating {n:,} events", file=sys.stderr)
    events = make_events(n)
    participants = sum(len(e["participants"]) for e in events)
    identifiers = len({(p["kind"], p["normalized"]) for e in events for p in e["participants"]})
    print(f"chrono: upload_events, batches of {args.batch_size:,}", file=sys.stderr)
    with fresh_database(args.pg, "chrono") as url:
        chrono_s, second_s, added = run_chrono(url, events, args.batch_size)
    print(f"  {chrono_s:.2f}s, second load {second_s:.2f}s adding {added} rows", file=sys.stderr)
    if added:
        raise SystemExit(f"the second load added {added} rows; loading must be idempotent")
    print("baseline: executemany of single-row INSERTs", file=sys.stderr)
    with fresh_database(args.pg, "baseline") as url:
        base_s = run_baseline(url, events, args.batch_size)
    print(f"  {base_s:.2f}s", file=sys.stderr)
    print(json.dumps({
        "events": n,
        "participants": participants,
        "identifiers": identifiers,
        "batch_size": args.batch_size,
        "chrono_seconds": round(chrono_s, 2),
        "chrono_events_per_s": round(n / chrono_s),
        "chrono_second_load_events_per_s": round(n / second_s),
        "second_load_rows_added": added,
        "baseline_seconds": round(base_s, 2),
        "baseline_events_per_s": round(n / base_s),
        "speedup": round(base_s / chrono_s, 1),
    }))


if __name__ == "__main__":
    main()
