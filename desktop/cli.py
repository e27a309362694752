"""`ferry`: the desktop app. Starts the local API, then the window (or, headless, waits).

    ferry [--data-dir DIR] [--headless] [--port N] [--server URL]
"""

from __future__ import annotations

import argparse
import logging
import os
import secrets
import signal
import sys
import threading
import time
from pathlib import Path

import httpx

from desktop import instance, paths

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
    try:
        httpx.post(
            f"{info['url']}/api/app/show", headers={"Authorization": f"Bearer {info['token']}"}, timeout=2
        )
    except httpx.HTTPError:
        log.warning("could not reach the running window at %s", info["url"])
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if not args.headless and not has_display():
        print(NO_DISPLAY, file=sys.stderr)
        return 2
    data_dir = paths.data_dir(args.data_dir)
    log_file = paths.configure_logging(paths.log_dir(data_dir, args.data_dir is not None))
    lock = instance.InstanceLock(data_dir)
    if not lock.acquire():
        return hand_over(data_dir, args.headless)
    try:
        return run(args, data_dir, log_file)
    finally:
        instance.remove_runtime(data_dir)
        lock.release()


def run(args: argparse.Namespace, data_dir: Path, log_file: Path) -> int:
    # Imported here so that `ferry --help` and a second launch stay fast.
    from desktop.local_server import LocalServer, bind_loopback
    from desktop.shell import add_app_routes
    from server.app import create_app
    from server.routes.local_settings import remember_server_url
    from server.settings import Settings

    started = time.perf_counter()
    token = secrets.token_urlsafe(32)
    settings = Settings(mode="local", data_dir=data_dir, local_token=token)
    app = create_app(settings)
    if args.server:
        remember_server_url(app.state.ferry, args.server)
    show_window = threading.Event()
    add_app_routes(app, show_window)
    server = LocalServer(app, bind_loopback(args.port))
    server.start()
    instance.write_runtime(data_dir, {"url": server.url, "token": token, "pid": os.getpid()})
    log.info("data in %s, log in %s, local API at %s (ready in %.0f ms)",
             data_dir, log_file, server.url, (time.perf_counter() - started) * 1000)

    stop = threading.Event()
    try:
        if args.headless:
            for sig in (signal.SIGTERM, signal.SIGINT):
                signal.signal(sig, lambda *_: stop.set())
            print(server.url, flush=True)
            while not stop.wait(3600):
                pass
        else:
            from desktop.window import run_window

            run_window(server.url, token, show_window, stop)
    finally:
        server.stop()
        log.info("stopped")
    return 0
