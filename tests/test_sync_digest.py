"""The digest check after a sync (DESIGN.md sync rule 6): the server hands its digest over on a
pull's last page, devices compare it, and a mismatch is repaired by a full re-sync or
reported, never ignored.

Real shared server (in this process, on loopback) and real devices with their own SQLite files.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from server import bulk
from tests.syncworld import Device, sync_world, wait_for


def _pull(api: Any, **params: Any) -> dict[str, Any]:
    r = api.get("/api/sync/pull", params=params)
    assert r.status_code == 200, r.text
    return r.json()


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_the_last_page_of_a_pull_carries_the_digest_when_asked(
    tmp_path: Path, backend: str, request: pytest.FixtureRequest
) -> None:
    url = request.getfixturevalue("pg_url") if backend == "postgres" else None
    with sync_world(tmp_path, devices=0, database_url=url) as world:
        world.account("alice", register=True)
        with world.server_api("alice") as api:
            for i in range(5):
                assert api.post("/api/tasks", json={"title": f"task {i}"}).status_code == 201
            digest = api.get("/api/sync/digest").json()
            last = digest["last_seq"]
            assert last == 5
            assert digest["count"] == 5 and digest["sum_a"] > 0 and digest["sum_b"] > 0

            # Only the last page carries it, and it is the digest at that page's last_seq.
            first = _pull(api, after=0, limit=2, digest="yes")
            assert first["more"] and first.get("digest") is None
            assert _pull(api, after=0, digest="yes")["digest"] == digest
            # "changed": only when the log grew past the cursor.
            assert _pull(api, after=3, digest="changed")["digest"] == digest
            assert _pull(api, after=last, digest="changed").get("digest") is None
            assert _pull(api, after=last, digest="yes")["digest"] == digest
            # Not asked for: not computed.
            assert _pull(api, after=0).get("digest") is None
            assert _pull(api, after=0, digest="no").get("digest") is None

            r = api.get("/api/sync/pull", params={"after": 0, "digest": "sometimes"})
            assert r.status_code == 422
            assert r.json()["detail"][0]["loc"] == ["query", "digest"]


def test_a_round_that_moved_data_compares_digests_without_asking_again(tmp_path: Path) -> None:
    with sync_world(tmp_path, devices=2) as world:
        a, b = world.devices
        world.sign_in_all("alice")
        task = a.create("task", title="first")
        world.settle()
        assert world.server is not None
        sync_server = world.server.app.state.ferry.sync_server
        asked: list[str] = []
        original = sync_server.digest

        def counted(owner: str) -> Any:
            asked.append(owner)
            return original(owner)

        sync_server.digest = counted
        try:
            a.patch("task", task["id"], title="second")
            wait_for(lambda: (b.get("task", task["id"]) or {}).get("title") == "second", 10, "the edit on b")
            a.sync_once()
            b.sync_once()
        finally:
            sync_server.digest = original
        # Both the pushing and the pulling device compared: on the digest the pull brought.
        assert asked == []
        for device in (a, b):
            last_round = device.status()["last_round"]
            assert device.status()["full_resyncs"] == 0, last_round
        world.assert_converged("alice")


def _delete_row(device: Device, kind: str, record_id: str) -> None:
    """Lose a record behind the app's back (as a restored old backup would)."""
    table = bulk.TABLES[kind]
    with device.state.db.write() as session:
        session.execute(table.delete().where(table.c.id == record_id))


def test_a_device_that_lost_a_record_gets_it_back_by_a_full_resync(tmp_path: Path) -> None:
    with sync_world(tmp_path, devices=2) as world:
        a, b = world.devices
        world.sign_in_all("alice")
        lost = a.create("task", title="will go missing on b")
        world.settle()
        _delete_row(b, "task", lost["id"])
        assert b.get("task", lost["id"]) is None

        # Any round that moves data compares digests; the mismatch starts a full re-sync.
        a.create("task", title="something new")
        world.settle()
        assert b.status()["full_resyncs"] == 1
        assert b.status()["state"] == "idle"
        assert (b.get("task", lost["id"]) or {}).get("title") == "will go missing on b"
        world.assert_converged("alice", resyncs_ok=True)


def test_a_server_that_lost_a_record_gets_it_back_from_the_device(tmp_path: Path) -> None:
    with sync_world(tmp_path, devices=1) as world:
        (a,) = world.devices
        world.sign_in_all("alice")
        kept = a.create("note", title="only the device still has this", body="every word")
        world.settle()
        owner = world.account("alice").user_id
        with world.server_db.write() as session:
            session.execute(text("DELETE FROM notes WHERE owner_id = :o AND id = :id"), {"o": owner, "id": kept["id"]})
        assert world.server_digest("alice")["count"] == 0

        # The device's next compared round: a full pull cannot mend it, so it re-sends.
        a.create("task", title="a change so the round compares")
        world.settle()
        assert a.status()["full_resyncs"] == 1
        assert a.status()["state"] == "idle"
        notes = world.server_snapshot("alice")["note"]
        assert [(n["id"], n["body"]) for n in notes] == [(kept["id"], "every word")]
        world.assert_converged("alice", resyncs_ok=True)


def test_a_difference_a_resync_cannot_mend_is_reported_not_ignored(tmp_path: Path) -> None:
    with sync_world(tmp_path, devices=1) as world:
        (a,) = world.devices
        world.sign_in_all("alice")
        task = a.create("task", title="the same everywhere")
        world.settle()
        # The device's copy changes without a new stamp: no merge rule can tell which is right.
        with a.state.db.write() as session:
            session.execute(text("UPDATE tasks SET hash_a = hash_a + 1 WHERE id = :id"), {"id": task["id"]})

        a.create("task", title="a change so the round compares")
        a.sync_now()
        status = wait_for(
            lambda: a.status() if a.status()["state"] == "error" else None, 20, "the mismatch to be reported"
        )
        assert "disagree" in (status["last_error"] or "")
        assert status["full_resyncs"] == 1
