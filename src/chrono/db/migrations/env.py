"""Alembic environment: runs the migrations on the connection that ``ensure_schema`` hands over.

``ensure_schema`` passes a live connection in ``config.attributes["connection"]`` and owns its
transaction (and, on PostgreSQL, the advisory lock taken in it), so everything here runs inside
that one transaction. Without a connection (the ``alembic`` command line pointed at this folder),
the URL comes from ``sqlalchemy.url`` in the config.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

from chrono.db.schema import make_engine, metadata

config = context.config


def _run_on(connection: Connection) -> None:
    context.configure(connection=connection, target_metadata=metadata)
    # Inside a transaction the caller opened this is a no-op, so the caller's commit decides.
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    context.configure(url=config.get_main_option("sqlalchemy.url"), target_metadata=metadata,
                      literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
elif (live := config.attributes.get("connection")) is not None:
    _run_on(live)
else:
    engine = make_engine(config.get_main_option("sqlalchemy.url") or "")
    with engine.begin() as connection:
        _run_on(connection)
    engine.dispose()
