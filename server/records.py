"""Reading and writing tasks and notes, with the change log written in the same transaction.

Every write stamps the fields it changes with the hybrid logical clock, merges them into
the row with `sync.merge` (the same rule the sync endpoints use) and appends one row to
`changes`. Nothing is acknowledged until that one transaction has committed (sync rule 1).
In server mode each change also takes the next per-user sequence number; the counter row
stays locked until commit, so numbers become visible in commit order (sync rule 5).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import Any

import orjson
from sqlalchemy import Select, false, func, insert, or_, select, text
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from server import bulk
from server.bulk import stamps_ms
from server.db import Database
from server.events import EventHub
from server.models import Change, Note, Task
from server.views import READ_FIELDS, ms_to_iso, read_view
from sync.hlc import HybridClock
from sync.ids import new_id
from sync.merge import merge_fields
from sync.schema import TEXT_FIELDS

Row = Task | Note
CHANGES = Change.__table__  # type: ignore[attr-defined]


def now_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass(frozen=True)
class KindSpec:
    kind: str
    model: type[Row]
    search_columns: tuple[str, ...]
    order_by: Callable[[type[Row]], list[Any]]


def _task_order(m: type[Row]) -> list[Any]:
    # Dated tasks first, soonest first; then undated; creation order breaks ties.
    return [m.due_date.is_(None), m.due_date, m.created_ms, m.id]  # type: ignore[union-attr]


def _note_order(m: type[Row]) -> list[Any]:
    return [m.created_ms, m.id]


TASKS = KindSpec("task", Task, ("title", "description"), _task_order)
NOTES = KindSpec("note", Note, ("title", "body"), _note_order)


KIND_OF = {Task: "task", Note: "note"}


def to_read(row: Row) -> dict[str, Any]:
    return read_view(KIND_OF[type(row)], row.__dict__)


def _wire_value(value: Any) -> Any:
    return value.isoformat() if isinstance(value, date) else value


def rehash(row: Row, kind: str) -> None:
    """Refresh the row's share of the digest after its fields changed."""
    row.hash_a, row.hash_b = bulk.row_hash(kind, row.__dict__)


@dataclass
class Filters:
    completed: bool | None = None
    q: str | None = None
    due_before: date | None = None
    due_after: date | None = None
    #: only conflict copies (True) or only records that are not (False)
    conflicts: bool | None = None


def _escape_like(value: str) -> str:
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


class Records:
    """The one place that reads and writes records for the HTTP API."""

    def __init__(self, db: Database, clock: HybridClock, hub: EventHub, server_mode: bool) -> None:
        self.db = db
        self.clock = clock
        self.hub = hub
        self.server_mode = server_mode
        #: desktop: called after each local write (the sync engine's debounced trigger)
        self.on_local_change: Callable[[], None] | None = None

    # -- reads -----------------------------------------------------------------------------

    def get(self, spec: KindSpec, owner: str, record_id: str) -> Row | None:
        with self.db.read() as session:
            row = session.get(spec.model, (owner, record_id))
            return None if row is None or row.deleted else row

    def list(
        self, spec: KindSpec, owner: str, filters: Filters, skip: int, limit: int
    ) -> tuple[list[dict[str, Any]], int]:
        """A page of live records in list order, ready for JSON, and how many match in all."""
        m = spec.model
        query: Select[Any] = select(m).where(m.owner_id == owner, m.deleted == false())  # type: ignore[attr-defined]
        if filters.completed is not None:
            flag = m.completed if spec.kind == "task" else m.done  # type: ignore[union-attr]
            query = query.where(flag.is_(filters.completed))
        if filters.q:
            pattern = f"%{_escape_like(filters.q)}%"
            query = query.where(or_(*(getattr(m, c).ilike(pattern, escape="\\") for c in spec.search_columns)))
        if filters.conflicts is not None:
            query = query.where(m.conflict_of.is_not(None) if filters.conflicts else m.conflict_of.is_(None))  # type: ignore[union-attr]
        if spec.kind == "task":
            if filters.due_before is not None:
                query = query.where(m.due_date < filters.due_before.isoformat())  # type: ignore[union-attr]
            if filters.due_after is not None:
                query = query.where(m.due_date > filters.due_after.isoformat())  # type: ignore[union-attr]
        columns = [getattr(m, name) for name in (*READ_FIELDS[spec.kind], "created_ms", "updated_ms")]
        with self.db.read() as session:
            total = session.execute(select(func.count()).select_from(query.subquery())).scalar_one()
            page = query.with_only_columns(*columns).order_by(*spec.order_by(m)).offset(skip).limit(limit)
            rows = [read_view(spec.kind, row) for row in session.execute(page).mappings()]
        return rows, total

    # -- writes ----------------------------------------------------------------------------

    def create(
        self, spec: KindSpec, owner: str, values: dict[str, Any], record_id: str | None
    ) -> dict[str, Any] | None:
        """Insert a record and return what the API shows of it; None if the id is taken
        (live or tombstoned)."""
        record_id = record_id or new_id()
        wire = {name: _wire_value(v) for name, v in values.items()}
        try:
            row = self._insert(spec, owner, record_id, wire)
        except IntegrityError:
            # The id is taken, by an earlier create or a concurrent one (a client retrying).
            return None
        if row is None:
            return None
        view = read_view(spec.kind, row)
        self._after_write(owner, f"{spec.kind}.created", view)
        return view

    def _insert(self, spec: KindSpec, owner: str, record_id: str, wire: dict[str, Any]) -> dict[str, Any]:
        table = bulk.TABLES[spec.kind]
        with self.db.write() as session:
            # No look-up first: a taken id (live or tombstoned) fails the insert on the
            # primary key, which `create` answers as "already exists".
            stamp = self.clock.now()
            # Creation and update times come from the stamp, as on every replica that merges
            # this change (`bulk.set_fields`), so all replicas show the same times.
            ms = stamps_ms({"": stamp}, now_ms())
            wire["created_at"] = ms_to_iso(ms)
            wire["deleted"] = False
            stamps = {name: stamp for name in wire}
            row = bulk.new_row(spec.kind, owner, record_id, ms)
            bulk.set_fields(spec.kind, row, wire, stamps, ms)
            # Core inserts: the ORM's unit of work costs more than the write itself here.
            session.execute(insert(table), {c.name: row[c.name] for c in table.c})
            self._log_change(session, spec, owner, record_id, wire, stamps, ms)
        return row

    def update(self, spec: KindSpec, owner: str, record_id: str, values: dict[str, Any]) -> Row | None:
        """Change some fields of a live record; None if there is no such record."""
        with self.db.write() as session:
            row = session.get(spec.model, (owner, record_id))
            if row is None or row.deleted:
                return None
            wire = {name: _wire_value(v) for name, v in values.items() if _wire_value(v) != getattr(row, name)}
            if not wire:
                return row
            self._apply_local(session, spec, row, wire)
        self._after_write(owner, f"{spec.kind}.updated", to_read(row))
        return row

    def delete(self, spec: KindSpec, owner: str, record_id: str) -> bool:
        """Turn a live record into a tombstone; False if there is no such record."""
        with self.db.write() as session:
            row = session.get(spec.model, (owner, record_id))
            if row is None or row.deleted:
                return False
            self._apply_local(session, spec, row, {"deleted": True})
        self._after_write(owner, f"{spec.kind}.deleted", {"id": record_id})
        return True

    def restore(self, spec: KindSpec, owner: str, record_id: str) -> dict[str, Any] | None:
        """Bring a deleted record back (the UI's Undo); None if there never was such a record.

        Deletion is a field with its own stamp (sync rule 3), so a restore is a later write of
        that field and syncs like any other edit.
        """
        with self.db.write() as session:
            row = session.get(spec.model, (owner, record_id))
            if row is None:
                return None
            was_deleted = row.deleted
            if was_deleted:
                self._apply_local(session, spec, row, {"deleted": False})
            view = to_read(row)
        if was_deleted:
            self._after_write(owner, f"{spec.kind}.created", view)
        return view

    def _after_write(self, owner: str, event: str, data: dict[str, Any]) -> None:
        # Pages on the desktop listen on one channel whoever is signed in; on the server,
        # each user hears only their own records.
        self.hub.publish(owner if self.server_mode else "", event, data)
        if self.server_mode:
            self.hub.publish(owner, "sync.changes", {})
        elif self.on_local_change is not None:
            self.on_local_change()

    def _apply_local(self, session: Session, spec: KindSpec, row: Row, wire: dict[str, Any]) -> None:
        ms = now_ms()
        stamp = self.clock.now()
        incoming_stamps = {name: stamp for name in wire}
        held_stamps = orjson.loads(row.stamps)
        # A text edit records the version it was made on, so the server can merge it
        # three-way with edits this replica has not seen yet (sync rule 4).
        base = {name: held_stamps[name] for name in wire if name in TEXT_FIELDS[spec.kind] and name in held_stamps}
        held = {name: getattr(row, name) for name in wire}
        merged = merge_fields(held, held_stamps, wire, incoming_stamps)
        for name, value in merged.taken.items():
            setattr(row, name, value)
        row.stamps = orjson.dumps(merged.stamps).decode()
        # Derived from the stamps, as replicas that pull this change derive it, so every
        # replica shows the same `updated_at` (the wall clock here may differ from the stamp).
        row.updated_ms = stamps_ms(merged.stamps, ms)
        rehash(row, spec.kind)
        session.add(row)
        self._log_change(session, spec, row.owner_id, row.id, merged.taken, incoming_stamps, ms, base)

    def _log_change(
        self,
        session: Session,
        spec: KindSpec,
        owner: str,
        record_id: str,
        fields: dict[str, Any],
        stamps: dict[str, str],
        ms: int,
        base: dict[str, str] | None = None,
    ) -> None:
        user_seq = next_user_seq(session, owner, 1) if self.server_mode else None
        change = bulk.change_row(
            owner, new_id(), spec.kind, record_id, fields, stamps, base, self.clock.node, ms, self.server_mode, user_seq
        )
        session.execute(insert(CHANGES), change)


def next_user_seq(session: Session, owner: str, count: int) -> int:
    """Reserve `count` sequence numbers for `owner`; returns the last one.

    The upsert locks the user's counter row until the transaction ends, so a second push
    by the same user waits, and sequence numbers become visible in commit order.
    """
    return int(session.execute(_NEXT_USER_SEQ, {"o": owner, "n": count}).scalar_one())


_NEXT_USER_SEQ = text(
    "INSERT INTO user_seqs (owner_id, last_seq) VALUES (:o, :n) "
    "ON CONFLICT (owner_id) DO UPDATE SET last_seq = user_seqs.last_seq + :n "
    "RETURNING last_seq"
)
