"""JSON error responses: 422s that name the field and the reason, and plain `detail` for the rest.

FastAPI's default 422 echoes the whole input back (a megabyte note, say) and can carry
exception objects that do not serialise; this handler sends only what a client can act on.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException


def _field_name(loc: tuple[Any, ...] | list[Any]) -> str:
    parts = [str(p) for p in loc]
    if parts and parts[0] in ("body", "query", "path", "header", "cookie"):
        parts = parts[1:]
    return ".".join(parts) or "body"


def validation_errors(errors: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for err in errors:
        loc = list(err.get("loc", ()))
        msg = str(err.get("msg", "invalid")).removeprefix("Value error, ")
        ctx = err.get("ctx") or {}
        field = _field_name(loc)
        if err.get("type") == "json_invalid":
            # FastAPI's loc here is ("body", <character position>): the position is no field.
            field = "body"
            if "error" in ctx:
                msg = f"{msg}: {ctx['error']}"
            if len(loc) > 1 and isinstance(loc[1], int):
                msg = f"{msg} (at character {loc[1]})"
        out.append({"field": field, "loc": loc, "msg": msg, "type": str(err.get("type"))})
    return out


async def _validation_handler(request: Request, exc: RequestValidationError) -> JSONResponse:
    details = validation_errors(list(exc.errors()))
    summary = "; ".join(f"{d['field']}: {d['msg']}" for d in details[:5])
    return JSONResponse(
        {"detail": details, "message": summary or "invalid request"},
        status_code=422,
    )


BODY_PARSE_ERROR = "There was an error parsing the body"


async def _http_handler(request: Request, exc: HTTPException) -> JSONResponse:
    if exc.status_code == 400:
        # Only the framework raises 400: FastAPI for a body json cannot parse (e.g. nested too
        # deep), Starlette for a malformed form (e.g. multipart with no boundary). Either is
        # invalid input like any other, so it gets the same 422 shape.
        msg = "could not parse the body"
        if exc.detail != BODY_PARSE_ERROR:
            msg = f"{msg}: {exc.detail}"
        elif isinstance(exc.__cause__, RecursionError):
            msg = f"{msg}: nested too deeply"
        elif isinstance(exc.__cause__, UnicodeDecodeError):
            msg = f"{msg}: not valid UTF-8"
        item = {"field": "body", "loc": ["body"], "msg": msg, "type": "body_invalid"}
        return JSONResponse({"detail": [item], "message": f"body: {msg}"}, status_code=422)
    headers = dict(exc.headers) if exc.headers else None
    return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=headers)


def install(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, _validation_handler)  # type: ignore[arg-type]
    app.add_exception_handler(HTTPException, _http_handler)  # type: ignore[arg-type]
