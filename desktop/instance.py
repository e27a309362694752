"""One running app per data directory: an OS file lock, and the runtime file beside it.

The lock (`flock`; on Windows a byte-range lock) dies with its process, so a crash never
leaves a lock that blocks the next start; a runtime file left by a crash is simply replaced by
the next owner of the lock.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from pathlib import Path
from typing import Any

RUNTIME = "runtime.json"
LOCK = "ferry.lock"


class InstanceLock:
    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / LOCK
        self._fd: int | None = None

    def acquire(self) -> bool:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            _lock(fd)
        except OSError:
            os.close(fd)
            return False
        self._fd = fd
        return True

    def release(self) -> None:
        if self._fd is not None:
            _unlock(self._fd)
            os.close(self._fd)
            self._fd = None


if sys.platform == "win32":
    import msvcrt

    def _lock(fd: int) -> None:
        msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)  # OSError when another process holds it

    def _unlock(fd: int) -> None:
        os.lseek(fd, 0, os.SEEK_SET)
        msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)

else:
    import fcntl

    def _lock(fd: int) -> None:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # BlockingIOError when held elsewhere

    def _unlock(fd: int) -> None:
        fcntl.flock(fd, fcntl.LOCK_UN)


def write_runtime(data_dir: Path, info: dict[str, Any]) -> Path:
    """Write the runtime file atomically, readable by its owner only."""
    path = data_dir / RUNTIME
    tmp = path.with_suffix(".tmp")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(info, fh)
    os.replace(tmp, path)
    return path


def read_runtime(data_dir: Path) -> dict[str, Any] | None:
    try:
        info = json.loads((data_dir / RUNTIME).read_text())
    except (FileNotFoundError, ValueError):
        return None
    return info if isinstance(info, dict) and "url" in info else None


def remove_runtime(data_dir: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        (data_dir / RUNTIME).unlink()
