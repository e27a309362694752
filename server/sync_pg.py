"""The sync server's database work on PostgreSQL, in as few round trips as it can take.

A device's sync cycle is a push and a pull. Through the ORM's connection each statement was
a round trip of its own, and so were the pool's liveness ping, BEGIN and the ROLLBACK that
ends a read: ten for a push of three changes, six for a pull. Each round trip passes
through the schedulers of both processes, and on a loaded machine those waits, not the
work, were most of a request's time (PostgreSQL's backends sat "idle in transaction",
waiting for the next statement). Here:

- a push is two round trips. In psycopg's pipeline mode BEGIN, the lock on the user's
  counter, the lookup of the change ids and the loading of the records go out at once;
  PostgreSQL runs them in order, each statement after the one before has finished, so the
  reads see everything committed before the lock was granted (sync rule 5). After the
  merge, the writes and COMMIT go out at once.
- a pull is one round trip: the sequence number, the page and (when asked for) the digest,
  read in one snapshot. A push that asks for the pull after it reads it in its own
  transaction, just before COMMIT.

It speaks to the pool's psycopg connection directly, in autocommit mode with explicit
BEGIN and COMMIT: otherwise psycopg sends its implicit BEGIN on a round trip of its own,
inside a pipeline too. The merge itself is `server.sync_server`'s, as on SQLite.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg.pq import TransactionStatus
from psycopg.rows import dict_row

from server import bulk
from server.db import Database
from sync.protocol import Digest

#: what a pull reads: the user's sequence number, the page's rows, the digest if wanted
PageRead = tuple[int, list[tuple[Any, ...]], Digest | None]

# Taking the user's lock writes nothing when the counter row exists (an upsert that only
# locked it would write a new row version on every push).
_ENSURE_COUNTER = "INSERT INTO user_seqs (owner_id, last_seq) VALUES (%s, 0) ON CONFLICT (owner_id) DO NOTHING"
_LOCK_COUNTER = "SELECT last_seq FROM user_seqs WHERE owner_id = %s FOR UPDATE"
_SET_COUNTER = "UPDATE user_seqs SET last_seq = %s WHERE owner_id = %s"
_KNOWN = "SELECT change_id FROM changes WHERE owner_id = %s AND change_id = ANY(%s)"
_LOAD = {
    kind: f"SELECT * FROM {table.name} WHERE owner_id = %s AND id = ANY(%s)" for kind, table in bulk.TABLES.items()
}
_HISTORY = "SELECT fields, stamps FROM changes WHERE owner_id = %s AND record_id = %s AND kind = %s"


# A pull: the sequence number, the page and the digest as three simple statements, sent
# together and read in one snapshot (a read-only REPEATABLE READ transaction, or the push's
# own transaction, which holds the user's lock). PostgreSQL plans every statement for its
# values (`server.db`), and planning one statement that did all three cost ten times as much
# as running these.
_COUNTER = "(SELECT coalesce((SELECT last_seq FROM user_seqs WHERE owner_id = %(owner)s), 0))"
_LAST = f"SELECT {_COUNTER}"
# In one snapshot every visible change is numbered at most the visible sequence number.
_PAGE = {
    excluding: "SELECT user_seq, change_id, kind, record_id, node, fields, stamps FROM changes "
    "WHERE owner_id = %(owner)s AND user_seq > %(after)s" + (" AND node <> %(node)s" if excluding else "") + " "
    "ORDER BY user_seq LIMIT %(limit)s"
    for excluding in (False, True)
}


def _digest_statement() -> str:
    """The digest, when asked for (`always`, or `changed` and the log grew past `after`) and
    when the page is surely the last (no more than `limit` numbers after `after`; a device
    whose own changes were left out may get a last page without it, and then asks for the
    digest on its own). Otherwise no row: the condition is a one-time filter, and the
    records are not read at all."""
    parts = ", ".join(
        f"(SELECT count(*) AS n, coalesce(sum(hash_a), 0) AS a, coalesce(sum(hash_b), 0) AS b "
        f"FROM {table.name} WHERE owner_id = %(owner)s) AS {table.name}"
        for table in bulk.TABLES.values()
    )
    total = {column: " + ".join(f"{table.name}.{column}" for table in bulk.TABLES.values()) for column in "nab"}
    return (
        f"SELECT {total['n']}, ({total['a']})::bigint, ({total['b']})::bigint FROM {parts} "
        f"WHERE (%(always)s OR (%(changed)s AND {_COUNTER} > %(after)s)) AND {_COUNTER} - %(after)s <= %(limit)s"
    )


_DIGEST = _digest_statement()


@contextmanager
def connection(db: Database) -> Iterator[psycopg.Connection[Any]]:
    """A pooled connection in autocommit mode (given back as the pool lent it)."""
    pooled = db.engine.raw_connection()
    conn: psycopg.Connection[Any] = pooled.driver_connection  # type: ignore[assignment]
    try:
        conn.autocommit = True
        yield conn
    except psycopg.OperationalError:
        pooled.invalidate()  # lost or unusable: the pool makes a new one
        raise
    finally:
        if not conn.closed:
            if conn.info.transaction_status != TransactionStatus.IDLE:
                conn.execute("ROLLBACK")
            conn.autocommit = False
        pooled.close()


class PushTransaction:
    """One push, on one connection, in one transaction holding the user's lock."""

    def __init__(self, conn: psycopg.Connection[Any], owner: str) -> None:
        self.conn = conn
        self.owner = owner

    def read(
        self, change_ids: list[str], record_ids: dict[str, list[str]]
    ) -> tuple[int, set[str], dict[tuple[str, str], dict[str, Any]]]:
        """Begin, lock the user's counter; its value, the change ids already applied, and
        the records the batch touches (keyed by kind and id), in one round trip."""
        conn, owner = self.conn, self.owner
        loads = {}
        with conn.pipeline():
            conn.execute("BEGIN")
            conn.execute(_ENSURE_COUNTER, (owner,))
            lock = conn.execute(_LOCK_COUNTER, (owner,))
            known = conn.execute(_KNOWN, (owner, change_ids))
            for kind, ids in record_ids.items():
                if ids:
                    loads[kind] = conn.cursor(row_factory=dict_row).execute(_LOAD[kind], (owner, ids))
        last = lock.fetchone()[0]  # type: ignore[index]
        rows = {(kind, row["id"]): row for kind, cursor in loads.items() for row in cursor.fetchall()}
        return int(last), {cid for (cid,) in known.fetchall()}, rows

    def history(self, kind: str, record_id: str) -> Iterable[tuple[str, str]]:
        """(fields, stamps) of every logged change of a record (rarely needed: a three-way
        merge whose base is not in the batch)."""
        return self.conn.execute(_HISTORY, (self.owner, record_id, kind)).fetchall()

    def finish(
        self,
        last_seq: int | None,
        records: dict[str, list[dict[str, Any]]],
        log: list[dict[str, Any]],
        pull: tuple[int, int, str, str] | None,
        notice: tuple[str, str] | None = None,
    ) -> PageRead | None:
        """One round trip: the records, the change log and the counter (unless the push wrote
        nothing: `last_seq` None), the `notice` (NOTIFY channel and payload, delivered at
        commit), the pull `(after, limit, node, digest)` the push asked for, COMMIT."""
        conn = self.conn
        with conn.pipeline(), conn.cursor() as cursor:
            if last_seq is not None:
                cursor.execute(_SET_COUNTER, (last_seq, self.owner))
                for kind, rows in records.items():
                    bulk.execute_insert(cursor, "%s", bulk.TABLES[kind], rows, conflict=("owner_id", "id"))
                bulk.execute_insert(cursor, "%s", bulk.CHANGES_TABLE, log)
            if notice is not None:
                cursor.execute("SELECT pg_notify(%s, %s)", notice)
            # Read before COMMIT, in the same view: the user's lock keeps every other write
            # of theirs out until then, and nothing is answered unless the COMMIT succeeds.
            read = _send_pull(conn, self.owner, *pull) if pull is not None else None
            cursor.execute("COMMIT")
        return _read_pull(read) if read is not None else None


Sent = tuple[psycopg.Cursor[Any], psycopg.Cursor[Any], psycopg.Cursor[Any] | None]


def _send_pull(
    conn: psycopg.Connection[Any], owner: str, after: int, limit: int, node: str | None, digest: str
) -> Sent:
    """Queue a pull's statements (in a pipeline: read after it syncs)."""
    params = {
        "owner": owner,
        "after": after,
        "limit": limit,
        "node": node,
        "always": digest == "yes",
        "changed": digest == "changed",
    }
    last = conn.execute(_LAST, params)
    page = conn.execute(_PAGE[node is not None], params)
    sums = conn.execute(_DIGEST, params) if digest != "no" else None
    return last, page, sums


def _read_pull(sent: Sent) -> PageRead:
    last_cursor, page_cursor, sums_cursor = sent
    last = int(last_cursor.fetchone()[0])  # type: ignore[index]
    found = sums_cursor.fetchone() if sums_cursor is not None else None
    digest = Digest(count=int(found[0]), sum_a=int(found[1]), sum_b=int(found[2]), last_seq=last) if found else None
    return last, page_cursor.fetchall(), digest


def pull(conn: psycopg.Connection[Any], owner: str, after: int, limit: int, node: str | None, digest: str) -> PageRead:
    """The user's sequence number, a page of changes after `after` (tuples: seq, change id,
    kind, record id, node, fields, stamps) and, as `digest` asks (see the pull route), the
    digest at that sequence number; one round trip, one snapshot."""
    with conn.pipeline():
        conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        sent = _send_pull(conn, owner, after, limit, node, digest)
        conn.execute("COMMIT")
    return _read_pull(sent)
