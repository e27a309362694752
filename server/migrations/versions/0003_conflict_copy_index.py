"""Partial indexes on conflict copies: the UI's Conflicts view and its count read only the
few rows that are copies instead of every record of the owner.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-21
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLES = ("tasks", "notes")


def upgrade() -> None:
    for table in TABLES:
        where = sa.text("conflict_of IS NOT NULL")
        op.create_index(
            f"ix_{table}_conflict_copies",
            table,
            ["owner_id", "deleted"],
            sqlite_where=where,
            postgresql_where=where,
        )


def downgrade() -> None:
    for table in TABLES:
        op.drop_index(f"ix_{table}_conflict_copies", table_name=table)
