"""Idempotent loading of timeline rows: insert-or-ignore keyed on deterministic ids.

Rows go in chunks, one transaction per chunk, so a crash leaves whole chunks or nothing. On
PostgreSQL :func:`bulk_upsert` streams a chunk with binary ``COPY`` into a temporary staging table
and moves it over with one ``INSERT ... SELECT ... ON CONFLICT DO NOTHING``; on SQLite it is the
plain ``INSERT ... ON CONFLICT DO NOTHING`` of :func:`insert_ignore` (``executemany``).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import nullcontext
from itertools import islice
from operator import itemgetter
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    DateTime,
    Float,
    Integer,
    SmallInteger,
    String,
    Table,
    func,
    select,
)
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine

from chrono.core.errors import ChronoError, TerminalError, TransientError

# Staging tables get a fresh name per call, so one transaction can stage the same table twice.
_staging_numbers = itertools.count()


class BulkLoadError(TerminalError):
    """The database refused a batch (a constraint, a bad value); retrying will not help."""

    default_code = "db_load_rejected"


class BulkLoadInterrupted(TransientError):
    """The database went away or gave up mid-batch (connection, deadlock, resources)."""

    default_code = "db_load_interrupted"


def insert_ignore(conn: Connection, table: Table, rows: Sequence[Mapping[str, Any]]) -> int:
    """Insert ``rows``, skipping any whose key exists; returns the number inserted."""
    if not rows:
        return 0
    dialect = conn.engine.dialect.name
    if dialect == "postgresql":
        stmt: Any = postgresql.insert(table).on_conflict_do_nothing()
    elif dialect == "sqlite":
        stmt = sqlite.insert(table).on_conflict_do_nothing()
    else:
        raise ValueError(f"unsupported database dialect {dialect}")
    return int(conn.execute(stmt, list(rows)).rowcount)


def bulk_upsert(conn: Connection, table: Table, rows: Sequence[Mapping[str, Any]]) -> int:
    """Insert ``rows`` (dicts holding every column of ``table``), skipping existing keys.

    Returns the number of rows inserted. Runs in the caller's transaction, so a batch that fails
    half-way (a NULL in a NOT NULL column, a dangling foreign key) leaves nothing behind. Rows
    that repeat a key within ``rows`` are inserted once. A ``None`` in a JSON column is SQL NULL
    on PostgreSQL (SQLAlchemy's executemany writes the JSON ``null``); both read back as None.
    Datetimes for ``DateTime(timezone=True)`` columns must be timezone-aware (Chrono writes UTC).
    Failures raise :class:`BulkLoadError` or :class:`BulkLoadInterrupted` naming the table,
    SQLSTATE, column and constraint, never a value.
    """
    if not rows:
        return 0
    try:
        if conn.dialect.name != "postgresql":
            return insert_ignore(conn, table, rows)
        return _copy_upsert(conn, table, rows)
    except Exception as error:
        failure = _load_failure(error, table, len(rows))
        if failure is None:
            raise
    # Raised outside the handler with no cause attached: the driver's message and SQLAlchemy's
    # "[parameters: ...]" quote row values (evidence text, addresses), which must not reach logs.
    raise failure


def _load_failure(error: Exception, table: Table, count: int) -> ChronoError | None:
    """A PII-free error for a driver failure: class name, SQLSTATE, column and constraint."""
    import sqlite3

    import psycopg

    orig = error.orig if isinstance(error, sa_exc.DBAPIError) else error
    if not isinstance(orig, psycopg.Error | sqlite3.Error):
        return None
    parts = [f"{count} rows into {table.name}: {type(orig).__name__}"]
    if isinstance(orig, psycopg.Error):
        parts += [f"{key}={value}" for key, value in (
            ("sqlstate", orig.sqlstate), ("column", orig.diag.column_name),
            ("constraint", orig.diag.constraint_name)) if value]
        # psycopg files connection loss, deadlocks, serialization failures, shutdowns and
        # exhausted resources under OperationalError.
        transient = isinstance(orig, psycopg.OperationalError)
    else:
        # SQLite's own messages carry no row values; "database is locked" is the retryable one.
        transient = isinstance(orig, sqlite3.OperationalError) and "locked" in str(orig)
        parts.append(str(orig))
    kind = BulkLoadInterrupted if transient else BulkLoadError
    return kind(detail=" ".join(parts))


def _copy_upsert(conn: Connection, table: Table, rows: Sequence[Mapping[str, Any]]) -> int:
    from psycopg import sql

    names = [c.name for c in table.columns]
    values = _row_getter(names)
    staging = sql.Identifier(f"_chrono_stage_{table.name}_{next(_staging_numbers)}")
    target = sql.Identifier(table.name)
    raw = conn.connection.driver_connection  # the psycopg connection, in SQLAlchemy's transaction
    if raw is None:
        raise BulkLoadInterrupted(detail=f"{table.name}: the database connection is closed")
    # Under an autocommit connection ON COMMIT DROP would drop the staging table at once, and the
    # batch would not be atomic: give it its own transaction there.
    with raw.transaction() if raw.autocommit else nullcontext(), raw.cursor() as cur:
        cur.execute(sql.SQL(
            "CREATE TEMP TABLE {} (LIKE {} INCLUDING DEFAULTS) ON COMMIT DROP"
        ).format(staging, target))
        with cur.copy(sql.SQL("COPY {} FROM STDIN (FORMAT BINARY)").format(staging)) as copy:
            copy.set_types(copy_types(table))
            write_row = copy.write_row
            for row in rows:
                write_row(values(row))
        # LIKE copies the target's column order, so SELECT * lines up with it.
        cur.execute(sql.SQL("INSERT INTO {} SELECT * FROM {} ON CONFLICT DO NOTHING").format(
            target, staging))
        return int(cur.rowcount)


def _row_getter(names: list[str]) -> Callable[[Mapping[str, Any]], tuple[Any, ...]]:
    # itemgetter pulls all values in C; with a single name it returns the bare value.
    if len(names) == 1:
        name = names[0]
        return lambda row: (row[name],)
    return itemgetter(*names)


def copy_types(table: Table) -> list[str]:
    """PostgreSQL type names for a binary ``COPY`` of ``table``'s columns, in column order.

    Binary COPY needs to know each column's type up front (psycopg picks the encoder by it);
    ``varchar`` and ``text`` share one wire format, so every string column travels as ``text``.
    """
    types = []
    for column in table.columns:
        kind = column.type
        if isinstance(kind, JSON):
            types.append("json")
        elif isinstance(kind, BigInteger):
            types.append("int8")
        elif isinstance(kind, SmallInteger):
            types.append("int2")
        elif isinstance(kind, Integer):
            types.append("int4")
        elif isinstance(kind, Float):
            types.append("float8")
        elif isinstance(kind, Boolean):
            types.append("bool")
        elif isinstance(kind, DateTime):
            types.append("timestamptz" if kind.timezone else "timestamp")
        elif isinstance(kind, Date):
            types.append("date")
        elif isinstance(kind, String):
            types.append("text")
        else:
            raise TypeError(f"no COPY type for column {table.name}.{column.name} "
                            f"({type(kind).__name__})")
    return types


def chunked(rows: Iterable[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    it = iter(rows)
    while chunk := list(islice(it, size)):
        yield chunk


def count_rows(engine: Engine, table: Table) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())
