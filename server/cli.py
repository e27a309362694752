"""`ferry-server`: runs the shared server (server mode) with uvicorn.

Settings come from the options below or from `FERRY_*` environment variables. Migrations
run once, here, before any worker starts, so several workers never race to upgrade.

Commands (the plain `ferry-server [options]` form serves):
- `ferry-server [serve] [--host H] [--port N] [--database-url URL] [--workers N] [--data-dir DIR]`
- `ferry-server create-user USERNAME [--password-stdin] [--email E]`
- `ferry-server backup DIR`: a consistent copy of the database (see `server.admin`).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

import uvicorn

from server.db import Database
from server.logs import configure_logging
from server.migrate import upgrade
from server.settings import Settings

COMMANDS = ("serve", "create-user", "backup")


def _database_options(parser: argparse.ArgumentParser) -> None:
    # SUPPRESS: a subcommand's copy of an option must not overwrite the top level's value.
    parser.add_argument(
        "--database-url",
        default=argparse.SUPPRESS,
        help="SQLAlchemy database URL, e.g. postgresql+psycopg://user@host/ferry "
        "(default: SQLite file ferry.db in the data directory)",
    )
    parser.add_argument(
        "--data-dir",
        default=argparse.SUPPRESS,
        help="where the SQLite database and the token signing key live (default: the platform's data dir)",
    )
    parser.add_argument("--log-level", default=argparse.SUPPRESS, help="debug, info, warning or error (default info)")


def _serve_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--host",
        default=argparse.SUPPRESS,
        help="address to listen on (default 127.0.0.1; 0.0.0.0 for every interface)",
    )
    parser.add_argument("--port", type=int, default=argparse.SUPPRESS, help="TCP port to listen on (default 8000)")
    parser.add_argument(
        "--workers",
        type=int,
        default=argparse.SUPPRESS,
        help="number of worker processes (default 1; use PostgreSQL for more)",
    )
    _database_options(parser)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ferry-server",
        description="Ferry's shared server: the sync endpoint and API that a person's devices "
        "(and a team's) sync with. With no command, it serves.",
    )
    _serve_options(parser)
    commands = parser.add_subparsers(dest="command", metavar="{serve,create-user,backup}")
    _serve_options(commands.add_parser("serve", help="serve (the default)"))
    create = commands.add_parser("create-user", help="create an account (the password is read, never an argument)")
    create.add_argument("username")
    create.add_argument(
        "--password-stdin", action="store_true", help="read the password from the first line of standard input"
    )
    create.add_argument("--email", default=None)
    _database_options(create)
    backup = commands.add_parser(
        "backup", help="write a consistent copy of the database into DIR (SQLite file or pg_dump archive)"
    )
    backup.add_argument("dir", type=Path, metavar="DIR")
    _database_options(backup)
    return parser


def settings_from_args(args: argparse.Namespace) -> Settings:
    """Options override `FERRY_*` variables; the result is exported so worker processes agree."""
    overrides = {
        "FERRY_HOST": getattr(args, "host", None),
        "FERRY_PORT": getattr(args, "port", None),
        "FERRY_DATABASE_URL": getattr(args, "database_url", None),
        "FERRY_WORKERS": getattr(args, "workers", None),
        "FERRY_DATA_DIR": getattr(args, "data_dir", None),
        "FERRY_LOG_LEVEL": getattr(args, "log_level", None),
    }
    for key, value in overrides.items():
        if value is not None:
            os.environ[key] = str(value)
    os.environ["FERRY_MODE"] = "server"
    return Settings()


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    settings = settings_from_args(args)
    configure_logging(settings.log_level)
    if args.command == "create-user":
        from server.admin import create_user

        return create_user(settings, args.username, args.password_stdin, args.email)
    if args.command == "backup":
        from server.admin import backup

        return backup(settings, args.dir)
    return serve(settings)


def serve(settings: Settings) -> int:
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
        # Longer than a device's 30 s between scheduled syncs, so its next round reuses the
        # connection (uvicorn's 5 s closed every one in between; a request sent just as the
        # server closed it failed with a read error under load).
        timeout_keep_alive=65,
        proxy_headers=False,  # X-Forwarded-For is honoured only from FERRY_TRUSTED_PROXIES
    )
    return 0
