"""The desktop's local API in its first moments: the window's first page while the rest loads.

Importing the API (FastAPI, SQLAlchemy, pydantic) and building it takes about half a second
of Python, and the window could not show its list before that was over. So the desktop
serves this small app from the moment its socket listens, and builds the full one beside it:

- the page (`/`, its assets under `/static/`), the first page of the task list as the window
  asks for it, and the page's "on screen" and "bring forward" calls are answered here, with
  nothing heavier than the standard library and sqlite3;
- everything else (every write, every other query, `/ws`, `/docs`) waits until the full app
  is attached (`attach`), then goes to it; from then on, so does every request.

The guard is the full app's own (`server.guard`): the same token, cookie, Host and Origin
rules hold from the first request. The list is read the way `server.records` reads it, and
shown the way it shows it (`server.views`); a test holds the two answers equal. It is served
from here only when the database is at the schema this code knows (otherwise: wait).
"""

from __future__ import annotations

import asyncio
import logging
import mimetypes
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import orjson

from server.guard import LocalGuardMiddleware
from server.headers import APP_CSP, HTML_HEADERS
from server.views import read_view
from ui import ASSETS

log = logging.getLogger("ferry.boot")

#: the migration this code's SQL is written for (a test holds it to `server.migrate`'s head)
SCHEMA_REVISION = "0005"
MAX_LIMIT = 500  # as `server.routes.crud`
MAX_SKIP = 1_000_000_000

_TASK_COLUMNS = "id, title, description, due_date, completed, conflict_of, created_ms, updated_ms"
# The list order of `server.records` (dated first, soonest first, then undated; creation order
# breaks ties), on the index that follows it.
_TASK_ORDER = "(due_date IS NULL), due_date, created_ms, id"

Scope = dict[str, Any]
Receive = Callable[[], Any]
Send = Callable[[dict[str, Any]], Any]


class BootApp:
    """An ASGI app: the first page now, everything once the full app is attached."""

    def __init__(
        self,
        token: str,
        database: Path | None,
        on_ready: Callable[[], None] = lambda: None,
        on_show: Callable[[], None] = lambda: None,
    ) -> None:
        self.database = database
        self.on_ready = on_ready
        self.on_show = on_show
        self.full: Any = None
        self._failed: str | None = None
        self._attached: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lifespan: _Lifespan | None = None
        self._guarded = LocalGuardMiddleware(self._serve, token)  # type: ignore[arg-type]

    # -- attaching the full app ------------------------------------------------------------------

    def attach(self, full: Any, timeout: float = 30.0) -> None:
        """From another thread: run the full app's start-up (its lifespan) in the server's
        event loop, then hand every request to it. Returns once it is serving; raises what
        its start-up raised."""
        loop = self._loop
        if loop is None:
            raise RuntimeError("the server is not running")
        asyncio.run_coroutine_threadsafe(self._attach(full), loop).result(timeout)

    def fail(self, reason: str) -> None:
        """From another thread: the full app could not be built; waiting requests get a 503."""
        self._failed = reason
        if self._loop is not None and self._attached is not None:
            self._loop.call_soon_threadsafe(self._attached.set)

    async def _attach(self, full: Any) -> None:
        lifespan = _Lifespan(full)
        await lifespan.start()
        self._lifespan = lifespan
        self.full = full
        assert self._attached is not None
        self._attached.set()

    # -- ASGI --------------------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._run_lifespan(receive, send)
            return
        full = self.full
        if full is not None:
            await full(scope, receive, send)
            return
        await self._guarded(scope, receive, send)

    async def _run_lifespan(self, receive: Receive, send: Send) -> None:
        """uvicorn's start and stop. Starting is immediate (the full app starts when it is
        attached); stopping stops the full app too."""
        self._loop = asyncio.get_running_loop()
        self._attached = asyncio.Event()
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self._lifespan is not None:
                    await self._lifespan.stop()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _serve(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Past the guard, before the full app is attached."""
        if scope["type"] == "http":
            answer = self._answer(scope)
            if answer is not None:
                status, headers, body = answer
                await send({"type": "http.response.start", "status": status, "headers": headers})
                await send({"type": "http.response.body", "body": body if scope["method"] != "HEAD" else b""})
                return
        assert self._attached is not None
        await self._attached.wait()
        if self.full is None:
            await _send_json(send, 503, {"detail": f"the local API could not start: {self._failed}"})
            return
        await self.full(scope, receive, send)

    def _answer(self, scope: Scope) -> tuple[int, list[tuple[bytes, bytes]], bytes] | None:
        """An answer this app can give, or None (the request waits for the full app)."""
        method, path = scope["method"], scope["path"]
        if method == "POST" and path in ("/api/app/ready", "/api/app/show"):
            # The window reports its first list on screen (or a second launch asks for it).
            (self.on_ready if path == "/api/app/ready" else self.on_show)()
            return 204, [], b""
        if method not in ("GET", "HEAD"):
            return None
        if path == "/":
            return _html(ASSETS / "index.html")
        if path.startswith("/static/"):
            return _asset(path.removeprefix("/static/"))
        if path == "/api/tasks":
            return self._first_tasks(scope.get("query_string", b"").decode("latin-1"))
        return None

    # -- the task list -----------------------------------------------------------------------------

    def _first_tasks(self, query: str) -> tuple[int, list[tuple[bytes, bytes]], bytes] | None:
        """`GET /api/tasks` with `skip` and `limit`, and optionally `conflicts=true` (the
        window's first list and its Conflicts count); anything else waits."""
        pairs = parse_qsl(query, keep_blank_values=True)
        params = dict(pairs)
        if self.database is None or len(params) != len(pairs) or not params.keys() <= {"skip", "limit", "conflicts"}:
            return None
        skip, limit = params.get("skip", "0"), params.get("limit", "100")
        if not (skip.isdigit() and limit.isdigit()) or params.get("conflicts", "true") != "true":
            return None
        skip_n, limit_n = int(skip), int(limit)
        if skip_n > MAX_SKIP or not 1 <= limit_n <= MAX_LIMIT:
            return None
        try:
            rows, total = self._read_tasks(skip_n, limit_n, "conflicts" in params)
        except sqlite3.Error:
            return None  # (no database yet, or one being upgraded: the full app answers)
        if rows is None:
            return None
        body = orjson.dumps(rows)
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"x-total-count", str(total).encode()),
        ]
        return 200, headers, body

    def _read_tasks(self, skip: int, limit: int, conflicts: bool) -> tuple[list[dict[str, Any]] | None, int]:
        conn = sqlite3.connect(f"file:{self.database}?mode=ro", uri=True, timeout=1)
        try:
            (revision,) = conn.execute("SELECT version_num FROM alembic_version").fetchone() or ("",)
            if revision != SCHEMA_REVISION:
                return None, 0
            found = conn.execute("SELECT value FROM meta WHERE key = 'local_owner'").fetchone()
            owner = found[0] if found else ""
            where = "owner_id = ? AND deleted = 0" + (" AND conflict_of IS NOT NULL" if conflicts else "")
            # One read transaction: the page and its count from the same state.
            conn.execute("BEGIN")
            (total,) = conn.execute(f"SELECT count(*) FROM tasks WHERE {where}", (owner,)).fetchone()
            cursor = conn.execute(
                f"SELECT {_TASK_COLUMNS} FROM tasks WHERE {where} ORDER BY {_TASK_ORDER} LIMIT ? OFFSET ?",
                (owner, limit, skip),
            )
            names = [column[0] for column in cursor.description]
            rows = []
            for values in cursor:
                row = dict(zip(names, values, strict=True))
                row["completed"] = bool(row["completed"])
                rows.append(read_view("task", row))
            return rows, int(total)
        finally:
            conn.close()


class _Lifespan:
    """Drives an ASGI app's lifespan by hand (start, later stop), as a server would."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self._inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._outbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        scope = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}
        self._task = asyncio.ensure_future(self.app(scope, self._inbox.get, self._outbox.put))
        await self._inbox.put({"type": "lifespan.startup"})
        answer = await self._outbox.get()
        if answer["type"] != "lifespan.startup.complete":
            raise RuntimeError(f"the local API did not start: {answer.get('message', answer['type'])}")

    async def stop(self) -> None:
        await self._inbox.put({"type": "lifespan.shutdown"})
        await self._outbox.get()
        if self._task is not None:
            await self._task


# -- the page and its assets ---------------------------------------------------------------------

_ASSET_ROOT = ASSETS.resolve()
_cache: dict[str, tuple[int, list[tuple[bytes, bytes]], bytes]] = {}
_cache_lock = threading.Lock()


def _html(path: Path) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    body = path.read_bytes()
    headers = [(b"content-type", b"text/html; charset=utf-8"), (b"content-length", str(len(body)).encode())]
    headers += [(b"content-security-policy", APP_CSP.encode())]
    headers += [(name.lower().encode(), value.encode()) for name, value in HTML_HEADERS.items()]
    return 200, headers, body


def _asset(relative: str) -> tuple[int, list[tuple[bytes, bytes]], bytes] | None:
    """A file of the UI's own (never outside `ui/`, never its docs assets); None if there is
    no such file (the full app then answers, with its 404)."""
    with _cache_lock:
        found = _cache.get(relative)
    if found is not None:
        return found
    path = (_ASSET_ROOT / relative).resolve()
    if relative.startswith("docs/") or not path.is_relative_to(_ASSET_ROOT) or not path.is_file():
        return None  # (`/static/docs/` is the API documentation's, served by the full app)
    if path.suffix == ".py":
        return None
    kind = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    if kind.startswith("text/"):  # (as Starlette's static files say it)
        kind += "; charset=utf-8"
    body = path.read_bytes()
    headers = [(b"content-type", kind.encode()), (b"content-length", str(len(body)).encode())]
    answer = (200, headers, body)
    with _cache_lock:
        _cache[relative] = answer
    return answer


async def _send_json(send: Send, status: int, data: Any) -> None:
    body = orjson.dumps(data)
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
