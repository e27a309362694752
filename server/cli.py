"""`ferry-server`: runs the shared server (server mode) with uvicorn.

Settings come from the options below or from `FERRY_*` environment variables. Migrations
run once, here, before any worker starts, so several workers never race to upgrade.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

import uvicorn

from server.db import Database
from server.migrate import upgrade
from server.settings import Settings


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ferry-server",
        description="Ferry's shared server: the sync endpoint and API that a person's devices "
        "(and a team's) sync with.",
    )
    parser.add_argument("--host", help="address to listen on (default 127.0.0.1; 0.0.0.0 for every interface)")
    parser.add_argument("--port", type=int, help="TCP port to listen on (default 8000)")
    parser.add_argument(
        "--database-url",
        help="SQLAlchemy database URL, e.g. postgresql+psycopg://user@host/ferry "
        "(default: SQLite file ferry.db in the data directory)",
    )
    parser.add_argument("--workers", type=int, help="number of worker processes (default 1; use PostgreSQL for more)")
    parser.add_argument(
        "--data-dir", help="where the SQLite database and the token signing key live (default: the platform's data dir)"
    )
    parser.add_argument("--log-level", default=None, help="debug, info, warning or error (default info)")
    return parser


def settings_from_args(args: argparse.Namespace) -> Settings:
    """Options override `FERRY_*` variables; the result is exported so worker processes agree."""
    overrides = {
        "FERRY_HOST": args.host,
        "FERRY_PORT": args.port,
        "FERRY_DATABASE_URL": args.database_url,
        "FERRY_WORKERS": args.workers,
        "FERRY_DATA_DIR": args.data_dir,
        "FERRY_LOG_LEVEL": args.log_level,
    }
    for key, value in overrides.items():
        if value is not None:
            os.environ[key] = str(value)
    os.environ["FERRY_MODE"] = "server"
    return Settings()


def configure_logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    settings = settings_from_args(args)
    configure_logging(settings.log_level)
    if settings.workers < 1:
        print("ferry-server: --workers must be at least 1", file=sys.stderr)
        return 2
    settings.resolved_data_dir()
    db = Database(settings)
    upgrade(db)
    db.dispose()
    logging.getLogger("ferry").info(
        "serving on http://%s:%d with %d worker(s)", settings.host, settings.port, settings.workers
    )
    uvicorn.run(
        "server.asgi:server_app",
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=settings.workers,
        log_level=settings.log_level.lower(),
        access_log=False,  # Ferry logs each request itself, with its request id
        timeout_graceful_shutdown=10,
    )
    return 0
