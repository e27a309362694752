"""Schemathesis against the app's own `/openapi.json`, served by real uvicorn servers on loopback.

Three targets: the local (desktop) API on SQLite, the shared server on SQLite, and the shared
server's records routes on PostgreSQL. Every generated request (valid and deliberately invalid
ones, from the examples, coverage and fuzzing phases) must get an answer that the schema
documents: no 5xx, a documented status code, a documented content type, a body and headers
that match the documented schema, invalid input refused (413 counts as refused), and every
error body JSON that says what was wrong (a 422 names each field).

Generation is seeded and the Hypothesis example database is off, so a run is reproducible: the
same seed gives the same cases on every machine.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
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

from tests.servers import Running, local_settings, serve, server_settings

SEED = 20_240_611
REQUEST_TIMEOUT = 30

# Records routes are cheap (a few ms a request); sign-in routes run Argon2 (~0.2 s a request on
# this 2-core machine), so they get fewer fuzzed examples (their coverage phase still runs).
RECORD_EXAMPLES = 25
AUTH_EXAMPLES = 5
OTHER_EXAMPLES = 10


def _config(token: str, *, record_examples: int) -> schemathesis.Config:
    return schemathesis.Config.from_dict(
        {
            "seed": SEED,
            "headers": {"Authorization": f"Bearer {token}"},
            "request-timeout": REQUEST_TIMEOUT,
            "generation": {"mode": "all", "database": "none", "max-examples": OTHER_EXAMPLES},
            "phases": {"stateful": {"enabled": False}},
            # 413 is this API's documented answer to an oversized (hence invalid) body.
            "checks": {"negative_data_rejection": {"expected-statuses": [400, 401, 403, 404, 405, 409, 413, 422]}},
            "operations": [
                {"include-path-regex": "^/api/(tasks|notes)", "generation": {"max-examples": record_examples}},
                {"include-path-regex": "^/api/auth/", "generation": {"max-examples": AUTH_EXAMPLES}},
            ],
        }
    )


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


CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
    negative_data_rejection,
    errors_say_what_is_wrong,
]
# Not run: positive_data_acceptance. The schema cannot say "no NUL characters" or "not only
# whitespace" (refused with a 422 by design), so schema-valid-looking input is rightly refused.


@dataclass
class Target:
    mode: str
    running: Running
    client: httpx.Client
    token: str
    cases: Counter[str] = field(default_factory=Counter)
    statuses: Counter[int] = field(default_factory=Counter)


def _register(running: Running) -> str:
    with httpx.Client(base_url=running.url, timeout=REQUEST_TIMEOUT) as anon:
        anon.post("/api/auth/register", json={"username": "fuzzer", "password": "correct horse battery"})
        reply = anon.post("/api/auth/token", data={"username": "fuzzer", "password": "correct horse battery"})
        reply.raise_for_status()
        return reply.json()["access_token"]


@pytest.fixture(
    params=[
        "local",
        "server-sqlite",
        pytest.param("server-postgres", marks=pytest.mark.postgres),
    ]
)
def target(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Target]:
    if request.param == "local":
        settings = local_settings(tmp_path / "local", access_log=False)
    else:
        url = request.getfixturevalue("pg_url") if request.param == "server-postgres" else None
        settings = server_settings(tmp_path / "server", url, access_log=False)
    with serve(settings) as running:
        token = running.token if settings.mode == "local" else _register(running)
        assert token
        with httpx.Client(
            base_url=running.url, headers={"Authorization": f"Bearer {token}"}, timeout=REQUEST_TIMEOUT
        ) as client:
            found = Target(request.param, running, client, token)
            yield found
    # The run really exercised every operation, and not only with refusals.
    assert found.cases, "no case was generated"
    assert all(n > 0 for n in found.cases.values())
    assert any(200 <= s < 300 for s in found.statuses), found.statuses


@pytest.fixture
def api_schema(target: Target) -> schemathesis.BaseSchema:
    postgres = target.mode == "server-postgres"
    config = _config(target.token, record_examples=10 if postgres else RECORD_EXAMPLES)
    schema = schemathesis.openapi.from_url(f"{target.running.url}/openapi.json", config=config)
    if postgres:
        # PostgreSQL run: the records routes, where a database can differ (NUL, Unicode, sizes).
        schema = schema.include(path_regex="^/api/(tasks|notes)")
    return schema


schema = schemathesis.pytest.from_fixture("api_schema")


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


@schema.parametrize()
def test_api_matches_its_openapi_schema(case: Case, target: Target) -> None:
    _aim_at_a_live_record(case, target)
    response = case.call_and_validate(checks=CHECKS)
    target.cases[case.operation.label] += 1
    target.statuses[response.status_code] += 1
