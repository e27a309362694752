"""What the desktop leaves out of its start-up, and that it still works: the local API imports
none of the shared server's modules nor the sync client's HTTP and scheduling libraries; a held
sync engine reads the stored credentials only once released (the window's first page is on
screen), at its deadline, or when someone signs in; and the few Qt enums pywebview names
unscoped are still there when qtpy is kept from promoting all of them. No window needed."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

import sync.engine
from sync.credentials import CredentialStore
from sync.engine import ConnectError, SyncEngine
from sync.store import Account

ROOT = Path(__file__).resolve().parent.parent


def run_python(code: str, *args: str) -> str:
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        cwd=ROOT, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout.strip()


def test_the_local_api_imports_only_what_local_mode_uses(tmp_path: Path) -> None:
    loaded = run_python(
        """
        import sys
        from pathlib import Path
        from server.app import create_app
        from server.settings import Settings

        create_app(Settings(mode="local", data_dir=Path(sys.argv[1]), local_token="x" * 32), hold_sync=True)
        later = ("httpx", "apscheduler", "keyring", "server.routes.auth", "server.routes.sync",
                 "server.ratelimit", "server.pgnotify", "jwt", "pwdlib", "psycopg")
        print(",".join(name for name in later if name in sys.modules))
        """,
        str(tmp_path),
    )
    assert loaded == ""


# -- the held sync engine ---------------------------------------------------------------------------


class OneAccount:
    """A store signed into an account on a server that is not there (port 9: discard)."""

    node = "0123456789abcdef"

    def __init__(self) -> None:
        self.signed_in: list[str] = []

    def account(self) -> Account | None:
        return Account("http://127.0.0.1:9", "alice", "user-1")

    def pending_count(self) -> int:
        return 0

    def sign_in(self, account: Account) -> None:
        self.signed_in.append(account.username)


class CountedCredentials(CredentialStore):
    def __init__(self, data_dir: Path, token: str | None) -> None:
        super().__init__(data_dir, use_keyring=False)
        self.token = token
        self.loads = 0

    def load(self) -> str | None:
        self.loads += 1
        return self.token


def held_engine(tmp_path: Path, token: str | None) -> tuple[SyncEngine, CountedCredentials, list[Any]]:
    credentials = CountedCredentials(tmp_path, token)
    engine = SyncEngine(OneAccount(), credentials)  # type: ignore[arg-type]
    begun: list[Any] = []

    async def begin(account: Account, refresh_token: str, *args: Any) -> None:
        begun.append((account.username, refresh_token))  # no session, no network

    engine._begin = begin  # type: ignore[method-assign]
    return engine, credentials, begun


async def until(condition: Any, timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.01)


def test_a_held_sync_start_reads_the_credentials_once_released(tmp_path: Path) -> None:
    async def scenario() -> None:
        engine, credentials, begun = held_engine(tmp_path, "refresh-token")
        await engine.start(held=True)
        # The first page sees the account at once, signed in as far as is known.
        assert engine.status.state == "idle" and engine.status.username == "alice"
        await asyncio.sleep(0.1)
        assert credentials.loads == 0 and begun == [] and engine._scheduler is None
        await asyncio.to_thread(engine.release)  # the window's thread, in the app
        await until(lambda: begun)
        assert begun == [("alice", "refresh-token")] and credentials.loads == 1
        assert engine._scheduler is not None
        await engine.stop(0)

    asyncio.run(scenario())


def test_a_held_start_goes_on_at_its_deadline_without_a_token(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sync.engine, "HOLD_SECONDS", 0.1)

    async def scenario() -> None:
        engine, credentials, begun = held_engine(tmp_path, None)
        statuses: list[str] = []
        engine.on_status = lambda status: statuses.append(status["state"])
        await engine.start(held=True)
        await until(lambda: credentials.loads)
        await until(lambda: statuses)
        assert begun == [] and engine.status.state == "signed_out" and statuses == ["signed_out"]
        await engine.stop(0)

    asyncio.run(scenario())


def test_signing_in_during_the_hold_finishes_the_start_first(tmp_path: Path) -> None:
    async def scenario() -> None:
        engine, credentials, _ = held_engine(tmp_path, None)
        await engine.start(held=True)
        with pytest.raises(ConnectError) as refused:  # nothing listens on port 9
            await asyncio.wait_for(engine.connect("http://127.0.0.1:9", "alice", "secret"), 10)
        assert refused.value.status == 502
        assert credentials.loads == 1 and engine._scheduler is not None
        await engine.stop(0)

    asyncio.run(scenario())


def test_an_unheld_start_is_complete_when_it_returns(tmp_path: Path) -> None:
    async def scenario() -> None:
        engine, credentials, begun = held_engine(tmp_path, "refresh-token")
        await engine.start()
        assert credentials.loads == 1 and begun == [("alice", "refresh-token")]
        await engine.stop(0)

    asyncio.run(scenario())


# -- Qt enums ---------------------------------------------------------------------------------------


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="pywebview uses Qt on Linux only")
def test_pywebview_finds_every_unscoped_qt_enum_it_names() -> None:
    """pywebview's Qt backend writes PyQt5-style names (`QtCore.Qt.WindowMaximized`); with only
    `desktop.window.UNSCOPED_ENUM_CLASSES` promoted, each one it names must still resolve."""
    pytest.importorskip("qtpy")
    missing = run_python(
        """
        import inspect, re
        from desktop.window import promote_fewer_qt_enums

        promote_fewer_qt_enums()
        from qtpy import QtCore, QtGui, QtWidgets
        import webview.platforms.qt as backend

        assert not hasattr(QtGui.QPalette, "Window"), "qtpy promoted every enum after all"
        source = re.sub(r"#.*", "", inspect.getsource(backend))
        missing = set()
        for owner, name in re.findall(r"\\b(Qt|Q[A-Z]\\w+)\\.([A-Z]\\w*)", source):
            for namespace in (backend, QtCore, QtGui, QtWidgets):
                cls = getattr(namespace, owner, None)
                if isinstance(cls, type):
                    if not hasattr(cls, name):
                        missing.add(f"{owner}.{name}")
                    break
        print(",".join(sorted(missing)))
        """
    )
    assert missing == "", f"add these classes to UNSCOPED_ENUM_CLASSES: {missing}"
