"""What the window tests and the start-up benchmark drive the real desktop app with.

- `xvfb()`: a private X server (Xvfb, display number chosen by the server), stopped by its PID;
- `App`: `ferry` (from source or a built folder) in a subprocess on that display, with Qt
  WebEngine's remote debugging port on, its log followed, stopped by its PID;
- `Page`: the window's page over the Chrome DevTools Protocol: run JavaScript, type, press keys
  (trusted input events, as from the keyboard);
- `find_window`, `close_window` (WM_DELETE_WINDOW: what a window manager's close button sends),
  `screenshot` (the X screen as a PNG), `descendants` (the process tree, from /proc).

Every wait here is bounded.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import shutil
import signal
import sqlite3
import struct
import subprocess
import sys
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tests.servers import free_port, stop_process

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "test-artifacts"
SOURCE_COMMAND = [sys.executable, "-m", "desktop"]


def have_xvfb() -> bool:
    return shutil.which("Xvfb") is not None


@contextlib.contextmanager
def xvfb(width: int = 1280, height: int = 800) -> Iterator[str]:
    """A fresh X server; yields its DISPLAY (":N")."""
    read, write = os.pipe()
    proc = subprocess.Popen(
        ["Xvfb", "-displayfd", str(write), "-screen", "0", f"{width}x{height}x24", "-nolisten", "tcp", "-noreset"],
        pass_fds=(write,), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    os.close(write)
    try:
        number = b""
        deadline = time.monotonic() + 15
        while not number.endswith(b"\n"):
            left = deadline - time.monotonic()
            if left <= 0 or proc.poll() is not None or not select.select([read], [], [], left)[0]:
                raise RuntimeError("Xvfb did not start")
            chunk = os.read(read, 16)
            if not chunk:
                raise RuntimeError("Xvfb closed its display pipe")
            number += chunk
        yield f":{int(number)}"
    finally:
        os.close(read)
        stop_process(proc)


def app_env(display: str | None, debug_port: int | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FERRY_", "QTWEBENGINE_REMOTE"))}
    env.pop("WAYLAND_DISPLAY", None)
    env.pop("DISPLAY", None)
    if display:
        env["DISPLAY"] = display
    if debug_port:
        env["QTWEBENGINE_REMOTE_DEBUGGING"] = f"127.0.0.1:{debug_port}"
    return env


# -- the process tree ------------------------------------------------------------------------------


def _parents() -> dict[int, int]:
    found = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            found[int(entry)] = int(stat.rsplit(")", 1)[1].split()[1])
    return found


def descendants(pid: int) -> set[int]:
    parents = _parents()
    tree, grew = {pid}, True
    while grew:
        more = {child for child, parent in parents.items() if parent in tree} - tree
        tree |= more
        grew = bool(more)
    return tree - {pid}


def alive(pids: set[int]) -> set[int]:
    """Those of `pids` that still run (zombies waiting for their parent count as gone)."""
    running = set()
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z":
            running.add(pid)
    return running


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for {pid}")


# -- the app ---------------------------------------------------------------------------------------


@dataclass
class App:
    """One launch of the desktop app in a subprocess."""

    command: list[str]
    data_dir: Path
    display: str | None
    debug_port: int | None = None
    extra: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0  # time.time() just before the process was created
    log_offset: int = 0
    helpers: set[int] = field(default_factory=set)

    @property
    def log_path(self) -> Path:
        return self.data_dir / "logs" / "ferry.log"

    @property
    def output_path(self) -> Path:
        return self.data_dir.parent / f"{self.data_dir.name}.out"

    def start(self) -> App:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.log_offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        env = {**app_env(self.display, self.debug_port), **self.env}
        with open(self.output_path, "ab") as out:
            self.started_at = time.time()
            self.proc = subprocess.Popen(
                [*self.command, "--data-dir", str(self.data_dir), *self.extra],
                stdout=out, stderr=subprocess.STDOUT, cwd=ROOT, env=env,
            )  # fmt: skip
        return self

    def log(self) -> str:
        """What this launch wrote to the log so far."""
        try:
            with open(self.log_path, "rb") as fh:
                fh.seek(self.log_offset)
                return fh.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def output(self) -> str:
        return self.output_path.read_text(errors="replace") if self.output_path.exists() else ""

    def wait_log(self, text: str, timeout: float = 60) -> str:
        """The first log line of this launch containing `text`."""
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in self.log().splitlines():
                if text in line:
                    return line
            if self.proc.poll() is not None:
                raise RuntimeError(f"ferry exited with {self.proc.returncode}:\n{self.output()[-3000:]}")
            self.helpers |= descendants(self.proc.pid)
            time.sleep(0.02)
        raise TimeoutError(f"no {text!r} in the log after {timeout} s:\n{self.log()[-3000:]}\n{self.output()[-3000:]}")

    def wait_ready(self, timeout: float = 60) -> float:
        """Seconds from process start to the page's first task list on screen."""
        line = self.wait_log("UI ready at ", timeout)
        self.helpers |= descendants(self.proc.pid) if self.proc else set()
        return float(line.split("UI ready at ", 1)[1].split(",", 1)[0]) - self.started_at

    def shown_after(self) -> float:
        """Seconds from process start to the window on screen (the splash, at first)."""
        line = self.wait_log("window shown at ", 10)
        return float(line.split("window shown at ", 1)[1].split(",", 1)[0]) - self.started_at

    def runtime(self) -> dict[str, Any]:
        return json.loads((self.data_dir / "runtime.json").read_text())

    def api(self) -> httpx.Client:
        info = self.runtime()
        return httpx.Client(base_url=info["url"], headers={"Authorization": f"Bearer {info['token']}"}, timeout=10)

    def wait_exit(self, timeout: float = 10) -> int:
        assert self.proc is not None
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(
                f"ferry still runs {timeout} s after being asked to stop:\n{self.log()[-2000:]}"
            ) from None

    def stop(self) -> None:
        """Last resort (the `finally` of a test): the app, then any helper process it left."""
        if self.proc is not None:
            self.helpers |= descendants(self.proc.pid) if self.proc.poll() is None else set()
            stop_process(self.proc)
        for pid in alive(self.helpers):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def wait_gone(pids: set[int], timeout: float = 2.0) -> set[int]:
    """Waits up to `timeout` for `pids` to end; returns those still running."""
    deadline = time.monotonic() + timeout
    while alive(pids) and time.monotonic() < deadline:
        time.sleep(0.02)
    return alive(pids)


# -- the page, over the Chrome DevTools Protocol ---------------------------------------------------


class Page:
    def __init__(self, debug_port: int, url_prefix: str, timeout: float = 20) -> None:
        from websockets.sync.client import connect

        deadline = time.monotonic() + timeout
        target = None
        while target is None:
            with contextlib.suppress(httpx.HTTPError, ValueError):
                pages = httpx.get(f"http://127.0.0.1:{debug_port}/json/list", timeout=2).json()
                target = next((p for p in pages if p["type"] == "page" and p["url"].startswith(url_prefix)), None)
            if target is None:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"no page at {url_prefix} on the debugging port")
                time.sleep(0.1)
        self.ws = connect(target["webSocketDebuggerUrl"], max_size=None, open_timeout=10)
        self._id = 0

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.ws.close()

    def __enter__(self) -> Page:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        self._id += 1
        self.ws.send(json.dumps({"id": self._id, "method": method, "params": params}))
        deadline = time.monotonic() + 15
        while True:
            message = json.loads(self.ws.recv(timeout=max(0.1, deadline - time.monotonic())))
            if message.get("id") == self._id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message["result"]

    def evaluate(self, expression: str) -> Any:
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def type_text(self, text: str) -> None:
        self.call("Input.insertText", text=text)

    def press_enter(self) -> None:
        for kind in ("rawKeyDown", "char", "keyUp"):
            extra = {"text": "\r"} if kind == "char" else {}
            self.call("Input.dispatchKeyEvent", type=kind, key="Enter", code="Enter", windowsVirtualKeyCode=13, **extra)

    def wait_for(self, expression: str, timeout: float = 10) -> Any:
        """Polls `expression` until it is truthy; returns its value."""
        deadline = time.monotonic() + timeout
        while True:
            value = self.evaluate(expression)
            if value:
                return value
            if time.monotonic() > deadline:
                raise TimeoutError(f"{expression} stayed falsy for {timeout} s")
            time.sleep(0.05)

    def history(self) -> list[str]:
        return [entry["url"] for entry in self.call("Page.getNavigationHistory")["entries"]]


# -- X11 -------------------------------------------------------------------------------------------


@dataclass
class XWindow:
    id: int
    title: str
    x: int
    y: int
    width: int
    height: int
    mapped: bool


def _top_windows(display: str) -> list[XWindow]:
    from Xlib import X
    from Xlib.display import Display

    conn = Display(display)
    try:
        found = []
        for child in conn.screen().root.query_tree().children:
            with contextlib.suppress(Exception):
                title = child.get_wm_name()
                if isinstance(title, bytes):
                    title = title.decode("utf-8", "replace")
                geometry = child.get_geometry()
                attributes = child.get_attributes()
                found.append(
                    XWindow(
                        child.id, title or "", geometry.x, geometry.y, geometry.width, geometry.height,
                        attributes.map_state == X.IsViewable,
                    )
                )  # fmt: skip
        return found
    finally:
        conn.close()


def find_window(display: str, title: str, timeout: float = 20) -> XWindow:
    """The mapped top-level window called `title`."""
    deadline = time.monotonic() + timeout
    while True:
        for window in _top_windows(display):
            if window.title == title and window.mapped:
                return window
        if time.monotonic() > deadline:
            raise TimeoutError(f"no window {title!r} on {display}")
        time.sleep(0.05)


def close_window(display: str, window_id: int) -> None:
    """Ask the window to close as a window manager's close button does (WM_DELETE_WINDOW)."""
    from Xlib import X, protocol
    from Xlib.display import Display

    conn = Display(display)
    try:
        window = conn.create_resource_object("window", window_id)
        protocols = conn.intern_atom("WM_PROTOCOLS")
        delete = conn.intern_atom("WM_DELETE_WINDOW")
        event = protocol.event.ClientMessage(
            window=window, client_type=protocols, data=(32, [delete, X.CurrentTime, 0, 0, 0])
        )
        window.send_event(event, event_mask=X.NoEventMask)
        conn.sync()  # a round trip: the server has handled the request before we hang up
    finally:
        conn.close()


def screenshot(display: str, path: Path) -> Path:
    """The whole X screen as a PNG."""
    from Xlib import X
    from Xlib.display import Display

    conn = Display(display)
    try:
        root = conn.screen().root
        geometry = root.get_geometry()
        width, height = geometry.width, geometry.height
        raw = root.get_image(0, 0, width, height, X.ZPixmap, 0xFFFFFFFF).data  # BGRX rows
    finally:
        conn.close()
    rows = bytearray()
    stride = width * 4
    for y in range(height):
        row = raw[y * stride : (y + 1) * stride]
        rgb = bytearray(width * 3)
        rgb[0::3], rgb[1::3], rgb[2::3] = row[2::4], row[1::4], row[0::4]
        rows += b"\x00" + rgb

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    path.parent.mkdir(parents=True, exist_ok=True)
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(bytes(rows), 6))
        + chunk(b"IEND", b"")
    )
    return path


# -- the scenario both window tests run ------------------------------------------------------------

TITLE = "Ferry"
TASK = "Bought milk through the window"
NOTE_TEXT = "typed a moment before the window closed"


def _close_and_check(app: App, how: str, display: str) -> float:
    """Closes the app `how` ("window", "SIGTERM", "SIGINT"); checks it leaves nothing behind;
    returns the seconds from the request to the process's end."""
    assert app.proc is not None
    url = app.runtime()["url"]
    helpers = descendants(app.proc.pid)
    assert helpers, "Qt WebEngine's helper processes should be running"
    started = time.monotonic()
    if how == "window":
        close_window(display, find_window(display, TITLE).id)
    else:
        app.proc.send_signal(getattr(signal, how))
    code = app.wait_exit(10)
    took = time.monotonic() - started
    assert code == 0, app.output()[-3000:]
    assert not (app.data_dir / "runtime.json").exists()
    assert not wait_gone(helpers, 2.0), f"left behind: {alive(helpers)}"
    with contextlib.suppress(httpx.HTTPError):
        httpx.get(f"{url}/api/health", timeout=1)
        raise AssertionError("the local API still answers")
    assert "Traceback" not in app.log()
    assert "token=" not in app.log()  # the per-launch token never reaches the log
    return took


def window_round_trip(command: list[str], data_dir: Path, display: str, label: str, closings: tuple[str, ...]) -> dict:
    """Open the window, type a task into the UI, close, relaunch and find it again; once per
    item of `closings` (the first closes the window, the others send signals)."""
    figures: dict[str, Any] = {"label": label}
    debug_port = free_port()
    first = App(command, data_dir, display, debug_port).start()
    try:
        figures["first_ready_s"] = round(first.wait_ready(90), 3)
        figures["first_window_s"] = round(first.shown_after(), 3)  # the splash, before the API answers
        window = find_window(display, TITLE)
        assert (window.width, window.height) == (1100, 760), window
        info = first.runtime()
        assert (data_dir / "runtime.json").stat().st_mode & 0o777 == 0o600
        with Page(debug_port, info["url"]) as page:
            # The token went once, in a URL answered by a redirect: it is not in the history.
            assert page.evaluate("location.href") == f"{info['url']}/"
            assert not any("token" in url for url in page.history()), page.history()
            page.evaluate("document.getElementById('new-title').focus()")
            page.type_text(TASK)
            page.press_enter()
            shown = page.wait_for(
                f"[...document.querySelectorAll('#task-list .row .title')].some(t => t.textContent === {TASK!r})"
            )
            assert shown
        with first.api() as api:
            assert [t["title"] for t in api.get("/api/tasks").json()] == [TASK]

        # A second launch on the same data directory hands over to this one and leaves.
        second = subprocess.run(
            [*command, "--data-dir", str(data_dir)], env=app_env(display), cwd=ROOT, capture_output=True, timeout=30
        )
        assert second.returncode == 0, second.stderr[-2000:]
        assert first.proc is not None and first.proc.poll() is None
        assert first.runtime() == info
        first.wait_log("bringing it forward", 10)
        find_window(display, TITLE)

        figures["screenshot"] = str(screenshot(display, ARTIFACTS / f"{label}-window.png").relative_to(ROOT))
        with Page(debug_port, info["url"]) as page:
            # A note typed just before closing, well inside the editor's autosave pause: the
            # window asks the page to save it before it goes (desktop/window.py `_flush_page`).
            page.evaluate("document.getElementById('tab-notes').click()")
            page.evaluate("document.getElementById('new-note').click()")
            page.wait_for("document.activeElement && document.activeElement.id === 'note-title'")
            page.evaluate("document.getElementById('note-body').focus()")
            page.type_text(NOTE_TEXT)
        figures[f"exit_after_{closings[0]}_s"] = round(_close_and_check(first, closings[0], display), 3)
        with contextlib.closing(sqlite3.connect(data_dir / "ferry.db")) as db:
            bodies = [row[0] for row in db.execute("SELECT body FROM notes WHERE deleted = 0")]
        assert bodies == [NOTE_TEXT], bodies
    finally:
        first.stop()

    for how in closings[1:]:
        again = App(command, data_dir, display, debug_port).start()
        try:
            figures[f"ready_before_{how}_s"] = round(again.wait_ready(90), 3)
            with Page(debug_port, again.runtime()["url"]) as page:
                titles = page.wait_for(
                    "[...document.querySelectorAll('#task-list .row .title')].map(t => t.textContent)"
                )
            assert titles == [TASK]
            figures[f"exit_after_{how}_s"] = round(_close_and_check(again, how, display), 3)
        finally:
            again.stop()
    return figures


def save_figures(figures: dict) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / f"{figures['label']}-figures.json").write_text(json.dumps(figures, indent=2) + "\n")
