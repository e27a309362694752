"""The app factory: one FastAPI application for the desktop (`local`) and the shared server (`server`)."""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

from anyio import to_thread
from fastapi import FastAPI

from server import __version__, errors
from server.db import Database
from server.guard import LocalGuardMiddleware
from server.middleware import RequestContextMiddleware
from server.migrate import upgrade
from server.proxies import parse_trusted
from server.routes import health, notes, pages, tasks, ws
from server.settings import Settings
from server.state import AppState, build_state

if TYPE_CHECKING:
    from sync.engine import SyncEngine

# Each mode imports only its own modules (inside `create_app`): the desktop's start-up does not
# pay for sign-in, rate limiting and the sync server, nor the shared server for the sync client.

log = logging.getLogger("ferry")


def create_app(settings: Settings | None = None, *, migrate: bool = True, hold_sync: bool = False) -> FastAPI:
    """`hold_sync` (local mode): the sync engine's start waits for `SyncEngine.release()` (the
    desktop calls it once its first page is on screen), so the first page does not wait for it."""
    settings = settings or Settings()
    db = Database(settings)
    if migrate:
        upgrade(db)
    state = build_state(settings, db)

    if settings.mode == "local":
        state.sync_engine = _sync_engine(state)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        state.hub.bind(asyncio.get_running_loop())
        notifier = None
        if settings.mode == "server" and not db.is_sqlite:
            # Several processes share the database: events reach the others through NOTIFY.
            from server.pgnotify import PgNotifier, conninfo

            notifier = PgNotifier(conninfo(db.url), state.hub)
            await asyncio.to_thread(notifier.start)
            state.hub.fanout = notifier.send
            if state.sync_server is not None:
                state.sync_server.notice = notifier.message
        log.info("Ferry %s (%s mode) using %s", __version__, settings.mode, db.url.render_as_string())
        if state.sync_engine is not None:
            await state.sync_engine.start(held=hold_sync)
        if settings.mode == "server":
            # What exists once the server is up (modules, the app, the engine) lives until
            # exit. Frozen, full collections stop walking it: they were a third of the first
            # push of 5,000 changes (about 90 of 300 ms). (The desktop manages its collector
            # itself: `desktop.cli.StartupGC`.)
            gc.collect()
            gc.freeze()
            # With so little left unfrozen, a full collection's ratio check (new survivors
            # over a quarter of the old) always passed, so one ran after every 10 collections
            # of the middle generation while a push built its rows. In-process, a push of
            # 5,000 new tasks took 177-185 ms with the default thresholds, 163-164 with this.
            gc.set_threshold(700, 10, 1000)
            # Requests run their database work in worker threads: as many at once as the pool
            # keeps connections for. With anyio's 40 threads and a pool of 5, a loaded worker
            # opened a new PostgreSQL connection (a new server process) for most requests
            # and closed it again.
            to_thread.current_default_thread_limiter().total_tokens = settings.db_pool_size
        try:
            yield
        finally:
            if state.sync_engine is not None:
                await state.sync_engine.stop(settings.final_sync_seconds)
            if notifier is not None:
                state.hub.fanout = None
                await asyncio.to_thread(notifier.stop)
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
    if settings.mode == "server":
        _document_push_body(app)
    errors.install(app)

    if settings.mode == "server":
        from server.routes import sync

        # First: a request is matched against the routes in order, and nearly every request
        # a shared server gets is a device's push or pull.
        app.include_router(sync.router)
    app.include_router(health.router)
    app.include_router(tasks.router)
    app.include_router(notes.router)
    app.include_router(ws.router)
    if settings.mode == "server":
        from server.ratelimit import LoginLimiter
        from server.routes import auth

        app.state.login_limiter = LoginLimiter(db, settings.login_max_failures, settings.login_window_seconds)
        app.include_router(auth.router)
    else:
        from server.routes import local_settings, sync_local

        app.include_router(local_settings.router)
        app.include_router(sync_local.router)
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
        trusted_proxies=parse_trusted(settings.trusted_proxies) if settings.mode == "server" else (),
    )
    return app


def _document_push_body(app: FastAPI) -> None:
    """The push route reads its body itself (for speed); add its schema to the OpenAPI doc."""
    from sync.protocol import PushRequest

    original = app.openapi

    def openapi() -> dict:
        if app.openapi_schema is None:
            schema = original()
            defs = PushRequest.model_json_schema(ref_template="#/components/schemas/{model}")
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            components.update(defs.pop("$defs", {}))
            components["PushRequest"] = defs
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def _sync_engine(state: AppState) -> SyncEngine:
    """The desktop's sync engine, wired to its database, its pages and its settings."""
    from server.routes import local_settings
    from server.sync_store import LocalSyncStore
    from sync.credentials import CredentialStore
    from sync.engine import SyncEngine

    settings = state.settings
    engine = SyncEngine(
        LocalSyncStore(state),
        CredentialStore(settings.resolved_data_dir(), use_keyring=settings.use_keyring),
        interval=local_settings.read_settings(state).sync_interval_seconds,
        on_status=lambda status: state.hub.publish("", "sync.status", status),
        timeout=settings.sync_timeout_seconds,
    )
    state.records.on_local_change = engine.notify_local_change
    return engine


def app_state(app: FastAPI) -> AppState:
    return app.state.ferry
