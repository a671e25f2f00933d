"""Tables of the timeline database, portable between SQLite and PostgreSQL.

Every primary key is a deterministic id computed before upload (uuid5 over content + locator, or
over a normalised value), so loading is an idempotent upsert and a bulk loader (COPY into a staging
table, then ``INSERT ... ON CONFLICT DO NOTHING``) can be added without changing the tables.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    create_engine,
    event,
)
from sqlalchemy.engine import Engine

metadata = MetaData()

runs = Table(
    "runs", metadata,
    Column("run_id", String(36), primary_key=True),
    Column("pipeline", String(32), nullable=False),
    Column("status", String(16), nullable=False),
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("finished_at", DateTime(timezone=True)),
    Column("steps", JSON, nullable=False),
    Column("counts", JSON, nullable=False),
    Column("artifact_dir", Text),
)

sources = Table(
    "sources", metadata,
    Column("source_id", String(36), primary_key=True),
    Column("kind", String(16), nullable=False),
    Column("root", Text, nullable=False),
)

files = Table(
    "files", metadata,
    Column("file_id", String(36), primary_key=True),
    Column("source_id", String(36), ForeignKey("sources.source_id"), nullable=False),
    Column("path", Text, nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("kind", String(16), nullable=False),
    Column("parent_id", String(36)),
    Column("family_id", String(36), nullable=False),
    Column("depth", Integer, nullable=False),
    Column("outcome", String(24), nullable=False),
    Column("reason", String(48)),
    Column("page_count", Integer),
    Column("extractor", String(32)),
    Column("text", Text),
    Index("ix_files_sha256", "sha256"),
)

events = Table(
    "events", metadata,
    Column("event_id", String(36), primary_key=True),
    Column("type", String(16), nullable=False),
    Column("start_utc", DateTime(timezone=True)),
    Column("offset_minutes", Integer),
    Column("timezone", String(64)),
    Column("subject", Text),
    Column("body", Text),
    Column("duration_s", Float),
    Column("direction", String(16)),
    Column("message_id", Text),
    Column("file_id", String(36), nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("path", Text, nullable=False),
    Column("locator", String(64), nullable=False),
    Column("page", Integer),
    Column("row", Integer),
    Column("bates", String(64)),
    Column("duplicate_of", String(36)),
    Column("duplicate_reason", String(48)),
    Column("attributes", JSON),
    Index("ix_events_start", "start_utc"),
    Index("ix_events_type_start", "type", "start_utc"),
)

identifiers = Table(
    "identifiers", metadata,
    Column("identifier_id", String(36), primary_key=True),
    Column("kind", String(16), nullable=False),
    Column("value", Text, nullable=False),
    Index("ix_identifiers_kind_value", "kind", "value"),
)

participants = Table(
    "participants", metadata,
    Column("event_id", String(36), ForeignKey("events.event_id"), primary_key=True),
    Column("position", Integer, primary_key=True),
    Column("role", String(16), nullable=False),
    Column("identifier_id", String(36), ForeignKey("identifiers.identifier_id"), nullable=False),
    Column("value", Text, nullable=False),
    Column("name", Text),
    Index("ix_participants_identifier", "identifier_id"),
)

# --- Identity: the dedupe, persons, devices and mapping steps (derived tables) ---------------
# persons, person_identifiers, devices, device_changes and person_devices are recomputed by their
# steps and replaced in one transaction, so a re-run leaves the same rows. Manual decisions live
# in ``corrections`` (append-only) and are stated in identifier ids, so they survive re-clustering.

persons = Table(
    "persons", metadata,
    Column("person_id", String(36), primary_key=True),
    Column("name", Text),
    Column("identifier_count", Integer, nullable=False),
    Column("origin", String(16), nullable=False),
    # auto | manual (a manual merge or unmerge shaped this person)
)

person_identifiers = Table(
    "person_identifiers", metadata,
    Column("identifier_id", String(36), ForeignKey("identifiers.identifier_id"),
           primary_key=True),
    Column("person_id", String(36), ForeignKey("persons.person_id"), nullable=False),
    Column("method", String(24), nullable=False),
    # shared_identifier | header_pair | contact | owner | name_match | email_variant | manual | seed
    Column("score", Float, nullable=False),
    Column("evidence", JSON, nullable=False),
    # {"events": [event_id, ...] (at most 20), "files": [file_id, ...], "count": n}
    Index("ix_person_identifiers_person", "person_id"),
)

devices = Table(
    "devices", metadata,
    Column("device_id", String(36), primary_key=True),
    Column("kind", String(16), nullable=False),  # phone | email | handle | imei
    Column("value", Text, nullable=False),  # cleaned value: E.164, lower-case address, ...
    Column("identifier_count", Integer, nullable=False),
    Column("merged_into", String(36)),  # set by a manual device merge
    Index("ix_devices_kind_value", "kind", "value"),
)

device_changes = Table(
    "device_changes", metadata,
    Column("identifier_id", String(36), ForeignKey("identifiers.identifier_id"),
           primary_key=True),
    Column("device_id", String(36)),  # NULL when the identifier was dropped
    Column("action", String(16), nullable=False),  # kept | normalized | merged | dropped
    Column("reason", String(48), nullable=False),
    Index("ix_device_changes_device", "device_id"),
)

person_devices = Table(
    "person_devices", metadata,
    Column("person_id", String(36), primary_key=True),
    Column("device_id", String(36), primary_key=True),
    Column("confidence", Float, nullable=False),
    Column("evidence", JSON, nullable=False),
    # [{"kind": custodian|caller_id|contact|signature|header_pair|identifier, "events": [...],
    #   "files": [...], "count": n}]
    Index("ix_person_devices_device", "device_id"),
)

corrections = Table(
    "corrections", metadata,
    Column("correction_id", Integer, primary_key=True, autoincrement=True),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("by_user", String(128), nullable=False),
    Column("entity", String(8), nullable=False),  # person | device
    Column("action", String(8), nullable=False),  # merge | unmerge
    Column("target_ids", JSON, nullable=False),  # person/device ids the user named
    Column("identifier_groups", JSON, nullable=False),
    # merge: the identifier ids of each named person/device, one list each (must link);
    # unmerge: the groups the person/device splits into (cannot link across groups)
)


def make_engine(url: str) -> Engine:
    """Create an engine; SQLite gets WAL and foreign keys, PostgreSQL uses psycopg 3."""
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://"):]
    engine = create_engine(url, future=True)
    if engine.dialect.name == "sqlite":
        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()
    return engine


def ensure_schema(engine: Engine) -> None:
    """Create missing tables (migrations arrive with the PostgreSQL issue)."""
    metadata.create_all(engine)
