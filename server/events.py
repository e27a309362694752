"""Fan-out of DESIGN.md's events (`task.created`, `note.deleted`, `sync.status`, ...) to `/ws`.

Routes run in worker threads, so `publish` is thread-safe: it hands the event to the
event loop, which copies it into each connected socket's queue. A slow page whose queue
fills up is dropped rather than allowed to hold memory; the page reconnects and re-fetches.

With several server processes, a process's memory reaches only its own sockets, so the hub
takes an optional `fanout` callback (server mode on PostgreSQL: `server.pgnotify`), called
with every published event; the other processes hear it through PostgreSQL NOTIFY and hand
it to their own sockets with `deliver`. Without a fanout (SQLite, the desktop) nothing changes.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import orjson

log = logging.getLogger("ferry.events")
QUEUE_LIMIT = 1000


class EventHub:
    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._queues: dict[str, set[asyncio.Queue[bytes | None]]] = defaultdict(set)
        #: called with (channel, type, data) for every published event (other processes)
        self.fanout: Callable[[str, str, dict[str, Any]], None] | None = None

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    def subscribe(self, channel: str) -> asyncio.Queue[bytes | None]:
        self.bind(asyncio.get_running_loop())
        queue: asyncio.Queue[bytes | None] = asyncio.Queue(QUEUE_LIMIT)
        self._queues[channel].add(queue)
        return queue

    def unsubscribe(self, channel: str, queue: asyncio.Queue[bytes | None]) -> None:
        subs = self._queues.get(channel)
        if subs is not None:
            subs.discard(queue)
            if not subs:
                del self._queues[channel]

    def subscribers(self, channel: str) -> int:
        return len(self._queues.get(channel, ()))

    def publish(self, channel: str, type_: str, data: dict[str, Any]) -> None:
        """Send an event to every socket on `channel` (a user id; "" on the desktop), here and
        (through `fanout`) in the other server processes."""
        fanout = self.fanout
        if fanout is not None:
            try:
                fanout(channel, type_, data)
            except Exception:  # a notification is best effort; the scheduled sync is the fallback
                log.exception("event fan-out failed")
        self.deliver(channel, type_, data)

    def deliver(self, channel: str, type_: str, data: dict[str, Any]) -> None:
        """Send an event to this process's sockets on `channel` only."""
        loop = self._loop
        if loop is None or loop.is_closed() or channel not in self._queues:
            return
        message = orjson.dumps({"type": type_, "data": data})
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            self._fanout(channel, message)
        else:
            loop.call_soon_threadsafe(self._fanout, channel, message)

    def _fanout(self, channel: str, message: bytes) -> None:
        for queue in list(self._queues.get(channel, ())):
            try:
                queue.put_nowait(message)
            except asyncio.QueueFull:
                log.warning("dropping a websocket client that stopped reading")
                self.unsubscribe(channel, queue)
                # Tell its sender loop to close the socket.
                queue._queue.clear()  # type: ignore[attr-defined]
                queue.put_nowait(None)
