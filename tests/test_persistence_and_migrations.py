"""What Ferry keeps across restarts, and how its schema moves with Alembic.

Restarts: the desktop's local API (SQLite file) and the shared server (SQLite and PostgreSQL)
are stopped and a new one is started on the same data directory with the same settings; every
record, tombstone, change-log row, account and the clock's node id is still there, and the
next write carries on from them (no reused ids, no reused sequence numbers).

Migrations, on SQLite and on PostgreSQL, checked with `sqlalchemy.inspect` at each step: an
empty database goes to head (matching the models exactly), down one revision (to exactly the
schema that revision has when reached from below), and up to head again; and a database holding
data at revision 0001 upgrades to head with that data intact and served by the API.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Boolean, Integer, MetaData, String, Table, Text, delete, inspect, select, text
from sqlmodel import SQLModel

from server.db import Database
from server.migrate import alembic_config, current_revision, downgrade, head_revision, upgrade
from server.models import Meta, ms_to_iso
from server.settings import Settings
from sync.hlc import HybridClock
from tests.helpers_auth import signed_in
from tests.servers import local_settings, serve, server_settings

FIRST_REVISION = "0001"
#: the tables the first revision creates: records, their change log, and per-database facts
RECORD_TABLES = {"tasks", "notes", "changes", "meta", "user_seqs"}

Schema = dict[str, tuple[frozenset[str], frozenset[str]]]


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest) -> str | None:
    """None (SQLite in the data directory) or a throwaway PostgreSQL database."""
    return request.getfixturevalue("pg_url") if request.param == "postgres" else None


@pytest.fixture
def database(tmp_path: Path, database_url: str | None) -> Iterator[Database]:
    db = Database(Settings(mode="server", data_dir=tmp_path / "db", database_url=database_url))
    try:
        yield db
    finally:
        db.dispose()


def schema(db: Database) -> Schema:
    """Every table with its column names and indexes (name and columns), as the database
    reports them."""
    found = inspect(db.engine)
    return {
        table: (
            frozenset(column["name"] for column in found.get_columns(table)),
            frozenset(_index(index) for index in found.get_indexes(table)) | expression_indexes(db, table),
        )
        for table in found.get_table_names()
    }


def _index(index: Any) -> str:
    """An index as name(columns): a migration may rebuild an index under the same name."""
    return f"{index['name']}({','.join(str(c) for c in index['column_names'])})"


def expression_indexes(db: Database, table: str) -> frozenset[str]:
    """SQLAlchemy does not reflect SQLite's indexes on expressions; ask SQLite itself."""
    if not db.is_sqlite:
        return frozenset()
    with db.engine.connect() as conn:
        rows = conn.exec_driver_sql(
            "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = ? AND sql LIKE '%(%(%'", (table,)
        )
        return frozenset(row[0] for row in rows)


def _changes(db: Database) -> list[Any]:
    """The change log in the order it was written."""
    table = SQLModel.metadata.tables["changes"]
    with db.engine.connect() as conn:
        return list(conn.execute(select(table).order_by(table.c.seq)).mappings().all())


def previous_revision(revision: str) -> str:
    down = ScriptDirectory.from_config(alembic_config()).get_revision(revision).down_revision
    assert isinstance(down, str), f"{revision} has no single previous revision"
    return down


# -- restarts -----------------------------------------------------------------------------------


def _snapshot(client: Any) -> dict[str, list[dict[str, Any]]]:
    out = {}
    for path in ("/api/tasks", "/api/notes"):
        response = client.get(path, params={"limit": 500})
        assert response.status_code == 200, response.text
        out[path] = response.json()
    return out


def _write_some(client: Any) -> dict[str, str]:
    """A mix of records, edits and deletions; returns the ids of the deleted ones."""
    posts = [
        ("/api/tasks", {"title": "File taxes", "description": "before April", "due_date": "2024-04-15"}),
        ("/api/tasks", {"title": "Water plants", "completed": True}),
        ("/api/tasks", {"title": "Gone task"}),
        ("/api/notes", {"title": "Recipes", "body": "Ünïcödé ✓ " * 1000}),
        ("/api/notes", {"title": "Gone note", "body": "bye"}),
    ]
    ids = {}
    for path, body in posts:
        response = client.post(path, json=body)
        assert response.status_code == 201, response.text
        ids[body["title"]] = response.json()["id"]
    assert client.patch(f"/api/tasks/{ids['Water plants']}", json={"title": "Water the plants"}).status_code == 200
    assert client.put(f"/api/notes/{ids['Recipes']}", json={"title": "Recipes", "body": "soup", "done": True})
    assert client.delete(f"/api/tasks/{ids['Gone task']}").status_code == 204
    assert client.delete(f"/api/notes/{ids['Gone note']}").status_code == 204
    return {"/api/tasks": ids["Gone task"], "/api/notes": ids["Gone note"]}


def _check_restored(client: Any, before: dict[str, list[dict[str, Any]]], deleted: dict[str, str]) -> None:
    assert _snapshot(client) == before
    assert [t["title"] for t in before["/api/tasks"]] == ["File taxes", "Water the plants"]
    assert [n["body"] for n in before["/api/notes"]] == ["soup"]
    for path, records in before.items():
        for record in records:
            assert client.get(f"{path}/{record['id']}").json() == record
        gone = deleted[path]
        assert client.get(f"{path}/{gone}").status_code == 404
        # The tombstone came back too: its id is still taken.
        assert client.post(path, json={"id": gone, "title": "again"}).status_code == 409


def test_local_records_survive_a_restart(tmp_path: Path) -> None:
    settings = local_settings(tmp_path / "data")
    with serve(settings) as running, running.client() as client:
        deleted = _write_some(client)
        before = _snapshot(client)
        node = running.app.state.ferry.clock.node
    assert running.server is not None and not running.server.thread.is_alive()

    with serve(settings) as running, running.client() as client:
        assert running.app.state.ferry.clock.node == node  # the clock's node id is kept in `meta`
        _check_restored(client, before, deleted)
        task = before["/api/tasks"][0]
        edited = client.patch(f"/api/tasks/{task['id']}", json={"completed": True})
        assert edited.status_code == 200
        assert edited.json()["created_at"] == task["created_at"]
        assert edited.json()["updated_at"] > task["updated_at"]
        rows = _changes(running.app.state.ferry.db)
        # 5 creates + 2 edits + 2 deletes before the restart, and the one edit after it.
        assert len(rows) == 10
        assert rows[-1]["node"] == node
        assert not any(row["pushed"] for row in rows)


def test_server_records_and_accounts_survive_a_restart(tmp_path: Path, database_url: str | None) -> None:
    settings = server_settings(tmp_path / "server", database_url)
    with serve(settings) as running, signed_in(running, "restart-user") as user:
        deleted = _write_some(user.client)
        before = _snapshot(user.client)

    with serve(settings) as running:
        # The access token issued before the restart is still good (same signing key) ...
        with running.client(headers={"Authorization": f"Bearer {user.access_token}"}) as client:
            _check_restored(client, before, deleted)
        # ... and the account itself survived: signing in again finds the same user.
        with signed_in(running, "restart-user", register_first=False) as again:
            assert again.user_id == user.user_id
            assert _snapshot(again.client) == before
            task = before["/api/tasks"][0]
            assert again.client.patch(f"/api/tasks/{task['id']}", json={"completed": True}).status_code == 200
        rows = _changes(running.app.state.ferry.db)
        # The per-user sequence carries on after the restart: 1..10 with no gap or reuse.
        assert [row["user_seq"] for row in rows] == list(range(1, 11))
        assert {row["owner_id"] for row in rows} == {user.user_id}


# -- migrations ---------------------------------------------------------------------------------


def test_migrations_go_up_down_and_up_again(database: Database) -> None:
    head = head_revision()
    previous = previous_revision(head)
    assert current_revision(database) is None
    assert inspect(database.engine).get_table_names() == []

    upgrade(database)
    assert current_revision(database) == head
    at_head = schema(database)
    models = SQLModel.metadata.tables
    assert set(at_head) == set(models) | {"alembic_version"}
    for name, table in models.items():
        assert at_head[name][0] == {column.name for column in table.columns}, name
        assert {str(index.name) for index in table.indexes} <= {i.split("(")[0] for i in at_head[name][1]}, name
    # The migrations build exactly what the models describe: nothing for autogenerate to add.
    with database.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        assert compare_metadata(context, SQLModel.metadata) == []

    downgrade(database, "-1")
    assert current_revision(database) == previous
    one_down = schema(database)
    assert one_down != at_head
    assert set(one_down) >= RECORD_TABLES

    upgrade(database)
    assert current_revision(database) == head
    assert schema(database) == at_head
    upgrade(database)  # already at head: nothing to do, nothing changes
    assert schema(database) == at_head

    # Going down one revision leaves exactly the schema that revision has when reached from below.
    downgrade(database, "base")
    assert current_revision(database) is None
    assert set(schema(database)) == {"alembic_version"}
    upgrade(database, previous)
    assert schema(database) == one_down
    upgrade(database)
    assert schema(database) == at_head


def _filler(column: dict[str, Any]) -> Any:
    """A value for a NOT NULL column this test does not know about (added to 0001 later)."""
    kind = column["type"]
    if isinstance(kind, Boolean):
        return False
    if isinstance(kind, Integer):
        return 0
    if isinstance(kind, String | Text):
        return ""
    raise AssertionError(f"no filler for {column['name']} of type {kind!r}")


def _insert(database: Database, table_name: str, values: dict[str, Any]) -> None:
    found = inspect(database.write_engine)
    primary = set(found.get_pk_constraint(table_name)["constrained_columns"])
    row = dict(values)
    for column in found.get_columns(table_name):
        name = column["name"]
        auto_key = name in primary and isinstance(column["type"], Integer)
        if name not in row and not column["nullable"] and column.get("default") is None and not auto_key:
            row[name] = _filler(column)
    table = Table(table_name, MetaData(), autoload_with=database.write_engine)
    with database.write_engine.begin() as conn:
        conn.execute(table.insert().values(**row))


def _read(database: Database, table_name: str, key: str, columns: list[str]) -> dict[str, dict[str, Any]]:
    table = Table(table_name, MetaData(), autoload_with=database.engine)
    with database.engine.connect() as conn:
        rows = conn.execute(select(table)).mappings().all()
    return {row[key]: {name: row[name] for name in columns} for row in rows}


def test_data_at_the_first_revision_survives_the_upgrade(
    tmp_path: Path, database: Database, database_url: str | None
) -> None:
    upgrade(database, FIRST_REVISION)
    assert current_revision(database) == FIRST_REVISION
    assert set(schema(database)) >= RECORD_TABLES

    node = "0123456789abcdef"
    clock = HybridClock(node)
    created_ms = 1_700_000_000_123
    task_id, gone_id, note_id = (str(uuid.uuid4()) for _ in range(3))
    task_stamp, gone_stamp, note_stamp = clock.now(), clock.now(), clock.now()
    task = {
        "owner_id": "",
        "id": task_id,
        "title": "Migrated task",
        "description": "from revision 0001",
        "due_date": "2024-06-30",
        "completed": True,
        "deleted": False,
        "created_ms": created_ms,
        "updated_ms": created_ms + 5,
        "stamps": f'{{"title":"{task_stamp}"}}',
    }
    gone = {**task, "id": gone_id, "title": "Deleted before the upgrade", "deleted": True}
    gone["stamps"] = f'{{"deleted":"{gone_stamp}"}}'
    note = {
        "owner_id": "",
        "id": note_id,
        "title": "Migrated note",
        "body": "ünïcödé body",
        "done": False,
        "deleted": False,
        "created_ms": created_ms + 1,
        "updated_ms": created_ms + 1,
        "stamps": f'{{"title":"{note_stamp}"}}',
    }
    change = {
        "owner_id": "",
        "change_id": str(uuid.uuid4()),
        "kind": "task",
        "record_id": task_id,
        "fields": '{"title":"Migrated task"}',
        "stamps": f'{{"title":"{task_stamp}"}}',
        "node": node,
        "created_ms": created_ms,
        "pushed": False,
    }
    for table, values in (("tasks", task), ("tasks", gone), ("notes", note), ("changes", change)):
        _insert(database, table, values)
    _insert(database, "meta", {"key": "node_id", "value": node})

    task_columns, note_columns = list(task), list(note)
    change_columns = list(change)
    before = {
        "tasks": _read(database, "tasks", "id", task_columns),
        "notes": _read(database, "notes", "id", note_columns),
        "changes": _read(database, "changes", "change_id", change_columns),
        "meta": _read(database, "meta", "key", ["value"]),
    }
    assert before["tasks"][task_id] == task and before["notes"][note_id] == note

    upgrade(database)
    assert current_revision(database) == head_revision()
    assert set(schema(database)) == set(SQLModel.metadata.tables) | {"alembic_version"}
    assert _read(database, "tasks", "id", task_columns) == before["tasks"]
    assert _read(database, "notes", "id", note_columns) == before["notes"]
    assert _read(database, "changes", "change_id", change_columns) == before["changes"]
    assert _read(database, "meta", "key", ["value"]) == before["meta"]
    url = database.url.render_as_string(hide_password=False)
    database.dispose()

    # The desktop's API serves the migrated rows as if it had written them itself.
    with serve(local_settings(tmp_path / "app", database_url=url)) as running, running.client() as client:
        assert running.app.state.ferry.clock.node == node
        got = client.get(f"/api/tasks/{task_id}")
        assert got.status_code == 200, got.text
        assert got.json() == {
            **got.json(),
            "id": task_id,
            "title": "Migrated task",
            "description": "from revision 0001",
            "due_date": "2024-06-30",
            "completed": True,
            "created_at": ms_to_iso(created_ms),
            "updated_at": ms_to_iso(created_ms + 5),
        }
        assert client.get(f"/api/tasks/{gone_id}").status_code == 404
        assert [t["id"] for t in client.get("/api/tasks").json()] == [task_id]
        assert client.get(f"/api/notes/{note_id}").json()["body"] == "ünïcödé body"
        # Writing after the upgrade works and stamps past the migrated history.
        edited = client.patch(f"/api/tasks/{task_id}", json={"title": "Edited after upgrade"})
        assert edited.status_code == 200, edited.text
        rows = _changes(running.app.state.ferry.db)
        assert len(rows) == 2 and rows[-1]["node"] == node


def test_postgres_plans_each_statement_for_its_values(pg_url: str, tmp_path: Path) -> None:
    """psycopg prepares a statement on its fifth run; a plan made once for any values, while
    the tables were small, turned the id lookups of a push into sequential scans (a push of
    5,000 tasks went from 1.2 s to 14.6 s; `tests/bench/server_load.py --big`). Every pooled
    connection must plan each run for its own values."""
    db = Database(Settings(mode="server", data_dir=tmp_path / "db", database_url=pg_url))
    try:
        with db.engine.connect() as first, db.engine.connect() as second:
            for conn in (first, second):
                assert conn.exec_driver_sql("SHOW plan_cache_mode").scalar() == "force_custom_plan"
    finally:
        db.dispose()


def test_postgres_options_in_the_database_url_are_kept(pg_url: str, tmp_path: Path) -> None:
    url = f"{pg_url}?options=-c%20work_mem%3D8MB"
    db = Database(Settings(mode="server", data_dir=tmp_path / "db", database_url=url))
    try:
        with db.engine.connect() as conn:
            assert conn.exec_driver_sql("SHOW work_mem").scalar() == "8MB"
            assert conn.exec_driver_sql("SHOW plan_cache_mode").scalar() == "force_custom_plan"
    finally:
        db.dispose()


def _durability(db: Database, session: Any) -> str:
    query = "PRAGMA synchronous" if db.is_sqlite else "SHOW synchronous_commit"
    return str(session.execute(text(query)).scalar())


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_an_unflushed_write_commits_and_leaves_the_connection_flushing(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """`write_unflushed` (a device moving only its sync cursor) commits without waiting for the
    disk; the pooled connection then goes back to flushing every commit, after a failed write
    too."""
    url = request.getfixturevalue("pg_url") if backend == "postgresql" else None
    db = Database(Settings(mode="local", data_dir=tmp_path / "db", database_url=url))
    upgrade(db)
    flushed = "2" if db.is_sqlite else "on"  # FULL / on
    key = f"test.unflushed.{uuid.uuid4().hex}"
    try:
        with db.write_unflushed() as session:
            assert _durability(db, session) == ("1" if db.is_sqlite else "off")  # NORMAL / off
            session.merge(Meta(key=key, value="moved"))
        with pytest.raises(RuntimeError), db.write_unflushed() as session:
            session.merge(Meta(key=key, value="rolled back"))
            raise RuntimeError("fails before commit")
        with db.write() as session:
            assert _durability(db, session) == flushed
        with db.read() as session:
            assert session.get(Meta, key).value == "moved"
            session.execute(delete(Meta).where(Meta.key == key))
            session.commit()
    finally:
        db.dispose()
