"""SQLite's WAL is copied back into the database file by the database's own thread, not by
the commit that fills it (`server.db.Checkpointer`), on real files."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from sqlalchemy import text

from server.db import SQLITE_AUTOCHECKPOINT_PAGES, Checkpointer, Database
from server.settings import Settings
from tests.syncworld import wait_for


def fill(conn: sqlite3.Connection, rows: int) -> None:
    conn.execute("CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, v TEXT)")
    conn.executemany("INSERT INTO t (v) VALUES (?)", [("x" * 500,) for _ in range(rows)])
    conn.commit()


def test_the_thread_checkpoints_what_commits_left_in_the_log(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite"
    writer = sqlite3.connect(path)
    writer.execute("PRAGMA journal_mode=WAL")
    writer.execute("PRAGMA wal_autocheckpoint=0")  # commits never copy the log themselves
    fill(writer, 20_000)  # ~10 MB, far past SQLite's own 1,000-page mark
    assert path.stat().st_size < 1_000_000  # all of it still in the log
    checkpointer = Checkpointer(str(path), interval=0.05)
    try:
        checkpointer.kick()
        wait_for(lambda: path.stat().st_size > 9_000_000, 10, "the log copied back into the file")
        fill(writer, 20_000)  # the next kick, no sooner than `interval` after the first
        size = path.stat().st_size
        checkpointer.kick()
        wait_for(lambda: path.stat().st_size > size + 9_000_000, 10, "the second log copied back")
    finally:
        checkpointer.stop()
        writer.close()
    assert not checkpointer._thread.is_alive()


def test_database_writes_wake_the_checkpointer_and_commits_leave_the_copy_to_it(tmp_path: Path) -> None:
    db = Database(Settings(mode="server", data_dir=tmp_path))
    path = tmp_path / "ferry.db"
    try:
        assert db.checkpointer is not None
        with db.write() as session:
            mark = session.execute(text("PRAGMA wal_autocheckpoint")).scalar()
            assert mark == SQLITE_AUTOCHECKPOINT_PAGES  # a safety net far past one push
            session.execute(text("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)"))
        for _ in range(4):
            with db.write() as session:
                session.execute(text("INSERT INTO t (v) VALUES (:v)"), [{"v": "y" * 500} for _ in range(5_000)])
        wait_for(lambda: path.stat().st_size > 9_000_000, 10, "the writes in the database file")
        with db.read() as session:
            assert session.execute(text("SELECT count(*) FROM t")).scalar() == 20_000
    finally:
        db.dispose()
    assert db.checkpointer is not None and not db.checkpointer._thread.is_alive()
