"""Pure-ASGI middleware around every request: request id, access log, body limit, the
client address behind trusted proxies (`server.proxies`), and the last-resort handler that
turns an unexpected exception into a logged 500 with that id.

Pure ASGI (not BaseHTTPMiddleware) because it sits on every request's hot path.
"""

from __future__ import annotations

import logging
import time
import uuid

import orjson
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from server.proxies import Network, client_address

access_log = logging.getLogger("ferry.access")
error_log = logging.getLogger("ferry.errors")


def _json_response_messages(status: int, body: dict, headers: list[tuple[bytes, bytes]]) -> list[Message]:
    payload = orjson.dumps(body)
    return [
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
                *headers,
            ],
        },
        {"type": "http.response.body", "body": payload},
    ]


class RequestContextMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        max_body_bytes: int,
        access_log_enabled: bool = True,
        path_limits: dict[str, int] | None = None,
        trusted_proxies: tuple[Network, ...] = (),
    ) -> None:
        self.app = app
        self.trusted_proxies = trusted_proxies
        self.max_body_bytes = max_body_bytes
        self.access_log_enabled = access_log_enabled
        self.path_limits = path_limits or {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.trusted_proxies and scope["type"] in ("http", "websocket"):
            self._resolve_client(scope)
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = uuid.uuid4().hex[:16]
        scope.setdefault("state", {})["request_id"] = request_id
        rid_header = (b"x-request-id", request_id.encode())
        started = time.perf_counter()
        status_holder = [0]
        response_started = False
        limit = self.path_limits.get(scope["path"], self.max_body_bytes)

        for name, value in scope["headers"]:
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = -1
                if declared < 0 or declared > limit:
                    status = 413 if declared > limit else 400
                    msg = (
                        f"request body too large (limit {limit} bytes)"
                        if status == 413
                        else "invalid Content-Length header"
                    )
                    for m in _json_response_messages(status, {"detail": msg}, [rid_header]):
                        await send(m)
                    self._log(scope, status, started, request_id)
                    return
                break

        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise HTTPException(413, f"request body too large (limit {limit} bytes)")
            return message

        async def send_wrapper(message: Message) -> None:
            nonlocal response_started
            if message["type"] == "http.response.start":
                response_started = True
                status_holder[0] = message["status"]
                message["headers"] = [*message.get("headers", []), rid_header]
            await send(message)

        try:
            await self.app(scope, limited_receive, send_wrapper)
        except Exception:
            error_log.exception("unhandled error in %s %s (request id %s)", scope["method"], scope["path"], request_id)
            if not response_started:
                status_holder[0] = 500
                body = {"detail": "internal server error", "request_id": request_id}
                for m in _json_response_messages(500, body, [rid_header]):
                    await send(m)
        finally:
            self._log(scope, status_holder[0] or 500, started, request_id)

    def _resolve_client(self, scope: Scope) -> None:
        forwarded = [value.decode("latin-1") for name, value in scope["headers"] if name == b"x-forwarded-for"]
        if not forwarded:
            return
        client = scope.get("client")
        peer = client[0] if client else None
        resolved = client_address(peer, forwarded, self.trusted_proxies)
        if resolved is not None and resolved != peer:
            scope["client"] = (resolved, 0)

    def _log(self, scope: Scope, status: int, started: float, request_id: str) -> None:
        if self.access_log_enabled and access_log.isEnabledFor(logging.INFO):
            client = scope.get("client")
            access_log.info(
                "%s %s %s %d %.1fms rid=%s",
                client[0] if client else "-",
                scope["method"],
                scope["path"],
                status,
                (time.perf_counter() - started) * 1000,
                request_id,
            )
