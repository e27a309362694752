"""/docs, /redoc and /openapi.json served with no network, the favicon, and the two commands
as real subprocesses: `python -m server` (help text, defaults, health, SIGTERM) and the
desktop launcher headless (runtime file, single instance, clean shutdown, no-display exit,
stale runtime file)."""

from __future__ import annotations

import json
import os
import re
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpx
import pytest

from server.settings import Settings
from tests.servers import ROOT, Running, ferry_server_process, stop_process

EXTERNAL_URL = re.compile(r"""(?:https?:|wss?:)?//[A-Za-z0-9\[]""")


class _Refs(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.refs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if name in ("src", "href", "spec-url", "data-openapi") and value:
                self.refs.append(value)


def _check_docs(client: httpx.Client) -> None:
    for page in ("/docs", "/redoc"):
        response = client.get(page)
        assert response.status_code == 200, page
        assert response.headers["content-type"].startswith("text/html")
        html = response.text
        assert not EXTERNAL_URL.search(html), (page, EXTERNAL_URL.search(html))
        csp = response.headers.get("content-security-policy", "")
        assert "default-src 'self'" in csp, page
        assert "script-src" not in csp or "unsafe" not in csp.split("script-src", 1)[1].split(";")[0]

        parser = _Refs()
        parser.feed(html)
        scripts = [r for r in parser.refs if r.endswith(".js")]
        assert scripts, f"{page} loads its script from the app"
        for ref in parser.refs:
            absolute = urljoin(str(response.url), ref)
            parts = urlsplit(absolute)
            assert (parts.scheme, parts.netloc) == ("http", urlsplit(str(client.base_url)).netloc), ref
            asset = client.get(ref)
            assert asset.status_code == 200, (page, ref, asset.status_code)
            assert len(asset.content) > 0, ref
            if ref.endswith(".js"):
                assert "javascript" in asset.headers["content-type"], ref
            if ref.endswith(".css"):
                assert asset.headers["content-type"].startswith("text/css"), ref

    init = client.get("/static/docs-init/swagger-init.js")
    assert init.status_code == 200
    assert not EXTERNAL_URL.search(init.text.replace("window.location.origin", ""))


def test_docs_work_offline_in_local_mode(local_app: Running) -> None:
    # The docs pages load without the token (the window may open them); the API stays guarded.
    with httpx.Client(base_url=local_app.url, timeout=10) as anon:
        _check_docs(anon)
        spec = anon.get("/openapi.json")
        assert spec.status_code == 200
        favicon = anon.get("/favicon.ico")
        assert favicon.status_code == 200
        assert favicon.headers["content-type"].startswith("image/")
        assert len(favicon.content) > 0
    paths = spec.json()["paths"]
    for path in ("/api/health", "/api/tasks", "/api/tasks/{id}", "/api/notes", "/api/notes/{id}", "/api/settings"):
        assert path in paths, path
    assert set(paths["/api/tasks/{id}"]) >= {"get", "put", "patch", "delete"}
    assert set(paths["/api/tasks"]) >= {"get", "post"}
    assert not any(p.startswith("/api/auth") for p in paths)  # server-only routes are not offered here


def test_docs_and_openapi_in_server_mode(server_app: Running) -> None:
    with server_app.client() as client:
        _check_docs(client)
        spec = client.get("/openapi.json").json()
    assert spec["info"]["title"] == "Ferry"
    paths = spec["paths"]
    expected = [
        "/api/health",
        "/api/tasks",
        "/api/tasks/{id}",
        "/api/notes",
        "/api/notes/{id}",
        "/api/auth/register",
        "/api/auth/token",
        "/api/auth/refresh",
        "/api/users/me",
    ]
    for path in expected:
        assert path in paths, path
    assert "/api/settings" not in paths  # the desktop's own settings are local-only
    # The token endpoint is documented as the OAuth2 password form.
    form = paths["/api/auth/token"]["post"]["requestBody"]["content"]
    assert "application/x-www-form-urlencoded" in form
    # Each of these operations says what errors it can return, not only its success.
    for path in expected[1:]:
        for method, op in paths[path].items():
            assert any(code.startswith("4") for code in op["responses"]), (method, path)


# -- ferry-server -------------------------------------------------------------------------------


def _run(args: list[str], env: dict[str, str] | None = None, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, timeout=timeout, cwd=ROOT, env=env, check=False
    )


def test_server_help_and_defaults() -> None:
    result = _run(["-m", "server", "--help"])
    assert result.returncode == 0, result.stderr
    text = result.stdout
    assert text.startswith("usage: ferry-server")
    for option in ("--host", "--port", "--database-url", "--workers", "--data-dir"):
        assert option in text, option
    flat = " ".join(text.split())
    assert "127.0.0.1" in flat and "8000" in flat
    assert "postgresql+psycopg://" in flat

    fields = Settings.model_fields
    assert fields["host"].default == "127.0.0.1"  # never every interface unless asked
    assert fields["port"].default == 8000
    assert fields["workers"].default == 1

    bad = _run(["-m", "server", "--port", "not-a-number"])
    assert bad.returncode == 2
    assert "--port" in bad.stderr


def test_server_process_serves_and_stops_on_sigterm(tmp_path: Path) -> None:
    with ferry_server_process(tmp_path / "srv") as server:
        health = httpx.get(f"{server.url}/api/health", timeout=5)
        assert health.status_code == 200
        assert health.json()["mode"] == "server"
        assert health.json()["status"] == "ok"
        assert (tmp_path / "srv" / "ferry.db").exists()  # SQLite in the data directory by default
        pid = server.proc.pid

        started = time.monotonic()
        server.proc.send_signal(signal.SIGTERM)
        try:
            code = server.proc.wait(10)
        except subprocess.TimeoutExpired:
            pytest.fail(f"ferry-server (pid {pid}) ignored SIGTERM for 10 s")
        log = server.log.read_text()
        # uvicorn re-raises the signal after a graceful shutdown, so -SIGTERM is a clean exit too.
        assert code in (0, -signal.SIGTERM), log[-2000:]
        assert "Application shutdown complete" in log
        assert "Traceback" not in log
        assert time.monotonic() - started < 10
        with pytest.raises(httpx.HTTPError):
            httpx.get(f"{server.url}/api/health", timeout=1)


# -- the desktop launcher, headless --------------------------------------------------------------


def _desktop_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FERRY_")}
    env.pop("DISPLAY", None)
    env.pop("WAYLAND_DISPLAY", None)
    return env


@dataclass
class Desktop:
    proc: subprocess.Popen[bytes]
    data_dir: Path
    runtime: dict[str, Any]

    def stop(self, timeout: float = 10) -> int:
        return stop_process(self.proc, signal.SIGTERM, timeout)


def wait_runtime(data_dir: Path, proc: subprocess.Popen[bytes], output: Path, timeout: float = 30) -> dict[str, Any]:
    """The runtime file once it names `proc` (a stale one may be there first)."""
    path = data_dir / "runtime.json"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"ferry exited early with {proc.returncode}:\n{output.read_text()[-3000:]}")
        try:
            info = json.loads(path.read_text())
        except (FileNotFoundError, ValueError):
            info = None
        if isinstance(info, dict) and info.get("pid") == proc.pid:
            return info
        time.sleep(0.05)
    raise TimeoutError(f"{path} did not appear")


@contextmanager
def desktop(data_dir: Path) -> Iterator[Desktop]:
    """`python -m desktop --headless` in a subprocess, stopped by its PID afterwards."""
    data_dir.mkdir(parents=True, exist_ok=True)
    output = data_dir.parent / f"{data_dir.name}.out"
    with open(output, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "desktop", "--headless", "--data-dir", str(data_dir)],
            stdout=out, stderr=subprocess.STDOUT, cwd=ROOT, env=_desktop_env(),
        )  # fmt: skip
    running = Desktop(proc, data_dir, {})
    try:
        running.runtime = wait_runtime(data_dir, proc, output)
        yield running
    finally:
        running.stop()


def test_headless_desktop_lifecycle(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    with desktop(data_dir) as app:
        runtime_file = data_dir / "runtime.json"
        assert stat.S_IMODE(runtime_file.stat().st_mode) == 0o600
        info = app.runtime
        assert set(info) == {"url", "token", "pid"}
        assert info["pid"] == app.proc.pid
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+", info["url"])
        assert len(info["token"]) >= 32

        health = httpx.get(f"{info['url']}/api/health", timeout=5)
        assert health.status_code == 200
        assert health.json()["mode"] == "local"
        assert httpx.get(f"{info['url']}/api/tasks", timeout=5).status_code == 401
        headers = {"Authorization": f"Bearer {info['token']}"}
        created = httpx.post(f"{info['url']}/api/tasks", json={"title": "from a script"}, headers=headers, timeout=5)
        assert created.status_code == 201

        # A second launch on the same data directory hands over and leaves.
        second = _run(["-m", "desktop", "--headless", "--data-dir", str(data_dir)], env=_desktop_env())
        assert second.returncode == 0, second.stderr
        assert second.stdout.strip() == info["url"]
        assert json.loads(runtime_file.read_text()) == info  # the first one's file is untouched
        assert httpx.get(f"{info['url']}/api/health", timeout=5).status_code == 200

        started = time.monotonic()
        app.proc.send_signal(signal.SIGTERM)
        try:
            code = app.proc.wait(5)
        except subprocess.TimeoutExpired:
            pytest.fail("the headless app did not exit within 5 s of SIGTERM")
        assert code == 0
        assert time.monotonic() - started < 5
        assert not runtime_file.exists()
        with pytest.raises(httpx.HTTPError):
            httpx.get(f"{info['url']}/api/health", timeout=1)

    # The data survives: a new launch serves the task created above, under a new token.
    with desktop(data_dir) as again:
        assert again.runtime["token"] != info["token"]
        headers = {"Authorization": f"Bearer {again.runtime['token']}"}
        titles = [t["title"] for t in httpx.get(f"{again.runtime['url']}/api/tasks", headers=headers).json()]
        assert titles == ["from a script"]


def test_no_display_without_headless_exits_2(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    result = _run(["-m", "desktop", "--data-dir", str(data_dir)], env=_desktop_env())
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "display" in lines[0].lower()
    assert "--headless" in lines[0]
    assert result.stdout == ""
    assert not (data_dir / "runtime.json").exists()


@pytest.mark.parametrize(
    "stale",
    [
        '{"url": "http://127.0.0.1:1", "token": "old", "pid": 999999999}',
        "not json at all {",
    ],
    ids=["dead-instance", "garbage"],
)
def test_stale_runtime_file_is_replaced(tmp_path: Path, stale: str) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    (data_dir / "runtime.json").write_text(stale)
    with desktop(data_dir) as app:
        info = app.runtime  # wait_runtime waited for this process's own pid
        assert info["url"] != "http://127.0.0.1:1"
        assert stat.S_IMODE((data_dir / "runtime.json").stat().st_mode) == 0o600
        assert httpx.get(f"{info['url']}/api/health", timeout=5).status_code == 200
        headers = {"Authorization": f"Bearer {info['token']}"}
        assert httpx.get(f"{info['url']}/api/tasks", headers=headers, timeout=5).status_code == 200
        assert app.stop() == 0
    assert not (data_dir / "runtime.json").exists()
