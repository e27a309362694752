"""Schemathesis against the app's own `/openapi.json`, served by real uvicorn servers on loopback.

Three targets: the local (desktop) API on SQLite, and the shared server on SQLite and on
PostgreSQL. Every generated request (valid and deliberately invalid ones, from the examples,
coverage and fuzzing phases) must get an answer that the schema documents: no 5xx, a
documented status code, a documented content type, a body and headers that match the
documented schema, invalid input refused (413 counts as refused; a missing or garbled token
gets a 401), and every error body JSON that says what was wrong (a 422 names each field).
Cases aimed at `/{id}` mostly hit records that exist, so updates and deletes really run.

The schemas are read at collection time from a real server of each mode (schemathesis' lazy
`from_fixture` loader does not work with pytest 9's node ids), and each target checks that the
server it fuzzes serves that very same document. Generation is seeded and derandomized and
Hypothesis' example database is off, so every run, here or in CI, sends the same cases.
"""

from __future__ import annotations

import os
import tempfile
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
import schemathesis
from schemathesis import Case, CheckContext, Response
from schemathesis.checks import (
    content_type_conformance,
    negative_data_rejection,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.core.parameters import ParameterLocation

from server.settings import Settings
from tests.servers import Running, local_settings, serve, server_settings

SEED = 20_240_611
REQUEST_TIMEOUT = 30
PG_DSN = os.environ.get("FERRY_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
RECORDS = "^/api/(tasks|notes)"
NOT_BODY = (ParameterLocation.PATH, ParameterLocation.QUERY, ParameterLocation.HEADER, ParameterLocation.COOKIE)

# Records routes are cheap (a few ms a request); sign-in routes run Argon2 (~0.2 s a request on
# a 2-core machine), so they get fewer fuzzed examples (their coverage phase still runs).
RECORD_EXAMPLES = 25
AUTH_EXAMPLES = 5
OTHER_EXAMPLES = 10


def _config(record_examples: int) -> schemathesis.Config:
    return schemathesis.Config.from_dict(
        {
            "seed": SEED,
            "request-timeout": REQUEST_TIMEOUT,
            "generation": {"mode": "all", "deterministic": True, "database": "none", "max-examples": OTHER_EXAMPLES},
            "phases": {"stateful": {"enabled": False}},
            # 413 is this API's documented answer to an oversized (hence invalid) body.
            "checks": {"negative_data_rejection": {"expected-statuses": [400, 401, 403, 404, 405, 409, 413, 422]}},
            "operations": [
                {"include-path-regex": RECORDS, "generation": {"max-examples": record_examples}},
                {"include-path-regex": "^/api/auth/", "generation": {"max-examples": AUTH_EXAMPLES}},
            ],
        }
    )


def _served_openapi(settings_for: Any) -> dict[str, Any]:
    """`/openapi.json` as a real server of that mode serves it."""
    with tempfile.TemporaryDirectory() as tmp, serve(settings_for(Path(tmp))) as running:
        reply = httpx.get(f"{running.url}/openapi.json", timeout=REQUEST_TIMEOUT)
        reply.raise_for_status()
        return reply.json()


def _local(data_dir: Path) -> Settings:
    return local_settings(data_dir, access_log=False)


def _server(data_dir: Path, database_url: str | None = None) -> Settings:
    return server_settings(data_dir, database_url, access_log=False)


LOCAL_OPENAPI = _served_openapi(_local)
SERVER_OPENAPI = _served_openapi(_server)
# Not fuzzed: POST /api/sync/connect dials whatever server_url it is given (generated URLs would
# mean real outbound connections); the sync tests drive it against a real shared server.
local_schema = schemathesis.openapi.from_dict(LOCAL_OPENAPI, config=_config(RECORD_EXAMPLES)).exclude(
    path="/api/sync/connect"
)
server_schema = schemathesis.openapi.from_dict(SERVER_OPENAPI, config=_config(RECORD_EXAMPLES))
# PostgreSQL refuses what SQLite stores (NUL in text, say), so the whole server runs on it too,
# with fewer examples per records route.
postgres_schema = schemathesis.openapi.from_dict(SERVER_OPENAPI, config=_config(10))


@schemathesis.check
def errors_say_what_is_wrong(ctx: CheckContext, response: Response, case: Case) -> bool | None:
    """DESIGN.md: errors are JSON with a clear message; a 422 names the field and the reason."""
    if response.status_code < 400:
        return None
    try:
        body = response.json()
    except ValueError:
        raise AssertionError(f"{response.status_code} error body is not JSON: {response.content[:200]!r}") from None
    assert isinstance(body, dict) and body.get("detail"), f"error body has no detail: {body!r}"
    if response.status_code == 422:
        assert isinstance(body["detail"], list), f"422 detail is not a list of field errors: {body!r}"
        for item in body["detail"]:
            assert item.get("field") and item.get("msg"), f"422 item does not name a field and reason: {item!r}"
    return None


def _valid_once_the_title_is_trimmed(case: Case) -> bool:
    meta, body = case.meta, case.body
    if meta is None or not isinstance(body, dict) or not isinstance(body.get("title"), str):
        return False
    if any(meta.is_negative_at(where) for where in NOT_BODY):
        return False
    trimmed = {**body, "title": body["title"].strip()}
    return any(b.media_type == case.media_type and b.is_valid(trimmed) for b in case.operation.body)


@schemathesis.check
def invalid_input_is_refused(ctx: CheckContext, response: Response, case: Case) -> bool | None:
    """`negative_data_rejection`, with one documented leniency: DESIGN.md's title is 1 to 200
    characters *after trimming*, which JSON Schema cannot say, so a raw title over the schema's
    maxLength that trims to a valid one is valid input, rightly accepted."""
    if 200 <= response.status_code < 300 and _valid_once_the_title_is_trimmed(case):
        return None
    return negative_data_rejection(ctx, response, case)


CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
    invalid_input_is_refused,
    errors_say_what_is_wrong,
]
# Not run: positive_data_acceptance. JSON Schema here cannot say "no NUL characters" or "not only
# whitespace", which the API refuses with a 422 by design, so it would flag correct refusals.


@dataclass
class Target:
    running: Running
    client: httpx.Client
    auth: dict[str, str]
    statuses: Counter[int] = field(default_factory=Counter)


def _register(running: Running) -> str:
    with httpx.Client(base_url=running.url, timeout=REQUEST_TIMEOUT) as anon:
        created = anon.post("/api/auth/register", json={"username": "fuzzer", "password": "correct horse battery"})
        assert created.status_code == 201, created.text
        reply = anon.post("/api/auth/token", data={"username": "fuzzer", "password": "correct horse battery"})
        assert reply.status_code == 200, reply.text
        return reply.json()["access_token"]


def _target(settings: Settings, expected_openapi: dict[str, Any]) -> Iterator[Target]:
    with serve(settings) as running:
        token = running.token if settings.mode == "local" else _register(running)
        assert token
        auth = {"Authorization": f"Bearer {token}"}
        with httpx.Client(base_url=running.url, headers=auth, timeout=REQUEST_TIMEOUT) as client:
            # The cases come from the document this very server serves.
            assert client.get("/openapi.json").json() == expected_openapi
            target = Target(running, client, auth)
            yield target
    print(
        f"\n{settings.mode} on {running.settings.resolved_database_url().split(':')[0]}: "
        f"{target.statuses.total()} cases, statuses {dict(sorted(target.statuses.items()))}"
    )
    # Not every case may be refused: the valid ones must really have been served.
    if target.statuses.total() > 20:
        assert sum(n for s, n in target.statuses.items() if 200 <= s < 300) > 0, target.statuses


@pytest.fixture(scope="module")
def local_target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    yield from _target(_local(tmp_path_factory.mktemp("local")), LOCAL_OPENAPI)


@pytest.fixture(scope="module")
def server_target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    yield from _target(_server(tmp_path_factory.mktemp("server")), SERVER_OPENAPI)


@pytest.fixture(scope="module")
def postgres_target(tmp_path_factory: pytest.TempPathFactory, pg_available: bool) -> Iterator[Target]:
    if not pg_available:
        pytest.skip(f"PostgreSQL not reachable at {PG_DSN}")
    name = f"ferry_fuzz_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_DSN, autocommit=True, connect_timeout=3) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    base = PG_DSN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://")
    try:
        yield from _target(_server(tmp_path_factory.mktemp("pg"), f"{base}/{name}"), SERVER_OPENAPI)
    finally:
        with psycopg.connect(PG_DSN, autocommit=True, connect_timeout=3) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _aim_at_a_live_record(case: Case, target: Target) -> None:
    """Most `/{id}` cases with a well-formed id go to a record that exists, so GET, PUT, PATCH
    and DELETE run their real code paths instead of answering 404 to random UUIDs."""
    path = case.operation.path
    raw = (case.path_parameters or {}).get("id")
    if not path.endswith("/{id}") or not isinstance(raw, str):
        return
    try:
        generated = uuid.UUID(raw)
    except ValueError:
        return  # a deliberately malformed id: keep it, it must get a 422
    if generated.int % 4 == 0:
        return  # keep some unknown ids: they must get a 404
    collection = path.removesuffix("/{id}")
    created = target.client.post(collection, json={"title": "fuzz target", "id": str(generated)})
    assert created.status_code in (201, 409), created.text  # 409: an earlier case made it already


def _tests_auth_itself(case: Case) -> bool:
    """Whether this is a deliberately unauthenticated case (no or a garbled Authorization)."""
    data = case.meta.phase.data if case.meta is not None else None
    if data is None or not case.meta.generation.mode.is_negative:
        return False
    return data.parameter == "Authorization" or any(m.parameter == "Authorization" for m in data.mutations)


def _check(case: Case, target: Target) -> None:
    _aim_at_a_live_record(case, target)
    # A generated bearer token is random; the real one goes in, except where a case is about
    # a missing or malformed Authorization header (then it must get a 401).
    headers = None if _tests_auth_itself(case) else target.auth
    response = case.call_and_validate(base_url=target.running.url, headers=headers, checks=CHECKS)
    target.statuses[response.status_code] += 1


@local_schema.parametrize()
def test_local_api_matches_its_schema(case: Case, local_target: Target) -> None:
    _check(case, local_target)


@server_schema.parametrize()
def test_server_api_matches_its_schema(case: Case, server_target: Target) -> None:
    _check(case, server_target)


@pytest.mark.postgres
@postgres_schema.parametrize()
def test_server_api_on_postgres_matches_its_schema(case: Case, postgres_target: Target) -> None:
    _check(case, postgres_target)
