"""ASGI entry points for uvicorn workers: settings come from `FERRY_*` variables."""

from __future__ import annotations

from fastapi import FastAPI

from server.app import create_app
from server.logs import configure_logging
from server.settings import Settings


def server_app() -> FastAPI:
    settings = Settings(mode="server")
    configure_logging(settings.log_level)
    # The parent `ferry-server` process has already migrated the database.
    return create_app(settings, migrate=False)
