"""The tasks and notes HTTP API (`/api/tasks`, `/api/notes`) against real servers.

Every test in `RecordsContract` runs three times: on the desktop's local API (real uvicorn on
loopback, real SQLite file, per-launch token) and on the shared server in server mode, signed
in, on SQLite and on PostgreSQL.

Covers: create (201, server-made UUID, ISO 8601 timestamps to the millisecond with an offset,
client-supplied UUIDs honoured, taken ids 409 even once deleted); get; unknown id 404 and
malformed id 422; PUT replaces (omitted fields back to defaults); PATCH changes only what was
sent (`due_date: null` clears, other nulls 422); DELETE 204 leaves a tombstone row the API no
longer shows. Validation: trimmed 1-200 character titles, text limits, strict ISO dates, JSON
booleans, unknown fields, and a 422 body whose `detail` items name the field. Listing: the
`completed`, `q` (case-insensitive, `%` and `_` literal), `due_before` and `due_after` filters
alone and combined, `skip`/`limit` with `X-Total-Count`, and the stable order. The change log,
read straight from the database: exactly one row per acknowledged write, its per-field stamps
matching the row's, and none for a no-op or a refused write.
"""

from __future__ import annotations

import re
import sqlite3
import time
import uuid
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import orjson
import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from sync.hlc import STAMP_RE
from sync.schema import FIELDS
from tests.helpers_auth import signed_in
from tests.servers import Running

ISO_MS = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}\+00:00$")
#: what the database keeps about a record that the API must never show
INTERNAL_KEYS = {"owner_id", "stamps", "deleted", "created_ms", "updated_ms", "hash_a", "hash_b"}


@dataclass(frozen=True)
class Kind:
    name: str
    path: str
    table: str
    text: str  # the long text field
    flag: str  # the done/completed boolean
    text_max: int

    def url(self, record_id: object) -> str:
        return f"{self.path}/{record_id}"

    def defaults(self) -> dict[str, Any]:
        out: dict[str, Any] = {self.text: "", self.flag: False}
        if self.name == "task":
            out["due_date"] = None
        return out


TASK = Kind("task", "/api/tasks", "tasks", "description", "completed", 10_000)
NOTE = Kind("note", "/api/notes", "notes", "body", "done", 1_000_000)
#: tests check both kinds in one go: in server mode each test pays for an Argon2 sign-in
KINDS = (TASK, NOTE)


@dataclass
class Api:
    """A client for one running server, and a way to look inside its database."""

    client: httpx.Client
    running: Running
    owner: str  # whose rows the client sees: "" on the desktop, the user's id on the server

    @property
    def server_mode(self) -> bool:
        return self.running.settings.mode == "server"

    def query(self, sql: str, **params: Any) -> list[dict[str, Any]]:
        """Rows straight from the database file (sqlite3) or from PostgreSQL."""
        settings = self.running.settings
        if settings.database_url is None:
            path = settings.resolved_data_dir() / "ferry.db"
            with closing(sqlite3.connect(path, timeout=5)) as conn:
                conn.row_factory = sqlite3.Row
                return [dict(row) for row in conn.execute(sql, params)]
        engine = create_engine(settings.database_url, poolclass=NullPool)
        try:
            with engine.connect() as conn:
                return [dict(row._mapping) for row in conn.execute(text(sql), params)]
        finally:
            engine.dispose()

    def create(self, kind: Kind, **fields: Any) -> dict[str, Any]:
        response = self.client.post(kind.path, json=fields)
        assert response.status_code == 201, response.text
        return response.json()

    def get(self, kind: Kind, record_id: str) -> dict[str, Any]:
        response = self.client.get(kind.url(record_id))
        assert response.status_code == 200, response.text
        return response.json()

    def listing(self, kind: Kind, **params: Any) -> list[dict[str, Any]]:
        """A list response; checks X-Total-Count matches when the page holds everything."""
        response = self.client.get(kind.path, params=params)
        assert response.status_code == 200, response.text
        items = response.json()
        assert isinstance(items, list)
        if "skip" not in params and "limit" not in params:
            assert response.headers["X-Total-Count"] == str(len(items))
        return items

    def titles(self, kind: Kind, **params: Any) -> list[str]:
        return [item["title"] for item in self.listing(kind, **params)]

    def stored(self, kind: Kind, record_id: str) -> dict[str, Any] | None:
        rows = self.query(
            f"SELECT * FROM {kind.table} WHERE owner_id = :owner AND id = :id", owner=self.owner, id=record_id
        )
        return rows[0] if rows else None

    def changes(self, record_id: str | None = None) -> list[dict[str, Any]]:
        if record_id is None:
            rows = self.query("SELECT * FROM changes ORDER BY seq")
        else:
            rows = self.query("SELECT * FROM changes WHERE record_id = :id ORDER BY seq", id=record_id)
        for row in rows:
            row["fields"] = orjson.loads(row["fields"])
            row["stamps"] = orjson.loads(row["stamps"])
        return rows

    def node_id(self) -> str:
        return self.query("SELECT value FROM meta WHERE key = 'node_id'")[0]["value"]


def assert_422(response: httpx.Response, *fields: str) -> None:
    """A 422 whose `detail` is a list of items naming exactly these fields, each with a reason."""
    assert response.status_code == 422, f"{response.status_code}: {response.text}"
    detail = response.json()["detail"]
    assert isinstance(detail, list) and detail, detail
    for item in detail:
        assert isinstance(item["field"], str) and item["field"], item
        assert isinstance(item["msg"], str) and item["msg"], item
    assert {item["field"] for item in detail} == set(fields), detail


def assert_404(response: httpx.Response, kind: Kind) -> None:
    assert response.status_code == 404, f"{response.status_code}: {response.text}"
    assert response.json() == {"detail": f"{kind.name} not found"}


def timestamp(value: str) -> datetime:
    assert ISO_MS.match(value), f"not ISO 8601 UTC with milliseconds: {value!r}"
    return datetime.fromisoformat(value)


def full_fields(kind: Kind, title: str = "Full") -> dict[str, Any]:
    """Every writable field, none at its default."""
    fields: dict[str, Any] = {"title": title, kind.text: f"{title} text", kind.flag: True}
    if kind.name == "task":
        fields["due_date"] = "2024-05-01"
    return fields


def descending_ids(count: int) -> list[str]:
    """Valid UUIDs in descending order: an id tie-break would reverse creation order."""
    return [f"{count - i:08x}-aaaa-4aaa-8aaa-aaaaaaaaaaaa" for i in range(count)]


def delete_all(api: Api, kind: Kind) -> None:
    for item in api.listing(kind, limit=500):
        assert api.client.delete(kind.url(item["id"])).status_code == 204
    assert api.listing(kind) == []


def create_in_order(api: Api, kind: Kind, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Create records one after another, each in a later millisecond than the one before."""
    out = []
    for fields in records:
        out.append(api.create(kind, **fields))
        time.sleep(0.002)  # the server keeps creation time to the millisecond
    return out


class RecordsContract:
    """What both modes promise; run by TestLocal and TestServer below.

    Each test is a short scenario made of the steps below it, and covers tasks and notes in
    one go: in server mode every test pays for an Argon2 registration and sign-in.
    """

    def test_create_get_and_ids(self, api: Api) -> None:
        for kind in KINDS:
            self._create_returns_the_stored_record(api, kind)
            self._client_id_is_honoured_and_taken_ids_conflict(api, kind)
            self._unknown_id_is_404_and_malformed_id_is_422(api, kind)

    def test_replace_and_patch(self, api: Api) -> None:
        for kind in KINDS:
            self._put_replaces_the_whole_record(api, kind)
            self._patch_changes_only_the_fields_sent(api, kind)
        self._task_due_date_is_set_replaced_and_cleared(api)

    def test_delete_leaves_a_tombstone(self, api: Api) -> None:
        for kind in KINDS:
            self._delete_leaves_a_tombstone(api, kind)

    def test_restore_undoes_a_delete(self, api: Api) -> None:
        for kind in KINDS:
            self._restore_undoes_a_delete(api, kind)

    def test_validation(self, api: Api) -> None:
        for kind in KINDS:
            self._title_is_trimmed_and_bounded(api, kind)
            self._text_length_limit(api, kind)
            self._unknown_fields_and_non_boolean_flags_are_refused(api, kind)
        self._task_due_date_must_be_an_iso_date(api)

    def test_filters(self, api: Api) -> None:
        self._task_filters(api)
        self._note_filters(api)

    def test_order_and_pagination(self, api: Api) -> None:
        self._task_order_is_due_date_then_undated_then_creation(api)
        self._note_order_is_creation_order(api)
        for kind in KINDS:
            delete_all(api, kind)
        # The pages below count live records only: the tombstones just made must not show.
        self._pagination_and_total_count(api)

    def test_change_log(self, api: Api) -> None:
        for kind in KINDS:
            self._each_write_appends_one_change_with_the_rows_stamps(api, kind)
            self._noop_and_refused_writes_append_nothing(api, kind)

    # -- create, get, ids -----------------------------------------------------------------

    def _create_returns_the_stored_record(self, api: Api, kind: Kind) -> None:
        before = datetime.now(UTC)
        created = api.create(kind, title="  Buy milk  ")
        after = datetime.now(UTC)

        record_id = uuid.UUID(created["id"])
        assert str(record_id) == created["id"]
        assert record_id.version == 7  # server-made ids are time-ordered UUIDv7
        assert created["title"] == "Buy milk"
        for name, value in kind.defaults().items():
            assert created[name] == value, name
        assert created["updated_at"] == created["created_at"]
        made = timestamp(created["created_at"])
        assert before - timedelta(milliseconds=1) <= made <= after + timedelta(milliseconds=1)
        assert not INTERNAL_KEYS & created.keys()

        assert api.get(kind, created["id"]) == created
        assert api.listing(kind) == [created]  # the first record of its kind

        full = api.create(kind, **full_fields(kind))
        for name, value in full_fields(kind).items():
            assert full[name] == value, name
        assert api.get(kind, full["id"]) == full

    def _client_id_is_honoured_and_taken_ids_conflict(self, api: Api, kind: Kind) -> None:
        record_id = uuid.uuid4()
        created = api.create(kind, id=str(record_id).upper(), title="first")
        assert created["id"] == str(record_id)
        assert api.get(kind, str(record_id).upper()) == created

        again = api.client.post(kind.path, json={"id": str(record_id), "title": "second"})
        assert again.status_code == 409, again.text
        assert "already exists" in again.json()["detail"]
        assert api.get(kind, str(record_id)) == created

        # A tombstone keeps its id: the same id cannot be reused for a new record.
        assert api.client.delete(kind.url(record_id)).status_code == 204
        reused = api.client.post(kind.path, json={"id": str(record_id), "title": "third"})
        assert reused.status_code == 409, reused.text

        assert_422(api.client.post(kind.path, json={"id": "not-a-uuid", "title": "x"}), "id")
        assert_422(api.client.post(kind.path, json={"id": 42, "title": "x"}), "id")
        assert created not in api.listing(kind)
        assert not any(item["title"] in ("second", "third", "x") for item in api.listing(kind))

    def _unknown_id_is_404_and_malformed_id_is_422(self, api: Api, kind: Kind) -> None:
        listed = api.listing(kind)
        missing = kind.url(uuid.uuid4())
        assert_404(api.client.get(missing), kind)
        assert_404(api.client.put(missing, json={"title": "x"}), kind)
        assert_404(api.client.patch(missing, json={"title": "x"}), kind)
        assert_404(api.client.delete(missing), kind)

        for bad in ("not-a-uuid", "123", "0000000g-0000-4000-8000-000000000000"):
            url = kind.url(bad)
            assert_422(api.client.get(url), "id")
            assert_422(api.client.put(url, json={"title": "x"}), "id")
            assert_422(api.client.patch(url, json={"title": "x"}), "id")
            assert_422(api.client.delete(url), "id")
        assert api.listing(kind) == listed

    # -- replace, patch, delete -----------------------------------------------------------

    def _put_replaces_the_whole_record(self, api: Api, kind: Kind) -> None:
        created = api.create(kind, **full_fields(kind))

        response = api.client.put(kind.url(created["id"]), json={"title": "  Replaced  "})
        assert response.status_code == 200, response.text
        replaced = response.json()
        assert replaced == {
            **created,
            "title": "Replaced",
            **kind.defaults(),
            "updated_at": replaced["updated_at"],
        }
        assert timestamp(replaced["updated_at"]) >= timestamp(created["created_at"])
        assert api.get(kind, created["id"]) == replaced

        restored = api.client.put(kind.url(created["id"]), json=full_fields(kind, "Again"))
        assert restored.status_code == 200, restored.text
        for name, value in full_fields(kind, "Again").items():
            assert restored.json()[name] == value, name

        assert_422(api.client.put(kind.url(created["id"]), json={kind.text: "no title"}), "title")
        assert_422(api.client.put(kind.url(created["id"]), json={"id": created["id"], "title": "x"}), "id")
        assert api.get(kind, created["id"]) == restored.json()

    def _patch_changes_only_the_fields_sent(self, api: Api, kind: Kind) -> None:
        created = api.create(kind, **{**full_fields(kind, "Original"), kind.flag: False})
        url = kind.url(created["id"])

        flagged = api.client.patch(url, json={kind.flag: True})
        assert flagged.status_code == 200, flagged.text
        assert flagged.json() == {**created, kind.flag: True, "updated_at": flagged.json()["updated_at"]}

        renamed = api.client.patch(url, json={"title": "  Renamed "})
        assert renamed.status_code == 200, renamed.text
        assert renamed.json() == {**flagged.json(), "title": "Renamed", "updated_at": renamed.json()["updated_at"]}

        empty = api.client.patch(url, json={})
        assert empty.status_code == 200, empty.text
        assert empty.json() == renamed.json()

        for name in ("title", kind.text, kind.flag):
            assert_422(api.client.patch(url, json={name: None}), name)
        assert api.get(kind, created["id"]) == renamed.json()
        assert created["created_at"] == renamed.json()["created_at"]

    def _task_due_date_is_set_replaced_and_cleared(self, api: Api) -> None:
        created = api.create(TASK, title="Leap day", due_date="2024-02-29")
        assert created["due_date"] == "2024-02-29"
        url = TASK.url(created["id"])

        moved = api.client.patch(url, json={"due_date": "2024-03-01"})
        assert moved.status_code == 200 and moved.json()["due_date"] == "2024-03-01"
        cleared = api.client.patch(url, json={"due_date": None})
        assert cleared.status_code == 200 and cleared.json()["due_date"] is None
        assert cleared.json()["title"] == "Leap day"
        assert api.get(TASK, created["id"])["due_date"] is None

        assert api.client.patch(url, json={"due_date": "2025-12-31"}).json()["due_date"] == "2025-12-31"
        # PUT without a due date replaces it with none.
        assert api.client.put(url, json={"title": "Leap day"}).json()["due_date"] is None
        assert api.client.put(url, json={"title": "Leap day", "due_date": None}).status_code == 200
        assert api.get(TASK, created["id"])["due_date"] is None

    def _delete_leaves_a_tombstone(self, api: Api, kind: Kind) -> None:
        keep = api.create(kind, title="keep")
        gone = api.create(kind, title="gone", **{kind.text: "kept in the tombstone"})
        url = kind.url(gone["id"])

        response = api.client.delete(url)
        assert response.status_code == 204
        assert response.content == b""
        assert_404(api.client.get(url), kind)
        assert api.listing(kind) == [keep]
        assert api.client.get(kind.path).headers["X-Total-Count"] == "1"
        assert_404(api.client.delete(url), kind)
        assert_404(api.client.put(url, json={"title": "back"}), kind)
        assert_404(api.client.patch(url, json={"title": "back"}), kind)

        tombstone = api.stored(kind, gone["id"])
        assert tombstone is not None
        assert bool(tombstone["deleted"]) is True
        assert tombstone["title"] == "gone"  # the row keeps its id and merge metadata
        assert tombstone[kind.text] == "kept in the tombstone"
        stamps = orjson.loads(tombstone["stamps"])
        assert STAMP_RE.match(stamps["deleted"])
        assert stamps["deleted"] > stamps["title"]
        live = api.stored(kind, keep["id"])
        assert live is not None and bool(live["deleted"]) is False

    def _restore_undoes_a_delete(self, api: Api, kind: Kind) -> None:
        record = api.create(kind, title="undo me", **{kind.text: "text survives"})
        url = kind.url(record["id"])
        assert api.client.delete(url).status_code == 204
        before = len(api.changes(record["id"]))

        restored = api.client.post(f"{url}/restore")
        assert restored.status_code == 200, restored.text
        body = restored.json()
        assert (body["id"], body["title"], body[kind.text]) == (record["id"], "undo me", "text survives")
        assert api.get(kind, record["id"]) == body
        assert record["id"] in [item["id"] for item in api.listing(kind)]
        stored = api.stored(kind, record["id"])
        assert stored is not None and bool(stored["deleted"]) is False
        stamps = orjson.loads(stored["stamps"])
        assert stamps["deleted"] > stamps["title"]  # a later write of the deletion field: it syncs
        log = api.changes(record["id"])
        assert len(log) == before + 1 and log[-1]["fields"] == {"deleted": False}

        # Restoring a live record changes nothing; an unknown id is a 404; a bad id a 422.
        again = api.client.post(f"{url}/restore")
        assert again.status_code == 200 and again.json() == body
        assert len(api.changes(record["id"])) == before + 1
        assert_404(api.client.post(f"{kind.url(uuid.uuid4())}/restore"), kind)
        assert_422(api.client.post(f"{kind.path}/not-a-uuid/restore"), "id")

    # -- validation -----------------------------------------------------------------------

    def _title_is_trimmed_and_bounded(self, api: Api, kind: Kind) -> None:
        existing = len(api.listing(kind))
        for bad in ("", "   ", "\t\n "):
            assert_422(api.client.post(kind.path, json={"title": bad}), "title")
        assert_422(api.client.post(kind.path, json={kind.text: "no title"}), "title")
        assert_422(api.client.post(kind.path, json={"title": 123}), "title")
        assert_422(api.client.post(kind.path, json={"title": "x" * 201}), "title")
        assert_422(api.client.post(kind.path, json={"title": "  " + "x" * 201 + "  "}), "title")

        longest = api.create(kind, title="y" * 200)
        assert longest["title"] == "y" * 200
        padded = api.create(kind, title="  " + "z" * 200 + "\n")
        assert padded["title"] == "z" * 200
        accented = api.create(kind, title="é" * 200)  # characters, not bytes
        assert accented["title"] == "é" * 200

        url = kind.url(longest["id"])
        assert_422(api.client.patch(url, json={"title": "   "}), "title")
        assert_422(api.client.patch(url, json={"title": "w" * 201}), "title")
        assert_422(api.client.put(url, json={"title": ""}), "title")
        assert api.get(kind, longest["id"]) == longest
        assert len(api.listing(kind)) == existing + 3

    def _text_length_limit(self, api: Api, kind: Kind) -> None:
        existing = len(api.listing(kind))
        longest = "a" * (kind.text_max - 1) + "é"
        created = api.create(kind, title="long", **{kind.text: longest})
        assert api.get(kind, created["id"])[kind.text] == longest

        too_long = "b" * (kind.text_max + 1)
        assert_422(api.client.post(kind.path, json={"title": "x", kind.text: too_long}), kind.text)
        url = kind.url(created["id"])
        assert_422(api.client.patch(url, json={kind.text: too_long}), kind.text)
        assert_422(api.client.put(url, json={"title": "x", kind.text: too_long}), kind.text)
        assert api.get(kind, created["id"])[kind.text] == longest
        assert len(api.listing(kind)) == existing + 1

    def _task_due_date_must_be_an_iso_date(self, api: Api) -> None:
        bad_dates: list[Any] = [
            20240101,
            1706918400.5,
            True,
            "2024-02-30",
            "2023-02-29",
            "2024-13-01",
            "2024-02-03T00:00:00",
            "2024-02-03T00:00:00Z",
            "2024-2-3",
            "20240203",
            "2024-W05-1",
            "tomorrow",
            "",
            " 2024-02-03",
            {"year": 2024},
            [2024, 2, 3],
        ]
        for value in bad_dates:
            assert_422(api.client.post(TASK.path, json={"title": "x", "due_date": value}), "due_date")

        existing = len(api.listing(TASK))
        created = api.create(TASK, title="dated", due_date="2024-02-03")
        url = TASK.url(created["id"])
        for value in bad_dates[:6]:
            assert_422(api.client.patch(url, json={"due_date": value}), "due_date")
            assert_422(api.client.put(url, json={"title": "x", "due_date": value}), "due_date")
        assert api.get(TASK, created["id"]) == created
        assert len(api.listing(TASK)) == existing + 1

    def _unknown_fields_and_non_boolean_flags_are_refused(self, api: Api, kind: Kind) -> None:
        existing = len(api.listing(kind))
        other_text = "body" if kind.name == "task" else "description"
        for name in ("colour", "owner_id", "created_at", "deleted", other_text):
            assert_422(api.client.post(kind.path, json={"title": "x", name: "y"}), name)
        for value in ("true", 1, 0, None, "yes", []):
            assert_422(api.client.post(kind.path, json={"title": "x", kind.flag: value}), kind.flag)

        created = api.create(kind, title="valid")
        url = kind.url(created["id"])
        assert_422(api.client.patch(url, json={"colour": "red"}), "colour")
        assert_422(api.client.patch(url, json={"deleted": True}), "deleted")
        assert_422(api.client.patch(url, json={kind.flag: "false"}), kind.flag)
        assert_422(api.client.patch(url, json={kind.flag: 1}), kind.flag)
        assert_422(api.client.put(url, json={"title": "x", "updated_at": created["updated_at"]}), "updated_at")
        assert_422(api.client.put(url, json={"title": "x", kind.flag: "true"}), kind.flag)
        assert_422(api.client.post(kind.path, json={"colour": "red", kind.flag: "no"}), "title", "colour", kind.flag)
        assert api.get(kind, created["id"]) == created
        assert len(api.listing(kind)) == existing + 1

    # -- listing --------------------------------------------------------------------------

    def _task_filters(self, api: Api) -> None:
        create_in_order(
            api,
            TASK,
            [
                {"title": "Buy milk", "description": "from the 100% organic shop", "due_date": "2024-01-10"},
                {"title": "Pay rent", "due_date": "2024-01-15", "completed": True},
                {"title": "Call MOM", "description": "about the garden_party", "due_date": "2024-01-20"},
                {"title": "Élan vital", "description": "undated", "completed": True},
                {"title": "Write report", "description": "Quarterly numbers", "due_date": "2024-01-15"},
            ],
        )
        everything = ["Buy milk", "Pay rent", "Write report", "Call MOM", "Élan vital"]
        assert api.titles(TASK) == everything
        assert api.titles(TASK, completed="true") == ["Pay rent", "Élan vital"]
        assert api.titles(TASK, completed="false") == ["Buy milk", "Write report", "Call MOM"]

        assert api.titles(TASK, q="milk") == ["Buy milk"]
        assert api.titles(TASK, q="MILK") == ["Buy milk"]
        assert api.titles(TASK, q="mom") == ["Call MOM"]
        assert api.titles(TASK, q="quarterly") == ["Write report"]  # matches the description
        assert api.titles(TASK, q="élan") == ["Élan vital"]  # case folding beyond ASCII
        assert api.titles(TASK, q="VITAL") == ["Élan vital"]
        assert api.titles(TASK, q="%") == ["Buy milk"]  # a literal percent sign
        assert api.titles(TASK, q="%milk") == []  # ... never a wildcard
        assert api.titles(TASK, q="_") == ["Call MOM"]  # a literal underscore
        assert api.titles(TASK, q="y_r") == []  # "Pay rent" would match a wildcard
        assert api.titles(TASK, q="nothing like this") == []
        assert api.titles(TASK, q="") == everything
        assert_422(api.client.get(TASK.path, params={"q": "x" * 201}), "q")

        assert api.titles(TASK, due_before="2024-01-15") == ["Buy milk"]  # strictly before
        assert api.titles(TASK, due_after="2024-01-15") == ["Call MOM"]  # strictly after
        assert api.titles(TASK, due_after="2024-01-10", due_before="2024-01-20") == ["Pay rent", "Write report"]
        assert api.titles(TASK, due_after="2024-01-15", due_before="2024-01-15") == []
        assert api.titles(TASK, due_before="2099-01-01") == everything[:4]  # undated tasks are not "before"

        assert api.titles(TASK, completed="false", due_before="2024-01-16") == ["Buy milk", "Write report"]
        assert api.titles(TASK, completed="true", q="a", due_before="2024-12-31") == ["Pay rent"]
        assert api.titles(TASK, completed="false", q="REPORT", due_after="2024-01-10") == ["Write report"]

        assert_422(api.client.get(TASK.path, params={"completed": "maybe"}), "completed")
        assert_422(api.client.get(TASK.path, params={"due_before": "2024-02-30"}), "due_before")
        assert_422(api.client.get(TASK.path, params={"due_after": "someday"}), "due_after")

    def _note_filters(self, api: Api) -> None:
        create_in_order(
            api,
            NOTE,
            [
                {"title": "Groceries", "body": "eggs, MILK, bread"},
                {"title": "Ideas", "body": "50% off_sale", "done": True},
                {"title": "Journal"},
            ],
        )
        assert api.titles(NOTE) == ["Groceries", "Ideas", "Journal"]
        assert api.titles(NOTE, completed="true") == ["Ideas"]
        assert api.titles(NOTE, completed="false") == ["Groceries", "Journal"]
        assert api.titles(NOTE, q="milk") == ["Groceries"]  # matches the body
        assert api.titles(NOTE, q="IDEA") == ["Ideas"]
        assert api.titles(NOTE, q="%") == ["Ideas"]
        assert api.titles(NOTE, q="f_s") == ["Ideas"]
        assert api.titles(NOTE, q="ff%le") == []
        assert api.titles(NOTE, q="o", completed="false") == ["Groceries", "Journal"]
        assert api.titles(NOTE, q="milk", completed="true") == []

    def _pagination_and_total_count(self, api: Api) -> None:
        create_in_order(api, TASK, [{"title": f"task {i}"} for i in range(7)])
        every = [f"task {i}" for i in range(7)]

        def page(**params: Any) -> tuple[list[str], str]:
            response = api.client.get(TASK.path, params=params)
            assert response.status_code == 200, response.text
            return [item["title"] for item in response.json()], response.headers["X-Total-Count"]

        assert page(limit=500) == (every, "7")
        assert page(limit=3) == (every[0:3], "7")
        assert page(skip=3, limit=3) == (every[3:6], "7")
        assert page(skip=6, limit=3) == (every[6:], "7")
        assert page(skip=7) == ([], "7")
        assert page(skip=1000) == ([], "7")
        assert page(q="task", skip=5, limit=1) == (["task 5"], "7")
        assert page(q="task 4", skip=0, limit=1) == (["task 4"], "1")
        assert page(completed="true", limit=1) == ([], "0")
        # Walking the pages visits every record once, in order.
        walked: list[str] = []
        for skip in range(0, 7, 2):
            walked += page(skip=skip, limit=2)[0]
        assert walked == every

        for params in ({"limit": 0}, {"limit": 501}, {"limit": -1}, {"limit": "ten"}):
            assert_422(api.client.get(TASK.path, params=params), "limit")
        assert_422(api.client.get(TASK.path, params={"skip": -1}), "skip")
        assert_422(api.client.get(NOTE.path, params={"limit": 0}), "limit")

        create_in_order(api, NOTE, [{"title": f"note {i}"} for i in range(3)])
        notes = api.client.get(NOTE.path, params={"skip": 1, "limit": 1})
        assert [item["title"] for item in notes.json()] == ["note 1"]
        assert notes.headers["X-Total-Count"] == "3"

    def _task_order_is_due_date_then_undated_then_creation(self, api: Api) -> None:
        specs: list[tuple[str, str | None]] = [
            ("undated A", None),
            ("March", "2024-03-01"),
            ("January", "2024-01-01"),
            ("undated B", None),
            ("March again", "2024-03-01"),
            ("February", "2024-02-01"),
        ]
        ids = descending_ids(len(specs))
        created = create_in_order(
            api, TASK, [{"id": i, "title": t, "due_date": d} for i, (t, d) in zip(ids, specs, strict=True)]
        )
        times = [timestamp(c["created_at"]) for c in created]
        assert times == sorted(times) and len(set(times)) == len(times)

        expected = ["January", "February", "March", "March again", "undated A", "undated B"]
        assert api.titles(TASK) == expected
        # An edit does not move a record among its equals: creation order still breaks the tie.
        assert api.client.patch(TASK.url(ids[1]), json={"title": "March (edited)"}).status_code == 200
        assert api.client.patch(TASK.url(ids[0]), json={"title": "undated A (edited)"}).status_code == 200
        assert api.titles(TASK) == [
            "January",
            "February",
            "March (edited)",
            "March again",
            "undated A (edited)",
            "undated B",
        ]
        # Giving an undated task a date moves it among the dated ones.
        assert api.client.patch(TASK.url(ids[3]), json={"due_date": "2023-12-31"}).status_code == 200
        assert api.titles(TASK)[:2] == ["undated B", "January"]
        assert api.titles(TASK)[-1] == "undated A (edited)"

    def _note_order_is_creation_order(self, api: Api) -> None:
        ids = descending_ids(4)
        create_in_order(api, NOTE, [{"id": i, "title": f"note {n}"} for n, i in enumerate(ids)])
        assert api.titles(NOTE) == ["note 0", "note 1", "note 2", "note 3"]
        assert api.client.patch(NOTE.url(ids[0]), json={"body": "edited last"}).status_code == 200
        assert api.titles(NOTE) == ["note 0", "note 1", "note 2", "note 3"]

    # -- the change log -------------------------------------------------------------------

    def _each_write_appends_one_change_with_the_rows_stamps(self, api: Api, kind: Kind) -> None:
        earlier = len(api.changes())  # the other kind's turn, if it went first
        created = api.create(kind, **full_fields(kind, "Logged"))
        record_id = created["id"]

        (first,) = api.changes(record_id)
        assert first["kind"] == kind.name
        assert first["owner_id"] == api.owner
        assert first["fields"] == {
            **full_fields(kind, "Logged"),
            "created_at": created["created_at"],
            "deleted": False,
        }
        assert set(first["fields"]) <= set(FIELDS[kind.name])
        assert set(first["stamps"]) == set(first["fields"])
        assert len(set(first["stamps"].values())) == 1  # one write, one stamp
        node = api.node_id()
        assert first["node"] == node
        assert all(STAMP_RE.match(s) and s.endswith(node) for s in first["stamps"].values())
        row = api.stored(kind, record_id)
        assert row is not None and orjson.loads(row["stamps"]) == first["stamps"]

        # PUT back to defaults: the change carries exactly the fields whose value changed.
        response = api.client.put(kind.url(record_id), json={"title": "Logged", kind.text: "Logged text"})
        assert response.status_code == 200
        changed = {name: value for name, value in kind.defaults().items() if name != kind.text}
        assert api.changes(record_id)[-1]["fields"] == changed

        assert api.client.patch(kind.url(record_id), json={kind.text: "patched"}).status_code == 200
        assert api.changes(record_id)[-1]["fields"] == {kind.text: "patched"}

        assert api.client.delete(kind.url(record_id)).status_code == 204
        log = api.changes(record_id)
        assert [c["fields"] for c in log[-1:]] == [{"deleted": True}]
        assert len(log) == 4
        assert api.changes()[earlier:] == log  # no other rows were written

        change_ids = [c["change_id"] for c in log]
        assert len(set(change_ids)) == 4 and all(uuid.UUID(i) for i in change_ids)
        stamps_in_order = [max(c["stamps"].values()) for c in log]
        assert stamps_in_order == sorted(stamps_in_order) and len(set(stamps_in_order)) == 4
        for change in log:
            assert set(change["stamps"]) == set(change["fields"])

        # The row holds, per field, the stamp of the last change that wrote it.
        latest: dict[str, str] = {}
        for change in log:
            latest.update(change["stamps"])
        row = api.stored(kind, record_id)
        assert row is not None and orjson.loads(row["stamps"]) == latest

        if api.server_mode:
            # A fresh user's sequence numbers: 1, 2, 3, ... with no gaps.
            assert [c["user_seq"] for c in log] == [earlier + n for n in (1, 2, 3, 4)]
            assert all(bool(c["pushed"]) for c in log)  # the server's own log has nothing to push
        else:
            assert [c["user_seq"] for c in log] == [None] * 4
            assert not any(bool(c["pushed"]) for c in log)  # waiting for the sync engine

    def _noop_and_refused_writes_append_nothing(self, api: Api, kind: Kind) -> None:
        created = api.create(kind, **full_fields(kind, "Same"))
        url = kind.url(created["id"])
        before = len(api.changes())
        assert api.changes()[-1]["record_id"] == created["id"]

        same = api.client.put(url, json={**full_fields(kind, "Same"), "title": "  Same  "})
        assert same.status_code == 200 and same.json() == created
        for body in ({"title": "Same"}, {}, {kind.flag: True}, {kind.text: created[kind.text]}):
            response = api.client.patch(url, json=body)
            assert response.status_code == 200 and response.json() == created, body
        if kind.name == "task":
            assert api.client.patch(url, json={"due_date": created["due_date"]}).json() == created

        assert api.client.post(kind.path, json={"id": created["id"], "title": "dup"}).status_code == 409
        assert api.client.post(kind.path, json={"title": ""}).status_code == 422
        assert api.client.patch(url, json={"title": None}).status_code == 422
        assert api.client.put(url, json={"title": "x", kind.flag: "yes"}).status_code == 422
        assert api.client.patch(kind.url(uuid.uuid4()), json={"title": "x"}).status_code == 404
        assert api.client.delete(kind.url(uuid.uuid4())).status_code == 404
        assert len(api.changes()) == before
        assert api.get(kind, created["id"]) == created  # updated_at did not move either

        mixed = api.client.patch(url, json={"title": "Same", kind.text: "changed"})
        assert mixed.status_code == 200
        log = api.changes()
        assert len(log) == before + 1
        assert log[-1]["fields"] == {kind.text: "changed"}


class TestLocal(RecordsContract):
    """The desktop's local API: one person, owner "", the per-launch token."""

    @pytest.fixture
    def api(self, local_app: Running, local_client: httpx.Client) -> Iterator[Api]:
        yield Api(local_client, local_app, "")


class TestServer(RecordsContract):
    """The shared server, signed in as a freshly registered user (SQLite and PostgreSQL)."""

    @pytest.fixture
    def api(self, server_app: Running) -> Iterator[Api]:
        with signed_in(server_app) as user:
            yield Api(user.client, server_app, user.user_id)


def test_conflicts_filter_lists_only_conflict_copies(local_app: Running, local_client: httpx.Client) -> None:
    """`conflicts=true` finds the copies sync rule 4 leaves (the UI's Conflicts view)."""
    api = Api(local_client, local_app, "")
    for kind in KINDS:
        original = api.create(kind, title="original")
        copy = api.create(kind, title="copy")
        plain = api.create(kind, title="plain")
        # Copies are made by the sync merge; here the column is set directly on the file.
        path = local_app.settings.resolved_data_dir() / "ferry.db"
        with closing(sqlite3.connect(path, timeout=5)) as conn, conn:
            conn.execute(f"UPDATE {kind.table} SET conflict_of = ? WHERE id = ?", (original["id"], copy["id"]))
        assert [item["id"] for item in api.listing(kind, conflicts="true")] == [copy["id"]]
        assert api.listing(kind, conflicts="true")[0]["conflict_of"] == original["id"]
        rest = {item["id"] for item in api.listing(kind, conflicts="false")}
        assert rest == {original["id"], plain["id"]}
        assert_422(local_client.get(kind.path, params={"conflicts": "maybe"}), "conflicts")
