"""The pywebview window on the main thread (Qt WebEngine from pip, or the platform's webview)."""

from __future__ import annotations

import signal
import threading


def run_window(url: str, token: str, show_window: threading.Event, stop: threading.Event) -> None:
    import webview

    # The token travels once, in a URL the local API answers with a cookie and a redirect to
    # "/", so it stays out of the history and of the address the page keeps.
    window = webview.create_window("Ferry", f"{url}/?token={token}", width=1100, height=760, min_size=(480, 360))

    def watch() -> None:
        while not stop.is_set():
            if show_window.wait(0.25):
                show_window.clear()
                window.restore()
                window.show()
        window.destroy()

    def on_signal(*_: object) -> None:
        stop.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, on_signal)
    window.events.closed += lambda: stop.set()
    webview.start(watch)
    stop.set()
