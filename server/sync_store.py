"""The desktop's side of sync storage: the `sync.store.SyncStore` the engine drives, over the
local SQLite database.

Pulled changes are merged with the same rule the server uses (`sync.merge.merge_fields`),
except that a text field with a local edit still waiting to be pushed keeps the local
text: the server merges that edit and sends its verdict back (see `sync/README.md`).
Each page is applied, and the cursor moved, in one transaction.
"""

from __future__ import annotations

from typing import Any

import orjson
from sqlalchemy import bindparam, func, select, update

from server import bulk
from server.db import Database
from server.events import EventHub
from server.models import PENDING, Change, Meta
from server.records import now_ms, read_view
from server.state import LOCAL_OWNER_KEY, AppState
from sync.hlc import HybridClock
from sync.ids import new_id
from sync.merge import merge_fields
from sync.protocol import Digest
from sync.schema import FIELDS, TEXT_FIELDS
from sync.store import Account, Pending

CHANGES = Change.__table__  # type: ignore[attr-defined]
ACCOUNT_KEY = "sync.account"

# What every round reads, built once with bound parameters and run on a plain connection
# (a statement and an ORM session built per call cost more than the reads themselves).
_PENDING = (
    select(
        CHANGES.c.seq,
        CHANGES.c.change_id,
        CHANGES.c.kind,
        CHANGES.c.record_id,
        CHANGES.c.fields,
        CHANGES.c.stamps,
        CHANGES.c.base,
    )
    .where(PENDING, CHANGES.c.owner_id == bindparam("owner"), CHANGES.c.seq > bindparam("after"))
    .order_by(CHANGES.c.seq)
    .limit(bindparam("limit"))
)
# (`PENDING` as the partial index spells it, so that SQLite sees the index covers the query.)
# The fields that local changes not yet acknowledged set, for some records.
_PENDING_FIELDS = bulk.in_ids(
    lambda ids: select(CHANGES.c.record_id, CHANGES.c.fields).where(
        PENDING, CHANGES.c.owner_id == bindparam("owner"), CHANGES.c.record_id.in_(ids)
    )
)
_PENDING_COUNT = select(func.count()).where(PENDING, CHANGES.c.owner_id == bindparam("owner"))
_ACKNOWLEDGE = (
    update(CHANGES)
    .where(PENDING, CHANGES.c.owner_id == bindparam("owner"))
    .where(CHANGES.c.seq.between(bindparam("first"), bindparam("last")))
    .values(pushed=True)
)
_NEWEST_PENDING = select(func.max(CHANGES.c.seq)).where(PENDING, CHANGES.c.owner_id == bindparam("owner"))
_META = select(Meta.value).where(Meta.key == bindparam("key"))  # type: ignore[arg-type]


def _get_meta(db: Database, key: str) -> str | None:
    with db.engine.connect() as conn:
        return conn.execute(_META, {"key": key}).scalar()


def _set_meta(session: Any, key: str, value: str) -> None:
    session.merge(Meta(key=key, value=value))


class LocalSyncStore:
    def __init__(self, state: AppState) -> None:
        self.state = state
        self.db: Database = state.db
        self.clock: HybridClock = state.clock
        self.hub: EventHub = state.hub
        self.node = self.clock.node

    @property
    def owner(self) -> str:
        return self.state.local_owner

    def _cursor_key(self) -> str:
        return f"sync.cursor:{self.owner}"

    # -- account ---------------------------------------------------------------------------

    def account(self) -> Account | None:
        raw = _get_meta(self.db, ACCOUNT_KEY)
        return Account(**orjson.loads(raw)) if raw else None

    def sign_in(self, account: Account) -> None:
        with self.db.write() as session:
            # Records made before any sign-in belong to whoever signs in first (rule 8).
            for table in bulk.TABLES.values():
                session.execute(update(table).where(table.c.owner_id == "").values(owner_id=account.user_id))
            session.execute(update(CHANGES).where(CHANGES.c.owner_id == "").values(owner_id=account.user_id))
            _set_meta(session, ACCOUNT_KEY, orjson.dumps(account.__dict__).decode())
            _set_meta(session, LOCAL_OWNER_KEY, account.user_id)
        switched = self.state.local_owner != account.user_id
        self.state.local_owner = account.user_id
        if switched:
            self.hub.publish("", "sync.account", {"username": account.username})

    def sign_out(self) -> None:
        # The account's records stay visible and editable offline; signing in again resumes.
        pass

    # -- push ------------------------------------------------------------------------------

    def pending(self, limit: int, after: int = 0) -> list[Pending]:
        with self.db.engine.connect() as conn:
            rows = conn.execute(_PENDING, {"owner": self.owner, "after": after, "limit": limit}).all()
        return [
            Pending(
                seq,
                orjson.dumps(
                    {
                        "id": cid,
                        "kind": kind,
                        "record_id": rid,
                        "fields": orjson.Fragment(fields),
                        "stamps": orjson.Fragment(stamps),
                        "base": orjson.Fragment(base) if base else None,
                    }
                ),
            )
            for seq, cid, kind, rid, fields, stamps, base in rows
        ]

    def newest_pending(self) -> int:
        with self.db.engine.connect() as conn:
            return int(conn.execute(_NEWEST_PENDING, {"owner": self.owner}).scalar() or 0)

    def pending_count(self) -> int:
        with self.db.engine.connect() as conn:
            return int(conn.execute(_PENDING_COUNT, {"owner": self.owner}).scalar_one())

    def acknowledge(self, seqs: list[int], resolved: list[dict[str, Any]]) -> None:
        self.acknowledge_and_apply(seqs, resolved, None, None)

    def _adopt_verdicts(self, session: Any, resolved: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
        """Take the server's text for fields it merged, unless a newer local edit waits."""
        pending = self._pending_fields(session, {r["record_id"] for r in resolved})
        events = []
        now = now_ms()
        for verdict in resolved:
            kind, rid, name = verdict["kind"], verdict["record_id"], verdict["field"]
            if name in pending.get(rid, set()) or name not in TEXT_FIELDS.get(kind, ()):
                continue
            row = bulk.load(session, kind, self.owner, [rid]).get(rid)
            if row is None:
                continue
            self.clock.observe(verdict["stamp"])
            fields = bulk.fields_of(kind, row)
            stamps = orjson.loads(row["stamps"])
            fields[name] = verdict["value"]
            stamps[name] = verdict["stamp"]
            bulk.set_fields(kind, row, fields, stamps, now)
            bulk.upsert(session, kind, [row])
            events.append((f"{kind}.updated", read_view(kind, row)))
        return events

    def _pending_fields(self, session: Any, record_ids: set[str]) -> dict[str, set[str]]:
        """record id -> fields that local changes not yet acknowledged will set."""
        out: dict[str, set[str]] = {}
        for row in bulk.rows_for_ids(session, _PENDING_FIELDS, {"owner": self.owner}, list(record_ids)):
            out.setdefault(row["record_id"], set()).update(orjson.loads(row["fields"]))
        return out

    # -- pull ------------------------------------------------------------------------------

    def cursor(self) -> int:
        return int(_get_meta(self.db, self._cursor_key()) or 0)

    def reset_cursor(self) -> None:
        with self.db.write() as session:
            _set_meta(session, self._cursor_key(), "0")

    def apply_page(self, changes: list[dict[str, Any]], next_cursor: int) -> int:
        return self.acknowledge_and_apply([], [], changes, next_cursor)

    def acknowledge_and_apply(
        self,
        seqs: list[int],
        resolved: list[dict[str, Any]],
        changes: list[dict[str, Any]] | None,
        next_cursor: int | None,
    ) -> int:
        """`acknowledge`, then `apply_page` (unless `next_cursor` is None), in one transaction.

        The commit does not wait for the disk. Everything written here comes from the server
        and is written again if a power cut takes it back (the cursor and the page go back
        together, an acknowledgement lost means the change is pushed again and skipped by id
        there); the person's own edits are committed, flushed, by the API. A later flushed
        commit makes this one durable too (the log is replayed in order), and an app crash
        cannot lose it (the commit is in SQLite's log)."""
        events: list[tuple[str, dict[str, Any]]] = []
        touched: dict[tuple[str, str], dict[str, Any]] = {}
        created: set[tuple[str, str]] = set()
        with self.db.write_unflushed() as session:
            if seqs:
                # A pushed batch is a run of consecutive pending changes (`pending` reads them
                # in log order), and log positions only grow: the pending changes between its
                # first and last are exactly the batch, found by range on the pending index.
                session.execute(_ACKNOWLEDGE, {"owner": self.owner, "first": min(seqs), "last": max(seqs)})
            if resolved:
                events = self._adopt_verdicts(session, resolved)
            if next_cursor is not None:
                if changes:
                    touched, created = self._merge_page(session, changes)
                _set_meta(session, self._cursor_key(), str(next_cursor))
        if touched and self.hub.subscribers(""):  # (no page open: no events to build)
            events.extend(self._page_events(touched, created))
        for event in events:
            self.hub.publish("", *event)
        return len(touched)

    def _merge_page(
        self, session: Any, changes: list[dict[str, Any]]
    ) -> tuple[dict[tuple[str, str], dict[str, Any]], set[tuple[str, str]]]:
        """Merge pulled changes into the records; the records changed (with whether each was
        deleted before) and those created."""
        now = now_ms()
        touched: dict[tuple[str, str], dict[str, Any]] = {}
        created: set[tuple[str, str]] = set()
        foreign = [c for c in changes if c["node"] != self.node]
        pending = self._pending_fields(session, {c["record_id"] for c in foreign})
        rows: dict[tuple[str, str], dict[str, Any]] = {}
        for kind in ("task", "note"):
            ids = [c["record_id"] for c in foreign if c["kind"] == kind]
            for rid, row in bulk.load(session, kind, self.owner, ids).items():
                rows[(kind, rid)] = row
        newest = max((max(c["stamps"].values()) for c in foreign if c["stamps"]), default=None)
        if newest is not None:
            # Past the page's newest stamp once: every later local stamp is newer than all.
            self.clock.observe(newest)
        for change in foreign:
            kind, rid = change["kind"], change["record_id"]
            if kind not in FIELDS:
                continue
            row = rows.get((kind, rid))
            if row is None:
                row = rows[(kind, rid)] = bulk.new_row(kind, self.owner, rid, now)
                created.add((kind, rid))
                held, held_stamps = {}, {}
            else:
                held, held_stamps = bulk.fields_of(kind, row), dict(bulk.stamps_of(row))
            keep = pending.get(rid, set()) & set(TEXT_FIELDS[kind])
            merged = merge_fields(held, held_stamps, change["fields"], change["stamps"], keep)
            if not merged.taken:
                continue
            was_deleted = bool(row["deleted"])
            bulk.set_fields(kind, row, merged.fields, merged.stamps, now)
            touched[(kind, rid)] = {"row": row, "was_deleted": was_deleted}
        for kind in ("task", "note"):
            bulk.upsert(session, kind, [t["row"] for (k, _), t in touched.items() if k == kind])
        return touched, created

    @staticmethod
    def _page_events(
        touched: dict[tuple[str, str], dict[str, Any]], created: set[tuple[str, str]]
    ) -> list[tuple[str, dict[str, Any]]]:
        events = []
        for (kind, rid), t in touched.items():
            row = t["row"]
            if row["deleted"]:
                if not t["was_deleted"] and (kind, rid) not in created:
                    events.append((f"{kind}.deleted", {"id": rid}))
            elif (kind, rid) in created or t["was_deleted"]:
                events.append((f"{kind}.created", read_view(kind, row)))
            else:
                events.append((f"{kind}.updated", read_view(kind, row)))
        return events

    # -- repair ----------------------------------------------------------------------------

    def requeue_all(self) -> int:
        count = 0
        with self.db.write() as session:
            for kind, table in bulk.TABLES.items():
                for row in session.execute(select(table).where(table.c.owner_id == self.owner)).mappings():
                    stamps = orjson.loads(row["stamps"])
                    fields = {k: v for k, v in bulk.fields_of(kind, dict(row)).items() if k in stamps}
                    stamps = {k: stamps[k] for k in fields}
                    base = {k: stamps[k] for k in TEXT_FIELDS[kind] if k in fields}
                    session.add(
                        Change(
                            owner_id=self.owner,
                            change_id=new_id(),
                            kind=kind,
                            record_id=row["id"],
                            fields=orjson.dumps(fields).decode(),
                            stamps=orjson.dumps(stamps).decode(),
                            base=orjson.dumps(base).decode(),
                            node=self.node,
                            created_ms=now_ms(),
                            pushed=False,
                        )
                    )
                    count += 1
        return count

    def digest(self) -> Digest:
        from server.sync_server import user_digest

        return user_digest(self.db, self.owner)
