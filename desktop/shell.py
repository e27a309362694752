"""Routes only the desktop adds to the local API: bringing the window forward."""

from __future__ import annotations

import threading

from fastapi import FastAPI, Response


def add_app_routes(app: FastAPI, show_window: threading.Event) -> None:
    @app.post("/api/app/show", status_code=204, tags=["app"], summary="Bring the window forward")
    def show() -> Response:
        show_window.set()
        return Response(status_code=204)
