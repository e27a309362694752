"""SIGTERM and SIGINT, turned into a call from a thread of our own, at once.

A signal sent to the process may be taken by any of its threads (the kernel hands it to
whichever thread next returns from the kernel). Python then runs its handler only when the
main thread next runs Python code, and a main thread blocked in a wait (headless: waiting to
be stopped; with a window: inside Qt's event loop) may not run any for a long time: a
headless Ferry was seen still running 10 s after SIGTERM. The C-level handler writes the
signal's number to a wake-up socket (`signal.set_wakeup_fd`) whichever thread takes it, and a
listening thread reacts to that.
"""

from __future__ import annotations

import contextlib
import signal
import socket
import threading
from collections.abc import Callable

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
_SOCKETS: list[socket.socket] = []  # kept open until the process exits


def on_stop_signal(callback: Callable[[], None]) -> None:
    """Call `callback` (from a thread) whenever SIGTERM or SIGINT arrives. From the main thread.

    The handlers stay installed until the process exits, so a signal during shutdown cannot
    cut the shutdown short."""
    if threading.current_thread() is not threading.main_thread():
        return
    reader, writer = socket.socketpair()
    _SOCKETS.extend((reader, writer))
    writer.setblocking(False)
    for sig in STOP_SIGNALS:
        # The Python-level handler does nothing: the socket is what wakes the listener, and
        # the main thread may not run the handler for a long time.
        signal.signal(sig, lambda *_: None)
    signal.set_wakeup_fd(writer.fileno(), warn_on_full_buffer=False)

    def listen() -> None:
        with contextlib.suppress(OSError):
            while data := reader.recv(16):
                if any(number in STOP_SIGNALS for number in data):
                    callback()

    threading.Thread(target=listen, name="ferry-signals", daemon=True).start()
