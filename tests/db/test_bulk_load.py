"""bulk_upsert and the upload path: idempotent, atomic per batch, values round-trip exactly."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.engine import Engine

from chrono.db import schema
from chrono.db.load import BulkLoadError, bulk_upsert, copy_types, count_rows
from chrono.db.schema import ensure_schema, make_engine
from chrono.evidence.upload import event_rows, upload_events

TRICKY_TEXT = [
    "tab\there", "line\nbreak\r\nand CR\r", "back\\slash \\N \\. \\\\", "quotes ' \" `",
    "comma, semicolon; pipe|", "unicode: Zoë Ångström 東京 😀 e\u0301", "", " ", "\\",
]


def _event(n: int, **changes: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "event_id": f"ev-{n}", "type": "email",
        "start_utc": datetime(2025, 3, 3, 14, 5, 9, tzinfo=UTC) + timedelta(minutes=n),
        "offset_minutes": -300, "timezone": "America/New_York", "subject": f"subject {n}",
        "body": None, "duration_s": None, "direction": "outgoing", "message_id": None,
        "file_id": "f1", "sha256": "a" * 64, "path": "mail/box.pst", "locator": f"msg:{n}",
        "page": None, "row": n, "bates": None, "duplicate_of": None, "duplicate_reason": None,
        "attributes": {"folder": "Inbox"},
    }
    row.update(changes)
    return row


def _events_by_id(engine: Engine) -> dict[str, Any]:
    with engine.connect() as conn:
        return {r.event_id: r for r in conn.execute(select(schema.events))}


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    engine = make_engine(db_url)
    ensure_schema(engine)
    yield engine
    engine.dispose()


def test_inserts_and_ignores_existing_keys(engine: Engine) -> None:
    with engine.begin() as conn:
        assert bulk_upsert(conn, schema.events, [_event(1), _event(2), _event(3)]) == 3
    with engine.begin() as conn:
        # ev-2 again with other values: the stored row wins; ev-4 twice in one batch lands once.
        again = [_event(2, subject="changed"), _event(4), _event(4, subject="twin")]
        assert bulk_upsert(conn, schema.events, again) == 1
    with engine.begin() as conn:
        assert bulk_upsert(conn, schema.events, [_event(1), _event(2)]) == 0
        assert bulk_upsert(conn, schema.events, []) == 0
    stored = _events_by_id(engine)
    assert sorted(stored) == ["ev-1", "ev-2", "ev-3", "ev-4"]
    assert stored["ev-2"].subject == "subject 2"
    assert stored["ev-4"].subject == "subject 4"


def test_values_round_trip(engine: Engine) -> None:
    attributes: list[Any] = [
        {"folder": "Inbox", "flag": True, "n": 3, "x": 1.5, "none": None},
        {"nested": {"list": [1, "two", None, {"k": "v\tw"}]}, "q": "he said \"hi\" \\ ok"},
        {"unicode": "東京 😀", "newline": "a\nb"},
        [1, 2, 3],
        "a JSON string",
        {},
        None,
    ]
    rows = []
    for n, text in enumerate(TRICKY_TEXT):
        rows.append(_event(n, subject=text, body=text[::-1], path=f"p/{text}",
                           attributes=attributes[n % len(attributes)]))
    if engine.dialect.name == "postgresql":
        # timestamptz stores the instant of any zone; SQLite keeps a datetime's wall time and
        # drops its zone, which is why Chrono only ever writes UTC datetimes.
        rows.append(_event(50, start_utc=datetime(2015, 11, 29, 8, 45, 18,
                                                  tzinfo=timezone(timedelta(hours=5, minutes=30)))))
    rows.append(_event(51, start_utc=None, offset_minutes=None, timezone=None, subject=None,
                       direction=None, row=None, attributes=None, duration_s=65.25,
                       page=2, bates="ABC-000123", message_id="<m1@example.org>"))
    with engine.begin() as conn:
        assert bulk_upsert(conn, schema.events, rows) == len(rows)
    stored = _events_by_id(engine)
    for row in rows:
        back = stored[row["event_id"]]._asdict()
        for column in ("subject", "body", "path", "offset_minutes", "timezone", "direction",
                       "row", "page", "bates", "message_id", "duration_s"):
            assert back[column] == row[column], column
        assert back["attributes"] == row["attributes"]
        if row["start_utc"] is None:
            assert back["start_utc"] is None
        else:
            # SQLite gives the UTC wall time back without its zone; the instant is what counts.
            got = back["start_utc"]
            got = got if got.tzinfo else got.replace(tzinfo=UTC)
            assert got == row["start_utc"]


def test_big_integers_and_every_table_type(engine: Engine) -> None:
    assert copy_types(schema.files)[schema.files.c.keys().index("size")] == "int8"
    assert copy_types(schema.runs)[schema.runs.c.keys().index("started_at")] == "timestamptz"
    with engine.begin() as conn:
        bulk_upsert(conn, schema.sources, [{"source_id": "s1", "kind": "evidence",
                                            "root": "/ev"}])
        bulk_upsert(conn, schema.files, [{
            "file_id": "f1", "source_id": "s1", "path": "big.bin", "sha256": "b" * 64,
            "size": 5 * 2**40, "kind": "binary", "parent_id": None, "family_id": "f1",
            "depth": 0, "outcome": "processed", "reason": None, "page_count": None,
            "extractor": None, "text": "x\x01y\u2028z",
        }])
    with engine.connect() as conn:
        stored = conn.execute(select(schema.files)).one()
    assert stored.size == 5 * 2**40 and stored.text == "x\x01y\u2028z"


def test_failed_batch_leaves_nothing(engine: Engine) -> None:
    """A NOT NULL violation in the last table of a batch undoes the whole batch."""
    secret = "jane.secret@example.com"
    ev, ids, parts = event_rows([_source_event(n, secret) for n in range(5)])
    parts[len(parts) // 2]["role"] = None  # participants.role is NOT NULL
    with pytest.raises(BulkLoadError) as raised, engine.begin() as conn:
        bulk_upsert(conn, schema.identifiers, ids)
        bulk_upsert(conn, schema.events, ev)
        bulk_upsert(conn, schema.participants, parts)
    message = str(raised.value)
    assert "participants" in message and raised.value.code == "db_load_rejected"
    assert secret not in message and "Zed" not in message  # no row values in the message
    assert raised.value.__cause__ is None and raised.value.__context__ is None
    for table in (schema.identifiers, schema.events, schema.participants):
        assert count_rows(engine, table) == 0
    upload_events(engine, [_source_event(n, secret) for n in range(5)], batch_size=2)
    assert count_rows(engine, schema.events) == 5


def test_bad_middle_row_in_one_table_leaves_nothing(engine: Engine) -> None:
    rows = [_event(1), _event(2, type=None), _event(3)]
    with pytest.raises(BulkLoadError), engine.begin() as conn:
        bulk_upsert(conn, schema.events, rows)
    assert count_rows(engine, schema.events) == 0


def _source_event(n: int, address: str) -> dict[str, Any]:
    """An event in the evidence format (what ``events_for_artifact`` returns)."""
    return {
        "id": f"event-{n}", "type": "email", "start": f"2025-03-0{1 + n % 9}T09:05:0{n % 10}Z",
        "offset_minutes": 60, "timezone": "Europe/Berlin", "subject": f"Re: plan {n}",
        "body": "line one\nline\ttwo \\ \"quoted\"", "duration_s": None, "direction": None,
        "message_id": f"<{n}@example.org>",
        "participants": [
            {"role": "from", "kind": "email", "value": address.title(), "name": "Zed",
             "normalized": address},
            {"role": "to", "kind": "email", "value": f"p{n % 2}@example.org", "name": None,
             "normalized": f"p{n % 2}@example.org"},
            {"role": "cc", "kind": "phone", "value": "(555) 201-7788", "name": None,
             "normalized": "+15552017788"},
        ],
        "source": {"file_id": "f1", "path": "mail.mbox", "sha256": "c" * 64,
                   "locator": f"msg:{n}", "page": None, "row": None, "bates": None},
        "duplicate_of": None, "attributes": {"folder": "Sent"},
    }


def test_upload_twice_adds_nothing(engine: Engine) -> None:
    events = [_source_event(n, "a@example.org") for n in range(7)]
    upload_events(engine, events, batch_size=3)
    counts = {t.name: count_rows(engine, t)
              for t in (schema.events, schema.identifiers, schema.participants)}
    assert counts == {"events": 7, "identifiers": 4, "participants": 21}
    upload_events(engine, events, batch_size=5)
    assert {t.name: count_rows(engine, t) for t in (
        schema.events, schema.identifiers, schema.participants)} == counts
    stored = _events_by_id(engine)["event-3"]
    assert stored.body == "line one\nline\ttwo \\ \"quoted\""
    start = stored.start_utc if stored.start_utc.tzinfo else stored.start_utc.replace(tzinfo=UTC)
    assert start == datetime(2025, 3, 4, 9, 5, 3, tzinfo=UTC)
