"""Database schema (SQLAlchemy Core, SQLite and PostgreSQL) and loaders."""
