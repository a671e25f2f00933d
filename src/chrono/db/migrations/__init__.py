"""Alembic migrations of the timeline database; :func:`chrono.db.schema.ensure_schema` runs them."""
