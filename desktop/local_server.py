"""The local API: uvicorn in a background thread, on a socket bound before it starts.

Binding `127.0.0.1:0` ourselves gives the port at once with no scan and no race. The socket
is made with `IPPROTO_TCP` explicitly: asyncio only sets TCP_NODELAY on sockets whose
protocol is TCP, and without it every response waited ~40 ms for a delayed ACK.

The desktop binds (and listens) first thing, so the window can start loading the page while
the app is still being imported: the kernel queues the connection until uvicorn accepts it.
"""

from __future__ import annotations

import socket
import threading
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fastapi import FastAPI


def bind_loopback(port: int = 0) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    sock.listen(128)
    sock.set_inheritable(False)
    return sock


class LocalServer:
    def __init__(self, app: FastAPI, sock: socket.socket) -> None:
        import uvicorn

        self.sock = sock
        self.port = sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(
            app,
            log_level="warning",
            access_log=False,
            lifespan="on",
            timeout_graceful_shutdown=2,
            ws_ping_interval=20,
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self._run, name="ferry-local-api", daemon=True)

    def _run(self) -> None:
        self.server.run(sockets=[self.sock])

    def start(self, timeout: float = 10.0) -> None:
        self.thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the local API did not start")
            time.sleep(0.005)

    def stop(self, timeout: float = 3.0) -> None:
        self.server.should_exit = True
        self.thread.join(timeout)
        if self.thread.is_alive():
            self.server.force_exit = True
            self.thread.join(1.0)
