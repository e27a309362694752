"""Applies Alembic migrations at start-up, and lets tests move the schema up and down.

On PostgreSQL an advisory lock makes concurrent starters (several workers, several hosts)
migrate one at a time; SQLite's write lock does the same there.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text

from server.db import Database

MIGRATIONS = Path(__file__).parent / "migrations"
PG_MIGRATION_LOCK = 0x46455252  # "FERR"


def alembic_config(url: str | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    if url:
        cfg.set_main_option("sqlalchemy.url", url)
    return cfg


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None
    return head


def current_revision(db: Database) -> str | None:
    with db.engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def _run(db: Database, action: str, target: str) -> None:
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
    # Checking the version first keeps a warm start from loading every migration script.
    if target == "head" and current_revision(db) == head_revision():
        return
    _run(db, "upgrade", target)


def downgrade(db: Database, target: str) -> None:
    _run(db, "downgrade", target)
