"""A device's round in one request: a push that asks for the first page of the pull after it
(`PushRequest.pull`), on SQLite and PostgreSQL; the desktop's engine using it; and, on
PostgreSQL, a pooled connection that the database ended being replaced before use.

Real shared servers on loopback (in this process), real devices with their own SQLite files.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from sync.hlc import HybridClock, new_node_id
from sync.ids import new_id
from tests.helpers_auth import signed_in
from tests.servers import Running, serve, server_settings
from tests.syncworld import sync_world, wait_for


def _change(clock: HybridClock, record_id: str | None = None, **fields: Any) -> dict[str, Any]:
    return {
        "id": new_id(),
        "kind": "task",
        "record_id": record_id or new_id(),
        "fields": fields,
        "stamps": {name: clock.now() for name in fields},
    }


def _push(api: httpx.Client, body: dict[str, Any]) -> dict[str, Any]:
    response = api.post("/api/sync/push", json=body)
    assert response.status_code == 200, response.text
    return response.json()


def test_a_push_answers_with_the_pull_that_follows_it(server_app: Running) -> None:
    a, b = HybridClock(new_node_id()), HybridClock(new_node_id())
    with signed_in(server_app, "alice") as alice:
        api = alice.client
        _push(api, {"node": a.node, "changes": [_change(a, title=f"a{i}") for i in range(3)]})

        # Device b pushes two changes and asks for everything after its cursor (0).
        ask = {"after": 0, "digest": "changed"}
        answer = _push(api, {"node": b.node, "changes": [_change(b, title=f"b{i}") for i in range(2)], "pull": ask})
        assert (answer["accepted"], answer["duplicates"], answer["last_seq"]) == (2, 0, 5)
        page = answer["pull"]
        # a's changes only (b has its own), the cursor past b's, and the digest at 5.
        assert [c["fields"]["title"] for c in page["changes"]] == ["a0", "a1", "a2"]
        assert (page["next"], page["last_seq"], page["more"]) == (5, 5, False)
        digest = api.get("/api/sync/digest").json()
        assert page["digest"] == digest and digest["count"] == 5
        # Exactly what the pull on its own would have answered.
        params = {"after": 0, "exclude_node": b.node, "digest": "changed"}
        assert api.get("/api/sync/pull", params=params).json() == page

        # A page that is not the last: no digest, `more` set, the cursor at its last change.
        ask = {"after": 0, "limit": 2, "digest": "yes"}
        answer = _push(api, {"node": b.node, "changes": [], "pull": ask})
        page = answer["pull"]
        assert [c["seq"] for c in page["changes"]] == [1, 2]
        assert page["more"] and page["next"] == 2 and "digest" not in page

        # "changed" with nothing new past the cursor: no digest; "no": none either.
        again = _push(api, {"node": b.node, "changes": [], "pull": {"after": 5, "digest": "changed"}})["pull"]
        assert again["changes"] == [] and "digest" not in again
        assert "digest" not in _push(api, {"node": b.node, "changes": [], "pull": {"after": 0}})["pull"]

        # Without `pull`, no page.
        assert "pull" not in _push(api, {"node": a.node, "changes": []})


def test_a_retried_push_with_a_pull_is_applied_once_and_still_answers_the_page(server_app: Running) -> None:
    a, b = HybridClock(new_node_id()), HybridClock(new_node_id())
    with signed_in(server_app, "bob") as bob:
        api = bob.client
        _push(api, {"node": a.node, "changes": [_change(a, title="from a")]})
        body = {"node": b.node, "changes": [_change(b, title="from b")], "pull": {"after": 0, "digest": "yes"}}
        first = _push(api, body)
        retried = _push(api, body)  # the first answer was lost, say
        assert (first["accepted"], retried["accepted"], retried["duplicates"]) == (1, 0, 1)
        assert first["pull"] == retried["pull"]
        assert [c["fields"]["title"] for c in retried["pull"]["changes"]] == ["from a"]
        assert retried["pull"]["digest"]["count"] == 2


@pytest.mark.parametrize(
    ("pull", "field"),
    [
        ({"after": -1}, "pull.after"),
        ({"after": 0, "limit": 0}, "pull.limit"),
        ({"after": 0, "limit": 5001}, "pull.limit"),
        ({"after": 0, "digest": "sometimes"}, "pull.digest"),
        ({"limit": 10}, "pull.after"),
        ({"after": 0, "cursor": 3}, "pull.cursor"),
        ("0", "pull"),
    ],
)
def test_a_bad_pull_request_is_refused_by_field_and_the_push_is_not_applied(
    server_app: Running, pull: Any, field: str
) -> None:
    clock = HybridClock(new_node_id())
    with signed_in(server_app, "carol") as carol:
        api = carol.client
        response = api.post(
            "/api/sync/push", json={"node": clock.node, "changes": [_change(clock, title="x")], "pull": pull}
        )
        assert response.status_code == 422, response.text
        assert response.json()["detail"][0]["field"] == field
        assert api.get("/api/sync/digest").json()["last_seq"] == 0  # nothing applied


def test_the_engine_syncs_a_small_round_in_one_request(tmp_path: Path) -> None:
    """A device's round after an edit: one push, which brings the pull's first page and the
    digest, so no separate pull and no separate digest."""
    with sync_world(tmp_path, devices=2) as world:
        a, b = world.devices
        world.sign_in_all("dana")
        b.create("task", title="made on b")
        world.settle()
        assert world.server is not None
        sync_server = world.server.app.state.ferry.sync_server
        node = a.state.sync_engine.store.node
        calls: list[str] = []
        originals = {name: getattr(sync_server, name) for name in ("push", "pull", "digest")}

        def counted(name: str) -> Any:
            def call(owner: str, *args: Any) -> Any:
                # push(owner, node, ...), pull(owner, after, limit, exclude_node, ...), digest(owner)
                mine = name == "digest" or (name == "push" and args[0] == node) or (name == "pull" and args[2] == node)
                if mine:
                    calls.append(name)
                return originals[name](owner, *args)

            return call

        for name in originals:
            setattr(sync_server, name, counted(name))
        try:
            a.create("task", title="made on a")
            wait_for(lambda: a.pending() == 0 and a.status()["state"] == "idle", 10, "a's round")
        finally:
            for name, original in originals.items():
                setattr(sync_server, name, original)
        assert calls == ["push"], calls
        assert a.status()["last_round"]["pushed"] == 1
        world.settle()
        assert sorted(t["title"] for t in b.list("task")) == ["made on a", "made on b"]
        world.assert_converged("dana")


@pytest.mark.postgres
def test_pooled_connections_the_database_ended_are_replaced_before_use(tmp_path: Path, pg_url: str) -> None:
    """The pool checks a connection's socket instead of pinging it before each request: a
    connection PostgreSQL ended (a restart, an administrator) must still never reach a
    request, which would then fail with a 500."""
    clock = HybridClock(new_node_id())
    with serve(server_settings(tmp_path / "server", pg_url)) as running, signed_in(running, "erin") as erin:
        api = erin.client
        _push(api, {"node": clock.node, "changes": [_change(clock, title="before")]})
        database = pg_url.rsplit("/", 1)[1]
        admin_url = pg_url.replace("postgresql+psycopg://", "postgresql://")
        for round_ in range(3):
            # Warm several pooled connections, then end every one of them.
            for _ in range(3):
                assert api.get("/api/sync/pull").status_code == 200
            with psycopg.connect(admin_url.rsplit("/", 1)[0] + "/postgres", autocommit=True) as admin:
                pids = [
                    pid
                    for (pid,) in admin.execute(
                        "SELECT pid FROM pg_stat_activity WHERE datname = %s AND query NOT ILIKE 'LISTEN%%'",
                        (database,),
                    )
                ]
                assert pids
                admin.execute("SELECT pg_terminate_backend(pid) FROM unnest(%s::int[]) AS pid", (pids,))
                # Until they are gone (terminating signals them; each then says why and exits).
                deadline = time.monotonic() + 10
                while admin.execute("SELECT count(*) FROM pg_stat_activity WHERE pid = ANY(%s)", (pids,)).fetchone()[0]:
                    assert time.monotonic() < deadline, "the ended connections' processes did not exit"
                    time.sleep(0.02)
            body = {"node": clock.node, "changes": [_change(clock, title=f"after {round_}")], "pull": {"after": 0}}
            assert _push(api, body)["accepted"] == 1
            assert api.get("/api/sync/pull", params={"after": 0}).status_code == 200
            listed = api.get("/api/tasks")
            assert listed.status_code == 200, listed.text
            assert len(listed.json()) == round_ + 2


@pytest.mark.postgres
def test_a_push_whose_connection_dies_halfway_is_done_once_more_and_applied_once(
    tmp_path: Path, pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Between the pool's check and the push's last statements the database ends the
    connection (here: for real, from another connection, after the push has read what it
    needs): the push is done again on another connection, and each change lands once."""
    from server import sync_pg

    admin_url = pg_url.replace("postgresql+psycopg://", "postgresql://")
    original = sync_pg.PushTransaction.finish
    killed: list[int] = []

    def dying_finish(self: Any, *args: Any) -> Any:
        if not killed:
            pid = self.conn.info.backend_pid
            killed.append(pid)
            with psycopg.connect(admin_url, autocommit=True) as admin:
                admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
                deadline = time.monotonic() + 10
                while admin.execute("SELECT count(*) FROM pg_stat_activity WHERE pid = %s", (pid,)).fetchone()[0]:
                    assert time.monotonic() < deadline
                    time.sleep(0.02)
        return original(self, *args)

    monkeypatch.setattr(sync_pg.PushTransaction, "finish", dying_finish)
    clock = HybridClock(new_node_id())
    with serve(server_settings(tmp_path / "server", pg_url)) as running, signed_in(running, "frank") as frank:
        changes = [_change(clock, title=f"t{i}") for i in range(3)]
        answer = _push(frank.client, {"node": clock.node, "changes": changes, "pull": {"after": 0, "digest": "yes"}})
        assert killed, "the push's connection was ended"
        assert (answer["accepted"], answer["duplicates"], answer["last_seq"]) == (3, 0, 3)
        assert answer["pull"]["digest"]["count"] == 3
        log = frank.client.get("/api/sync/pull", params={"after": 0}).json()["changes"]
        assert sorted(c["id"] for c in log) == sorted(c["id"] for c in changes)
