"""Alembic migrations build exactly ``schema.metadata``, once, on SQLite and PostgreSQL."""

from __future__ import annotations

import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import event, insert, inspect, select, text
from sqlalchemy.engine import Engine

from chrono.db import schema
from chrono.db.schema import ensure_schema, head_revision, make_engine, metadata, schema_revision

TIMELINE_TABLES = [schema.runs, schema.sources, schema.files, schema.events, schema.identifiers,
                   schema.participants]


def _shape(engine: Engine) -> dict[str, Any]:
    """Columns, keys and indexes of every table, as the database reports them."""
    insp = inspect(engine)
    shape = {}
    for name in sorted(insp.get_table_names()):
        if name == "alembic_version":
            continue
        shape[name] = {
            "columns": [(c["name"], c["nullable"]) for c in insp.get_columns(name)],
            "primary_key": insp.get_pk_constraint(name)["constrained_columns"],
            "foreign_keys": sorted((tuple(fk["constrained_columns"]), fk["referred_table"],
                                    tuple(fk["referred_columns"]))
                                   for fk in insp.get_foreign_keys(name)),
            "indexes": sorted((ix["name"], tuple(ix["column_names"]), bool(ix["unique"]))
                              for ix in insp.get_indexes(name)),
        }
    return shape


def _metadata_shape() -> dict[str, Any]:
    shape = {}
    for name, table in sorted(metadata.tables.items()):
        shape[name] = {
            "columns": [(c.name, c.nullable) for c in table.columns],
            "primary_key": [c.name for c in table.primary_key.columns],
            "foreign_keys": sorted((tuple(e.parent.name for e in fk.elements),
                                    fk.referred_table.name,
                                    tuple(e.column.name for e in fk.elements))
                                   for fk in table.foreign_key_constraints),
            "indexes": sorted((ix.name, tuple(c.name for c in ix.columns), bool(ix.unique))
                              for ix in table.indexes),
        }
    return shape


def _differences(engine: Engine) -> list[Any]:
    with engine.connect() as conn:
        return list(compare_metadata(MigrationContext.configure(conn), metadata))


def test_migrated_database_matches_metadata(db_url: str) -> None:
    engine = make_engine(db_url)
    ensure_schema(engine)
    assert schema_revision(engine) == head_revision() == "0002"
    assert _shape(engine) == _metadata_shape()
    engine.dispose()


def test_autogenerate_finds_no_difference(db_url: str) -> None:
    # compare_metadata also compares column types (compare_type is on by default), which the
    # shape test above cannot do portably: PostgreSQL reflects Float as DOUBLE PRECISION and
    # SQLite reflects DateTime(timezone=True) as plain DATETIME, and alembic knows both are equal.
    # No SQLite-only noise needs ignoring: alembic skips its own alembic_version table and the
    # tables here use no server defaults, CHECK constraints or naming conventions SQLite drops.
    engine = make_engine(db_url)
    ensure_schema(engine)
    assert _differences(engine) == []
    engine.dispose()


def test_ensure_schema_at_head_is_one_query(db_url: str) -> None:
    engine = make_engine(db_url)
    ensure_schema(engine)
    statements: list[str] = []

    @event.listens_for(engine, "before_cursor_execute")
    def _record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(statement)

    ensure_schema(engine)
    assert statements == ["SELECT version_num FROM alembic_version"]
    assert _differences(engine) == []
    engine.dispose()


def test_legacy_create_all_database_is_stamped_and_upgraded(db_url: str) -> None:
    """A database from before migrations and before the identity tables keeps its rows."""
    engine = make_engine(db_url)
    metadata.create_all(engine, tables=TIMELINE_TABLES)
    with engine.begin() as conn:
        conn.execute(insert(schema.sources), [{"source_id": "s1", "kind": "evidence",
                                               "root": "/evidence"}])
    assert schema_revision(engine) is None
    ensure_schema(engine)
    assert schema_revision(engine) == "0002"
    assert _shape(engine) == _metadata_shape()
    assert _differences(engine) == []
    with engine.connect() as conn:
        assert conn.execute(select(schema.sources.c.source_id)).scalars().all() == ["s1"]
    engine.dispose()


def test_legacy_database_with_identity_tables_is_stamped_at_head(db_url: str) -> None:
    engine = make_engine(db_url)
    metadata.create_all(engine)
    ensure_schema(engine)
    assert schema_revision(engine) == "0002"
    assert _differences(engine) == []
    engine.dispose()


def test_unknown_table_mix_is_refused(db_url: str) -> None:
    engine = make_engine(db_url)
    metadata.create_all(engine, tables=[schema.runs, schema.sources])
    with pytest.raises(schema.SchemaError, match="schema_unknown"):
        ensure_schema(engine)
    engine.dispose()


def _first_use(url: str, start_at: float) -> str:
    """One process's first use: connect, wait for the common start time, migrate."""
    engine = make_engine(url)
    with engine.connect() as conn:  # connected beforehand, so the processes race on migrating
        conn.execute(text("SELECT 1"))
    time.sleep(max(0.0, start_at - time.time()))
    try:
        ensure_schema(engine)
    except Exception as error:
        return type(error).__name__
    finally:
        engine.dispose()
    return "ok"


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_concurrent_first_use_on_postgresql(db_url: str) -> None:
    """Processes migrating a fresh database at once: none fails, the schema is built once.

    Processes, not threads: alembic's ``op``/``context`` are process-wide proxies, and separate
    processes are what the advisory lock is for (several workers started on one database).
    """
    # PostgreSQL only: the advisory lock is PostgreSQL's; SQLite files are single-writer.
    workers = 3
    start_at = time.time() + 4  # past every worker's start-up (spawn re-imports chrono)
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        results = list(pool.map(_first_use, [db_url] * workers, [start_at] * workers,
                                timeout=90))
    assert results == ["ok"] * workers
    engine = make_engine(db_url)
    assert schema_revision(engine) == "0002"
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM alembic_version")).scalar_one() == 1
    assert _differences(engine) == []
    engine.dispose()
