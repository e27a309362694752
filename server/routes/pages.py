"""The HTML the window loads, its static assets, and `/docs` and `/redoc` served offline.

HTML pages carry `Content-Security-Policy: default-src 'self'`. Swagger UI and ReDoc inject
styles at run time, so their pages also allow inline styles (never scripts or other hosts).
"""

from __future__ import annotations

from pathlib import Path

import fastapi_offline
from fastapi import APIRouter, FastAPI
from fastapi.responses import FileResponse, HTMLResponse
from fastapi.staticfiles import StaticFiles

from server.headers import APP_CSP, HTML_HEADERS
from ui import ASSETS

DOCS_ASSETS = Path(fastapi_offline.__file__).parent / "static"
DOCS_CSP = "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; worker-src 'self' blob:"

router = APIRouter(include_in_schema=False)


def _html(body: str, csp: str) -> HTMLResponse:
    return HTMLResponse(body, headers={"Content-Security-Policy": csp, **HTML_HEADERS})


@router.get("/")
def index() -> HTMLResponse:
    return _html((ASSETS / "index.html").read_text(encoding="utf-8"), APP_CSP)


@router.get("/favicon.ico")
def favicon() -> FileResponse:
    return FileResponse(ASSETS / "favicon.svg", media_type="image/svg+xml")


@router.get("/docs")
def swagger() -> HTMLResponse:
    return _html(
        """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Ferry API</title>
<link rel="icon" href="/static/docs/favicon.png">
<link rel="stylesheet" href="/static/docs/swagger-ui.css"></head>
<body data-openapi="/openapi.json"><div id="swagger-ui"></div>
<script src="/static/docs/swagger-ui-bundle.js"></script>
<script src="/static/docs-init/swagger-init.js"></script></body></html>""",
        DOCS_CSP,
    )


@router.get("/docs/oauth2-redirect")
def swagger_redirect() -> HTMLResponse:
    from fastapi.openapi.docs import get_swagger_ui_oauth2_redirect_html

    return get_swagger_ui_oauth2_redirect_html()


@router.get("/redoc")
def redoc() -> HTMLResponse:
    return _html(
        """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Ferry API</title>
<link rel="icon" href="/static/docs/favicon.png"></head>
<body><redoc spec-url="/openapi.json" disable-search-index-worker="false"></redoc>
<script src="/static/docs/redoc.standalone.js"></script></body></html>""",
        DOCS_CSP,
    )


def mount_static(app: FastAPI) -> None:
    app.mount("/static/docs-init", StaticFiles(directory=ASSETS / "docs"), name="docs-init")
    app.mount("/static/docs", StaticFiles(directory=DOCS_ASSETS), name="docs-assets")
    app.mount("/static", StaticFiles(directory=ASSETS), name="ui")
