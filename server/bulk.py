"""Bulk reads and upserts of records as plain dicts, for the sync paths that touch thousands
of records per transaction (a pushed batch on the server, a pulled page on a device)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from datetime import datetime
from operator import itemgetter
from typing import Any

import orjson
from sqlalchemy import Table, bindparam, func, select
from sqlmodel import Session

from server.models import Change, Note, Task, ms_to_iso
from sync.digest import values_hash
from sync.schema import FIELDS

TABLES: dict[str, Table] = {"task": Task.__table__, "note": Note.__table__}  # type: ignore[attr-defined]
CHANGES_TABLE: Table = Change.__table__  # type: ignore[attr-defined]
CHUNK = 500
SMALL_WRITE = 50  # rows written with one multi-row statement on PostgreSQL


def iso_to_ms(value: str) -> int:
    return int(datetime.fromisoformat(value).timestamp() * 1000)


def json_ids() -> Any:
    """SQLite: `x IN json_ids()` with the ids as one JSON array in the `ids` parameter. One
    statement and one parameter for any number of ids: an expanding `IN` of 500 parameters
    was rendered anew for every chunk (a fifth of the reads of a pushed batch of 5,000)."""
    return select(func.json_each(bindparam("ids")).table_valued("value").c.value).scalar_subquery()


def in_ids(make: Callable[[Any], Any]) -> tuple[Any, Any]:
    """A statement selecting by a list of ids, built once in both forms `rows_for_ids` runs:
    `make(ids)` is given what to put in `column.in_(...)`."""
    return make(json_ids()), make(bindparam("ids", expanding=True))


def rows_for_ids(
    session: Session, statements: tuple[Any, Any], params: dict[str, Any], ids: list[str]
) -> Iterator[Any]:
    """The rows (mappings) of an `in_ids` statement for these ids: one statement on SQLite,
    chunks of `CHUNK` ids elsewhere."""
    by_json, expanding = statements
    if session.get_bind().dialect.name == "sqlite":
        yield from session.execute(by_json, {**params, "ids": orjson.dumps(ids).decode()}).mappings()
        return
    for i in range(0, len(ids), CHUNK):
        yield from session.execute(expanding, {**params, "ids": ids[i : i + CHUNK]}).mappings()


# Built once: building and keying a statement for every push cost more than running it.
_LOAD = {
    kind: in_ids(
        lambda ids, table=table: select(table).where(table.c.owner_id == bindparam("owner"), table.c.id.in_(ids))
    )
    for kind, table in TABLES.items()
}


def load(session: Session, kind: str, owner: str, ids: Iterable[str]) -> dict[str, dict[str, Any]]:
    """The rows with these ids, keyed by id, as dicts of column values."""
    wanted = list(dict.fromkeys(ids))
    return {row["id"]: dict(row) for row in rows_for_ids(session, _LOAD[kind], {"owner": owner}, wanted)}


def fields_of(kind: str, row: dict[str, Any]) -> dict[str, Any]:
    """A row dict's synced fields, as they travel on the wire."""
    return {name: ms_to_iso(row["created_ms"]) if name == "created_at" else row[name] for name in FIELDS[kind]}


# A row's synced values in the order of `FIELDS` (created_at as its column, created_ms).
_VALUES = {
    kind: itemgetter(*("created_ms" if name == "created_at" else name for name in FIELDS[kind])) for kind in FIELDS
}
_CREATED_AT = {kind: FIELDS[kind].index("created_at") for kind in FIELDS}


def row_hash(kind: str, row: dict[str, Any]) -> tuple[int, int]:
    """`sync.digest.record_hash` of `fields_of(kind, row)`, without building that dict (a push
    hashes every record it writes)."""
    values = list(_VALUES[kind](row))
    at = _CREATED_AT[kind]
    values[at] = ms_to_iso(values[at])
    return values_hash(kind, row["id"], values)


def stamps_ms(stamps: dict[str, str], default: int) -> int:
    """When a record last changed: its newest stamp's wall time, the same on every replica
    (`default` when it has no stamps)."""
    # Stamps are fixed-width (`sync.hlc`), so the newest is the greatest string.
    return int(max(stamps.values())[:15]) if stamps else default


def _blank_row(kind: str) -> dict[str, Any]:
    row: dict[str, Any] = {column.name: None for column in TABLES[kind].c}
    row.update(stamps="{}", deleted=False)
    if kind == "task":
        row.update(title="", description="", completed=False)
    else:
        row.update(title="", body="", done=False)
    return row


# Iterating a table's columns for every new row cost a push of 5,000 new tasks 7 of its
# 190 ms (in-process, SQLite).
_BLANK_ROWS = {kind: _blank_row(kind) for kind in TABLES}


def new_row(kind: str, owner: str, record_id: str, now: int) -> dict[str, Any]:
    row = _BLANK_ROWS[kind].copy()
    row.update(owner_id=owner, id=record_id, created_ms=now, updated_ms=now)
    return row


STAMPS_CACHE = "_stamps"  # parsed stamps kept beside the JSON in a row dict (not a column)


def stamps_of(row: dict[str, Any]) -> dict[str, str]:
    """A row dict's stamps, parsed once."""
    cached = row.get(STAMPS_CACHE)
    if cached is None:
        cached = row[STAMPS_CACHE] = orjson.loads(row["stamps"])
    return cached


def set_fields(kind: str, row: dict[str, Any], fields: dict[str, Any], stamps: dict[str, str], now: int) -> None:
    """Write merged field values and stamps into a row dict and refresh its digest share."""
    for name, value in fields.items():
        if name == "created_at":
            row["created_ms"] = iso_to_ms(value) if value else row["created_ms"]
        else:
            row[name] = value
    if stamps and "created_at" not in stamps:
        # No change has dated this record (created_at is optional on the wire). Dating it
        # by each replica's own clock made replicas disagree for good (created_at is in the
        # digest: endless full re-syncs); its oldest stamp is the same everywhere.
        row["created_ms"] = int(min(stamps.values())[:15])
    row["stamps"] = orjson.dumps(stamps).decode()
    row[STAMPS_CACHE] = stamps
    row["updated_ms"] = stamps_ms(stamps, now)
    row["hash_a"], row["hash_b"] = row_hash(kind, row)


def change_row(
    owner: str,
    change_id: str,
    kind: str,
    record_id: str,
    fields: dict[str, Any],
    stamps: dict[str, str],
    base: dict[str, str] | None,
    node: str,
    ms: int,
    pushed: bool,
    user_seq: int | None = None,
) -> dict[str, Any]:
    """One row of the change log (`changes`), as the REST writes and the sync push store it."""
    return {
        "owner_id": owner,
        "change_id": change_id,
        "kind": kind,
        "record_id": record_id,
        "fields": orjson.dumps(fields).decode(),
        "stamps": orjson.dumps(stamps).decode(),
        "base": orjson.dumps(base).decode() if base else None,
        "node": node,
        "created_ms": ms,
        "pushed": pushed,
        "user_seq": user_seq,
    }


def _columns(table: Table) -> list[str]:
    return [column.name for column in table.c if not (column.primary_key and column.autoincrement is True)]


def execute_insert(
    cursor: Any, mark: str, table: Table, rows: list[dict[str, Any]], conflict: tuple[str, ...] = ()
) -> None:
    """INSERT many rows (or upsert them on `conflict` columns) on a driver's cursor (`mark`:
    its placeholder, `?` or `%s`)."""
    if not rows:
        return
    columns = [c for c in _columns(table) if c in rows[0]]
    sql = f"INSERT INTO {table.name} ({', '.join(columns)}) VALUES ({', '.join([mark] * len(columns))})"
    if conflict:
        updates = ", ".join(f"{c} = excluded.{c}" for c in columns if c not in conflict)
        sql += f" ON CONFLICT ({', '.join(conflict)}) DO UPDATE SET {updates}"
    # itemgetter builds each row's tuple in C (a tuple only when it gets two or more).
    values = itemgetter(*columns) if len(columns) > 1 else lambda row: (row[columns[0]],)
    if mark == "%s" and len(rows) <= SMALL_WRITE:
        # PostgreSQL: a few rows in one statement, one round trip (psycopg's executemany
        # takes several, and a device's push usually carries a handful of changes).
        one = f"({', '.join([mark] * len(columns))})"
        many = sql.replace(f"VALUES {one}", "VALUES " + ", ".join([one] * len(rows)), 1)
        cursor.execute(many, [value for row in rows for value in values(row)])
    else:
        cursor.executemany(sql, [values(row) for row in rows])


def write_rows(session: Session, table: Table, rows: list[dict[str, Any]], conflict: tuple[str, ...] = ()) -> None:
    """`execute_insert` on a session's connection, through the driver's own executemany: the
    ORM's per-parameter processing is most of the cost of a large push."""
    if not rows:
        return
    conn = session.connection()
    mark = "?" if conn.dialect.paramstyle == "qmark" else "%s"
    cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
    try:
        execute_insert(cursor, mark, table, rows, conflict)
    finally:
        cursor.close()


def upsert(session: Session, kind: str, rows: list[dict[str, Any]]) -> None:
    write_rows(session, TABLES[kind], rows, conflict=("owner_id", "id"))
