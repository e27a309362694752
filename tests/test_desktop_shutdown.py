"""Shutdown with sync on: SIGTERM stops the scheduler, pushes what is still pending in one last
bounded sync, and exits within 2 s; with a shared server that stopped answering, that last
sync gives up after its bound (`final_sync_seconds`, 3 s) and the change stays safely pending.
The desktop is `python -m desktop --headless`; the shared server runs in this process."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from desktop.local_server import LocalServer, bind_loopback
from server.app import create_app
from tests.desktop_harness import App
from tests.servers import server_settings

HEADLESS = [sys.executable, "-m", "desktop", "--headless"]
# The test must not touch the keyring of the machine it runs on.
ENV = {"FERRY_USE_KEYRING": "false"}


class Stallable:
    """ASGI wrapper: while `stalled` is set, sync requests get no answer."""

    def __init__(self, app) -> None:  # type: ignore[no-untyped-def]
        self.app = app
        self.stalled = threading.Event()
        self.received = 0

    async def __call__(self, scope, receive, send) -> None:  # type: ignore[no-untyped-def]
        if scope["type"] == "http" and scope["path"].startswith("/api/sync/"):
            self.received += 1
            while self.stalled.is_set():
                await asyncio.sleep(0.05)
        await self.app(scope, receive, send)


@contextmanager
def shared_server(data_dir: Path) -> Iterator[tuple[str, Stallable]]:
    app = Stallable(create_app(server_settings(data_dir)))
    server = LocalServer(app, bind_loopback())  # type: ignore[arg-type]
    server.start()
    try:
        yield server.url, app
    finally:
        app.stalled.clear()
        server.stop()


def server_titles(url: str) -> list[str]:
    token = httpx.post(f"{url}/api/auth/token", data={"username": "dana", "password": "correct horse 1"}).json()
    headers = {"Authorization": f"Bearer {token['access_token']}"}
    return sorted(t["title"] for t in httpx.get(f"{url}/api/tasks", headers=headers).json())


def pending(db: Path) -> int:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        return conn.execute("SELECT count(*) FROM changes WHERE NOT pushed").fetchone()[0]


def connected_app(data_dir: Path, server_url: str) -> App:
    app = App(HEADLESS, data_dir, None, env=ENV).start()
    app.wait_log("local API at", 60)
    with app.api() as api:
        body = {"server_url": server_url, "username": "dana", "password": "correct horse 1", "register": True}
        response = api.post("/api/sync/connect", json=body)
        assert response.status_code == 200, response.text
        deadline = time.monotonic() + 10
        while api.get("/api/sync/status").json()["state"] != "idle":
            assert time.monotonic() < deadline, api.get("/api/sync/status").json()
            time.sleep(0.05)
    return app


def stop_and_time(app: App, send: bool = True) -> float:
    """Seconds until the app exits after SIGTERM (`send`: sent here; otherwise just sent)."""
    assert app.proc is not None
    started = time.monotonic()
    if send:
        app.proc.send_signal(signal.SIGTERM)
    code = app.wait_exit(10)
    took = time.monotonic() - started
    print(f"exit {took:.3f} s after SIGTERM")
    assert code == 0, app.output()[-2000:]
    assert not (app.data_dir / "runtime.json").exists()
    return took


def test_sigterm_pushes_the_last_changes_then_exits(tmp_path: Path) -> None:
    with shared_server(tmp_path / "server") as (url, _):
        app = connected_app(tmp_path / "desk", url)
        try:
            with app.api() as api:
                for title in ("first", "second", "third"):  # the later ones wait for the debounce
                    assert api.post("/api/tasks", json={"title": title}).status_code == 201
            took = stop_and_time(app)
        finally:
            app.stop()
        assert took < 2.0, f"exit took {took:.2f} s"
        assert pending(tmp_path / "desk" / "ferry.db") == 0
        assert server_titles(url) == ["first", "second", "third"]


def test_a_stalled_server_holds_exit_only_for_the_final_sync_bound(tmp_path: Path) -> None:
    with shared_server(tmp_path / "server") as (url, server):
        app = connected_app(tmp_path / "desk", url)
        try:
            server.stalled.set()
            with app.api() as api:
                assert api.post("/api/tasks", json={"title": "written while the server hangs"}).status_code == 201
            time.sleep(0.5)  # the debounced sync is now stuck waiting for an answer
            took = stop_and_time(app)
        finally:
            app.stop()
        assert took < 3.0 + 1.5, f"exit took {took:.2f} s"
        assert pending(tmp_path / "desk" / "ferry.db") >= 1  # kept for the next start, not lost


def wait_until_main_thread_sleeps(pid: int, timeout: float = 10.0) -> None:
    """Until the main thread has been asleep (waiting to be stopped) for 0.3 s: a signal that
    arrives while it still runs Python code is handled there anyway."""
    deadline = time.monotonic() + timeout
    asleep_since = None
    while time.monotonic() < deadline:
        with open(f"/proc/{pid}/task/{pid}/stat") as fh:
            state = fh.read().rsplit(")", 1)[1].split()[0]
        now = time.monotonic()
        asleep_since = (asleep_since or now) if state == "S" else None
        if asleep_since is not None and now - asleep_since >= 0.3:
            return
        time.sleep(0.01)
    raise AssertionError("the app's main thread never settled")


def test_sigterm_taken_by_any_thread_stops_the_app(tmp_path: Path) -> None:
    """A signal sent to the process may be taken by any of its threads, and the main thread,
    blocked waiting to be stopped, then never ran Python's handler: the app kept running.
    `kill` aimed at a thread id makes that thread the one that takes it."""
    app = App(HEADLESS, tmp_path / "desk", None, env=ENV).start()
    try:
        app.wait_log("local API at", 60)
        assert app.proc is not None
        with app.api() as api:
            assert api.get("/api/health").status_code == 200
        wait_until_main_thread_sleeps(app.proc.pid)
        others = sorted(int(tid) for tid in os.listdir(f"/proc/{app.proc.pid}/task") if int(tid) != app.proc.pid)
        assert others, "the app runs its API in a thread of its own"
        os.kill(others[-1], signal.SIGTERM)
        took = stop_and_time(app, send=False)
    finally:
        app.stop()
    assert took < 2.0, f"exit took {took:.2f} s"
