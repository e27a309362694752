"""Live events on /ws against real servers: in local mode every connected page hears every
write made through the REST API (within a second); in server mode a socket hears only its
own user's events."""

from __future__ import annotations

import time
import uuid

import httpx
import jwt

from server.guard import COOKIE
from tests.servers import Running
from tests.wsclient import expect_event, no_event, open_ws, refused_status

WITHIN = 1.0  # DESIGN.md: an edit shows elsewhere within about a second


def test_local_sockets_hear_every_rest_write(local_app: Running) -> None:
    token = local_app.token
    by_header = open_ws(local_app.url, headers={"Authorization": f"Bearer {token}"})
    by_cookie = open_ws(local_app.url, headers={"Cookie": f"{COOKIE}={token}"})
    sockets = (by_header, by_cookie)
    try:
        with local_app.client() as writer:
            created = writer.post("/api/tasks", json={"title": "Buy milk", "due_date": "2030-01-02"})
            assert created.status_code == 201
            task = created.json()
            for conn in sockets:
                started = time.monotonic()
                event = expect_event(conn, "task.created", WITHIN, id=task["id"])
                assert time.monotonic() - started < WITHIN
                assert event["data"] == task  # the record itself, as the API shows it

            patched = writer.patch(f"/api/tasks/{task['id']}", json={"completed": True, "title": "Buy oat milk"})
            assert patched.status_code == 200
            for conn in sockets:
                event = expect_event(conn, "task.updated", WITHIN, id=task["id"])
                assert event["data"]["completed"] is True
                assert event["data"]["title"] == "Buy oat milk"
                assert event["data"] == patched.json()

            assert writer.delete(f"/api/tasks/{task['id']}").status_code == 204
            for conn in sockets:
                event = expect_event(conn, "task.deleted", WITHIN, id=task["id"])
                assert event["data"]["id"] == task["id"]

            note_id = str(uuid.uuid4())
            note = writer.post("/api/notes", json={"id": note_id, "title": "Idea", "body": "ship it"})
            assert note.status_code == 201
            for conn in sockets:
                event = expect_event(conn, "note.created", WITHIN, id=note_id)
                assert event["data"]["body"] == "ship it"
                assert event["data"] == note.json()

            # A refused write sends nothing.
            assert writer.post("/api/tasks", json={"title": ""}).status_code == 422
            for conn in sockets:
                assert no_event(conn, 0.2) is None

        # A socket that went away does not break the others.
        by_cookie.close()
        with local_app.client() as writer:
            again = writer.post("/api/notes", json={"title": "after close"}).json()
        expect_event(by_header, "note.created", WITHIN, id=again["id"])
    finally:
        for conn in sockets:
            conn.close()


def _user(client: httpx.Client, name: str) -> str:
    password = "correct horse battery"
    assert client.post("/api/auth/register", json={"username": name, "password": password}).status_code == 201
    response = client.post("/api/auth/token", data={"username": name, "password": password})
    assert response.status_code == 200
    return response.json()["access_token"]


def test_server_sockets_hear_only_their_users_events(server_app: Running) -> None:
    with server_app.client() as client:
        token_a = _user(client, "alice")
        token_b = _user(client, "bob")
        a_headers = {"Authorization": f"Bearer {token_a}"}
        b_headers = {"Authorization": f"Bearer {token_b}"}

        assert refused_status(server_app.url) is not None
        assert refused_status(server_app.url, path="/ws?access_token=garbage") is not None

        ws_a = open_ws(server_app.url, path=f"/ws?access_token={token_a}")
        ws_b = open_ws(server_app.url, headers=b_headers)
        try:
            b_task = client.post("/api/tasks", json={"title": "B's secret"}, headers=b_headers).json()
            expect_event(ws_b, "task.created", WITHIN, id=b_task["id"])
            b_note = client.post("/api/notes", json={"title": "B's note"}, headers=b_headers).json()
            expect_event(ws_b, "note.created", WITHIN, id=b_note["id"])
            assert client.delete(f"/api/notes/{b_note['id']}", headers=b_headers).status_code == 204
            expect_event(ws_b, "note.deleted", WITHIN, id=b_note["id"])

            # B's events were published before A writes, so if any leaked to A they would be
            # queued ahead of A's own event: A's first event must be A's.
            a_task = client.post("/api/tasks", json={"title": "A's task"}, headers=a_headers).json()
            first = expect_event(ws_a, "task.created", WITHIN)
            assert first["data"]["id"] == a_task["id"], first
            assert no_event(ws_a, 0.2) is None
            # And B did not hear A.
            assert no_event(ws_b, 0.2) is None
        finally:
            ws_a.close()
            ws_b.close()


def test_server_socket_refuses_all_but_access_tokens(server_app: Running) -> None:
    with server_app.client() as client:
        password = "correct horse battery"
        assert client.post("/api/auth/register", json={"username": "carl", "password": password}).status_code == 201
        pair = client.post("/api/auth/token", data={"username": "carl", "password": password}).json()
    claims = jwt.decode(pair["access_token"], options={"verify_signature": False})
    forged = jwt.encode(claims, "not the server's key, but long enough", algorithm="HS256")
    for token in (pair["refresh_token"], forged):
        assert refused_status(server_app.url, path=f"/ws?access_token={token}") is not None
        assert refused_status(server_app.url, headers={"Authorization": f"Bearer {token}"}) is not None
    assert refused_status(server_app.url, path=f"/ws?access_token={pair['access_token']}") is None
    assert refused_status(server_app.url, headers={"Authorization": f"Bearer {pair['access_token']}"}) is None
