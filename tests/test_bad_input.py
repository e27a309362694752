"""Hand-written hostile input against real servers on loopback: the local API (tasks, notes,
settings) and the shared server's sign-up and sign-in routes, on SQLite and PostgreSQL.

Every request here is something a client can send, so by DESIGN.md's error rules each one gets
a clear 4xx and never a 5xx: a 422 that names the field when a field is wrong (or `body` when
the body as a whole is), a 413 when the body is too large, and a JSON error body. And each one
leaves no trace: the totals (`X-Total-Count`), the records themselves, the settings, and the
rows of the change log and the account tables are the same before and after.
"""

from __future__ import annotations

import json
import os
import socket
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import psycopg
import pytest
from sqlalchemy import text

from tests.servers import Running, local_settings, serve, server_settings

PG_DSN = os.environ.get("FERRY_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
TIMEOUT = 30
JSON = {"content-type": "application/json"}
LIMIT = 5 * 1024 * 1024  # Settings.max_body_bytes
SIX_MB = 6 * 1024 * 1024

# The tables whose row counts must not move when a request is refused.
LOCAL_TABLES = ("tasks", "notes", "changes", "meta")
SERVER_TABLES = ("users", "refresh_tokens", "login_failures", "tasks", "notes", "changes")


@dataclass
class Api:
    running: Running
    client: httpx.Client
    tables: tuple[str, ...]

    def row_counts(self) -> dict[str, int]:
        with self.running.app.state.ferry.db.engine.connect() as conn:
            return {t: conn.execute(text(f"SELECT count(*) FROM {t}")).scalar_one() for t in self.tables}

    def snapshot(self) -> dict[str, Any]:
        state: dict[str, Any] = {"rows": self.row_counts()}
        if self.running.settings.mode == "local":
            for kind in ("tasks", "notes"):
                listing = self.client.get(f"/api/{kind}", params={"limit": 500})
                assert listing.status_code == 200, listing.text
                state[kind] = (listing.headers["x-total-count"], listing.json())
            state["settings"] = self.client.get("/api/settings").json()
        return state

    @contextmanager
    def unchanged(self) -> Iterator[None]:
        before = self.snapshot()
        yield
        assert self.snapshot() == before, "a refused request changed something"


def assert_refused(response: httpx.Response, status: int, field: str | None = None) -> dict[str, Any]:
    """The response is `status` with a JSON error body; for a 422, one of its items names `field`."""
    assert response.status_code == status, f"{response.status_code}: {response.text[:500]}"
    assert response.headers["content-type"].startswith("application/json"), response.headers
    body = response.json()
    assert isinstance(body, dict) and body.get("detail"), body
    if status == 422:
        named = [item["field"] for item in body["detail"]]
        assert all(item["msg"] for item in body["detail"]), body
        assert field in named, f"422 does not name {field!r}: {body}"
    return body


# -- servers ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def local(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    """The local API with one task and one note in it, so updates have something to spoil."""
    settings = local_settings(tmp_path_factory.mktemp("local"), access_log=False)
    with serve(settings) as running, running.client() as client:
        assert client.post("/api/tasks", json={"title": "keep me", "due_date": "2030-01-02"}).status_code == 201
        assert client.post("/api/notes", json={"title": "keep me too", "body": "text"}).status_code == 201
        yield Api(running, client, LOCAL_TABLES)


@pytest.fixture(scope="module")
def task_id(local: Api) -> str:
    return local.client.get("/api/tasks").json()[0]["id"]


@pytest.fixture(scope="module")
def note_id(local: Api) -> str:
    return local.client.get("/api/notes").json()[0]["id"]


@contextmanager
def _throwaway_pg_database() -> Iterator[str]:
    name = f"ferry_bad_input_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_DSN, autocommit=True, connect_timeout=3) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield PG_DSN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://") + f"/{name}"
    finally:
        with psycopg.connect(PG_DSN, autocommit=True, connect_timeout=3) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def shared(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    """The shared server (accounts live here), on SQLite and on PostgreSQL."""
    data_dir = tmp_path_factory.mktemp("server")
    with (
        _database_for(request) as database_url,
        serve(server_settings(data_dir, database_url, access_log=False)) as running,
        httpx.Client(base_url=running.url, timeout=TIMEOUT) as client,
    ):
        created = client.post("/api/auth/register", json={"username": "alice", "password": "long enough pw"})
        assert created.status_code == 201, created.text
        yield Api(running, client, SERVER_TABLES)


@contextmanager
def _database_for(request: pytest.FixtureRequest) -> Iterator[str | None]:
    if request.param != "postgres":
        yield None
        return
    if not request.getfixturevalue("pg_available"):
        pytest.skip(f"PostgreSQL not reachable at {PG_DSN}")
    with _throwaway_pg_database() as url:
        yield url


# -- wrong JSON types, field by field ------------------------------------------------------------

VALID = {
    "tasks": {"title": "a title", "description": "", "due_date": None, "completed": False},
    "notes": {"title": "a title", "body": "", "done": False},
}
WRONG_TYPES: dict[str, dict[str, list[Any]]] = {
    "tasks": {
        "title": [123, 1.5, True, [], {}, ["a title"]],
        "description": [1, False, ["x"], {"text": "x"}],
        "due_date": [20240101, 1.0, True, ["2024-01-01"], {"year": 2024}, "tomorrow"],
        "completed": ["true", "yes", 1, 0, 1.0, [], {}],
    },
    "notes": {
        "title": [123, False, [], {"a": 1}],
        "body": [0, True, ["x"], {"text": "x"}],
        "done": ["false", "no", 0, 1, [], {}],
    },
}
TYPE_CASES = [
    pytest.param(kind, method, name, value, id=f"{method} {kind}.{name}={json.dumps(value)}")
    for kind, fields in WRONG_TYPES.items()
    for name, values in fields.items()
    for value in values
    for method in ("POST", "PUT", "PATCH")
]
# null is refused wherever it does not mean "none" (only a task's due date may be null).
NULL_CASES = [
    pytest.param(kind, method, name, id=f"{method} {kind}.{name}=null")
    for kind, valid in VALID.items()
    for name in valid
    if name != "due_date"
    for method in ("POST", "PUT", "PATCH")
]


def _send(api: Api, kind: str, method: str, record_id: str, body: Any) -> httpx.Response:
    url = f"/api/{kind}" if method == "POST" else f"/api/{kind}/{record_id}"
    return api.client.request(method, url, json=body)


def _record_id(kind: str, task_id: str, note_id: str) -> str:
    return task_id if kind == "tasks" else note_id


@pytest.mark.parametrize(("kind", "method", "name", "value"), TYPE_CASES)
def test_a_wrong_json_type_is_refused_naming_the_field(
    local: Api, task_id: str, note_id: str, kind: str, method: str, name: str, value: Any
) -> None:
    body = {name: value} if method == "PATCH" else {**VALID[kind], name: value}
    with local.unchanged():
        assert_refused(_send(local, kind, method, _record_id(kind, task_id, note_id), body), 422, name)


@pytest.mark.parametrize(("kind", "method", "name"), NULL_CASES)
def test_null_is_refused_where_it_means_nothing(
    local: Api, task_id: str, note_id: str, kind: str, method: str, name: str
) -> None:
    body = {name: None} if method == "PATCH" else {**VALID[kind], name: None}
    with local.unchanged():
        assert_refused(_send(local, kind, method, _record_id(kind, task_id, note_id), body), 422, name)


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH"])
@pytest.mark.parametrize(
    ("kind", "name", "value"),
    [
        ("tasks", "id", 123),
        ("tasks", "id", "not-a-uuid"),
        ("tasks", "owner_id", "someone-else"),  # no mass assignment of server-kept fields
        ("tasks", "deleted", True),
        ("tasks", "created_at", "2000-01-01T00:00:00Z"),
        ("tasks", "stamps", "{}"),
        ("notes", "owner_id", "someone-else"),
        ("notes", "updated_at", 0),
    ],
)
def test_unknown_or_server_kept_fields_are_refused(
    local: Api, task_id: str, note_id: str, method: str, kind: str, name: str, value: Any
) -> None:
    body = {name: value} if method == "PATCH" else {**VALID[kind], name: value}
    with local.unchanged():
        assert_refused(_send(local, kind, method, _record_id(kind, task_id, note_id), body), 422, name)


def test_settings_refuse_wrong_types(local: Api) -> None:
    for body, field in [
        ({"sync_interval_seconds": "30"}, "sync_interval_seconds"),
        ({"sync_interval_seconds": 4}, "sync_interval_seconds"),
        ({"sync_interval_seconds": 10**30}, "sync_interval_seconds"),
        ({"theme": "neon"}, "theme"),
        ({"theme": 1}, "theme"),
        ({"server_url": ["http://x"]}, "server_url"),
        ({"server_url": "http://x\u0000y"}, "server_url"),
        ({"nonsense": True}, "nonsense"),
    ]:
        with local.unchanged():
            assert_refused(local.client.put("/api/settings", json=body), 422, field)


# -- sizes -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "name", "size"),
    [
        ("tasks", "title", 201),
        ("tasks", "title", 10_000),
        ("tasks", "description", 10_001),
        ("notes", "title", 10_000),
        ("notes", "body", 1_000_001),
    ],
)
@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH"])
def test_an_overlong_string_is_refused_naming_the_field(
    local: Api, task_id: str, note_id: str, method: str, kind: str, name: str, size: int
) -> None:
    value = "é" * size  # two bytes a character in UTF-8: characters are what count
    body = {name: value} if method == "PATCH" else {**VALID[kind], name: value}
    with local.unchanged():
        assert_refused(_send(local, kind, method, _record_id(kind, task_id, note_id), body), 422, name)


def test_the_limits_are_exactly_the_documented_ones(local: Api) -> None:
    """The other side of the size tests: DESIGN.md's maxima are accepted, trimmed titles too."""
    task = local.client.post("/api/tasks", json={"title": "  " + "t" * 200 + "  ", "description": "d" * 10_000})
    assert task.status_code == 201, task.text[:300]
    assert task.json()["title"] == "t" * 200
    note = local.client.post("/api/notes", json={"title": "n" * 200, "body": "b" * 1_000_000})
    assert note.status_code == 201, note.text[:300]
    assert len(local.client.get(f"/api/notes/{note.json()['id']}").json()["body"]) == 1_000_000
    for kind, record in (("tasks", task), ("notes", note)):
        assert local.client.delete(f"/api/{kind}/{record.json()['id']}").status_code == 204


@pytest.mark.parametrize(
    ("method", "path"),
    [("POST", "/api/tasks"), ("POST", "/api/notes"), ("PUT", "/api/settings"), ("PATCH", "/api/notes/{note_id}")],
)
def test_a_6_mb_body_is_refused_with_413(local: Api, note_id: str, method: str, path: str) -> None:
    body = json.dumps({"title": "big", "body": "x" * SIX_MB}).encode()
    with local.unchanged():
        assert_refused(local.client.request(method, path.format(note_id=note_id), content=body, headers=JSON), 413)


def test_a_6_mb_chunked_body_without_content_length_is_refused_with_413(local: Api) -> None:
    sent = 0

    def chunks() -> Iterator[bytes]:
        nonlocal sent
        yield b'{"title": "big", "body": "'
        for _ in range(SIX_MB // 65_536):
            sent += 65_536
            yield b"x" * 65_536
        yield b'"}'

    with local.unchanged():
        response = local.client.post("/api/notes", content=chunks(), headers=JSON)
        assert response.request.headers.get("transfer-encoding") == "chunked"
        assert "content-length" not in response.request.headers
        assert_refused(response, 413)
    assert sent > LIMIT


def _raw_exchange(port: int, request: bytes, timeout: float = 10) -> tuple[int, dict[str, str], bytes]:
    """Send bytes as they are (no client library tidying them up); read one response."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(request)
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65_536)
            if not chunk:
                break
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        headers = dict(line.split(": ", 1) for line in lines[1:] if ": " in line)
        headers = {k.lower(): v for k, v in headers.items()}
        length = int(headers.get("content-length", "0"))
        while len(body) < length:
            chunk = sock.recv(65_536)
            if not chunk:
                break
            body += chunk
        return int(lines[0].split()[1]), headers, body


def _raw_post(api: Api, path: str, extra_headers: str, body: bytes = b"{}") -> tuple[int, dict[str, str], bytes]:
    port = api.running.port
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {api.running.token}\r\n"
        f"Content-Type: application/json\r\n{extra_headers}Connection: close\r\n\r\n"
    )
    return _raw_exchange(port, head.encode("latin-1") + body)


def test_a_declared_length_over_the_limit_is_refused_before_the_body_is_read(local: Api) -> None:
    with local.unchanged():
        status, headers, body = _raw_post(local, "/api/tasks", f"Content-Length: {SIX_MB}\r\n", b'{"title": "x"}')
        assert status == 413
        assert headers["content-type"] == "application/json"
        assert "too large" in json.loads(body)["detail"]


@pytest.mark.parametrize(
    "header",
    [
        "Content-Length: abc\r\n",
        "Content-Length: -1\r\n",
        "Content-Length: 1.5\r\n",
        "Content-Length: 0x10\r\n",
        "Content-Length: 99999999999999999999999999\r\n",
        "Content-Length: 2\r\nContent-Length: 3\r\n",
        "Content-Length: 2\r\nTransfer-Encoding: chunked\r\n",  # the request-smuggling pair
    ],
)
def test_an_invalid_content_length_is_refused(local: Api, header: str) -> None:
    with local.unchanged():
        status, _, _ = _raw_post(local, "/api/tasks", header, b'{"title": "smuggled"}')
        # uvicorn's HTTP parser refuses these before the app sees a request, with its own plain
        # text 400 (a malformed request has no route, so the app's JSON errors cannot apply).
        assert status == 400
    assert local.client.get("/api/health").status_code == 200


# -- structure -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(b"[" * 100_000 + b"]" * 100_000, id="100k nested arrays"),
        pytest.param(b'{"a":' * 100_000 + b"1" + b"}" * 100_000, id="100k nested objects"),
        pytest.param(b'{"title":' + b"[" * 100_000 + b"]" * 100_000 + b"}", id="100k nested in a field"),
    ],
)
@pytest.mark.parametrize("path", ["/api/tasks", "/api/notes"])
def test_deep_nesting_is_refused(local: Api, path: str, raw: bytes) -> None:
    with local.unchanged():
        body = assert_refused(local.client.post(path, content=raw, headers=JSON), 422, "body")
        assert "nested too deeply" in body["message"]


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        (b'{"title": NaN}', "title"),
        (b'{"title": Infinity}', "title"),
        (b'{"title": "x", "completed": NaN}', "completed"),
        (b'{"title": "x", "completed": -Infinity}', "completed"),
        (b'{"title": "x", "due_date": Infinity}', "due_date"),
        (b'{"title": "x", "description": NaN}', "description"),
    ],
)
def test_nan_and_infinity_literals_are_refused(local: Api, raw: bytes, field: str) -> None:
    with local.unchanged():
        assert_refused(local.client.post("/api/tasks", content=raw, headers=JSON), 422, field)


@pytest.mark.parametrize("literal", [b"NaN", b"Infinity", b"-Infinity", b"1e400"])
def test_non_finite_numbers_are_refused_where_a_number_is_expected(local: Api, literal: bytes) -> None:
    with local.unchanged():
        raw = b'{"sync_interval_seconds": ' + literal + b"}"
        assert_refused(local.client.put("/api/settings", content=raw, headers=JSON), 422, "sync_interval_seconds")


def test_a_number_too_long_to_convert_is_refused(local: Api) -> None:
    with local.unchanged():
        raw = b'{"sync_interval_seconds": 1' + b"0" * 5_000 + b"}"
        assert_refused(local.client.put("/api/settings", content=raw, headers=JSON), 422, "body")


@pytest.mark.parametrize(
    "raw",
    [b"", b"null", b"[]", b'[{"title": "x"}]', b"42", b'"a title"', b"true", b"{", b'{"title": "x",}', b"\x00"],
    ids=[
        "empty",
        "null",
        "array",
        "array of objects",
        "number",
        "string",
        "true",
        "truncated",
        "trailing comma",
        "NUL",
    ],
)
@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH"])
def test_a_body_that_is_not_an_object_is_refused(local: Api, task_id: str, method: str, raw: bytes) -> None:
    url = "/api/tasks" if method == "POST" else f"/api/tasks/{task_id}"
    with local.unchanged():
        assert_refused(local.client.request(method, url, content=raw, headers=JSON), 422, "body")


# -- text that no database should keep -------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "name"),
    [("tasks", "title"), ("tasks", "description"), ("notes", "title"), ("notes", "body")],
)
@pytest.mark.parametrize(
    "escaped",
    [r"\ud800", r"ab\udc00cd", r"\ud83d", r"x\ud800\ud800"],
    ids=["lone high", "lone low", "half an emoji", "two highs"],
)
@pytest.mark.parametrize("method", ["POST", "PATCH"])
def test_lone_surrogate_escapes_are_refused(
    local: Api, task_id: str, note_id: str, method: str, kind: str, name: str, escaped: str
) -> None:
    fields = {name: "PLACEHOLDER"} if method == "PATCH" else {**VALID[kind], name: "PLACEHOLDER"}
    raw = json.dumps(fields).replace("PLACEHOLDER", escaped).encode()
    url = f"/api/{kind}" if method == "POST" else f"/api/{kind}/{_record_id(kind, task_id, note_id)}"
    with local.unchanged():
        assert_refused(local.client.request(method, url, content=raw, headers=JSON), 422, name)


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(b'{"title": "\xff\xfe"}', id="0xff 0xfe"),
        pytest.param(b'{"title": "\xc0\xaf"}', id="overlong slash"),
        pytest.param(b'{"title": "caf\xe9"}', id="latin-1"),
        pytest.param(b'{"title": "\xe2\x82"}', id="truncated sequence"),
    ],
)
def test_invalid_utf8_is_refused(local: Api, raw: bytes) -> None:
    with local.unchanged():
        body = assert_refused(local.client.post("/api/tasks", content=raw, headers=JSON), 422, "body")
        assert "UTF-8" in body["message"]


def test_a_utf8_encoded_surrogate_is_refused_in_its_field(local: Api) -> None:
    # Python's JSON decoder lets the bytes of a surrogate through ("surrogatepass"); the field's
    # own check must then refuse the lone surrogate it became.
    with local.unchanged():
        raw = b'{"title": "\xed\xa0\x80"}'
        assert_refused(local.client.post("/api/tasks", content=raw, headers=JSON), 422, "title")


@pytest.mark.parametrize(
    ("kind", "name"),
    [("tasks", "title"), ("tasks", "description"), ("notes", "title"), ("notes", "body")],
)
@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH"])
def test_nul_characters_in_text_are_refused(
    local: Api, task_id: str, note_id: str, method: str, kind: str, name: str
) -> None:
    body = {name: "before\u0000after"} if method == "PATCH" else {**VALID[kind], name: "before\u0000after"}
    with local.unchanged():
        refused = assert_refused(_send(local, kind, method, _record_id(kind, task_id, note_id), body), 422, name)
        assert "NUL" in refused["message"]


@pytest.mark.parametrize("kind", ["tasks", "notes"])
@pytest.mark.parametrize("q", ["\u0000", "a\u0000b", "x" * 199 + "\u0000"])
def test_nul_in_the_search_query_is_refused(local: Api, kind: str, q: str) -> None:
    with local.unchanged():
        assert_refused(local.client.get(f"/api/{kind}", params={"q": q}), 422, "q")


@pytest.mark.parametrize("kind", ["tasks", "notes"])
@pytest.mark.parametrize("query", ["q=%ff%fe", "q=%ed%a0%80", "q=%c0%af"])
def test_undecodable_bytes_in_the_search_query_do_no_harm(local: Api, kind: str, query: str) -> None:
    # The query string is decoded leniently (invalid bytes become U+FFFD): a search, not an error.
    with local.unchanged():
        response = local.client.get(f"/api/{kind}?{query}")
        assert response.status_code == 200, response.text
        assert response.json() == []


# -- content types ---------------------------------------------------------------------------------


def _no_content_type(api: Api, url: str, content: bytes) -> httpx.Response:
    request = api.client.build_request("POST", url, content=content)
    request.headers.pop("content-type", None)
    return api.client.send(request)


@pytest.mark.parametrize("path", ["/api/tasks", "/api/notes"])
@pytest.mark.parametrize(
    "how", ["text/plain", "form-encoded", "multipart", "no content type", "application/xml", "json as text/html"]
)
def test_a_body_that_is_not_declared_json_is_refused(local: Api, path: str, how: str) -> None:
    valid = json.dumps({"title": "would be valid as JSON"}).encode()
    with local.unchanged():
        if how == "form-encoded":
            response = local.client.post(path, data={"title": "x"})
        elif how == "multipart":
            response = local.client.post(path, files={"title": (None, "x")})
        elif how == "no content type":
            response = _no_content_type(local, path, valid)
        else:
            content_type = "text/html" if how == "json as text/html" else how
            response = local.client.post(path, content=valid, headers={"content-type": content_type})
        assert_refused(response, 422, "body")


# -- query parameters ------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["tasks", "notes"])
@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("skip", str(10**30)),
        ("skip", str(2**63)),
        ("skip", "1000000001"),
        ("skip", "-1"),
        ("skip", "1.5"),
        ("skip", "1e3"),
        ("skip", "abc"),
        ("skip", ""),
        ("limit", str(10**30)),
        ("limit", "501"),
        ("limit", "0"),
        ("limit", "-5"),
        ("limit", "NaN"),
        ("completed", "maybe"),
        ("completed", "2"),
        ("q", "x" * 201),
        ("q", "x" * 10_000),
    ],
)
def test_bad_query_parameters_are_refused_naming_them(local: Api, kind: str, name: str, value: str) -> None:
    with local.unchanged():
        assert_refused(local.client.get(f"/api/{kind}", params={name: value}), 422, name)


@pytest.mark.parametrize("name", ["due_before", "due_after"])
@pytest.mark.parametrize(
    "value",
    [
        "2024-02-30",
        "2024-13-01",
        "2023-02-29",
        "0",
        "1700000000",
        "yesterday",
        "2024-1-1",
        "",
        "2024-01-01T00:00:00",
        "99999-01-01",
        "2024/01/01",
        "\uff12\uff10\uff12\uff14-01-01",  # fullwidth digits,
    ],
)
def test_invalid_dates_are_refused(local: Api, name: str, value: str) -> None:
    with local.unchanged():
        assert_refused(local.client.get("/api/tasks", params={name: value}), 422, name)


def test_an_overlong_query_string_is_refused_and_the_server_carries_on(local: Api) -> None:
    with local.unchanged():
        port = local.running.port
        request = f"GET /api/tasks?q={'x' * 100_000} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"
        status, _, _ = _raw_exchange(port, request.encode())
        # Refused by uvicorn's HTTP parser before any route (see test_an_invalid_content_length).
        assert 400 <= status < 500
    assert local.client.get("/api/tasks", params={"q": "x"}).status_code == 200


@pytest.mark.parametrize("kind", ["tasks", "notes"])
@pytest.mark.parametrize("method", ["GET", "PUT", "PATCH", "DELETE"])
@pytest.mark.parametrize("bad_id", ["not-a-uuid", "%00", "1", "x" * 10_000, "00000000-0000-0000-0000-00000000000g"])
def test_a_malformed_record_id_is_refused(local: Api, kind: str, method: str, bad_id: str) -> None:
    body = VALID[kind] if method in ("PUT", "PATCH") else None
    with local.unchanged():
        assert_refused(local.client.request(method, f"/api/{kind}/{bad_id}", json=body), 422, "id")


# -- the shared server's accounts -----------------------------------------------------------------

GOOD_SIGN_UP = {"username": "bob", "password": "long enough pw", "email": "bob@example.com"}


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("username", 123),
        ("username", None),
        ("username", ["bob"]),
        ("username", "x" * 10_000),
        ("username", "bob\u0000"),
        ("username", "bo b"),
        ("username", "ab"),
        ("password", 12345678),
        ("password", None),
        ("password", "short"),
        ("password", "p" * 10_000),
        ("password", "long enough\u0000pw"),
        ("email", 5),
        ("email", "not an email"),
        ("email", "bob\u0000@example.com"),
        ("email", "b" * 250 + "@example.com"),
        ("is_admin", True),
    ],
)
def test_sign_up_refuses_bad_fields(shared: Api, field: str, value: Any) -> None:
    with shared.unchanged():
        assert_refused(shared.client.post("/api/auth/register", json={**GOOD_SIGN_UP, field: value}), 422, field)


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        (b'{"username": "bob", "password": "\\ud800 long enough"}', "password"),
        (b'{"username": "bob", "password": NaN}', "password"),
        (b'{"username": "b\xffb", "password": "long enough pw"}', "body"),
        (b"[" * 100_000 + b"]" * 100_000, "body"),
        (b"[]", "body"),
        (b"", "body"),
    ],
)
def test_sign_up_refuses_malformed_bodies(shared: Api, raw: bytes, field: str) -> None:
    with shared.unchanged():
        assert_refused(shared.client.post("/api/auth/register", content=raw, headers=JSON), 422, field)


def test_sign_up_refuses_a_6_mb_body(shared: Api) -> None:
    with shared.unchanged():
        body = json.dumps({**GOOD_SIGN_UP, "password": "p" * SIX_MB}).encode()
        assert_refused(shared.client.post("/api/auth/register", content=body, headers=JSON), 413)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        pytest.param({"json": {"username": "alice", "password": "long enough pw"}}, "username", id="json not form"),
        pytest.param({"data": {"username": "alice\u0000", "password": "long enough pw"}}, "username", id="nul"),
        pytest.param({"data": {"username": "\u0000", "password": "x"}}, "username", id="only nul"),
        pytest.param({"data": {"password": "long enough pw"}}, "username", id="no username"),
        pytest.param({"data": {"username": "alice"}}, "password", id="no password"),
        pytest.param(
            {"content": b"username=alice&password=x", "headers": {"content-type": "multipart/form-data"}},
            "body",
            id="multipart without boundary",
        ),
    ],
)
def test_sign_in_refuses_malformed_forms(shared: Api, kwargs: dict[str, Any], field: str) -> None:
    # Nothing changes: not even a failed sign-in is counted (a refused form is not an attempt).
    with shared.unchanged():
        assert_refused(shared.client.post("/api/auth/token", **kwargs), 422, field)


@pytest.mark.parametrize(
    ("raw", "status", "field"),
    [
        (b'{"refresh_token": 123}', 422, "refresh_token"),
        (b'{"refresh_token": ""}', 422, "refresh_token"),
        (b'{"refresh_token": "' + b"x" * 10_000 + b'"}', 422, "refresh_token"),
        (b'{"refresh_token": "\\ud800"}', 422, "refresh_token"),
        (b'{"refresh_token": "a\\u0000b"}', 401, None),
        (b'{"refresh_token": "not.a.jwt"}', 401, None),
    ],
)
def test_refresh_refuses_garbage(shared: Api, raw: bytes, status: int, field: str | None) -> None:
    with shared.unchanged():
        assert_refused(shared.client.post("/api/auth/refresh", content=raw, headers=JSON), status, field)


@pytest.mark.parametrize(
    "authorization",
    [b"Bearer \xff\xfe", b"Bearer " + b"x" * 8_000, b"Bearer a\tb", b"Basic YWxpY2U6cHc=", b"Bearer"],
    ids=["non-ascii", "8 kB", "tab", "basic", "empty bearer"],
)
def test_a_garbled_access_token_gets_401(shared: Api, authorization: bytes) -> None:
    with shared.unchanged():
        for method, path in (("GET", "/api/users/me"), ("GET", "/api/tasks"), ("POST", "/api/tasks")):
            response = shared.client.request(
                method, path, json={"title": "x"}, headers={"authorization": authorization}
            )
            assert_refused(response, 401)
