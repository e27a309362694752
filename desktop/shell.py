"""Routes only the desktop adds to the local API: bringing the window forward, and the page
saying that its first task list is on screen (`ui/ready.js`; the log records the time to
interactive, and the window tests wait for it).

The page reports through the local API rather than pywebview's JavaScript bridge because that
bridge builds its functions with `eval`, which the page's Content-Security-Policy forbids."""

from __future__ import annotations

from collections.abc import Callable

from fastapi import FastAPI, Response


def nothing() -> None:
    pass


def add_app_routes(app: FastAPI, on_show: Callable[[], None] = nothing, on_ready: Callable[[], None] = nothing) -> None:
    @app.post("/api/app/show", status_code=204, tags=["app"], summary="Bring the window forward")
    def show() -> Response:
        on_show()
        return Response(status_code=204)

    @app.post("/api/app/ready", status_code=204, tags=["app"], summary="The window's first task list is on screen")
    def ready() -> Response:
        on_ready()
        return Response(status_code=204)
