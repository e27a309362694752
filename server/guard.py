"""The local-mode guard: only this desktop's own window (or a script holding the per-launch
token) may use the local API.

- `Host` must be `127.0.0.1:PORT` or `localhost:PORT` (stops DNS rebinding);
- an `Origin`, when sent, must be the app's own (stops cross-site requests; there is no CORS);
- `/api/*` (except `GET /api/health`) and `/ws` need the token, as `Authorization: Bearer`
  or as the session cookie that `/?token=...` sets before redirecting to `/`.
"""

from __future__ import annotations

import hmac
from urllib.parse import parse_qs

import orjson
from starlette.types import ASGIApp, Receive, Scope, Send

COOKIE = "ferry_session"
OPEN_PATHS = {("GET", "/api/health"), ("HEAD", "/api/health")}


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return value.decode("latin-1")
    return None


def _cookie(scope: Scope, name: str) -> str | None:
    raw = _header(scope, b"cookie")
    if not raw:
        return None
    for part in raw.split(";"):
        key, _, value = part.strip().partition("=")
        if key == name:
            return value
    return None


class LocalGuardMiddleware:
    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app = app
        self.token = token

    def _port(self, scope: Scope) -> int | None:
        server = scope.get("server")
        return server[1] if server else None

    def _allowed_hosts(self, scope: Scope) -> set[str]:
        port = self._port(scope)
        return {f"127.0.0.1:{port}", f"localhost:{port}"}

    def _token_ok(self, candidate: str | None) -> bool:
        return candidate is not None and hmac.compare_digest(candidate.encode(), self.token.encode())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        allowed = self._allowed_hosts(scope)
        host = _header(scope, b"host")
        if host not in allowed:
            await self._deny(scope, receive, send, 403, "forbidden host")
            return
        origin = _header(scope, b"origin")
        if origin is not None and origin not in {f"http://{h}" for h in allowed}:
            await self._deny(scope, receive, send, 403, "forbidden origin")
            return

        path = scope["path"]
        method = scope.get("method", "GET")
        if scope["type"] == "http" and path == "/" and scope.get("query_string"):
            token = parse_qs(scope["query_string"].decode("latin-1")).get("token", [None])[0]
            if token is not None:
                await self._login_redirect(send, token)
                return

        needs_token = scope["type"] == "websocket" or (path.startswith("/api/") and (method, path) not in OPEN_PATHS)
        if needs_token:
            auth = _header(scope, b"authorization")
            bearer = auth[7:] if auth and auth[:7].lower() == "bearer " else None
            if not (self._token_ok(bearer) or self._token_ok(_cookie(scope, COOKIE))):
                await self._deny(scope, receive, send, 401, "missing or wrong local API token")
                return
        await self.app(scope, receive, send)

    async def _login_redirect(self, send: Send, token: str) -> None:
        if not self._token_ok(token):
            body = orjson.dumps({"detail": "wrong local API token"})
            headers = [(b"content-type", b"application/json")]
            await send({"type": "http.response.start", "status": 401, "headers": headers})
            await send({"type": "http.response.body", "body": body})
            return
        cookie = f"{COOKIE}={self.token}; HttpOnly; SameSite=Strict; Path=/"
        headers = [
            (b"location", b"/"),
            (b"set-cookie", cookie.encode()),
            (b"cache-control", b"no-store"),
            (b"referrer-policy", b"no-referrer"),
        ]
        await send({"type": "http.response.start", "status": 303, "headers": headers})
        await send({"type": "http.response.body", "body": b""})

    async def _deny(self, scope: Scope, receive: Receive, send: Send, status: int, detail: str) -> None:
        if scope["type"] == "websocket":
            await receive()  # the websocket.connect message
            # Refuse the handshake: the ASGI server answers 403 before upgrading.
            await send({"type": "websocket.close", "code": 1008})
            return
        body = orjson.dumps({"detail": detail})
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        if status == 401:
            headers.append((b"www-authenticate", b"Bearer"))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})
