"""A TCP proxy on loopback that tests can cut, to make a device offline or lose a response.

Each device under test talks to the shared server through its own proxy:
- `down()` closes every open connection and refuses new ones (the device is offline);
- `up()` lets connections through again;
- `lose_next_responses(n)` forwards the next n requests but drops the server's replies and
  closes the connection, so the server has committed work whose answer the device never got.
A response is recognised as the bytes the server sends back on a connection after a request.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading


class Proxy:
    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._server: asyncio.base_events.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._up = True
        self._lose = 0
        self._lose_match = b""
        self.lost = 0
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"proxy->{target_port}", daemon=True)
        self._thread.start()
        if not self._ready.wait(5):
            raise RuntimeError("proxy did not start")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._server = self._loop.run_until_complete(asyncio.start_server(self._handle, "127.0.0.1", 0))
        self.port = self._server.sockets[0].getsockname()[1]
        self._ready.set()
        self._loop.run_forever()

    def _call(self, fn, timeout: float = 5):  # type: ignore[no-untyped-def]
        async def wrapper():  # type: ignore[no-untyped-def]
            return fn()

        return asyncio.run_coroutine_threadsafe(wrapper(), self._loop).result(timeout)

    def down(self) -> None:
        def cut() -> None:
            self._up = False
            for writer in list(self._writers):
                writer.close()

        self._call(cut)

    def up(self) -> None:
        self._call(lambda: setattr(self, "_up", True))

    def lose_next_responses(self, count: int = 1, request_line: bytes = b"POST /api/sync/push") -> None:
        """Drop the answers to the next `count` requests whose first line starts so."""

        def arm() -> None:
            self._lose = count
            self._lose_match = request_line

        self._call(arm)

    def close(self) -> None:
        def stop() -> None:
            self._up = False
            for writer in list(self._writers):
                writer.close()
            if self._server is not None:
                self._server.close()
            self._loop.stop()

        with contextlib.suppress(Exception):
            self._loop.call_soon_threadsafe(stop)
        self._thread.join(5)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if not self._up:
            writer.close()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.close()
            return
        self._writers.update((writer, up_writer))
        state = {"lose": False}

        async def client_to_server() -> None:
            while data := await reader.read(65536):
                if self._lose > 0 and not state["lose"] and data.startswith(self._lose_match):
                    self._lose -= 1
                    state["lose"] = True
                up_writer.write(data)
                await up_writer.drain()

        async def server_to_client() -> None:
            while data := await up_reader.read(65536):
                if state["lose"]:
                    # The server answered; the device never hears it.
                    self.lost += 1
                    writer.close()
                    up_writer.close()
                    return
                writer.write(data)
                await writer.drain()

        tasks = [asyncio.ensure_future(client_to_server()), asyncio.ensure_future(server_to_client())]
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        except Exception:
            pass
        finally:
            for task in tasks:
                task.cancel()
            for w in (writer, up_writer):
                self._writers.discard(w)
                with contextlib.suppress(Exception):
                    w.close()
