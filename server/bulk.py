"""Bulk reads and upserts of records as plain dicts, for the sync paths that touch thousands
of records per transaction (a pushed batch on the server, a pulled page on a device)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import Table, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session

from server.models import Note, Task, ms_to_iso
from sync.digest import record_hash
from sync.schema import FIELDS

TABLES: dict[str, Table] = {"task": Task.__table__, "note": Note.__table__}  # type: ignore[attr-defined]
CHUNK = 500


def iso_to_ms(value: str) -> int:
    return int(datetime.fromisoformat(value).timestamp() * 1000)


def load(session: Session, kind: str, owner: str, ids: Iterable[str]) -> dict[str, dict[str, Any]]:
    """The rows with these ids, keyed by id, as dicts of column values."""
    table = TABLES[kind]
    out: dict[str, dict[str, Any]] = {}
    wanted = list(dict.fromkeys(ids))
    for i in range(0, len(wanted), CHUNK):
        query = select(table).where(table.c.owner_id == owner, table.c.id.in_(wanted[i : i + CHUNK]))
        for row in session.execute(query).mappings():
            out[row["id"]] = dict(row)
    return out


def fields_of(kind: str, row: dict[str, Any]) -> dict[str, Any]:
    """A row dict's synced fields, as they travel on the wire."""
    return {name: ms_to_iso(row["created_ms"]) if name == "created_at" else row[name] for name in FIELDS[kind]}


def new_row(kind: str, owner: str, record_id: str, now: int) -> dict[str, Any]:
    row: dict[str, Any] = {column.name: None for column in TABLES[kind].c}
    row.update(owner_id=owner, id=record_id, created_ms=now, updated_ms=now, stamps="{}", deleted=False)
    if kind == "task":
        row.update(title="", description="", completed=False)
    else:
        row.update(title="", body="", done=False)
    return row


def set_fields(kind: str, row: dict[str, Any], fields: dict[str, Any], stamps: dict[str, str], now: int) -> None:
    """Write merged field values and stamps into a row dict and refresh its digest share."""
    for name, value in fields.items():
        if name == "created_at":
            row["created_ms"] = iso_to_ms(value) if value else row["created_ms"]
        else:
            row[name] = value
    row["stamps"] = orjson.dumps(stamps).decode()
    # The newest stamp's wall time is when the record last changed, on every replica alike.
    row["updated_ms"] = max((int(s[:15]) for s in stamps.values()), default=now)
    row["hash_a"], row["hash_b"] = record_hash(kind, row["id"], fields_of(kind, row))


def upsert(session: Session, kind: str, rows: list[dict[str, Any]]) -> None:
    if not rows:
        return
    table = TABLES[kind]
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    insert = dialect.insert(table)
    keys = [c.name for c in table.c if c.name not in ("owner_id", "id")]
    statement = insert.on_conflict_do_update(
        index_elements=["owner_id", "id"], set_={k: insert.excluded[k] for k in keys}
    )
    for i in range(0, len(rows), CHUNK):
        session.execute(statement, rows[i : i + CHUNK])
