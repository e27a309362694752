"""Where the desktop keeps its data and logs (platformdirs), and its rotating log file."""

from __future__ import annotations

import logging
import logging.handlers
from pathlib import Path

import platformdirs

APP = "ferry"


def data_dir(override: str | None) -> Path:
    path = Path(override).expanduser().resolve() if override else Path(platformdirs.user_data_dir(APP, False))
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    return path


def log_dir(data: Path, overridden: bool) -> Path:
    # With --data-dir everything stays together; otherwise the platform's log directory.
    path = data / "logs" if overridden else Path(platformdirs.user_log_dir(APP, False))
    path.mkdir(parents=True, exist_ok=True)
    return path


def configure_logging(logs: Path, level: str = "INFO") -> Path:
    log_file = logs / "ferry.log"
    handler = logging.handlers.RotatingFileHandler(log_file, maxBytes=2_000_000, backupCount=3, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.setLevel(level)
    root.addHandler(handler)
    return log_file
