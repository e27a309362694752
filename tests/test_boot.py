"""The desktop's first moments (`server.boot`): before the full local API is attached, the
page, its assets and the first task list are answered by the boot app exactly as the full
API answers them, behind the same guard; everything else waits for the full API and is then
answered by it; a full API that cannot start turns the waiting requests into 503s.

Real uvicorn servers on loopback and real SQLite files: one serving the full local API, one
serving a boot app on the same database that is attached (or not) when the test says so.
"""

from __future__ import annotations

import random
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from desktop.local_server import LocalServer, bind_loopback
from server.app import create_app
from server.boot import SCHEMA_REVISION, BootApp
from server.guard import COOKIE
from server.migrate import head_revision
from server.models import Meta
from server.records import TASKS
from server.state import LOCAL_OWNER_KEY
from server.views import ms_to_iso
from tests.servers import Running, local_settings, serve

TOKEN = "test-token-" + "x" * 20  # as `tests.servers.local_settings`


@contextmanager
def boot_server(database: Path | None, **callbacks: Any) -> Iterator[tuple[str, BootApp, LocalServer]]:
    boot = BootApp(TOKEN, database, **callbacks)
    server = LocalServer(boot, bind_loopback())
    server.start()
    try:
        yield server.url, boot, server
    finally:
        server.stop()


def client(url: str, **kwargs: Any) -> httpx.Client:
    return httpx.Client(base_url=url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10, **kwargs)


def seed(running: Running, count: int = 60) -> None:
    """Tasks of every kind the list orders and filters: dated and undated (with equal dates
    and equal creation times, so the tie-breaks matter), completed, deleted, conflict copies,
    and another owner's."""
    state = running.app.state.ferry
    records = state.records
    rng = random.Random(7)
    ids = []
    for i in range(count):
        values: dict[str, Any] = {"title": f"task {i} ünï", "description": "d" * rng.randint(0, 30)}
        if i % 3:
            values["due_date"] = f"2031-0{rng.randint(1, 3)}-0{rng.randint(1, 3)}"
        values["completed"] = i % 5 == 0
        ids.append(records.create(TASKS, state.local_owner, values, None)["id"])
    for rid in ids[:5]:
        records.delete(TASKS, state.local_owner, rid)
    for rid in ids[5:9]:
        copy = records.create(TASKS, state.local_owner, {"title": "a copy"}, None)
        with state.db.write() as session:
            session.execute(
                TASKS.model.__table__.update()  # type: ignore[attr-defined]
                .where(TASKS.model.id == copy["id"])
                .values(conflict_of=rid, created_ms=TASKS.model.created_ms - 1)
            )
    records.create(TASKS, "someone-else", {"title": "not mine"}, None)
    # Creation times out of id order, and some equal: every tie-break of the order counts.
    table = TASKS.model.__table__  # type: ignore[attr-defined]
    with state.db.write() as session:
        for rid in ids:
            created = 1_767_225_600_000 + rng.choice([0, 0, 1, 2, 3]) * 60_000
            session.execute(table.update().where(table.c.id == rid).values(created_ms=created))


QUERIES = [
    "skip=0&limit=100",
    "skip=0&limit=7",
    "skip=7&limit=7",
    "skip=50&limit=500",
    "limit=3",
    "skip=0&limit=1&conflicts=true",
    "conflicts=true&limit=100",
    "",
]


def test_the_first_list_is_answered_as_the_full_api_answers_it(tmp_path: Path) -> None:
    settings = local_settings(tmp_path / "data")
    with serve(settings) as full, full.client() as api:
        seed(full)
        with boot_server(settings.data_dir / "ferry.db") as (url, boot, _), client(url) as early:
            for query in QUERIES:
                theirs = api.get(f"/api/tasks?{query}")
                ours = early.get(f"/api/tasks?{query}")
                assert theirs.status_code == ours.status_code == 200, (query, ours.text)
                assert ours.content == theirs.content, query
                assert ours.headers["x-total-count"] == theirs.headers["x-total-count"], query
                assert ours.headers["content-type"] == theirs.headers["content-type"]
            assert boot.full is None  # all of it from the boot app itself
        # After a sign-in the list is that account's (`local_owner`).
        state = full.app.state.ferry
        with state.db.write() as session:
            session.merge(Meta(key=LOCAL_OWNER_KEY, value="someone-else"))
        with boot_server(settings.data_dir / "ferry.db") as (url, _, _), client(url) as early:
            rows = early.get("/api/tasks?skip=0&limit=100").json()
            assert [row["title"] for row in rows] == ["not mine"]


def test_the_page_and_its_assets_are_the_full_apis(tmp_path: Path) -> None:
    settings = local_settings(tmp_path / "data")
    with (
        serve(settings) as full,
        boot_server(settings.data_dir / "ferry.db") as (url, _, _),
        httpx.Client(base_url=full.url) as theirs,
        httpx.Client(base_url=url) as ours,
    ):
        for path in ("/", "/static/app.css", "/static/js/main.js", "/static/js/vlist.js", "/static/favicon.svg"):
            a, b = theirs.get(path), ours.get(path)
            assert a.status_code == b.status_code == 200, path
            assert a.content == b.content, path
            assert b.headers["content-type"] == a.headers["content-type"], path
            for name in ("content-security-policy", "x-content-type-options", "referrer-policy"):
                assert b.headers.get(name) == a.headers.get(name), (path, name)
        assert ours.get("/").headers["content-security-policy"] == "default-src 'self'"


def test_the_guard_holds_before_the_full_api_is_there(tmp_path: Path) -> None:
    with serve(local_settings(tmp_path / "data")) as full:
        database = full.settings.data_dir / "ferry.db"
        with boot_server(database) as (url, boot, server), httpx.Client(base_url=url, timeout=10) as anon:
            assert anon.get("/api/tasks").status_code == 401
            assert anon.get("/api/tasks", headers={"Authorization": "Bearer wrong"}).status_code == 401
            port = server.port
            assert anon.get("/api/tasks", headers={"Host": f"evil.example:{port}"}).status_code == 403
            origin = {"Origin": "http://evil.example", "Authorization": f"Bearer {TOKEN}"}
            assert anon.get("/api/tasks", headers=origin).status_code == 403
            assert anon.post("/api/app/ready").status_code == 401
            # `/?token=` sets the session cookie and sends the window on to `/`.
            login = anon.get(f"/?token={TOKEN}", follow_redirects=False)
            assert login.status_code == 303 and login.headers["location"] == "/"
            assert login.cookies.get(COOKIE) == TOKEN
            assert anon.get("/api/tasks", cookies={COOKIE: TOKEN}).status_code == 200
            # Nothing outside the UI's own files, whatever the path says.
            for raw in (b"/static/../server/app.py", b"/static/%2e%2e/server/app.py", b"/static/__init__.py"):
                assert _raw_get(port, raw) != 200
            assert boot.full is None


def _raw_get(port: int, path: bytes, token: bool = False) -> int:
    """A GET sent as it is (httpx would tidy the path), with a deadline; its status, or 0 if
    no answer came before it (the request waits for a full API that is not attached)."""
    auth = b"Authorization: Bearer " + TOKEN.encode() + b"\r\n" if token else b""
    with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
        sock.sendall(b"GET " + path + b" HTTP/1.1\r\nHost: 127.0.0.1:" + str(port).encode() + b"\r\n" + auth + b"\r\n")
        try:
            head = sock.recv(64)
        except TimeoutError:
            return 0
    return int(head.split()[1]) if head.startswith(b"HTTP/1.1 ") else 0


def test_everything_else_waits_for_the_full_api_then_goes_to_it(tmp_path: Path) -> None:
    settings = local_settings(tmp_path / "data")
    ready: list[str] = []
    app = create_app(settings)
    with (
        boot_server(settings.data_dir / "ferry.db", on_ready=lambda: ready.append("ready")) as (url, boot, _),
        client(url) as early,
    ):
        assert early.post("/api/app/ready").status_code == 204 and ready == ["ready"]
        answers: dict[str, httpx.Response] = {}

        def write() -> None:
            with client(url) as other:
                answers["create"] = other.post("/api/tasks", json={"title": "written while starting"})
                answers["status"] = other.get("/api/sync/status")
                answers["filtered"] = other.get("/api/tasks?q=written")

        writer = threading.Thread(target=write)
        writer.start()
        time.sleep(0.5)
        assert "create" not in answers  # waiting, not refused
        boot.attach(app)
        writer.join(10)
        assert answers["create"].status_code == 201, answers["create"].text
        assert answers["status"].json()["state"] == "signed_out"
        assert [t["title"] for t in answers["filtered"].json()] == ["written while starting"]
        # From now on the full API answers everything (its access log, its request ids).
        assert "x-request-id" in early.get("/api/tasks?skip=0&limit=100").headers


def test_waiting_requests_get_a_503_if_the_full_api_cannot_start(tmp_path: Path) -> None:
    with boot_server(None) as (url, boot, _), client(url) as early:
        answers: list[httpx.Response] = []
        waiting = threading.Thread(target=lambda: answers.append(client(url).get("/api/tasks?skip=0&limit=100")))
        waiting.start()
        time.sleep(0.3)
        boot.fail("ValueError: no database")
        waiting.join(10)
        assert answers and answers[0].status_code == 503
        assert "no database" in answers[0].json()["detail"]
        assert early.get("/").status_code == 200  # the page itself still loads


def test_the_first_list_waits_for_a_database_at_another_schema(tmp_path: Path) -> None:
    """A database being upgraded (or not made yet) is left to the full API."""
    assert head_revision() == SCHEMA_REVISION, "server.boot's SQL must be checked against the new schema"
    settings = local_settings(tmp_path / "data")
    with serve(settings) as full:
        seed(full, 3)
        with full.app.state.ferry.db.write() as session:
            session.execute(text("UPDATE alembic_version SET version_num = '0004'"))
        with boot_server(settings.data_dir / "ferry.db") as (url, _, _):
            assert _raw_get(boot_port(url), b"/api/tasks?skip=0&limit=100", token=True) == 0  # waits
    with boot_server(tmp_path / "nothing" / "ferry.db") as (url, _, _):
        assert _raw_get(boot_port(url), b"/api/tasks?skip=0&limit=100", token=True) == 0


def boot_port(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


def test_times_are_shown_as_the_api_shows_them() -> None:
    assert ms_to_iso(1_767_225_600_123) == "2026-01-01T00:00:00.123+00:00"


@pytest.mark.parametrize("query", ["skip=-1&limit=5", "limit=0", "limit=501", "skip=x", "q=a", "completed=true"])
def test_other_list_queries_are_left_to_the_full_api(tmp_path: Path, query: str) -> None:
    with serve(local_settings(tmp_path / "data")) as full, boot_server(full.settings.data_dir / "ferry.db") as boot:
        # No answer: it waits for the full API (which validates it).
        assert _raw_get(boot_port(boot[0]), f"/api/tasks?{query}".encode(), token=True) == 0
