"""The app factory: one FastAPI application for the desktop (`local`) and the shared server (`server`)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from server import __version__, errors
from server.db import Database
from server.guard import LocalGuardMiddleware
from server.middleware import RequestContextMiddleware
from server.migrate import upgrade
from server.ratelimit import LoginLimiter
from server.routes import auth, health, local_settings, notes, pages, sync, tasks, ws
from server.settings import Settings
from server.state import AppState, build_state

log = logging.getLogger("ferry")


def create_app(settings: Settings | None = None, *, migrate: bool = True) -> FastAPI:
    settings = settings or Settings()
    db = Database(settings)
    if migrate:
        upgrade(db)
    state = build_state(settings, db)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        state.hub.bind(asyncio.get_running_loop())
        log.info("Ferry %s (%s mode) using %s", __version__, settings.mode, db.url.render_as_string())
        try:
            yield
        finally:
            db.dispose()

    app = FastAPI(
        title="Ferry",
        version=__version__,
        summary="Offline-first tasks and notes",
        docs_url=None,
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.ferry = state
    errors.install(app)

    app.include_router(health.router)
    app.include_router(tasks.router)
    app.include_router(notes.router)
    app.include_router(ws.router)
    if settings.mode == "server":
        app.state.login_limiter = LoginLimiter(db, settings.login_max_failures, settings.login_window_seconds)
        app.include_router(auth.router)
        app.include_router(sync.router)
    else:
        app.include_router(local_settings.router)
    app.include_router(pages.router)
    pages.mount_static(app)

    # Outermost last: the request context wraps everything, including the guard's refusals.
    if settings.mode == "local":
        assert state.local_token is not None
        app.add_middleware(LocalGuardMiddleware, token=state.local_token)
    app.add_middleware(
        RequestContextMiddleware,
        max_body_bytes=settings.max_body_bytes,
        access_log_enabled=settings.access_log,
        path_limits={"/api/sync/push": settings.max_push_bytes},
    )
    return app


def app_state(app: FastAPI) -> AppState:
    return app.state.ferry
