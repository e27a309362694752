"""`ferry`: the desktop app. Starts the local API, then the window (or, headless, waits).

ferry [--data-dir DIR] [--headless] [--port N] [--server URL]
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import logging
import os
import secrets
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from desktop import instance, paths

LAUNCHED = time.time()  # for the log's time-to-interactive
log = logging.getLogger("ferry.desktop")
NO_DISPLAY = "ferry: no display found; run `ferry --headless` to serve the local API without a window"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ferry", description="Ferry: offline-first tasks and notes.")
    parser.add_argument("--data-dir", help="where Ferry keeps its database (default: the platform's data dir)")
    parser.add_argument("--headless", action="store_true", help="run the local API and sync without a window")
    parser.add_argument("--port", type=int, default=0, help="port for the local API (default: any free port)")
    parser.add_argument("--server", help="URL of a shared Ferry server to sync with")
    return parser


def has_display() -> bool:
    if sys.platform in ("win32", "darwin"):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def hand_over(data_dir: Path, headless: bool) -> int:
    """Another instance owns this data directory: point at it and leave."""
    deadline = time.monotonic() + 10
    info = instance.read_runtime(data_dir)
    while info is None and time.monotonic() < deadline:
        time.sleep(0.05)  # it may still be starting
        info = instance.read_runtime(data_dir)
    if info is None:
        print("ferry: another Ferry is starting on this data directory", file=sys.stderr)
        return 1
    if headless:
        print(info["url"])
        return 0
    import httpx

    try:
        httpx.post(f"{info['url']}/api/app/show", headers={"Authorization": f"Bearer {info['token']}"}, timeout=2)
    except httpx.HTTPError:
        log.warning("could not reach the running window at %s", info["url"])
    return 0


class StartupGC:
    """Python's cyclic garbage collector stays off from launch until start-up is over (the first
    task list on screen and the whole local API up). Importing the local API and the window
    creates a few hundred thousand objects that nearly all live on (under a thousand are
    garbage), yet the collector ran ~300 times over
    them: 0.16-0.19 s of 1.6-2.0 s of imports (measured with `gc.callbacks`), holding the GIL
    that both start-up threads wait for.

    `resume()` collects once, then turns the collector back on; it is idempotent and may be
    called from any thread. A timer resumes it anyway if the page never reports. The objects
    are not frozen (`gc.freeze`): some of them become garbage later, and would then leak."""

    def __init__(self, deadline: float = 20.0) -> None:
        self._lock = threading.Lock()
        self._paused = gc.isenabled()
        self._timer = threading.Timer(deadline, self.resume)
        self._timer.daemon = True
        if self._paused:
            gc.disable()
            self._timer.start()

    def resume(self, collect: bool = True) -> None:
        with self._lock:
            if not self._paused:
                return
            self._paused = False
        self._timer.cancel()
        if collect:
            gc.collect()  # the cycles start-up left behind, now that the page is on screen
        gc.enable()


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if not args.headless and not has_display():
        print(NO_DISPLAY, file=sys.stderr)
        return 2
    startup_gc = StartupGC()
    try:
        data_dir = paths.data_dir(args.data_dir)
        log_file = paths.configure_logging(paths.log_dir(data_dir, args.data_dir is not None))
        lock = instance.InstanceLock(data_dir)
        if not lock.acquire():
            return hand_over(data_dir, args.headless)
        try:
            code = run(args, data_dir, log_file, startup_gc.resume)
        finally:
            instance.remove_runtime(data_dir)
            lock.release()
    finally:
        startup_gc.resume(collect=False)  # leaving: nothing worth a collection
    if not args.headless:
        exit_now(code)
    return code


def _nothing() -> None:
    pass


def exit_now(code: int) -> None:
    """End the windowed app without Python's teardown of Qt. By now the local API has stopped
    (final sync, database closed), the runtime file is gone and the lock released; tearing
    down Qt WebEngine would only add half a second, with nothing of ours to save (its profile
    lives in memory). Its helper processes exit when their parent does."""
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(code)


class LocalApi:
    """The local API (and the sync engine in its lifespan): its socket is bound at once, the app
    is imported and started in any thread, and it is stopped once."""

    def __init__(self, args: argparse.Namespace, data_dir: Path, log_file: Path) -> None:
        from desktop.local_server import bind_loopback

        self.args = args
        self.data_dir = data_dir
        self.log_file = log_file
        self.token = secrets.token_urlsafe(32)
        self.sock = bind_loopback(args.port)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.server = None
        self.app: Any = None
        self._lock = threading.Lock()
        self._release_wanted = False

    def start(self, on_show: Callable[[], None] | None = None, on_ready: Callable[[], None] | None = None) -> str:
        """Start the local API; returns its URL once all of it answers. `on_show` and
        `on_ready` are called when a second launch asks for the window, and when the page is
        on screen.

        The socket is served at once by `server.boot`, which answers the window's first page
        and task list; the full API is built meanwhile, in this thread, and then attached."""
        started = time.perf_counter()
        # Imported here so that `ferry --help` and a second launch stay fast.
        from desktop.local_server import LocalServer
        from server.boot import BootApp

        on_show, on_ready = on_show or _nothing, on_ready or _nothing
        # (The first page's list is read straight from the database file, which a database URL
        # in the environment would put elsewhere: then the full API answers it.)
        database = None if os.environ.get("FERRY_DATABASE_URL") else self.data_dir / "ferry.db"
        boot = BootApp(self.token, database, on_ready=on_ready, on_show=on_show)
        server = LocalServer(boot, self.sock)
        self.server = server
        server.start()
        # From now on the API answers (what the boot app cannot answer yet waits for the rest).
        instance.write_runtime(self.data_dir, {"url": self.url, "token": self.token, "pid": os.getpid()})
        log.info("serving the first page (%.0f ms)", (time.perf_counter() - started) * 1000)
        # While this thread imports and builds the API (half a second of Python), the server's
        # thread answers the window: let it have the interpreter sooner than every 5 ms.
        interval = sys.getswitchinterval()
        sys.setswitchinterval(0.001)
        try:
            app = self._build(on_show, on_ready)
        except BaseException as exc:
            boot.fail(f"{type(exc).__name__}: {exc}")
            raise
        finally:
            sys.setswitchinterval(interval)
        boot.attach(app)
        with self._lock:
            self.app = app
            if self._release_wanted:
                app.state.ferry.sync_engine.release()
        log.info(
            "data in %s, log in %s, local API at %s (ready in %.0f ms)",
            self.data_dir,
            self.log_file,
            self.url,
            (time.perf_counter() - started) * 1000,
        )
        return self.url

    def _build(self, on_show: Callable[[], None], on_ready: Callable[[], None]) -> Any:
        from desktop.shell import add_app_routes
        from server.app import create_app
        from server.routes.local_settings import remember_server_url
        from server.settings import Settings

        settings = Settings(mode="local", data_dir=self.data_dir, local_token=self.token)
        # With a window, sync starts once the first page is on screen (`release_sync`).
        app = create_app(settings, hold_sync=not self.args.headless)
        if self.args.server:
            remember_server_url(app.state.ferry, self.args.server)
        add_app_routes(app, on_show=on_show, on_ready=on_ready)
        return app

    def release_sync(self) -> None:
        """The first page is on screen: the sync engine may read the credentials and start
        (now, or as soon as the full API is there: the page may be on screen before)."""
        with self._lock:
            self._release_wanted = True
            engine = self.app.state.ferry.sync_engine if self.app is not None else None
        if engine is not None:
            engine.release()

    def stop(self) -> None:
        """Stops the scheduler, tries one last bounded sync, stops uvicorn (the app's lifespan)."""
        if self.server is not None:
            started = time.perf_counter()
            self.server.stop()
            log.info("local API stopped in %.0f ms", (time.perf_counter() - started) * 1000)
        self.sock.close()


def run(args: argparse.Namespace, data_dir: Path, log_file: Path, started: Callable[[], None]) -> int:
    """`started` is called once the app is up: headless, when the API answers; with the window,
    when the page's first task list is on screen and the API answers."""
    try:
        api = LocalApi(args, data_dir, log_file)
    except OSError as exc:
        print(f"ferry: cannot listen on 127.0.0.1:{args.port}: {exc.strerror}", file=sys.stderr)
        return 1
    return run_headless(api, started) if args.headless else run_with_window(api, started)


def run_headless(api: LocalApi, started: Callable[[], None]) -> int:
    from desktop.signals import on_stop_signal

    stop = threading.Event()
    on_stop_signal(stop.set)
    try:
        print(api.start(), flush=True)
        started()
        while not stop.wait(3600):
            pass
    finally:
        api.stop()
        log.info("stopped")
    return 0


def run_with_window(api: LocalApi, started: Callable[[], None]) -> int:
    """Qt starts on the main thread while the local API starts in a thread: neither waits."""
    from desktop.window import Window

    # The page starts loading at once; its first request waits in the socket's queue until the
    # API answers. `/?token=` is answered with the session cookie and a redirect to `/`.
    window = Window(f"{api.url}/?token={api.token}", LAUNCHED)
    failure: list[BaseException] = []
    # `started` once the list is on screen and the whole API is up (the list is first served
    # by `server.boot`, before the API has been built): only then is start-up over.
    waiting = {"page", "api"}
    lock = threading.Lock()

    def done(what: str) -> None:
        with lock:
            waiting.discard(what)
            over = not waiting
        if over:
            started()

    def ready() -> None:
        window.ready()
        api.release_sync()
        done("page")

    def start_api() -> None:
        try:
            api.start(window.bring_forward, ready)
            done("api")
        except BaseException as exc:
            log.exception("the local API did not start")
            failure.append(exc)
            window.close()

    starter = threading.Thread(target=start_api, name="ferry-start", daemon=True)
    starter.start()
    try:
        window.run()
    finally:
        closed = time.perf_counter()
        starter.join(30)
        api.stop()
        log.info("stopped %.0f ms after the window closed", (time.perf_counter() - closed) * 1000)
    if failure:
        print(f"ferry: could not start: {failure[0]} (see {api.log_file})", file=sys.stderr)
        return 1
    return 0
