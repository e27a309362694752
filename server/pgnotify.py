"""Events across server processes through PostgreSQL `LISTEN/NOTIFY` (DESIGN.md sync rule 7).

Each server process (uvicorn worker) on PostgreSQL runs one `PgNotifier`:

- a **sender** thread with its own autocommit connection: `EventHub.publish` hands it every
  event (after the write committed) and it runs `SELECT pg_notify(channel, payload)`. A sync
  push sends its own notification inside its transaction instead (`message`), which saves
  the hand-over and the round trip on the busiest path;
- a **listener** thread with another connection that `LISTEN`s on the same channel and hands
  every event that came from *another* process to the local hub (`EventHub.deliver`), which
  copies it to that process's WebSockets.

Events are small (`sync.changes`, `task.updated` with the record); a payload that would not
fit NOTIFY's 8,000-byte limit is cut down to the record id, which is all a device needs to
know that it should pull. Both threads reconnect after a lost connection; notifications are
best effort (a device's scheduled sync is the fallback), so they never hold up a request.
"""

from __future__ import annotations

import logging
import queue
import threading
import uuid
from typing import Any

import orjson
import psycopg
from sqlalchemy.engine import URL

from server.events import EventHub

log = logging.getLogger("ferry.pgnotify")

CHANNEL = "ferry_events"
MAX_PAYLOAD = 7900  # PostgreSQL's limit is 8000 bytes
RECONNECT_SECONDS = 0.5
POLL_SECONDS = 0.25
QUEUE_LIMIT = 10_000


def conninfo(url: URL) -> str:
    """A libpq connection string for a SQLAlchemy `postgresql+psycopg://` URL."""
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


class PgNotifier:
    def __init__(self, dsn: str, hub: EventHub, channel: str = CHANNEL) -> None:
        self.dsn = dsn
        self.hub = hub
        self.channel = channel
        self.origin = uuid.uuid4().hex[:16]
        self._outbox: queue.Queue[bytes] = queue.Queue(QUEUE_LIMIT)
        self._stop = threading.Event()
        self._listening = threading.Event()
        self._threads: list[threading.Thread] = []

    # -- lifecycle -----------------------------------------------------------------------

    def start(self, wait: float = 5.0) -> None:
        """Start both threads; wait (bounded) until LISTEN is in place."""
        for target, name in ((self._listen, "ferry-pg-listen"), (self._send, "ferry-pg-notify")):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)
        if not self._listening.wait(wait):
            log.warning("not listening for notifications yet (database unreachable?); will keep trying")

    def stop(self, timeout: float = 3.0) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout)
        self._threads.clear()

    # -- sending -------------------------------------------------------------------------

    def message(self, channel: str, type_: str, data: dict[str, Any]) -> tuple[str, str]:
        """The NOTIFY channel and payload that carry an event to the other processes: for a
        transaction to send itself (PostgreSQL delivers it at commit, and only then)."""
        payload = orjson.dumps({"o": self.origin, "c": channel, "t": type_, "d": data})
        if len(payload) > MAX_PAYLOAD:
            small = {"id": data["id"]} if "id" in data else {}
            payload = orjson.dumps({"o": self.origin, "c": channel, "t": type_, "d": small})
        return self.channel, payload.decode()

    def send(self, channel: str, type_: str, data: dict[str, Any]) -> None:
        """`EventHub.fanout`: queue the event for the other processes (never blocks)."""
        try:
            self._outbox.put_nowait(self.message(channel, type_, data)[1].encode())
        except queue.Full:
            log.warning("notification queue full; dropping an event")

    def _send(self) -> None:
        conn: psycopg.Connection | None = None
        while not self._stop.is_set():
            try:
                payload = self._outbox.get(timeout=POLL_SECONDS)
            except queue.Empty:
                continue
            while not self._stop.is_set():
                try:
                    if conn is None or conn.closed:
                        conn = psycopg.connect(self.dsn, autocommit=True, connect_timeout=3)
                    conn.execute("SELECT pg_notify(%s, %s)", (self.channel, payload.decode()))
                    break
                except psycopg.Error as exc:
                    log.warning("could not send a notification (%s); reconnecting", exc)
                    if conn is not None:
                        conn.close()
                    conn = None
                    self._stop.wait(RECONNECT_SECONDS)
        if conn is not None:
            conn.close()

    # -- listening -----------------------------------------------------------------------

    def _listen(self) -> None:
        while not self._stop.is_set():
            try:
                with psycopg.connect(self.dsn, autocommit=True, connect_timeout=3) as conn:
                    conn.execute(f'LISTEN "{self.channel}"')
                    self._listening.set()
                    while not self._stop.is_set():
                        for notify in conn.notifies(timeout=POLL_SECONDS):
                            self._deliver(notify.payload)
            except psycopg.Error as exc:
                self._listening.clear()
                log.warning("notification listener lost its connection (%s); reconnecting", exc)
                self._stop.wait(RECONNECT_SECONDS)

    def _deliver(self, payload: str) -> None:
        try:
            event = orjson.loads(payload)
            if event["o"] == self.origin:
                return  # this process has delivered it already
            self.hub.deliver(event["c"], event["t"], event["d"])
        except Exception:
            log.exception("bad notification payload")
