"""Identity tables: persons, person_identifiers, devices, device_changes, person_devices and
corrections.

Revision ID: 0002
Revises: 0001
Create Date: 2025-06-15
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "persons",
        sa.Column("person_id", sa.String(36), primary_key=True),
        sa.Column("name", sa.Text),
        sa.Column("identifier_count", sa.Integer, nullable=False),
        sa.Column("origin", sa.String(16), nullable=False),
    )
    op.create_table(
        "person_identifiers",
        sa.Column("identifier_id", sa.String(36), sa.ForeignKey("identifiers.identifier_id"),
                  primary_key=True),
        sa.Column("person_id", sa.String(36), sa.ForeignKey("persons.person_id"),
                  nullable=False),
        sa.Column("method", sa.String(24), nullable=False),
        sa.Column("score", sa.Float, nullable=False),
        sa.Column("evidence", sa.JSON, nullable=False),
    )
    op.create_index("ix_person_identifiers_person", "person_identifiers", ["person_id"])
    op.create_table(
        "devices",
        sa.Column("device_id", sa.String(36), primary_key=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("value", sa.Text, nullable=False),
        sa.Column("identifier_count", sa.Integer, nullable=False),
        sa.Column("merged_into", sa.String(36)),
    )
    op.create_index("ix_devices_kind_value", "devices", ["kind", "value"])
    op.create_table(
        "device_changes",
        sa.Column("identifier_id", sa.String(36), sa.ForeignKey("identifiers.identifier_id"),
                  primary_key=True),
        sa.Column("device_id", sa.String(36)),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("reason", sa.String(48), nullable=False),
    )
    op.create_index("ix_device_changes_device", "device_changes", ["device_id"])
    op.create_table(
        "person_devices",
        sa.Column("person_id", sa.String(36), primary_key=True),
        sa.Column("device_id", sa.String(36), primary_key=True),
        sa.Column("confidence", sa.Float, nullable=False),
        sa.Column("evidence", sa.JSON, nullable=False),
    )
    op.create_index("ix_person_devices_device", "person_devices", ["device_id"])
    op.create_table(
        "corrections",
        sa.Column("correction_id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("by_user", sa.String(128), nullable=False),
        sa.Column("entity", sa.String(8), nullable=False),
        sa.Column("action", sa.String(8), nullable=False),
        sa.Column("target_ids", sa.JSON, nullable=False),
        sa.Column("identifier_groups", sa.JSON, nullable=False),
    )


def downgrade() -> None:
    for index, table in (("ix_person_devices_device", "person_devices"),
                         ("ix_device_changes_device", "device_changes"),
                         ("ix_devices_kind_value", "devices"),
                         ("ix_person_identifiers_person", "person_identifiers")):
        op.drop_index(index, table_name=table)
    for table in ("corrections", "person_devices", "device_changes", "devices",
                  "person_identifiers", "persons"):
        op.drop_table(table)
