"""Sync under failure: answers lost after the server committed, the shared server killed with
SIGKILL in the middle of a push, a device killed with SIGKILL in the middle of a pull.

All parts are real: the shared server and the devices are the real apps (in threads, or as
`python -m server` / `python -m desktop --headless` subprocesses where a process must die),
devices reach the server through a cuttable loopback proxy (`tests/netproxy.py`), and the
checks read the SQLite files the processes leave behind. What must hold (DESIGN.md, sync
rules 1, 2 and 5): nothing acknowledged is lost, nothing is applied twice, a push is atomic,
and a device's cursor always sits on a page boundary whose changes are all applied.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import orjson
from sqlalchemy import func, select

from server.models import Change, RefreshToken
from server.records import NOTES, TASKS
from sync.engine import PUSH_BATCH
from sync.hlc import HybridClock
from sync.ids import new_id
from sync.protocol import PULL_PAGE_DEFAULT
from tests.servers import ROOT, free_port, server_settings, wait_healthy
from tests.syncworld import PASSWORD, Device, World, sync_world, wait_for

CHANGES = Change.__table__  # type: ignore[attr-defined]
BODY = "line one\nline two\nline three\nline four\n"


def _device_change_ids(device: Device) -> list[str]:
    """The ids of every change this device logged for its current account."""
    owner = device.state.local_owner
    with device.state.db.read() as session:
        query = select(CHANGES.c.change_id).where(
            CHANGES.c.owner_id == owner, CHANGES.c.node == device.state.clock.node
        )
        return list(session.execute(query).scalars())


def _server_change_counts(world: World, username: str, ids: list[str]) -> dict[str, int]:
    """How many times each of `ids` is in the server's change log for `username`."""
    owner = world.account(username).user_id
    counts: dict[str, int] = dict.fromkeys(ids, 0)
    with world.server_db.read() as session:
        for i in range(0, len(ids), 500):
            query = (
                select(CHANGES.c.change_id, func.count())
                .where(CHANGES.c.owner_id == owner, CHANGES.c.change_id.in_(ids[i : i + 500]))
                .group_by(CHANGES.c.change_id)
            )
            counts.update(dict(session.execute(query).all()))
    return counts


def _assert_log_has_no_duplicates(world: World, username: str) -> None:
    owner = world.account(username).user_id
    with world.server_db.read() as session:
        dupes = session.execute(
            select(CHANGES.c.change_id, func.count())
            .where(CHANGES.c.owner_id == owner)
            .group_by(CHANGES.c.change_id)
            .having(func.count() > 1)
        ).all()
        seqs = list(
            session.execute(select(CHANGES.c.user_seq).where(CHANGES.c.owner_id == owner).order_by(CHANGES.c.user_seq))
        )
    assert dupes == [], f"changes logged twice: {dupes[:5]}"
    # Sequence numbers are 1..N with no gap and no repeat (rule 5).
    assert [s for (s,) in seqs] == list(range(1, len(seqs) + 1))


# -- (a) a push whose answer is lost -------------------------------------------------------


def test_a_push_whose_answer_is_lost_is_applied_exactly_once(tmp_path: Path) -> None:
    with sync_world(tmp_path, devices=2) as world:
        a, b = world.devices
        world.sign_in_all("alice")
        note = a.create("note", title="Minutes", body=BODY)
        world.settle()

        # b edits another line while a is offline, so a's push is a three-way merge.
        a.offline()
        b.patch("note", note["id"], body=BODY.replace("line four", "line four (b)"))
        world.settle(devices=[b])
        a.patch("note", note["id"], body=BODY.replace("line one", "line one (a)"))
        made = [a.create("task", title=f"offline task {i}")["id"] for i in range(40)]
        before = world.server_last_seq("alice")

        a.proxy.lose_next_responses(1)
        a.online()
        a.sync_now()
        wait_for(lambda: a.proxy.lost == 1, 10, "the push's answer to be dropped")
        # The server committed the whole batch; the device never heard so.
        ids = _device_change_ids(a)
        committed = _server_change_counts(world, "alice", ids)
        assert sum(committed.values()) == len(ids), "the server did not commit the push whose answer was lost"
        assert world.server_last_seq("alice") > before

        world.settle()  # a retries the same batch: every change is a duplicate now
        world.assert_converged("alice")
        assert a.proxy.lost == 1
        counts = _server_change_counts(world, "alice", _device_change_ids(a))
        assert set(counts.values()) == {1}, {k: v for k, v in counts.items() if v != 1}
        _assert_log_has_no_duplicates(world, "alice")
        with world.server_api("alice") as api:
            pulled = api.get("/api/sync/pull", params={"after": 0, "limit": 5000}).json()["changes"]
        assert len({c["id"] for c in pulled}) == len(pulled)
        server = world.server_snapshot("alice")
        assert sorted(t["id"] for t in server["task"]) == sorted(made)
        assert [n["id"] for n in server["note"]] == [note["id"]]  # merged, no copy, no twin
        for device in world.devices:
            assert device.get("note", note["id"])["body"] == BODY.replace("line one", "line one (a)").replace(
                "line four", "line four (b)"
            )


def test_a_lost_answer_to_a_conflicting_push_still_delivers_the_verdict(tmp_path: Path) -> None:
    """The retried push is all duplicates, yet the device learns the server's verdict on its
    text (README: `resolved` includes duplicates) and no text is lost."""
    with sync_world(tmp_path, devices=2) as world:
        a, b = world.devices
        world.sign_in_all("alice")
        note = a.create("note", title="Toast", body=BODY)
        world.settle()

        a.offline()
        a.patch("note", note["id"], body=BODY.replace("line two", "line two, as a says it"))
        time.sleep(0.005)
        b.patch("note", note["id"], body=BODY.replace("line two", "line two, as b says it"))
        world.settle(devices=[b])
        a.proxy.lose_next_responses(1)
        a.online()
        a.sync_now()
        wait_for(lambda: a.proxy.lost == 1, 10, "the push's answer to be dropped")
        world.settle()
        world.assert_converged("alice")
        for device in world.devices:
            notes = device.list("note")
            bodies = [n["body"] for n in notes if n["id"] == note["id"] or n["conflict_of"] == note["id"]]
            assert len(bodies) == 2
            assert BODY.replace("line two", "line two, as a says it") in bodies
            assert BODY.replace("line two", "line two, as b says it") in bodies
        _assert_log_has_no_duplicates(world, "alice")


def _revoked_refresh_tokens(world: World, username: str) -> int:
    owner = world.account(username).user_id
    with world.server_db.read() as session:
        query = select(func.count()).where(RefreshToken.user_id == owner, RefreshToken.revoked.is_(True))
        return int(session.execute(query).scalar_one())


def test_a_restarted_device_keeps_its_sign_in(tmp_path: Path) -> None:
    """Reopening the app resumes sync with the saved refresh token, used once: a second use of
    a rotated refresh token is taken as a leak and ends the whole sign-in."""
    with sync_world(tmp_path, devices=2) as world:
        a, b = world.devices
        world.sign_in_all("alice")
        a.create("task", title="before the restart")
        world.settle()
        for _ in range(2):
            a.restart()
            states: set[str] = set()

            def resumed(seen: set[str] = states) -> bool:
                status = a.status()
                seen.add(status["state"])
                return status["state"] == "idle" and status["last_synced_at"] is not None

            wait_for(resumed, 20, "the restarted device to sync")
            assert "error" not in states and "signed_out" not in states, states
            assert a.status()["username"] == "alice"
            assert _revoked_refresh_tokens(world, "alice") == 0
        task = b.create("task", title="after the restart")
        wait_for(lambda: a.get("task", task["id"]), 10, "a to receive b's edit")
        world.settle()
        world.assert_converged("alice")
        assert _revoked_refresh_tokens(world, "alice") == 0


# -- (b) the shared server killed in the middle of a push ----------------------------------


@contextmanager
def _server_process(data_dir: Path, port: int) -> Iterator[subprocess.Popen[bytes]]:
    """`python -m server` on a fixed port and data directory; killed by PID on exit."""
    env = {**os.environ, "FERRY_SECRET_KEY": "k" * 64}  # tokens stay valid across restarts
    data_dir.mkdir(parents=True, exist_ok=True)
    with open(data_dir / "server.log", "ab") as log:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "server",
                "--port",
                str(port),
                "--data-dir",
                str(data_dir),
                "--log-level",
                "warning",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=ROOT,
        )
    try:
        wait_healthy(f"http://127.0.0.1:{port}", proc, timeout=30)
        yield proc
    finally:
        _stop(proc)


def _stop(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> None:
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def _write_locked(db_file: Path) -> bool:
    """Whether some connection holds SQLite's write lock (a push transaction is open).

    The server takes it with BEGIN IMMEDIATE at the start of a push; trying the same here,
    without waiting, fails exactly while that transaction is in flight.
    """
    con = sqlite3.connect(db_file, timeout=0, isolation_level=None)
    try:
        con.execute("BEGIN IMMEDIATE")
    except sqlite3.OperationalError as exc:
        if "locked" in str(exc) or "busy" in str(exc):
            return True
        raise
    else:
        con.execute("ROLLBACK")
        return False
    finally:
        con.close()


def _sqlite_ok(db_file: Path) -> None:
    con = sqlite3.connect(db_file)
    try:
        assert con.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    finally:
        con.close()


def test_server_killed_mid_push_loses_and_duplicates_nothing(tmp_path: Path) -> None:
    data_dir = tmp_path / "server"
    db_file = data_dir / "ferry.db"
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    edits = 3000
    with (
        _server_process(data_dir, port) as first,
        sync_world(
            tmp_path, devices=2, server_url=url, server_settings_=server_settings(data_dir), sqlite_synchronous="NORMAL"
        ) as world,
    ):
        a, b = world.devices
        world.sign_in_all("alice")
        shared = a.create("task", title="shared", description="before the crash")
        world.settle()

        # 3,000 offline edits on a (2,999 new records and one edit), through the same
        # write path its REST API uses.
        a.offline()
        owner = a.state.local_owner
        for i in range(edits - 1):
            spec = TASKS if i % 3 else NOTES
            values = {"title": f"offline {i}", "description" if spec is TASKS else "body": f"text {i}"}
            a.state.records.create(spec, owner, values, None)
        a.patch("task", shared["id"], description="edited offline on a")
        b.patch("task", shared["id"], completed=True)
        assert a.pending() == edits
        mine = _device_change_ids(a)  # the pending edits and the shared task's creation
        assert len(mine) == edits + 1

        a.online()
        a.sync_now()
        wait_for(lambda: _write_locked(db_file), 30, "a push transaction on the server", interval=0.002)
        first.send_signal(signal.SIGKILL)
        first.wait(10)

        # Whole batches or nothing: a push is one transaction (rule 5), and this one died.
        _sqlite_ok(db_file)
        committed = _server_change_counts(world, "alice", mine)
        assert set(committed.values()) <= {0, 1}
        applied = sum(committed.values()) - 1  # of the offline edits
        assert applied < edits, "the kill came after the whole push; it did not test a crash mid-push"
        assert applied % PUSH_BATCH == 0, applied

        with _server_process(data_dir, port):
            world.settle(timeout=90)
            world.assert_converged("alice")
            counts = _server_change_counts(world, "alice", _device_change_ids(a))
            assert len(counts) == edits + 1 and set(counts.values()) == {1}
            _assert_log_has_no_duplicates(world, "alice")
            server = world.server_snapshot("alice")
            assert len(server["task"]) + len(server["note"]) == edits  # 2,999 new and the shared one
            got = next(t for t in server["task"] if t["id"] == shared["id"])
            assert (got["description"], got["completed"]) == ("edited offline on a", True)


# -- (c) a device killed in the middle of a pull ------------------------------------------


SEED_NODE = "5eed5eed5eed5eed"


def _seed(world: World, username: str, count: int) -> None:
    """`count` changes from another device (node SEED_NODE), each creating one note, pushed
    over the wire protocol in the largest batches the server takes."""
    clock = HybridClock(SEED_NODE)
    with world.server_api(username) as api:
        for start in range(0, count, 5000):
            changes = []
            for i in range(start, min(start + 5000, count)):
                s = clock.now()
                fields = {"title": f"seed {i:05d}", "body": f"seeded note {i}", "done": i % 7 == 0}
                changes.append(
                    {
                        "id": new_id(),
                        "kind": "note",
                        "record_id": new_id(),
                        "fields": fields,
                        "stamps": dict.fromkeys(fields, s),
                    }
                )
            r = api.post(
                "/api/sync/push",
                content=orjson.dumps({"node": SEED_NODE, "changes": changes}),
                headers={"Content-Type": "application/json"},
            )
            assert r.status_code == 200, r.text
            assert r.json()["accepted"] == len(changes)


@contextmanager
def _desktop_process(data_dir: Path) -> Iterator[tuple[subprocess.Popen[bytes], httpx.Client]]:
    """`python -m desktop --headless` on `data_dir`; its local API client from runtime.json."""
    env = {**os.environ, "FERRY_USE_KEYRING": "0"}
    data_dir.mkdir(parents=True, exist_ok=True)
    # A runtime file a killed run left behind is replaced by the next start; remove it so
    # the wait below cannot mistake it for the new one.
    (data_dir / "runtime.json").unlink(missing_ok=True)
    with open(data_dir / "stdout.log", "ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "desktop", "--headless", "--data-dir", str(data_dir)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=ROOT,
        )
    try:

        def runtime() -> dict[str, Any] | None:
            if proc.poll() is not None:
                raise AssertionError(f"the desktop exited with {proc.returncode}")
            try:
                info = json.loads((data_dir / "runtime.json").read_text())
            except (FileNotFoundError, ValueError):
                return None
            return info if info.get("pid") == proc.pid else None

        info = wait_for(runtime, 30, "the desktop's runtime.json")
        client = httpx.Client(base_url=info["url"], headers={"Authorization": f"Bearer {info['token']}"}, timeout=30)
        try:
            yield proc, client
        finally:
            client.close()
    finally:
        _stop(proc)


def _local_state(db_file: Path, user_id: str) -> tuple[int, list[str], int]:
    """(cursor, titles of the user's notes in order, pending changes) from a device's file."""
    con = sqlite3.connect(f"file:{db_file}?mode=ro", uri=True)
    try:
        assert con.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        row = con.execute("SELECT value FROM meta WHERE key = ?", (f"sync.cursor:{user_id}",)).fetchone()
        titles = [t for (t,) in con.execute("SELECT title FROM notes WHERE owner_id = ? ORDER BY title", (user_id,))]
        pending = con.execute("SELECT count(*) FROM changes WHERE pushed = 0").fetchone()[0]
    finally:
        con.close()
    return int(row[0]) if row else 0, titles, pending


def test_device_killed_mid_pull_resumes_from_a_consistent_cursor(tmp_path: Path) -> None:
    total = 20_000
    device_dir = tmp_path / "device"
    with sync_world(tmp_path, devices=0) as world:
        user = world.account("carol", register=True)
        _seed(world, "carol", total)
        assert world.server_last_seq("carol") == total

        with _desktop_process(device_dir) as (proc, client):
            body = {"server_url": world.server_url, "username": "carol", "password": PASSWORD}
            r = client.post("/api/sync/connect", json=body)
            assert r.status_code == 200, r.text

            def some_pages_applied() -> int:
                progress = client.get("/api/sync/status").json()["progress"]
                return progress["done"] if progress and 0 < progress["done"] < total else 0

            wait_for(some_pages_applied, 60, "the pull to be under way", interval=0.005)
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)

        cursor, titles, pending = _local_state(device_dir / "ferry.db", user.user_id)
        # A page boundary, with exactly that page's changes (and those before it) applied.
        assert 0 < cursor < total and cursor % PULL_PAGE_DEFAULT == 0, cursor
        assert titles == [f"seed {i:05d}" for i in range(cursor)]
        assert pending == 0

        progress_totals: set[int] = set()
        with _desktop_process(device_dir) as (proc, client):
            states: set[str] = set()

            def caught_up() -> dict[str, Any] | None:
                status = client.get("/api/sync/status").json()
                states.add(status["state"])
                if status["progress"]:
                    progress_totals.add(status["progress"]["total"])
                return status if status["state"] == "idle" and status["last_synced_at"] else None

            status = wait_for(caught_up, 30, "the restarted device to catch up", interval=0.005)
            assert "error" not in states, (states, status)
            assert status["full_resyncs"] == 0
            assert _revoked_refresh_tokens(world, "carol") == 0
            assert status["pending_changes"] == 0
            listed = client.get("/api/notes", params={"limit": 1}).headers["X-Total-Count"]
            assert int(listed) == total
        # It went on from its cursor: the progress it showed counted only what was left (with
        # several pages left, the status shows progress long enough to be seen).
        assert progress_totals <= {total - cursor}, (progress_totals, cursor)
        if cursor <= total - 4 * PULL_PAGE_DEFAULT:
            assert progress_totals == {total - cursor}, (progress_totals, cursor)
        final_cursor, titles, _ = _local_state(device_dir / "ferry.db", user.user_id)
        assert final_cursor == total
        assert titles == [f"seed {i:05d}" for i in range(total)]
