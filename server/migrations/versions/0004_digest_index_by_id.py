"""The digest's covering index ordered by record id: (owner_id, id, hash_a, hash_b).

Ordered by the hashes, every record written landed on a random page of the index (and an
edit moved it between two), so a first sync of 100,000 records rewrote most of the index in
every transaction. Ordered by id, records with time-ordered ids (Ferry's UUIDv7) are
appended, an edit rewrites its entry in place, and the sums still read only the index.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLES = ("tasks", "notes")


def upgrade() -> None:
    for table in TABLES:
        op.drop_index(f"ix_{table}_digest", table_name=table)
        op.create_index(f"ix_{table}_digest", table, ["owner_id", "id", "hash_a", "hash_b"])


def downgrade() -> None:
    for table in TABLES:
        op.drop_index(f"ix_{table}_digest", table_name=table)
        op.create_index(f"ix_{table}_digest", table, ["owner_id", "hash_a", "hash_b"])
