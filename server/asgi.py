"""ASGI entry points for uvicorn workers: settings come from `FERRY_*` variables."""

from __future__ import annotations

from fastapi import FastAPI

from server.app import create_app
from server.settings import Settings


def server_app() -> FastAPI:
    # The parent `ferry-server` process has already migrated the database.
    return create_app(Settings(mode="server"), migrate=False)
