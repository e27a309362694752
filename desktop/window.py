"""The pywebview window on the main thread (Qt WebEngine from pip, GTK when the system has it,
the platform's own webview on Windows and macOS).

The window opens at once on a splash page while the local API starts in another thread; it
then navigates to `/?token=...`, which the local API answers with a session cookie and a
redirect to `/`, so the token stays out of the address the page keeps (pywebview's profile is
private: nothing of it is written to disk). The page reports when its task list is on screen
(`ui/ready.js` → `POST /api/app/ready`), and `Window.ready()` logs the time to interactive.

Closing the window, SIGTERM and SIGINT all end `Window.run()`; the caller then stops the local
API. Signals reach Python only when the interpreter runs, which inside Qt's event loop can be
half a second late, so `desktop.signals` lets a thread react at once.
"""

from __future__ import annotations

import contextlib
import enum
import importlib.util
import logging
import os
import sys
import threading
import time
from pathlib import Path

from desktop.signals import on_stop_signal

log = logging.getLogger("ferry.window")

ICON = Path(__file__).resolve().parent / "assets" / "ferry.png"
TITLE = "Ferry"
#: how long closing waits for the page to save what is being typed (a note mid-edit)
FLUSH_SECONDS = 1.0
# Shown for the fraction of a second before the local API answers; no script, no network.
SPLASH = """<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta name="color-scheme" content="light dark"><title>Ferry</title>
<style>html,body{height:100%;margin:0}body{display:grid;place-items:center;font:600 1.1rem system-ui,sans-serif;
color:#8888}</style></head><body>Ferry</body></html>"""


def choose_gui() -> str | None:
    """Qt unless the system provides GTK's Python bindings (pywebview would try GTK first and
    log a traceback when it is missing); `PYWEBVIEW_GUI` overrides both."""
    if os.environ.get("PYWEBVIEW_GUI") or not sys.platform.startswith("linux"):
        return None
    return None if importlib.util.find_spec("gi") is not None else "qt"


def _add_chromium_flag(flag: str) -> bool:
    """Adds `flag` to Qt WebEngine's Chromium flags; False if it was there already."""
    flags = os.environ.get("QTWEBENGINE_CHROMIUM_FLAGS", "")
    if flag in flags.split():
        return False
    os.environ["QTWEBENGINE_CHROMIUM_FLAGS"] = f"{flags} {flag}".strip()
    return True


def prepare_qt_environment() -> None:
    """Qt WebEngine's settings, before Qt is imported.

    Chromium refuses to start as root with its sandbox on (containers, CI).

    On Linux the window draws in software unless `FERRY_GPU=1`: with OpenGL, Qt WebEngine runs
    Chromium's GPU thread inside this process and Qt Quick composites through GL, so the GL
    driver (on a machine without a GPU: Mesa's llvmpipe, with LLVM) is loaded into the app and
    compiles its shaders during start-up. Measured with 10,000 tasks under Xvfb: the app's
    resident memory 359 -> 264 MB (libLLVM and swrast_dri alone were 62 MB), and less CPU before
    the first paint. A list of text needs no GPU. `QT_QUICK_BACKEND` and `QT_XCB_GL_INTEGRATION`
    set by the person win over these defaults.
    """
    if hasattr(os, "geteuid") and os.geteuid() == 0 and _add_chromium_flag("--no-sandbox"):
        log.warning("running as root: the web view's sandbox is off")
    if sys.platform.startswith("linux") and os.environ.get("FERRY_GPU", "") not in ("1", "true", "yes"):
        os.environ.setdefault("QT_QUICK_BACKEND", "software")  # Qt Quick's own renderer, no GL
        os.environ.setdefault("QT_XCB_GL_INTEGRATION", "none")  # no GLX/EGL loaded by the X11 plugin
        _add_chromium_flag("--disable-gpu")  # Chromium rasterises and composites in software


#: The Qt classes whose enum members pywebview's Qt backend names unscoped, PyQt5 style (e.g.
#: `QtCore.Qt.WindowMaximized`, `QMessageBox.Ok`); a test checks this against its source.
UNSCOPED_ENUM_CLASSES = frozenset({"Qt", "QEvent", "QMessageBox", "QFileDialog", "QFile"})


def promote_fewer_qt_enums() -> None:
    """Before pywebview imports Qt: qtpy (its layer over PyQt6) makes every enum member of
    QtCore, QtGui and QtWidgets reachable unscoped by walking every class of those modules, which
    makes PyQt6 build each of their enum types: ~75 ms of the main thread's start-up, holding the
    GIL that the local API's start-up in the other thread waits for. Only the classes pywebview
    uses that way are promoted."""
    try:
        import qtpy
        from qtpy import enums_compat
    except Exception:  # no Qt binding (another webview backend)
        return
    if not qtpy.PYQT6 or not hasattr(enums_compat, "promote_enums"):
        return

    def promote(module: object) -> None:
        for class_name in UNSCOPED_ENUM_CLASSES:
            klass = getattr(module, class_name, None)
            if klass is None:
                continue
            for name in dir(klass):
                value = getattr(klass, name) if name[:1].isupper() else None
                if isinstance(value, enum.EnumMeta):
                    for member, member_value in value.__members__.items():
                        setattr(klass, member, member_value)

    enums_compat.promote_enums = promote


class Window:
    """The app window: `run()` on the main thread; the other methods from any thread."""

    def __init__(self, url: str, launched: float) -> None:
        self.url = url
        self.launched = launched  # time.time() when the process started
        self.stop = threading.Event()
        self._wake = threading.Event()
        self._window = None
        self._ready_logged = False
        self._raise = False
        self._close_asked = False
        self._flushed = False

    # -- called from other threads -------------------------------------------------------------

    def close(self) -> None:
        self.stop.set()
        self._wake.set()

    def bring_forward(self) -> None:
        log.info("another launch asked for the window: bringing it forward")
        self._raise = True
        self._wake.set()

    def ready(self) -> None:
        """The page's first task list is on screen."""
        if self._ready_logged:
            return
        self._ready_logged = True
        now = time.time()
        log.info("UI ready at %.3f, %.0f ms after launch", now, (now - self.launched) * 1000)

    def _shown(self) -> None:
        now = time.time()
        log.info("window shown at %.3f, %.0f ms after launch", now, (now - self.launched) * 1000)

    def _since_launch(self) -> float:
        return (time.time() - self.launched) * 1000

    # -- main thread -----------------------------------------------------------------------------

    def run(self) -> None:
        """Show the window and run the GUI loop until the window closes or `close()` is called."""
        gui = choose_gui()
        if gui in (None, "qt"):
            prepare_qt_environment()
        if gui == "qt" or os.environ.get("PYWEBVIEW_GUI", "").lower() == "qt":
            promote_fewer_qt_enums()
        import webview

        window = webview.create_window(TITLE, html=SPLASH, width=1100, height=760, min_size=(480, 360))
        self._window = window
        window.events.closing += self._closing
        window.events.closed += self.close
        window.events.shown += self._shown
        on_stop_signal(self.close)
        try:
            webview.start(self._drive, gui=gui, private_mode=True, icon=str(ICON) if ICON.exists() else None)
        finally:
            self.close()
            log.info("window closed %.0f ms after launch", self._since_launch())

    def _closing(self) -> bool:
        """The person closed the window: hold it until the page has saved (see `_flush_page`)."""
        if self._flushed:
            return True
        self._close_asked = True
        self._wake.set()
        return False  # cancels this close; `_drive` closes it once the page is flushed

    def _flush_page(self) -> None:
        """Asks the page to save what is typed but not yet saved, and waits (bounded) for it.

        `run_js`, not `evaluate_js`: the latter wraps the script in `eval`, which the page's
        Content-Security-Policy forbids. Each call blocks until Qt answers, so they run in a
        thread that the deadline abandons if the page is stuck.
        """
        window = self._window
        if window is None or self._flushed:
            return
        self._flushed = True
        deadline = time.monotonic() + FLUSH_SECONDS

        def flush() -> None:
            with contextlib.suppress(Exception):
                window.run_js("window.ferry && window.ferry.flush() && 0")
                while time.monotonic() < deadline:
                    if str(window.run_js("window.ferry && window.ferry.busy() ? '1' : '0'")) != "1":
                        return
                    time.sleep(0.02)

        worker = threading.Thread(target=flush, name="ferry-flush", daemon=True)
        worker.start()
        worker.join(FLUSH_SECONDS + 0.2)
        log.info("page flushed before closing (%.0f ms after launch)", self._since_launch())

    def _drive(self) -> None:
        """pywebview's worker thread: navigate once the API is up, raise on request, close on stop."""
        window = self._window
        assert window is not None
        window.load_url(self.url)  # the splash stays up until the local API answers
        while True:
            self._wake.wait()
            self._wake.clear()
            if self.stop.is_set() or self._close_asked:
                self._flush_page()
                with contextlib.suppress(Exception):
                    window.destroy()
                if self.stop.is_set():
                    return
                continue
            if self._raise:
                self._raise = False
                with contextlib.suppress(Exception):
                    window.restore()
                    window.show()
