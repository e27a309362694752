"""Records (tasks, notes), the change log, per-user sequences and meta.

Revision ID: 0001
Revises:
Create Date: 2026-11-21
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "changes",
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("owner_id", sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
        sa.Column("user_seq", sa.BigInteger(), nullable=True),
        sa.Column("change_id", sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
        sa.Column("kind", sqlmodel.sql.sqltypes.AutoString(length=8), nullable=False),
        sa.Column("record_id", sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
        sa.Column("fields", sa.Text(), nullable=False),
        sa.Column("stamps", sa.Text(), nullable=False),
        sa.Column("base", sa.Text(), nullable=True),
        sa.Column("node", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("created_ms", sa.BigInteger(), nullable=False),
        sa.Column("pushed", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("seq"),
        sa.UniqueConstraint("owner_id", "change_id", name="uq_changes_owner_change"),
    )
    with op.batch_alter_table("changes", schema=None) as batch_op:
        batch_op.create_index("ix_changes_owner_user_seq", ["owner_id", "user_seq"], unique=False)
        batch_op.create_index("ix_changes_pending", ["pushed", "seq"], unique=False)
        batch_op.create_index("ix_changes_record", ["owner_id", "record_id"], unique=False)

    op.create_table(
        "meta",
        sa.Column("key", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("key"),
    )
    op.create_table(
        "notes",
        sa.Column("owner_id", sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
        sa.Column("id", sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("done", sa.Boolean(), nullable=False),
        sa.Column("conflict_of", sqlmodel.sql.sqltypes.AutoString(length=36), nullable=True),
        sa.Column("deleted", sa.Boolean(), nullable=False),
        sa.Column("created_ms", sa.BigInteger(), nullable=False),
        sa.Column("updated_ms", sa.BigInteger(), nullable=False),
        sa.Column("stamps", sa.Text(), nullable=False),
        sa.Column("hash_a", sa.BigInteger(), nullable=False),
        sa.Column("hash_b", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("owner_id", "id"),
    )
    with op.batch_alter_table("notes", schema=None) as batch_op:
        batch_op.create_index("ix_notes_owner_order", ["owner_id", "deleted", "created_ms", "id"], unique=False)
        batch_op.create_index("ix_notes_digest", ["owner_id", "hash_a", "hash_b"], unique=False)

    op.create_table(
        "tasks",
        sa.Column("owner_id", sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
        sa.Column("id", sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("due_date", sqlmodel.sql.sqltypes.AutoString(length=10), nullable=True),
        sa.Column("completed", sa.Boolean(), nullable=False),
        sa.Column("conflict_of", sqlmodel.sql.sqltypes.AutoString(length=36), nullable=True),
        sa.Column("deleted", sa.Boolean(), nullable=False),
        sa.Column("created_ms", sa.BigInteger(), nullable=False),
        sa.Column("updated_ms", sa.BigInteger(), nullable=False),
        sa.Column("stamps", sa.Text(), nullable=False),
        sa.Column("hash_a", sa.BigInteger(), nullable=False),
        sa.Column("hash_b", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("owner_id", "id"),
    )
    with op.batch_alter_table("tasks", schema=None) as batch_op:
        batch_op.create_index("ix_tasks_digest", ["owner_id", "hash_a", "hash_b"], unique=False)
        batch_op.create_index(
            "ix_tasks_owner_order",
            ["owner_id", "deleted", sa.text("(due_date IS NULL)"), "due_date", "created_ms", "id"],
            unique=False,
        )

    op.create_table(
        "user_seqs",
        sa.Column("owner_id", sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
        sa.Column("last_seq", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("owner_id"),
    )


def downgrade() -> None:
    op.drop_table("user_seqs")
    with op.batch_alter_table("tasks", schema=None) as batch_op:
        batch_op.drop_index("ix_tasks_owner_order")
        batch_op.drop_index("ix_tasks_digest")

    op.drop_table("tasks")
    with op.batch_alter_table("notes", schema=None) as batch_op:
        batch_op.drop_index("ix_notes_owner_order")
        batch_op.drop_index("ix_notes_digest")

    op.drop_table("notes")
    op.drop_table("meta")
    with op.batch_alter_table("changes", schema=None) as batch_op:
        batch_op.drop_index("ix_changes_record")
        batch_op.drop_index("ix_changes_pending")
        batch_op.drop_index("ix_changes_owner_user_seq")

    op.drop_table("changes")
