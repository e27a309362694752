"""The shared server's log: one format on standard error, in the parent process and in every
uvicorn worker (a worker is a fresh interpreter, spawned: it inherits no logging set-up, and
without its own its access log and warnings below WARNING went nowhere)."""

from __future__ import annotations

import logging
import sys

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def configure_logging(level: str) -> None:
    """Idempotent: a process whose root logger already has a handler keeps it."""
    logging.basicConfig(level=level.upper(), format=FORMAT, stream=sys.stderr)
