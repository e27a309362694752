"""Shared fixtures: real SQLite files in temporary directories, real PostgreSQL databases made
for this run and dropped after it, and real uvicorn servers on loopback."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest

from tests.servers import Running, local_settings, serve, server_settings

PG_DSN = os.environ.get("FERRY_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
REQUIRE_PG = os.environ.get("FERRY_REQUIRE_POSTGRES") == "1"


def _pg_admin() -> psycopg.Connection:
    return psycopg.connect(PG_DSN, autocommit=True, connect_timeout=3)


@pytest.fixture(scope="session")
def pg_available() -> bool:
    try:
        with _pg_admin():
            return True
    except psycopg.Error as exc:
        if REQUIRE_PG:
            pytest.fail(f"FERRY_REQUIRE_POSTGRES=1 but PostgreSQL is not reachable at {PG_DSN}: {exc}")
        return False


@pytest.fixture
def pg_url(pg_available: bool) -> Iterator[str]:
    """A throwaway PostgreSQL database for one test, dropped afterwards."""
    if not pg_available:
        pytest.skip(f"PostgreSQL not reachable at {PG_DSN} (set FERRY_REQUIRE_POSTGRES=1 to fail instead)")
    name = f"ferry_test_{uuid.uuid4().hex[:12]}"
    with _pg_admin() as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base = PG_DSN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://")
    try:
        yield f"{base}/{name}"
    finally:
        with _pg_admin() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def local_app(tmp_path: Path) -> Iterator[Running]:
    """The desktop's local API on a real loopback port, on a real SQLite file."""
    with serve(local_settings(tmp_path / "local")) as running:
        yield running


@pytest.fixture
def local_client(local_app: Running) -> Iterator[httpx.Client]:
    with local_app.client() as client:
        yield client


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def server_app(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Running]:
    """The shared server on a real loopback port, on SQLite and on PostgreSQL."""
    url = request.getfixturevalue("pg_url") if request.param == "postgres" else None
    with serve(server_settings(tmp_path / "server", url)) as running:
        yield running
