"""`ferry-server create-user` and `ferry-server backup`, on SQLite and on PostgreSQL.

Real commands (`python -m server ...` subprocesses), a real server running while the backup
is taken, and a real restore: the backup is put in place of a fresh database (SQLite file;
`pg_restore` into a new PostgreSQL database), a server started on it, and the account and
its records read back through the API.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from tests.conftest import PG_DSN, _pg_admin
from tests.servers import ROOT, ferry_server_process

PASSWORD = "a long enough password"
SECRET = {"FERRY_SECRET_KEY": "a" * 64}


def ferry_server(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "server", *args],
        input=stdin, capture_output=True, text=True, timeout=60, cwd=ROOT, check=False,
    )  # fmt: skip


@contextmanager
def extra_pg_database() -> Iterator[str]:
    name = f"ferry_restore_{uuid.uuid4().hex[:12]}"
    with _pg_admin() as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield PG_DSN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://") + f"/{name}"
    finally:
        with _pg_admin() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def sign_in(url: str, username: str) -> httpx.Client:
    response = httpx.post(f"{url}/api/auth/token", data={"username": username, "password": PASSWORD}, timeout=30)
    assert response.status_code == 200, response.text
    token = response.json()["access_token"]
    return httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=30)


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_create_user_then_backup_and_restore(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    db_args: list[str] = []
    if backend == "postgres":
        db_args = ["--database-url", request.getfixturevalue("pg_url")]
    data = tmp_path / "data"

    made = ferry_server(
        "create-user", "Carol", "--password-stdin", "--data-dir", str(data), *db_args, stdin=PASSWORD + "\n"
    )
    assert made.returncode == 0, made.stderr
    assert "created user carol" in made.stdout
    again = ferry_server("create-user", "carol", "--password-stdin", "--data-dir", str(data), *db_args, stdin=PASSWORD)
    assert again.returncode == 1 and "taken" in again.stderr
    short = ferry_server("create-user", "dave", "--password-stdin", "--data-dir", str(data), *db_args, stdin="short\n")
    assert short.returncode == 2 and "password" in short.stderr
    no_password = ferry_server("create-user", "erin", "--data-dir", str(data), *db_args, stdin="")
    assert no_password.returncode == 2 and "--password-stdin" in no_password.stderr

    with ferry_server_process(data, *db_args, env=SECRET) as server:
        with sign_in(server.url, "carol") as api:
            titles = {f"task {i}" for i in range(25)}
            for title in titles:
                assert api.post("/api/tasks", json={"title": title}).status_code == 201
            note = api.post("/api/notes", json={"title": "Notes", "body": "é" * 5000})
            assert note.status_code == 201
        # The backup is taken while the server runs.
        done = ferry_server("backup", str(tmp_path / "backups"), "--data-dir", str(data), *db_args)
        assert done.returncode == 0, done.stderr
    dumps = list((tmp_path / "backups").iterdir())
    assert len(dumps) == 1 and str(dumps[0]) == done.stdout.strip()
    dump = dumps[0]

    restored = tmp_path / "restored"
    restored.mkdir()
    with (
        restored_database(backend, dump, restored) as restore_args,
        ferry_server_process(restored, *restore_args, env=SECRET) as server,
        sign_in(server.url, "carol") as api,
    ):
        tasks = api.get("/api/tasks", params={"limit": 100}).json()
        assert {t["title"] for t in tasks} == titles
        notes = api.get("/api/notes").json()
        assert [n["body"] for n in notes] == ["é" * 5000]
        assert api.get("/api/sync/digest").json()["count"] == 26


@contextmanager
def restored_database(backend: str, dump: Path, restored: Path) -> Iterator[list[str]]:
    """Restore `dump` into a fresh database; yields the server options that point at it."""
    if backend == "sqlite":
        assert dump.suffix == ".db"
        shutil.copy(dump, restored / "ferry.db")
        yield []
        return
    assert dump.suffix == ".dump"
    with extra_pg_database() as url:
        result = subprocess.run(
            ["pg_restore", "--no-owner", "--exit-on-error",
             f"--dbname={url.replace('postgresql+psycopg://', 'postgresql://')}", str(dump)],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        yield ["--database-url", url]


def test_backup_of_a_missing_sqlite_database_fails_clearly(tmp_path: Path) -> None:
    result = ferry_server("backup", str(tmp_path / "out"), "--data-dir", str(tmp_path / "empty"))
    assert result.returncode == 1
    assert "no database" in result.stderr


def test_plain_and_serve_forms_parse_the_same() -> None:
    from server.cli import build_parser

    plain = build_parser().parse_args(["--port", "9000", "--workers", "2"])
    explicit = build_parser().parse_args(["serve", "--port", "9000", "--workers", "2"])
    assert plain.command is None and explicit.command == "serve"
    assert (plain.port, plain.workers) == (explicit.port, explicit.workers) == (9000, 2)
