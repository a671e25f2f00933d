"""Timeline tables: runs, sources, files, events, identifiers and participants.

Revision ID: 0001
Revises:
Create Date: 2025-06-01

Mirrors ``chrono.db.schema`` as it stood before the identity tables; databases that
``metadata.create_all`` built then are stamped at this revision by ``ensure_schema``.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "runs",
        sa.Column("run_id", sa.String(36), primary_key=True),
        sa.Column("pipeline", sa.String(32), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True)),
        sa.Column("steps", sa.JSON, nullable=False),
        sa.Column("counts", sa.JSON, nullable=False),
        sa.Column("artifact_dir", sa.Text),
    )
    op.create_table(
        "sources",
        sa.Column("source_id", sa.String(36), primary_key=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("root", sa.Text, nullable=False),
    )
    op.create_table(
        "files",
        sa.Column("file_id", sa.String(36), primary_key=True),
        sa.Column("source_id", sa.String(36), sa.ForeignKey("sources.source_id"),
                  nullable=False),
        sa.Column("path", sa.Text, nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("parent_id", sa.String(36)),
        sa.Column("family_id", sa.String(36), nullable=False),
        sa.Column("depth", sa.Integer, nullable=False),
        sa.Column("outcome", sa.String(24), nullable=False),
        sa.Column("reason", sa.String(48)),
        sa.Column("page_count", sa.Integer),
        sa.Column("extractor", sa.String(32)),
        sa.Column("text", sa.Text),
    )
    op.create_index("ix_files_sha256", "files", ["sha256"])
    op.create_table(
        "events",
        sa.Column("event_id", sa.String(36), primary_key=True),
        sa.Column("type", sa.String(16), nullable=False),
        sa.Column("start_utc", sa.DateTime(timezone=True)),
        sa.Column("offset_minutes", sa.Integer),
        sa.Column("timezone", sa.String(64)),
        sa.Column("subject", sa.Text),
        sa.Column("body", sa.Text),
        sa.Column("duration_s", sa.Float),
        sa.Column("direction", sa.String(16)),
        sa.Column("message_id", sa.Text),
        sa.Column("file_id", sa.String(36), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("path", sa.Text, nullable=False),
        sa.Column("locator", sa.String(64), nullable=False),
        sa.Column("page", sa.Integer),
        sa.Column("row", sa.Integer),
        sa.Column("bates", sa.String(64)),
        sa.Column("duplicate_of", sa.String(36)),
        sa.Column("duplicate_reason", sa.String(48)),
        sa.Column("attributes", sa.JSON),
    )
    op.create_index("ix_events_start", "events", ["start_utc"])
    op.create_index("ix_events_type_start", "events", ["type", "start_utc"])
    op.create_table(
        "identifiers",
        sa.Column("identifier_id", sa.String(36), primary_key=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("value", sa.Text, nullable=False),
    )
    op.create_index("ix_identifiers_kind_value", "identifiers", ["kind", "value"])
    op.create_table(
        "participants",
        sa.Column("event_id", sa.String(36), sa.ForeignKey("events.event_id"),
                  primary_key=True),
        sa.Column("position", sa.Integer, primary_key=True),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("identifier_id", sa.String(36), sa.ForeignKey("identifiers.identifier_id"),
                  nullable=False),
        sa.Column("value", sa.Text, nullable=False),
        sa.Column("name", sa.Text),
    )
    op.create_index("ix_participants_identifier", "participants", ["identifier_id"])


def downgrade() -> None:
    for index, table in (("ix_participants_identifier", "participants"),
                         ("ix_identifiers_kind_value", "identifiers"),
                         ("ix_events_type_start", "events"), ("ix_events_start", "events"),
                         ("ix_files_sha256", "files")):
        op.drop_index(index, table_name=table)
    for table in ("participants", "identifiers", "events", "files", "sources", "runs"):
        op.drop_table(table)
