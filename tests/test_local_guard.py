"""The local API guard (DESIGN.md, "Local API guard") against a real local-mode server: the
per-launch token (Bearer header or the session cookie from `/?token=`), Host and Origin
checks against DNS rebinding and CSRF, no CORS, the page's CSP, and the same rules on /ws."""

from __future__ import annotations

import re
import socket
from collections.abc import Iterator
from html.parser import HTMLParser
from urllib.parse import urlsplit

import httpx
import pytest

from server.guard import COOKIE
from tests.servers import Running, free_port
from tests.wsclient import open_ws, refused_status

PROTECTED = [
    ("GET", "/api/tasks"),
    ("POST", "/api/tasks"),
    ("GET", "/api/notes"),
    ("GET", "/api/settings"),
    ("PUT", "/api/settings"),
    ("GET", "/api/tasks/0190a000-0000-7000-8000-000000000000"),
    ("DELETE", "/api/notes/0190a000-0000-7000-8000-000000000000"),
    ("GET", "/api/no-such-route"),
    ("POST", "/api/health"),  # only GET/HEAD of health are open
]


@pytest.fixture
def anon(local_app: Running) -> Iterator[httpx.Client]:
    """A client that sends no token and keeps no cookies between requests."""
    with httpx.Client(base_url=local_app.url, timeout=10, follow_redirects=False) as client:
        yield client


def auth(local_app: Running) -> dict[str, str]:
    assert local_app.token
    return {"Authorization": f"Bearer {local_app.token}"}


def test_api_needs_the_token(local_app: Running, anon: httpx.Client) -> None:
    for method, path in PROTECTED:
        response = anon.request(method, path, json={"title": "x"})
        assert response.status_code == 401, (method, path, response.status_code)
        assert response.headers["content-type"].startswith("application/json")
        assert "detail" in response.json()

        wrong = anon.request(method, path, json={"title": "x"}, headers={"Authorization": "Bearer wrong-token"})
        assert wrong.status_code == 401, (method, path)

    token = local_app.token
    assert token
    near_misses = [f"Bearer {token[:-1]}", f"Bearer {token}x", f"Bearer {token.upper()}", f"Basic {token}", token]
    for value in near_misses:
        assert anon.get("/api/tasks", headers={"Authorization": value}).status_code == 401, value

    # Nothing was created by the refused POSTs.
    listed = anon.get("/api/tasks", headers=auth(local_app))
    assert listed.status_code == 200
    assert listed.json() == []

    created = anon.post("/api/tasks", json={"title": "with token"}, headers=auth(local_app))
    assert created.status_code == 201
    assert anon.get("/api/settings", headers={"Authorization": f"bearer {token}"}).status_code == 200


RAW_PATHS = [
    "/api/tasks/",
    "/api//tasks",
    "//api/tasks",
    "/%61pi/tasks",
    "/api/tasks%2F",
    "/api/%2e%2e/api/tasks",
    "/api/health/../tasks",
    "/api/health/",
    "/static/../api/tasks",
    "/./api/tasks",
]


def test_path_tricks_do_not_bypass_the_token(local_app: Running) -> None:
    """Raw request targets (not normalised by a client library) never reach data without the token."""
    with local_app.client() as client:
        assert client.post("/api/tasks", json={"title": "secret-title-1234"}).status_code == 201
    for target in RAW_PATHS:
        with socket.create_connection(("127.0.0.1", local_app.port), timeout=5) as sock:
            request = f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1:{local_app.port}\r\nConnection: close\r\n\r\n"
            sock.sendall(request.encode())
            reply = b""
            while len(reply) < 1_000_000 and (chunk := sock.recv(65536)):
                reply += chunk
        status = int(reply.split(b" ", 2)[1])
        assert status in (401, 404), (target, status)
        assert b"secret-title-1234" not in reply, target


def test_health_needs_no_token(anon: httpx.Client) -> None:
    response = anon.get("/api/health")
    assert response.status_code == 200
    assert response.json()["status"] == "ok"
    assert response.json()["mode"] == "local"
    assert anon.head("/api/health").status_code in (200, 405)


def test_token_in_url_sets_cookie_and_redirects(local_app: Running, anon: httpx.Client) -> None:
    response = anon.get("/", params={"token": local_app.token})
    assert response.status_code == 303
    assert response.headers["location"] == "/"
    set_cookie = response.headers.get_list("set-cookie")
    assert len(set_cookie) == 1
    attributes = [part.strip().lower() for part in set_cookie[0].split(";")]
    assert "httponly" in attributes
    assert "samesite=strict" in attributes
    name, _, value = set_cookie[0].split(";")[0].partition("=")
    assert name == COOKIE and value
    assert local_app.token not in response.headers["location"]

    # That cookie alone now authorizes the API...
    cookie = {"Cookie": f"{name}={value}"}
    assert anon.get("/api/tasks", headers=cookie).status_code == 200
    created = anon.post("/api/notes", json={"title": "via cookie"}, headers=cookie)
    assert created.status_code == 201
    # ...and the page itself loads after the redirect.
    page = anon.get("/", headers=cookie)
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")

    # A cookie jar (as a browser keeps one) works the same way.
    with httpx.Client(base_url=local_app.url, timeout=10, follow_redirects=True) as browser:
        landed = browser.get("/", params={"token": local_app.token})
        assert landed.status_code == 200
        assert str(landed.url) == f"{local_app.url}/"
        assert browser.get("/api/notes").json()[0]["title"] == "via cookie"

    # A cookie with the wrong value is no better than none.
    assert anon.get("/api/tasks", headers={"Cookie": f"{name}=wrong"}).status_code == 401
    assert anon.get("/api/tasks", headers={"Cookie": f"other={value}"}).status_code == 401


def test_wrong_token_in_url_is_refused_without_cookie(local_app: Running, anon: httpx.Client) -> None:
    assert local_app.token
    for wrong in ("wrong", local_app.token[:-1], local_app.token + "x", f"{local_app.token} "):
        response = anon.get("/", params={"token": wrong})
        assert response.status_code == 401, wrong
        assert "set-cookie" not in response.headers
        assert "location" not in response.headers
    # An empty token is no token: the page may load, but no session cookie comes with it.
    empty = anon.get("/?token=")
    assert empty.status_code != 303
    assert "set-cookie" not in empty.headers


def test_foreign_host_is_refused(local_app: Running, anon: httpx.Client) -> None:
    port = local_app.port
    other = free_port()
    foreign_hosts = [
        f"evil.example:{port}",
        "evil.example",
        f"127.0.0.1:{other}",
        f"localhost:{other}",
        "127.0.0.1",
        f"127.0.0.2:{port}",
        f"0.0.0.0:{port}",
        f"[::1]:{port}",
        f"127.0.0.1.evil.example:{port}",
        f"localhost.:{port}",
    ]
    for host in foreign_hosts:
        headers = {**auth(local_app), "Host": host}
        for path in ("/api/tasks", "/api/health", "/", "/docs", "/openapi.json"):
            response = anon.get(path, headers=headers)
            assert response.status_code == 403, (host, path, response.status_code)
        assert anon.get("/", params={"token": local_app.token}, headers={"Host": host}).status_code == 403
        assert "set-cookie" not in anon.get("/", params={"token": local_app.token}, headers={"Host": host}).headers

    for host in (f"127.0.0.1:{port}", f"localhost:{port}"):
        response = anon.get("/api/tasks", headers={**auth(local_app), "Host": host})
        assert response.status_code == 200, host


def test_foreign_origin_is_refused(local_app: Running, anon: httpx.Client) -> None:
    port = local_app.port
    other = free_port()
    foreign_origins = [
        "http://evil.example",
        f"http://evil.example:{port}",
        f"http://127.0.0.1:{other}",
        f"http://localhost:{other}",
        f"https://127.0.0.1:{port}",
        "null",
        f"http://127.0.0.1:{port}.evil.example",
    ]
    for origin in foreign_origins:
        headers = {**auth(local_app), "Origin": origin}
        assert anon.get("/api/tasks", headers=headers).status_code == 403, origin
        posted = anon.post("/api/tasks", json={"title": "csrf"}, headers=headers)
        assert posted.status_code == 403, origin
        assert anon.get("/", params={"token": local_app.token}, headers={"Origin": origin}).status_code == 403
    assert anon.get("/api/tasks", headers=auth(local_app)).json() == []

    for origin in (f"http://127.0.0.1:{port}", f"http://localhost:{port}"):
        headers = {**auth(local_app), "Origin": origin}
        created = anon.post("/api/tasks", json={"title": f"from {origin}"}, headers=headers)
        assert created.status_code == 201, origin
        assert anon.get("/api/tasks", headers=headers).status_code == 200


def test_no_cors_headers_ever(local_app: Running, anon: httpx.Client) -> None:
    port = local_app.port
    for origin in ("http://evil.example", f"http://127.0.0.1:{port}", f"http://localhost:{port}"):
        preflight = anon.options(
            "/api/tasks",
            headers={
                "Origin": origin,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "authorization, content-type",
            },
        )
        normal = anon.get("/api/tasks", headers={**auth(local_app), "Origin": origin})
        for response in (preflight, normal):
            cors = [h for h in response.headers if h.lower().startswith("access-control-")]
            assert cors == [], (origin, cors)


class _Refs(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.refs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if name in ("src", "href") and value:
                self.refs.append(value)


def test_page_has_csp_and_only_local_assets(local_app: Running, anon: httpx.Client) -> None:
    page = anon.get("/")  # the page itself needs no token; the API behind it does
    assert page.status_code == 200
    csp = page.headers.get("content-security-policy")
    assert csp is not None
    directives = {d.strip().split()[0]: d.strip().split()[1:] for d in csp.split(";") if d.strip()}
    assert directives.get("default-src") == ["'self'"]
    assert "unsafe" not in csp  # no inline scripts or eval in the app's own page
    assert "script-src" not in directives or directives["script-src"] == ["'self'"]

    assert not re.search(r"""(https?:)?//[^\s"'<>]""", page.text.replace("<!doctype html>", "")), "external URL"
    parser = _Refs()
    parser.feed(page.text)
    assert parser.refs, "the page references its stylesheet and script"
    for ref in parser.refs:
        parts = urlsplit(ref)
        assert not parts.scheme and not parts.netloc, ref
        asset = anon.get(ref)
        assert asset.status_code == 200, ref
        assert asset.content


def test_websocket_needs_token_host_and_origin(local_app: Running) -> None:
    url = local_app.url
    port = local_app.port
    good = auth(local_app)
    assert refused_status(url) == 403
    assert refused_status(url, headers={"Authorization": "Bearer wrong"}) == 403
    assert refused_status(url, headers={"Cookie": f"{COOKIE}=wrong"}) == 403
    assert refused_status(url, path=f"/ws?token={local_app.token}") == 403  # not a way in for /ws
    assert refused_status(url, headers=good, origin="http://evil.example") == 403
    assert refused_status(url, headers=good, origin=f"http://127.0.0.1:{free_port()}") == 403
    assert refused_status(url, headers=good, host=f"evil.example:{port}") == 403

    assert refused_status(url, headers=good) is None
    assert refused_status(url, headers={"Cookie": f"{COOKIE}={local_app.token}"}) is None
    assert refused_status(url, headers=good, origin=f"http://127.0.0.1:{port}") is None
    assert refused_status(url, headers=good, origin=f"http://localhost:{port}", host=f"localhost:{port}") is None

    # An accepted socket really is usable (not just an accepted handshake that closes).
    with open_ws(url, headers=good) as conn, httpx.Client(base_url=url, headers=good, timeout=10) as client:
        assert client.post("/api/tasks", json={"title": "ping"}).status_code == 201
        assert '"task.created"' in str(conn.recv(timeout=2))
