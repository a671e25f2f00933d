"""Tables of the timeline database, portable between SQLite and PostgreSQL.

Every primary key is a deterministic id computed before upload (uuid5 over content + locator, or
over a normalised value), so loading is an idempotent upsert and a bulk loader (COPY into a staging
table, then ``INSERT ... ON CONFLICT DO NOTHING``) can be added without changing the tables.
"""

from __future__ import annotations

import functools
from pathlib import Path
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
    exc,
    inspect,
    text,
)
from sqlalchemy.engine import Engine

from chrono.core.errors import TerminalError

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


MIGRATIONS_DIR = Path(__file__).with_name("migrations")
# Any fixed 64-bit key works as long as every Chrono process uses the same one.
SCHEMA_LOCK_KEY = 0x4348524F4E4F  # "CHRONO"
# What ``metadata.create_all`` built before migrations existed, newest first: a database that has
# one of these table sets and no ``alembic_version`` is stamped at that revision, then upgraded.
LEGACY_REVISIONS: tuple[tuple[str, frozenset[str]], ...] = (
    ("0002", frozenset({"runs", "sources", "files", "events", "identifiers", "participants",
                        "persons", "person_identifiers", "devices", "device_changes",
                        "person_devices", "corrections"})),
    ("0001", frozenset({"runs", "sources", "files", "events", "identifiers", "participants"})),
)


class SchemaError(TerminalError):
    """The database holds Chrono tables that no migration revision accounts for."""

    default_code = "schema_unknown"


@functools.cache
def head_revision() -> str:
    """The newest migration revision (read once per process from the migrations folder)."""
    from alembic.script import ScriptDirectory

    head = ScriptDirectory(str(MIGRATIONS_DIR)).get_current_head()
    if head is None:
        raise SchemaError(detail="the migrations folder has no revision")
    return head


def schema_revision(engine: Engine) -> str | None:
    """The revision the database is at, None when it has no ``alembic_version`` table."""
    try:
        with engine.connect() as conn:
            return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
    except (exc.OperationalError, exc.ProgrammingError):
        # SQLite answers a missing table with OperationalError, PostgreSQL with ProgrammingError.
        return None


def ensure_schema(engine: Engine) -> None:
    """Bring the database to the newest migration revision (one query when it is already there).

    Runs ``alembic upgrade head`` in one transaction. On PostgreSQL that transaction first takes
    an advisory lock, so processes starting at once on a fresh database migrate one after the
    other and the later ones find the work done. A database that ``metadata.create_all`` built
    (tables present, no ``alembic_version``) is stamped at the revision whose tables it has.
    """
    if schema_revision(engine) == head_revision():
        return
    from alembic import command
    from alembic.config import Config

    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": SCHEMA_LOCK_KEY})
        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS_DIR))
        config.attributes["connection"] = conn
        legacy = _legacy_revision(set(inspect(conn).get_table_names()))
        if legacy is not None:
            command.stamp(config, legacy)
        command.upgrade(config, "head")


def _legacy_revision(tables: set[str]) -> str | None:
    if "alembic_version" in tables:
        return None
    known = tables & LEGACY_REVISIONS[0][1]
    for revision, names in LEGACY_REVISIONS:
        if known == names:
            return revision
    if known:
        raise SchemaError(detail=f"{len(known)} Chrono tables exist without a migration record "
                                 f"and match no revision: {sorted(known)}")
    return None
