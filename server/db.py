"""Database engines and sessions for SQLite (WAL) and PostgreSQL (psycopg 3).

SQLite allows one writer at a time. Write transactions therefore begin with
`BEGIN IMMEDIATE`, which takes the write lock up front: two writers queue on the busy
timeout instead of deadlocking on a lock upgrade, and change numbers are handed out in
commit order. Reads use a plain deferred `BEGIN` and never block on a writer (WAL).

Every write goes through `Database.write` or `Database.write_unflushed`. The WAL is copied
back into the database file by a thread of its own (`Checkpointer`), not by whichever commit
happens to push the log past SQLite's 1,000-page mark: a sync push or a pulled page of
thousands of records crossed it nearly every time, and waited for the copy and its sync to
disk before it could answer.
"""

from __future__ import annotations

import logging
import select
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import DisconnectionError
from sqlmodel import Session

from server.settings import Settings

log = logging.getLogger("ferry.db")

SQLITE_BUSY_TIMEOUT_MS = 10_000
# A commit still checkpoints by itself past this many WAL pages (~40 MB): the bound on the
# log if the checkpointer falls behind (a reader holding an old snapshot) or is gone.
SQLITE_AUTOCHECKPOINT_PAGES = 10_000


def _refuse_dead_connection(dbapi_conn: Any, _record: Any, _proxy: Any) -> None:
    """Pool checkout (PostgreSQL): a connection the server has closed is replaced before use.

    Instead of a ping (`pool_pre_ping`: a round trip before every request's first
    statement), a look at the socket: an idle pooled connection has nothing to read unless
    the server ended it (it sends its reason, then closes). A connection cut without a word
    fails on use; the pool then drops it."""
    if dbapi_conn.closed or dbapi_conn.broken:
        raise DisconnectionError("connection closed")
    readable, _, _ = select.select([dbapi_conn.fileno()], [], [], 0)
    if readable:
        raise DisconnectionError("the server ended this connection")


@contextmanager
def _committed(session: Session) -> Iterator[None]:
    """Commit what the block did, or roll it back if it raised."""
    try:
        yield
        session.commit()
    except BaseException:
        session.rollback()
        raise


def _unicode_lower(value: object) -> object:
    return value.lower() if isinstance(value, str) else value


class Checkpointer:
    """SQLite: copies committed WAL pages back into the database file, in this thread, after
    writes (`kick`), at most once every `interval` seconds (each copy ends with a sync to
    disk). A PASSIVE checkpoint takes no lock that writers or readers wait on, so the copy
    happens beside the requests instead of inside the commit that crossed the mark.
    In-process, a push of 5,000 new tasks took a median 251-287 ms with SQLite's own
    checkpoints and 236-240 ms without them."""

    def __init__(self, path: str, interval: float = 1.0) -> None:
        self.path = path
        self.interval = interval
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="ferry-checkpoint", daemon=True)
        self._thread.start()

    def kick(self) -> None:
        self._wake.set()

    def stop(self, timeout: float = 5.0) -> None:
        self._stopping.set()
        self._wake.set()
        self._thread.join(timeout)

    def _run(self) -> None:
        conn: sqlite3.Connection | None = None
        last = 0.0
        try:
            while True:
                self._wake.wait()
                if self._stopping.wait(max(0.0, last + self.interval - time.monotonic())):
                    return
                self._wake.clear()  # (writes from now on wake it again)
                if conn is None:  # opened once a write has made the file
                    conn = sqlite3.connect(self.path, timeout=SQLITE_BUSY_TIMEOUT_MS / 1000)
                conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                last = time.monotonic()
        except sqlite3.Error as exc:
            # Commits go on checkpointing by themselves past SQLITE_AUTOCHECKPOINT_PAGES.
            log.warning("background checkpoints stopped: %s", exc)
        finally:
            if conn is not None:
                conn.close()


class Database:
    def __init__(self, settings: Settings) -> None:
        self.url = make_url(settings.resolved_database_url())
        self.is_sqlite = self.url.get_backend_name() == "sqlite"
        self.sqlite_synchronous = settings.sqlite_synchronous
        self.checkpointer: Checkpointer | None = None
        if self.is_sqlite:
            self.engine = self._sqlite_engine(settings, immediate=False)
            self.write_engine = self._sqlite_engine(settings, immediate=True)
            path = self.url.database
            if path and path != ":memory:" and not path.startswith("file:"):
                self.checkpointer = Checkpointer(path)
        else:
            if self.url.get_backend_name() != "postgresql":
                raise ValueError(f"unsupported database {self.url.get_backend_name()!r}")
            self.engine = create_engine(
                self.url,
                pool_size=settings.db_pool_size,
                max_overflow=settings.db_max_overflow,
                # psycopg prepares a statement on its fifth run, and PostgreSQL may then plan
                # it once for any values. Planned while a table was still small, the lookups
                # of a push by id (`id IN (...)`) became sequential scans: a push of 5,000
                # new tasks went from 1.2 s to 14.6 s by the sixth one. Plan each run for
                # its values.
                connect_args={"options": f"{_url_options(self.url)} -c plan_cache_mode=force_custom_plan".strip()},
            )
            self.write_engine = self.engine
            event.listen(self.engine, "checkout", _refuse_dead_connection)

    @staticmethod
    def _sqlite_engine(settings: Settings, *, immediate: bool) -> Engine:
        engine = create_engine(
            settings.resolved_database_url(),
            connect_args={"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000},
            pool_size=max(8, settings.db_pool_size),
            max_overflow=8,
        )
        synchronous = settings.sqlite_synchronous

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_conn, _record):  # type: ignore[no-untyped-def]
            # Let SQLAlchemy's "begin" event issue BEGIN itself (pysqlite's own is deferred).
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
            cur.execute(f"PRAGMA synchronous={synchronous}")
            cur.execute(f"PRAGMA wal_autocheckpoint={SQLITE_AUTOCHECKPOINT_PAGES}")
            cur.close()
            # SQLite's own lower() folds ASCII only, so a case-insensitive search (ILIKE is
            # rendered as `lower(x) LIKE lower(y)`) for "élan" missed "Élan". Python's folds
            # all of Unicode, as PostgreSQL's ILIKE does.
            dbapi_conn.create_function("lower", 1, _unicode_lower, deterministic=True)

        begin = "BEGIN IMMEDIATE" if immediate else "BEGIN"

        @event.listens_for(engine, "begin")
        def _on_begin(conn):  # type: ignore[no-untyped-def]
            conn.exec_driver_sql(begin)

        return engine

    @contextmanager
    def read(self) -> Iterator[Session]:
        with Session(self.engine, expire_on_commit=False) as session:
            yield session

    @contextmanager
    def write(self) -> Iterator[Session]:
        """A session whose transaction holds the write lock; commits on success."""
        with Session(self.write_engine, expire_on_commit=False) as session, _committed(session):
            yield session
        self._written()

    @contextmanager
    def write_unflushed(self) -> Iterator[Session]:
        """Like `write`, but the commit does not wait for the disk: for what a power cut may
        take back without harm (an application crash cannot: the commit is in the log). A
        later flushed commit makes it durable too, since logs are replayed in order."""
        with self.write_engine.connect() as conn:
            if self.is_sqlite:
                # Outside a transaction: SQLite refuses to change it inside one.
                driver = conn.connection.driver_connection
                driver.execute("PRAGMA synchronous=NORMAL")  # type: ignore[union-attr]
            try:
                with Session(bind=conn, expire_on_commit=False) as session, _committed(session):
                    if not self.is_sqlite:
                        session.execute(text("SET LOCAL synchronous_commit TO OFF"))
                    yield session
            finally:
                if self.is_sqlite:
                    driver.execute(f"PRAGMA synchronous={self.sqlite_synchronous}")  # type: ignore[union-attr]
        self._written()

    def _written(self) -> None:
        """A write committed: its WAL pages are for the checkpointer to copy."""
        if self.checkpointer is not None:
            self.checkpointer.kick()

    def ping(self) -> bool:
        try:
            with self.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
            return True
        except Exception:
            return False

    def dispose(self) -> None:
        if self.checkpointer is not None:
            self.checkpointer.stop()
        self.engine.dispose()
        if self.write_engine is not self.engine:
            self.write_engine.dispose()


def _url_options(url: URL) -> str:
    """Server options already given in the database URL (`?options=...`), kept."""
    value = url.query.get("options", "")
    return " ".join(value) if isinstance(value, tuple) else value
