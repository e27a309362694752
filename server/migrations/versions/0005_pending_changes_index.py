"""The index of pending changes holds only pending changes: (owner_id, seq) where not pushed.

It was (pushed, seq) over the whole change log. On the shared server nothing is ever pending,
yet every change it logged was added to the index (about 6 % of a push of 5,000 new tasks);
on a device the index grew with every change ever made. Partial, it is empty on the server,
holds on a device only what waits to be pushed, and serves a device's reads by owner in log
order.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-04
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_index("ix_changes_pending", table_name="changes")
    where = sa.text("pushed = false")
    op.create_index("ix_changes_pending", "changes", ["owner_id", "seq"], sqlite_where=where, postgresql_where=where)


def downgrade() -> None:
    op.drop_index("ix_changes_pending", table_name="changes")
    op.create_index("ix_changes_pending", "changes", ["pushed", "seq"])
