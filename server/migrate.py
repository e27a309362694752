"""Applies Alembic migrations at start-up, and lets tests move the schema up and down.

On PostgreSQL an advisory lock makes concurrent starters (several workers, several hosts)
migrate one at a time; SQLite's write lock does the same there.

Alembic is imported only when there is something to do: a start with the schema already at
head reads the version table and the scripts' `revision` lines itself (importing Alembic cost
the desktop's start-up ~150 ms).
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from server.db import Database

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS = Path(__file__).parent / "migrations"
PG_MIGRATION_LOCK = 0x46455252  # "FERR"


def alembic_config(url: str | None = None) -> Config:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    if url:
        cfg.set_main_option("sqlalchemy.url", url)
    return cfg


def head_revision() -> str:
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None
    return head


def current_revision(db: Database) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with db.engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def _run(db: Database, action: str, target: str) -> None:
    from alembic import command

    cfg = alembic_config()
    with db.write_engine.connect() as conn:
        if not db.is_sqlite:
            conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": PG_MIGRATION_LOCK})
            conn.commit()
        try:
            cfg.attributes["connection"] = conn
            getattr(command, action)(cfg, target)
            conn.commit()
        finally:
            if not db.is_sqlite:
                conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": PG_MIGRATION_LOCK})
                conn.commit()


def upgrade(db: Database, target: str = "head") -> None:
    # Checking the version first keeps a warm start from loading Alembic and every script.
    if target == "head" and _at_head(db):
        return
    _run(db, "upgrade", target)


def _at_head(db: Database) -> bool:
    """True only when the database is surely at the single head; any doubt answers False."""
    revisions: set[str] = set()
    parents: set[str] = set()
    try:
        for script in (MIGRATIONS / "versions").glob("*.py"):
            for node in ast.parse(script.read_text(encoding="utf-8")).body:
                target = node.target if isinstance(node, ast.AnnAssign) else None
                if isinstance(node, ast.Assign) and len(node.targets) == 1:
                    target = node.targets[0]
                if isinstance(target, ast.Name) and target.id in ("revision", "down_revision") and node.value:
                    value = ast.literal_eval(node.value)
                    values = value if isinstance(value, tuple | list) else (value,)
                    (revisions if target.id == "revision" else parents).update(v for v in values if v)
        with db.engine.connect() as conn:
            rows = conn.execute(text("SELECT version_num FROM alembic_version")).scalars().all()
    except (OSError, SyntaxError, ValueError, SQLAlchemyError):
        return False
    heads = revisions - parents
    return len(heads) == 1 and rows == list(heads)


def downgrade(db: Database, target: str) -> None:
    _run(db, "downgrade", target)
