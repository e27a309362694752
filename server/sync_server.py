"""The shared server's side of sync: apply a pushed batch, serve pages of changes, the digest.

A push is one transaction. It first locks the user's sequence counter, so one user's pushes
(and REST writes) are applied one at a time and their sequence numbers become visible in
commit order (sync rule 5). Changes the server already has are skipped by id (rule 2).
Each change is merged into the record with `sync.merge.merge_on_server` (rules 3 and 4) and
logged verbatim; merges the server makes and conflict copies are logged as its own changes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

import orjson
from sqlalchemy import bindparam, func, literal, select, union_all, update

from server import bulk
from server.db import Database
from server.events import EventHub
from server.models import Change, Note, Task, UserSeq
from server.records import next_user_seq, now_ms
from sync.hlc import HybridClock
from sync.ids import new_id
from sync.merge import merge_on_server
from sync.protocol import ChangeIn, Digest, PullAsk, PushResponse, Resolved
from sync.schema import FIELDS, TEXT_FIELDS, TITLE_MAX

CHANGES = Change.__table__  # type: ignore[attr-defined]
T = TypeVar("T")
log = logging.getLogger("ferry.sync_server")
CONFLICT_SUFFIX = " (conflict copy)"

# The reads every sync round makes (a pull, a digest), built once with bound parameters and
# run on a plain connection: building a statement and an ORM session for each was most of
# the cost of a pull with nothing new (about 1.1 of 1.3 ms).
_LAST_SEQ = select(UserSeq.last_seq).where(UserSeq.owner_id == bindparam("owner"))
_PAGE = (
    select(
        CHANGES.c.user_seq,
        CHANGES.c.change_id,
        CHANGES.c.kind,
        CHANGES.c.record_id,
        CHANGES.c.node,
        CHANGES.c.fields,
        CHANGES.c.stamps,
    )
    .where(
        CHANGES.c.owner_id == bindparam("owner"),
        CHANGES.c.user_seq > bindparam("after"),
        CHANGES.c.user_seq <= bindparam("last"),
    )
    .order_by(CHANGES.c.user_seq)
    .limit(bindparam("limit"))
)
_PAGE_EXCLUDING = _PAGE.where(CHANGES.c.node != bindparam("node"))
_SET_COUNTER = update(UserSeq).where(UserSeq.owner_id == bindparam("owner")).values(last_seq=bindparam("last"))
_KNOWN = select(CHANGES.c.change_id).where(
    CHANGES.c.owner_id == bindparam("owner"), CHANGES.c.change_id.in_(bulk.json_ids())
)
# The digest in one statement (one round trip to PostgreSQL, one snapshot): a row per table
# with its count and sums, and a row with the sequence number, told apart by `part`.
_DIGEST = union_all(
    *(
        select(
            literal(part).label("part"),
            func.count(),
            func.coalesce(func.sum(model.hash_a), 0),
            func.coalesce(func.sum(model.hash_b), 0),
        ).where(model.owner_id == bindparam("owner"))
        for part, model in ((0, Task), (1, Note))
    ),
    select(literal(2), UserSeq.last_seq, literal(0), literal(0)).where(UserSeq.owner_id == bindparam("owner")),
)


@dataclass
class _Batch:
    """What one push accumulates before it is written in bulk."""

    owner: str
    now: int
    rows: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    dirty: set[tuple[str, str]] = field(default_factory=set)
    log: list[dict[str, Any]] = field(default_factory=list)
    #: (kind, record_id, field, stamp) -> text, for changes of this batch not yet written
    texts: dict[tuple[str, str, str, str], str] = field(default_factory=dict)
    #: records this batch created with one change and touched with no other: they hold
    #: exactly what that change says (no verdict to send back)
    created: set[tuple[str, str]] = field(default_factory=set)


class SyncServer:
    def __init__(self, db: Database, clock: HybridClock, hub: EventHub) -> None:
        self.db = db
        self.clock = clock
        self.hub = hub
        #: PostgreSQL with several processes: an event as the (channel, payload) of a NOTIFY
        #: that a push's transaction sends itself (`server.pgnotify.PgNotifier.message`)
        self.notice: Callable[[str, str, dict[str, Any]], tuple[str, str]] | None = None

    # -- push ------------------------------------------------------------------------------

    def push(self, owner: str, node: str, changes: list[ChangeIn], pull: PullAsk | None = None) -> bytes:
        """Apply a batch; the answer (`PushResponse`) as JSON bytes. With `pull`, it also holds
        the first page of the pull that follows (this node's changes left out), read after the
        push committed: a device's round in one request."""
        return self._once_more_if_the_connection_dies(self._push, owner, node, changes, pull)

    def _once_more_if_the_connection_dies(self, work: Callable[..., T], *args: Any) -> T:
        """PostgreSQL: a pooled connection the server ended just as it was lent out (the pool
        checks for that, but a connection can die in between) is dropped by the pool, and the
        work is done once more on another. A push may be repeated: changes are applied by id,
        once, however often they arrive; a pull only reads."""
        if self.db.is_sqlite:
            return work(*args)
        import psycopg

        try:
            return work(*args)
        except psycopg.OperationalError as exc:
            log.warning("database connection lost (%s); trying once more", str(exc).strip())
            return work(*args)

    def _push(self, owner: str, node: str, changes: list[ChangeIn], pull: PullAsk | None) -> bytes:
        batch = _Batch(owner, now_ms())
        record_ids = {kind: [c.record_id for c in changes if c.kind == kind] for kind in bulk.TABLES}
        read = None
        with self._push_transaction(owner) as tx:
            # Takes the user's lock first (see module doc).
            last, known, batch.rows = tx.read([c.id for c in changes], record_ids)
            fresh: list[ChangeIn] = []
            repeated: list[ChangeIn] = []
            for change in changes:
                cid = change.id
                if cid not in known:
                    known.add(cid)
                    fresh.append(change)
                else:
                    repeated.append(change)
            if fresh:
                # Moving the clock past the newest stamp once makes every stamp the server
                # gives out in this batch later than all of them.
                self.clock.observe(max(max(c.stamps.values()) for c in fresh))
            for change in fresh:
                self._apply(tx, batch, node, change)
            for change in repeated:
                batch.created.discard((change.kind, change.record_id))
            if batch.log:
                first = last + 1
                last += len(batch.log)
                for offset, entry in enumerate(batch.log):
                    entry["user_seq"] = first + offset
            dirty = {kind: [batch.rows[key] for key in batch.dirty if key[0] == kind] for kind in bulk.TABLES}
            ask = (pull.after, pull.limit, node, pull.digest) if pull is not None else None
            # The pushing device is named so that it can ignore news of its own push.
            event = {"last_seq": last, "node": node}
            notice = self.notice(owner, "sync.changes", event) if batch.log and self.notice else None
            read = tx.finish(last if batch.log else None, dirty, batch.log, ask, notice)
        if batch.log:
            if notice is not None:
                self.hub.deliver(owner, "sync.changes", event)  # the other processes: the NOTIFY
            else:
                self.hub.publish(owner, "sync.changes", event)
        answer = PushResponse(
            resolved=self._verdicts(batch, changes),
            accepted=len(fresh),
            duplicates=len(changes) - len(fresh),
            last_seq=last,
        ).model_dump(exclude={"pull"})
        if pull is not None:
            if read is None:  # (SQLite: read now that the push has committed)
                read = self._read_sqlite_page(owner, pull.after, pull.limit, node, pull.digest)
            answer["pull"] = orjson.Fragment(_page_json(*read, pull.after, pull.limit))
        return orjson.dumps(answer)

    @contextmanager
    def _push_transaction(self, owner: str) -> Iterator[Any]:
        if self.db.is_sqlite:
            with self.db.write() as session:
                yield _SessionPush(session, owner)
        else:
            from server import sync_pg  # (psycopg: the desktop's build leaves it out)

            with sync_pg.connection(self.db) as conn:
                yield sync_pg.PushTransaction(conn, owner)

    @staticmethod
    def _verdicts(batch: _Batch, changes: list[ChangeIn]) -> list[Resolved]:
        """The server's text for each text field the batch set, where it is not the device's.

        Duplicates count too: a device whose earlier push lost its answer may have skipped
        pulled text for those fields while its edit was pending, and needs the outcome now.
        """
        last: dict[tuple[str, str, str], tuple[str, str]] = {}
        for change in changes:
            if (change.kind, change.record_id) in batch.created:
                continue  # (a push of new records: most of them)
            for name in TEXT_FIELDS[change.kind]:
                if name in change.fields:
                    last[(change.kind, change.record_id, name)] = (change.id, change.stamps[name])
        out = []
        for (kind, rid, name), (change_id, stamp) in last.items():
            row = batch.rows.get((kind, rid))
            if row is None:
                continue
            held_stamp = bulk.stamps_of(row).get(name)
            if held_stamp is not None and held_stamp != stamp:
                out.append(
                    Resolved(
                        change_id=change_id, kind=kind, record_id=rid, field=name, value=row[name], stamp=held_stamp
                    )
                )
        return out

    def _apply(self, tx: Any, batch: _Batch, node: str, change: ChangeIn) -> None:
        kind, rid = change.kind, change.record_id
        row = batch.rows.get((kind, rid))
        if row is None:
            # A record the server has never seen: nothing to merge with.
            row = batch.rows[(kind, rid)] = bulk.new_row(kind, batch.owner, rid, batch.now)
            bulk.set_fields(kind, row, change.fields, change.stamps, batch.now)
            batch.dirty.add((kind, rid))
            batch.created.add((kind, rid))
            self._log(batch, change.id, kind, rid, node, change.fields, change.stamps, change.base)
            return
        batch.created.discard((kind, rid))
        held_fields = bulk.fields_of(kind, row)
        held_stamps = dict(bulk.stamps_of(row))

        def text_at(name: str, stamp: str) -> str | None:
            return self._text_at(tx, batch, kind, rid, name, stamp)

        merged = merge_on_server(
            held_fields,
            held_stamps,
            change.fields,
            change.stamps,
            change.base,
            TEXT_FIELDS[kind],
            text_at,
            self.clock.now,
        )
        bulk.set_fields(kind, row, merged.fields, merged.stamps, batch.now)
        batch.dirty.add((kind, rid))
        self._log(batch, change.id, kind, rid, node, change.fields, change.stamps, change.base)
        if merged.restamped:
            stamps = {name: merged.stamps[name] for name in merged.restamped}
            self._log(batch, new_id(), kind, rid, self.clock.node, merged.restamped, stamps, None)
        for name, text in merged.conflicts:
            self._conflict_copy(batch, kind, rid, merged.fields, name, text)

    def _log(
        self,
        batch: _Batch,
        change_id: str,
        kind: str,
        rid: str,
        node: str,
        fields: dict[str, Any],
        stamps: dict[str, str],
        base: dict[str, str] | None,
    ) -> None:
        row = bulk.change_row(batch.owner, change_id, kind, rid, fields, stamps, base, node, batch.now, pushed=True)
        batch.log.append(row)
        for name in TEXT_FIELDS[kind]:
            if name in fields:
                batch.texts[(kind, rid, name, stamps[name])] = fields[name]

    def _text_at(self, tx: Any, batch: _Batch, kind: str, rid: str, name: str, stamp: str) -> str | None:
        found = batch.texts.get((kind, rid, name, stamp))
        if found is not None:
            return found
        for fields_json, stamps_json in tx.history(kind, rid):
            if orjson.loads(stamps_json).get(name) == stamp:
                return orjson.loads(fields_json).get(name)
        return None

    def _conflict_copy(self, batch: _Batch, kind: str, rid: str, fields: dict[str, Any], name: str, text: str) -> None:
        copy_id = new_id()
        values = {k: v for k, v in fields.items() if k in FIELDS[kind]}
        values[name] = text
        title = values.get("title") or ""
        if not title.endswith(CONFLICT_SUFFIX):
            title = title[: TITLE_MAX - len(CONFLICT_SUFFIX)] + CONFLICT_SUFFIX
        values.update(title=title, conflict_of=rid, deleted=False)
        values["created_at"] = bulk.ms_to_iso(batch.now)
        stamp = self.clock.now()
        stamps = {k: stamp for k in values}
        row = bulk.new_row(kind, batch.owner, copy_id, batch.now)
        bulk.set_fields(kind, row, values, stamps, batch.now)
        batch.rows[(kind, copy_id)] = row
        batch.dirty.add((kind, copy_id))
        self._log(batch, new_id(), kind, copy_id, self.clock.node, values, stamps, None)

    # -- pull ------------------------------------------------------------------------------

    def pull(self, owner: str, after: int, limit: int, exclude_node: str | None = None, digest: str = "no") -> bytes:
        """A page of changes after `after`, as JSON bytes (stored JSON is passed through).

        `exclude_node` leaves out a device's own changes (it has them) without breaking the
        cursor: the newest sequence number is read first, and every number up to it is
        committed (numbers are taken under the user's lock, in commit order), so when a
        filtered page comes back short the cursor can move straight to that number.

        `digest` ("yes", or "changed": only when the user's log grew past `after`) adds the
        user's digest to the last page, read on the same connection, which saves the device a
        request after most rounds.
        """
        return _page_json(*self._read_page(owner, after, limit, exclude_node, digest), after, limit)

    def _read_page(
        self, owner: str, after: int, limit: int, exclude_node: str | None, digest: str
    ) -> tuple[int, list[Any], Digest | None]:
        """The sequence number, the page, and the digest when asked for on the last page."""
        if self.db.is_sqlite:
            return self._read_sqlite_page(owner, after, limit, exclude_node, digest)
        from server import sync_pg

        def read() -> tuple[int, list[Any], Digest | None]:
            with sync_pg.connection(self.db) as conn:
                return sync_pg.pull(conn, owner, after, limit, exclude_node, digest)

        return self._once_more_if_the_connection_dies(read)

    def _read_sqlite_page(
        self, owner: str, after: int, limit: int, exclude_node: str | None, digest: str
    ) -> tuple[int, list[Any], Digest | None]:
        with self.db.engine.connect() as conn:
            last = conn.execute(_LAST_SEQ, {"owner": owner}).scalar() or 0
            params = {"owner": owner, "after": after, "last": last, "limit": limit, "node": exclude_node}
            rows = conn.execute(_PAGE_EXCLUDING if exclude_node else _PAGE, params).all()
            last_page = len(rows) < limit or rows[-1][0] >= last
            summary = None
            if last_page and (digest == "yes" or (digest == "changed" and last > after)):
                summary = _digest_in(conn, owner)
                if summary.last_seq != last:
                    # A write committed since `last` was read: the sums may hold it, so they
                    # must not be taken for the state at `last`. The device sees last_seq past
                    # its cursor and compares another time.
                    summary = None
        return last, rows, summary

    # -- digest ----------------------------------------------------------------------------

    def digest(self, owner: str) -> Digest:
        return user_digest(self.db, owner)


def _page_json(last: int, rows: list[Any], summary: Digest | None, after: int, limit: int) -> bytes:
    """A pull page (`PullResponse`) as JSON; the stored JSON of fields and stamps is passed
    through as it is."""
    full = len(rows) == limit
    nxt = rows[-1][0] if full else max(last, after)
    more = full and nxt < last
    changes = [
        {
            "seq": seq,
            "id": cid,
            "kind": kind,
            "record_id": rid,
            "node": node,
            "fields": orjson.Fragment(fields),
            "stamps": orjson.Fragment(stamps),
        }
        for seq, cid, kind, rid, node, fields, stamps in rows
    ]
    page: dict[str, Any] = {"changes": changes, "next": nxt, "last_seq": last, "more": more}
    if summary is not None and not more:
        page["digest"] = summary.model_dump()
    return orjson.dumps(page)


class _SessionPush:
    """A push's database work through the ORM's session (SQLite: in-process, where a
    statement costs no round trip; PostgreSQL has `sync_pg.PushTransaction`)."""

    def __init__(self, session: Any, owner: str) -> None:
        self.session = session
        self.owner = owner

    def read(
        self, change_ids: list[str], record_ids: dict[str, list[str]]
    ) -> tuple[int, set[str], dict[tuple[str, str], dict[str, Any]]]:
        """The user's lock and last sequence number, the change ids already applied, and
        the rows of the records the batch touches."""
        session, owner = self.session, self.owner
        last = next_user_seq(session, owner, 0)  # the user's lock
        known = set(session.execute(_KNOWN, {"owner": owner, "ids": orjson.dumps(change_ids).decode()}).scalars())
        rows = {}
        for kind, ids in record_ids.items():
            for rid, row in bulk.load(session, kind, owner, ids).items():
                rows[(kind, rid)] = row
        return last, known, rows

    def history(self, kind: str, record_id: str) -> Any:
        query = select(CHANGES.c.fields, CHANGES.c.stamps).where(
            CHANGES.c.owner_id == self.owner, CHANGES.c.record_id == record_id, CHANGES.c.kind == kind
        )
        return self.session.execute(query)

    def finish(
        self,
        last_seq: int | None,
        records: dict[str, list[dict[str, Any]]],
        log: list[dict[str, Any]],
        pull: tuple[int, int, str, str] | None,
        notice: tuple[str, str] | None = None,
    ) -> None:
        """Write what the push changed (`Database.write` commits). The pull it asked for is
        read after the commit, by the caller. (SQLite: one process, no NOTIFY.)"""
        if last_seq is None:
            return
        session = self.session
        session.execute(_SET_COUNTER, {"owner": self.owner, "last": last_seq})
        for kind, rows in records.items():
            bulk.upsert(session, kind, rows)
        bulk.write_rows(session, CHANGES, log)


def user_digest(db: Database, owner: str) -> Digest:
    with db.engine.connect() as conn:
        return _digest_in(conn, owner)


def _digest_in(conn: Any, owner: str) -> Digest:
    """The user's digest, with the sequence number read in the same statement, so the sums
    hold exactly the changes numbered up to `last_seq` (a reader compares only there)."""
    count = sum_a = sum_b = last = 0
    for part, c, a, b in conn.execute(_DIGEST, {"owner": owner}):
        if part == 2:
            last = int(c or 0)
        else:
            count, sum_a, sum_b = count + int(c), sum_a + int(a), sum_b + int(b)
    return Digest(count=count, sum_a=sum_a, sum_b=sum_b, last_seq=last)
