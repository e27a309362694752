"""A small, bounded WebSocket client for tests (the `websockets` package's sync client).

Every call has a timeout, and `expect_event` skips unrelated events (e.g. `sync.status`)
but never waits past its deadline.
"""

from __future__ import annotations

import json
import socket
import time
from typing import Any

from websockets.exceptions import InvalidStatus
from websockets.sync.client import ClientConnection, connect

OPEN_TIMEOUT = 5.0


def ws_url(http_url: str, path: str = "/ws") -> str:
    return http_url.replace("http://", "ws://", 1) + path


def open_ws(
    http_url: str,
    path: str = "/ws",
    headers: dict[str, str] | None = None,
    origin: str | None = None,
    host: str | None = None,
) -> ClientConnection:
    """Connect to the app at `http_url`; `host` replaces the Host header (the TCP peer stays the app)."""
    url = ws_url(http_url, path)
    sock = None
    if host is not None:
        # Connect to the real address, but name another host in the handshake.
        real = url.split("//", 1)[1].split("/", 1)[0]
        address, port = real.rsplit(":", 1)
        sock = socket.create_connection((address, int(port)), timeout=OPEN_TIMEOUT)
        url = url.replace(real, host, 1)
    return connect(
        url,
        sock=sock,
        additional_headers=headers,
        origin=origin,  # type: ignore[arg-type]
        open_timeout=OPEN_TIMEOUT,
        close_timeout=2,
        proxy=None,
    )


def refused_status(http_url: str, **kwargs: Any) -> int | None:
    """The HTTP status with which the handshake was refused, or None if it was accepted."""
    try:
        conn = open_ws(http_url, **kwargs)
    except InvalidStatus as exc:
        return exc.response.status_code
    conn.close()
    return None


def expect_event(conn: ClientConnection, type_: str, timeout: float = 1.0, **match: Any) -> dict[str, Any]:
    """The next event of `type_` whose data has the `match` items, within `timeout` seconds."""
    deadline = time.monotonic() + timeout
    seen: list[str] = []
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"no {type_} event {match} within {timeout}s; saw {seen}")
        try:
            raw = conn.recv(timeout=left)
        except TimeoutError:
            continue
        event = json.loads(raw)
        seen.append(event.get("type"))
        data = event.get("data") or {}
        if event.get("type") == type_ and all(data.get(k) == v for k, v in match.items()):
            return event


def no_event(conn: ClientConnection, wait: float) -> dict[str, Any] | None:
    """The first record event arriving within `wait` seconds, or None (quiet socket)."""
    deadline = time.monotonic() + wait
    while (left := deadline - time.monotonic()) > 0:
        try:
            event = json.loads(conn.recv(timeout=left))
        except TimeoutError:
            return None
        if str(event.get("type", "")).startswith(("task.", "note.")):
            return event
    return None
