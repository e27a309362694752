"""Real Ferry servers for tests: uvicorn on a loopback socket, in a thread or in a subprocess."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from desktop.local_server import LocalServer, bind_loopback
from server.app import create_app
from server.settings import Settings

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Running:
    url: str
    port: int
    settings: Settings
    server: LocalServer | None = None
    token: str | None = None

    def client(self, **kwargs: object) -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        headers.update(kwargs.pop("headers", {}) or {})  # type: ignore[arg-type]
        return httpx.Client(base_url=self.url, headers=headers, timeout=30, **kwargs)  # type: ignore[arg-type]

    @property
    def app(self):  # type: ignore[no-untyped-def]
        assert self.server is not None
        return self.server.server.config.app


@contextmanager
def serve(settings: Settings) -> Iterator[Running]:
    """Run the app in `settings`' mode on a fresh loopback port, in this process."""
    app = create_app(settings)
    server = LocalServer(app, bind_loopback())
    server.start()
    try:
        yield Running(server.url, server.port, settings, server, settings.local_token)
    finally:
        server.stop()


def local_settings(data_dir: Path, **overrides: object) -> Settings:
    return Settings(mode="local", data_dir=data_dir, local_token="test-token-" + "x" * 20, **overrides)


def server_settings(data_dir: Path, database_url: str | None = None, **overrides: object) -> Settings:
    return Settings(mode="server", data_dir=data_dir, database_url=database_url, secret_key="s" * 64, **overrides)


def free_port() -> int:
    sock = bind_loopback()
    port = sock.getsockname()[1]
    sock.close()
    return port


@dataclass
class Process:
    proc: subprocess.Popen[bytes]
    url: str
    log: Path

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10) -> int:
        return stop_process(self.proc, sig, timeout)


def stop_process(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM, timeout: float = 10) -> int:
    """Signal a process we started, wait (bounded), kill it if it lingers; its exit status."""
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
    return proc.returncode


def wait_healthy(url: str, proc: subprocess.Popen[bytes] | None = None, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            if httpx.get(f"{url}/api/health", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise TimeoutError(f"{url} did not become healthy")


@contextmanager
def ferry_server_process(
    data_dir: Path, *args: str, env: dict[str, str] | None = None, port: int | None = None
) -> Iterator[Process]:
    """`python -m server` in a subprocess, stopped by its PID afterwards. Given the `port` (and
    data directory) of an earlier one, it is that server started again."""
    port = port or free_port()
    log = data_dir / "server.log"
    data_dir.mkdir(parents=True, exist_ok=True)
    full_env = {**os.environ, "FERRY_SECRET_KEY": "k" * 64, **(env or {})}
    with open(log, "ab") as fh:  # appended: a server started again keeps the first one's log
        proc = subprocess.Popen(
            [sys.executable, "-m", "server", "--port", str(port), "--data-dir", str(data_dir), *args],
            stdout=fh,
            stderr=subprocess.STDOUT,
            env=full_env,
            cwd=ROOT,
        )
    running = Process(proc, f"http://127.0.0.1:{port}", log)
    try:
        wait_healthy(running.url, proc)
        yield running
    finally:
        running.stop()
