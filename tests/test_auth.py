"""Server-mode accounts against a real uvicorn server (SQLite and PostgreSQL): registration,
sign-in, rotating refresh tokens, every way a token can be wrong, per-user isolation of
tasks and notes, the sign-in rate limit, equal timing for unknown users, and the signing
secret that is generated once into the data directory and survives a restart."""

from __future__ import annotations

import base64
import json
import sqlite3
import stat
import statistics
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import jwt
import psycopg
import pytest

from server.settings import Settings
from tests.servers import Running, serve, server_settings

TEST_SECRET = "s" * 64  # what tests/servers.py server_settings signs with
PASSWORD = "correct horse battery"


# -- helpers ------------------------------------------------------------------------------------


def register(client: httpx.Client, username: str, password: str = PASSWORD, **extra: Any) -> httpx.Response:
    return client.post("/api/auth/register", json={"username": username, "password": password, **extra})


def login(client: httpx.Client, username: str, password: str = PASSWORD) -> httpx.Response:
    return client.post("/api/auth/token", data={"username": username, "password": password})


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def refresh(client: httpx.Client, refresh_token: str) -> httpx.Response:
    return client.post("/api/auth/refresh", json={"refresh_token": refresh_token})


def new_user(client: httpx.Client, username: str) -> dict[str, Any]:
    """Register and sign in; returns the token pair plus the user's id."""
    assert register(client, username).status_code == 201
    pair = login(client, username)
    assert pair.status_code == 200, pair.text
    out = pair.json()
    me = client.get("/api/users/me", headers=bearer(out["access_token"]))
    assert me.status_code == 200
    out["id"] = me.json()["id"]
    out["headers"] = bearer(out["access_token"])
    return out


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def claims_for(user_id: str, typ: str = "access", **overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    claims = {"sub": user_id, "typ": typ, "iat": now, "exp": now + 600, "jti": str(uuid.uuid4())}
    claims.update(overrides)
    return claims


def field_names(response: httpx.Response) -> set[str]:
    return {item["field"] for item in response.json()["detail"]}


# -- registration and sign-in -------------------------------------------------------------------


def test_register_is_case_insensitively_unique_and_validates(server_app: Running) -> None:
    with server_app.client() as client:
        created = register(client, "Alice", email="alice@example.com")
        assert created.status_code == 201, created.text
        body = created.json()
        assert body["username"] == "alice"
        assert body["email"] == "alice@example.com"
        assert uuid.UUID(body["id"])
        assert set(body) == {"id", "username", "email", "created_at"}  # never the password or its hash

        for duplicate in ("alice", "ALICE", "aLiCe"):
            again = register(client, duplicate, password="another password")
            assert again.status_code == 409, (duplicate, again.text)
            assert "taken" in again.json()["detail"]

        bad_name = register(client, "no spaces allowed")
        assert bad_name.status_code == 422
        assert field_names(bad_name) == {"username"}

        too_short_name = register(client, "ab")
        assert too_short_name.status_code == 422
        assert field_names(too_short_name) == {"username"}

        short_password = register(client, "bob", password="short")
        assert short_password.status_code == 422
        assert field_names(short_password) == {"password"}
        assert "8" in short_password.json()["message"]

        bad_email = register(client, "carol", email="not-an-email")
        assert bad_email.status_code == 422
        assert field_names(bad_email) == {"email"}

        missing = client.post("/api/auth/register", json={"username": "dave"})
        assert missing.status_code == 422
        assert field_names(missing) == {"password"}

        # None of the refused attempts created an account.
        for name in ("bob", "carol", "dave"):
            assert login(client, name).status_code == 401


def _wait_for_blocked_writer(admin: psycopg.Connection, timeout: float = 10) -> None:
    """Until some PostgreSQL session waits on a lock (the server's INSERT behind ours)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if admin.execute("SELECT count(*) FROM pg_locks WHERE NOT granted").fetchone()[0]:  # type: ignore[index]
            return
        time.sleep(0.02)
    raise TimeoutError("the server's registration never reached the database")


def test_concurrent_duplicate_registration_is_409_not_500(server_app: Running) -> None:
    """Another worker registers the same name between this request's check and its insert.

    The competing registration is a transaction opened directly on the database: it inserts
    "zed" and commits only once the server's own insert is waiting behind it.
    """
    settings = server_app.settings
    row = (str(uuid.uuid4()), "zed", None, "not-a-real-hash", int(time.time() * 1000))
    insert = "INSERT INTO users (id, username, email, password_hash, created_ms) VALUES ({})"
    with server_app.client() as client, ThreadPoolExecutor(1) as pool:
        if settings.database_url:  # PostgreSQL
            dsn = settings.database_url.replace("postgresql+psycopg://", "postgresql://")
            with psycopg.connect(dsn) as rival, psycopg.connect(dsn, autocommit=True) as admin:
                rival.execute(insert.format(", ".join(["%s"] * 5)), row)
                pending = pool.submit(register, client, "ZED")
                _wait_for_blocked_writer(admin)
                rival.commit()
                response = pending.result(timeout=30)
        else:  # SQLite: the rival holds the write lock; the server queues on it
            db_file = settings.resolved_database_url().removeprefix("sqlite:///")
            rival = sqlite3.connect(db_file, isolation_level=None, timeout=10)
            try:
                rival.execute("BEGIN IMMEDIATE")
                rival.execute(insert.format(", ".join(["?"] * 5)), row)
                pending = pool.submit(register, client, "ZED")
                time.sleep(0.5)
                rival.execute("COMMIT")
            finally:
                rival.close()
            response = pending.result(timeout=30)
        assert response.status_code == 409, response.text
        assert "taken" in response.json()["detail"]
        # The server is fine afterwards.
        assert register(client, "zed-2").status_code == 201


def test_token_me_and_bad_credentials(server_app: Running) -> None:
    with server_app.client() as client:
        assert register(client, "erin").status_code == 201

        ok = login(client, "ERIN")  # sign-in is case-insensitive, like registration
        assert ok.status_code == 200, ok.text
        pair = ok.json()
        assert set(pair) == {"access_token", "token_type", "expires_in", "refresh_token"}
        assert pair["token_type"].lower() == "bearer"
        assert isinstance(pair["expires_in"], int) and pair["expires_in"] > 0
        assert pair["access_token"] != pair["refresh_token"]

        me = client.get("/api/users/me", headers=bearer(pair["access_token"]))
        assert me.status_code == 200
        assert me.json()["username"] == "erin"
        assert set(me.json()) == {"id", "username", "email", "created_at"}

        wrong = login(client, "erin", "wrong password!")
        assert wrong.status_code == 401
        assert wrong.headers.get("www-authenticate", "").lower() == "bearer"
        assert "access_token" not in wrong.text

        unknown = login(client, "nobody-here")
        assert unknown.status_code == 401
        # The same answer either way: the response does not tell which usernames exist.
        assert unknown.json() == wrong.json()

        assert client.get("/api/users/me").status_code == 401
        assert client.get("/api/tasks").status_code == 401


def test_refresh_rotates_and_reuse_revokes_the_family(server_app: Running) -> None:
    with server_app.client() as client:
        first = new_user(client, "frank")
        other_session = login(client, "frank").json()  # a second sign-in: its own family

        second = refresh(client, first["refresh_token"])
        assert second.status_code == 200, second.text
        second_pair = second.json()
        assert second_pair["refresh_token"] != first["refresh_token"]
        assert client.get("/api/users/me", headers=bearer(second_pair["access_token"])).status_code == 200

        third = refresh(client, second_pair["refresh_token"])
        assert third.status_code == 200
        newest = third.json()

        # The first refresh token was already used: showing it again is a theft signal.
        reused = refresh(client, first["refresh_token"])
        assert reused.status_code == 401
        # ... which ends the whole family, including the newest, never-used refresh token.
        assert refresh(client, newest["refresh_token"]).status_code == 401
        # A used token stays refused too.
        assert refresh(client, second_pair["refresh_token"]).status_code == 401

        # Another sign-in's family is untouched.
        unrelated = refresh(client, other_session["refresh_token"])
        assert unrelated.status_code == 200, unrelated.text
        assert client.get("/api/users/me", headers=bearer(unrelated.json()["access_token"])).status_code == 200


def test_a_refresh_whose_answer_was_lost_can_be_retried(server_app: Running) -> None:
    """A device that never received a rotated token shows the old one again: it is served,
    not signed out, as long as the token it never received was never used."""
    with server_app.client() as client:
        first = new_user(client, "hank")
        lost = refresh(client, first["refresh_token"])  # the device never sees this answer
        assert lost.status_code == 200, lost.text

        retried = refresh(client, first["refresh_token"])
        assert retried.status_code == 200, retried.text
        pair = retried.json()
        assert pair["refresh_token"] not in (first["refresh_token"], lost.json()["refresh_token"])
        assert client.get("/api/users/me", headers=bearer(pair["access_token"])).status_code == 200
        onward = refresh(client, pair["refresh_token"])
        assert onward.status_code == 200, onward.text

        # Once the replacement has been used, the old token is a theft signal again.
        assert refresh(client, first["refresh_token"]).status_code == 401
        assert refresh(client, onward.json()["refresh_token"]).status_code == 401


def test_every_kind_of_bad_token_is_refused(server_app: Running) -> None:
    with server_app.client() as client:
        user = new_user(client, "grace")
        uid = user["id"]

        # Control: a token made here the same way, with the server's secret, is accepted — so
        # the refusals below are about the one thing each token gets wrong.
        good = jwt.encode(claims_for(uid), TEST_SECRET, algorithm="HS256")
        assert client.get("/api/users/me", headers=bearer(good)).status_code == 200
        assert client.get("/api/tasks", headers=bearer(good)).status_code == 200

        now = int(time.time())
        expired = jwt.encode(claims_for(uid, iat=now - 7200, exp=now - 3600), TEST_SECRET, algorithm="HS256")
        forged = jwt.encode(claims_for(uid), "another key that is long enough " * 2, algorithm="HS256")
        header = b64url(json.dumps({"alg": "none", "typ": "JWT"}).encode())
        alg_none = f"{header}.{b64url(json.dumps(claims_for(uid)).encode())}."
        no_type = jwt.encode({k: v for k, v in claims_for(uid).items() if k != "typ"}, TEST_SECRET, algorithm="HS256")
        tampered = good[:-4] + ("AAAA" if not good.endswith("AAAA") else "BBBB")
        bad_tokens = {
            "expired": expired,
            "forged": forged,
            "alg none": alg_none,
            "alg none, no dot": alg_none[:-1],
            "no typ claim": no_type,
            "tampered signature": tampered,
            "refresh as access": user["refresh_token"],
            "garbage": "garbage",
            "three dots": "a.b.c",
            "long": "x" * 4000,
        }
        for name, token in bad_tokens.items():
            for path in ("/api/users/me", "/api/tasks", "/api/notes"):
                response = client.get(path, headers=bearer(token))
                assert response.status_code == 401, (name, path, response.status_code, response.text)

        for header_value in ("Bearer", "Bearer x", "Basic Zm9vOmJhcg==", user["access_token"]):
            response = client.get("/api/users/me", headers={"Authorization": header_value})
            assert response.status_code == 401, (header_value, response.text)

        # The refresh endpoint takes refresh tokens only.
        assert refresh(client, user["access_token"]).status_code == 401
        assert refresh(client, "garbage").status_code == 401
        forged_refresh = jwt.encode(claims_for(uid, "refresh", fam=str(uuid.uuid4())), "k" * 64, algorithm="HS256")
        assert refresh(client, forged_refresh).status_code == 401
        expired_refresh = jwt.encode(
            claims_for(uid, "refresh", fam=str(uuid.uuid4()), iat=now - 7200, exp=now - 3600),
            TEST_SECRET,
            algorithm="HS256",
        )
        assert refresh(client, expired_refresh).status_code == 401
        # Well signed, but never issued (no row in the database): refused too.
        unissued = jwt.encode(claims_for(uid, "refresh", fam=str(uuid.uuid4())), TEST_SECRET, algorithm="HS256")
        assert refresh(client, unissued).status_code == 401

        # After all that, the real tokens still work.
        assert client.get("/api/users/me", headers=user["headers"]).status_code == 200
        assert refresh(client, user["refresh_token"]).status_code == 200


def test_an_access_token_used_before_is_still_refused_once_it_expires(server_app: Running) -> None:
    """The server keeps access tokens it has verified (checking each again was an eighth of a
    worker's time under load): a kept token must still stop working when it expires."""
    with server_app.client() as client:
        uid = new_user(client, "heidi")["id"]
        now = int(time.time())
        short = jwt.encode(claims_for(uid, iat=now, exp=now + 2), TEST_SECRET, algorithm="HS256")
        assert client.get("/api/tasks", headers=bearer(short)).status_code == 200
        assert client.get("/api/tasks", headers=bearer(short)).status_code == 200  # the kept one
        time.sleep(max(0.0, now + 2.2 - time.time()))
        response = client.get("/api/tasks", headers=bearer(short))
        assert response.status_code == 401, response.text


# -- isolation ----------------------------------------------------------------------------------


def test_users_cannot_touch_each_others_records(server_app: Running) -> None:
    with server_app.client() as client:
        alice = new_user(client, "alice")
        bob = new_user(client, "bob")
        a, b = alice["headers"], bob["headers"]

        task = client.post("/api/tasks", json={"title": "A's task", "description": "private"}, headers=a)
        note = client.post("/api/notes", json={"title": "A's note", "body": "secret body"}, headers=a)
        assert task.status_code == 201 and note.status_code == 201
        records = {"/api/tasks": task.json(), "/api/notes": note.json()}
        replacements = {
            "/api/tasks": {"title": "pwned", "description": "", "due_date": None, "completed": True},
            "/api/notes": {"title": "pwned", "body": "", "done": True},
        }
        patches = {"/api/tasks": {"title": "pwned"}, "/api/notes": {"body": "pwned"}}

        for base, record in records.items():
            url = f"{base}/{record['id']}"
            assert client.get(url, headers=b).status_code == 404
            assert client.put(url, json=replacements[base], headers=b).status_code == 404
            assert client.patch(url, json=patches[base], headers=b).status_code == 404
            assert client.delete(url, headers=b).status_code == 404

            listed = client.get(base, headers=b)
            assert listed.status_code == 200
            assert listed.json() == []
            assert listed.headers["x-total-count"] == "0"
            searched = client.get(base, params={"q": "A's"}, headers=b)
            assert searched.json() == []

            # A's record is exactly as it was.
            assert client.get(url, headers=a).json() == record

        # B may use the same id: that makes B's own record and leaves A's alone.
        for base, record in records.items():
            url = f"{base}/{record['id']}"
            mine = client.post(base, json={"id": record["id"], "title": "B's copy"}, headers=b)
            assert mine.status_code == 201, mine.text
            assert mine.json()["id"] == record["id"]
            assert client.get(url, headers=b).json()["title"] == "B's copy"
            assert client.get(url, headers=a).json() == record

            assert client.patch(url, json={"title": "B renamed"}, headers=b).status_code == 200
            assert client.delete(url, headers=b).status_code == 204
            assert client.get(url, headers=b).status_code == 404
            assert client.get(url, headers=a).json() == record

            listed = client.get(base, headers=a).json()
            assert [r["id"] for r in listed] == [record["id"]]


# -- sign-in rate limit -------------------------------------------------------------------------


def test_login_rate_limit_per_username(server_app: Running) -> None:
    assert server_app.settings.login_max_failures == 10
    with server_app.client() as client:
        assert register(client, "heidi").status_code == 201
        assert register(client, "ivan").status_code == 201

        for attempt in range(10):
            response = login(client, "heidi", "wrong password!")
            assert response.status_code == 401, (attempt, response.status_code)

        blocked = login(client, "heidi")  # the right password, but too late
        assert blocked.status_code == 429, blocked.text
        retry_after = blocked.headers.get("retry-after")
        assert retry_after is not None and retry_after.isdigit(), retry_after
        assert 0 < int(retry_after) <= server_app.settings.login_window_seconds
        assert "access_token" not in blocked.text
        # Case does not dodge the limit: usernames are case-insensitive.
        assert login(client, "HEIDI").status_code == 429

        # Another username from the same address is not affected.
        assert login(client, "ivan", "wrong password!").status_code == 401
        assert login(client, "ivan").status_code == 200


def test_login_rate_limit_window_expires(tmp_path: Path) -> None:
    settings = server_settings(tmp_path, login_window_seconds=1, login_max_failures=3)
    with serve(settings) as running, running.client() as client:
        assert register(client, "judy").status_code == 201
        for _ in range(3):
            assert login(client, "judy", "wrong password!").status_code == 401
        blocked = login(client, "judy")
        assert blocked.status_code == 429
        wait = int(blocked.headers["retry-after"])
        assert wait == 1

        time.sleep(wait + 0.2)
        assert login(client, "judy").status_code == 200


def test_unknown_username_costs_as_much_as_a_wrong_password(tmp_path: Path) -> None:
    """No timing oracle: an unknown username is still checked against a (dummy) Argon2 hash."""
    settings = server_settings(tmp_path, login_max_failures=1000)
    with serve(settings) as running, running.client() as client:
        assert register(client, "mallory").status_code == 201
        # Warm up both paths (the dummy hash is made on first use, connections get pooled).
        for _ in range(2):
            assert login(client, "mallory", "wrong password!").status_code == 401
            assert login(client, "nobody-at-all", "wrong password!").status_code == 401

        known: list[float] = []
        unknown: list[float] = []
        for i in range(7):
            # Interleaved, so a burst of load on the machine hits both samples alike.
            for name, sink in (("mallory", known), (f"ghost-{i}", unknown)):
                started = time.perf_counter()
                assert login(client, name, "wrong password!").status_code == 401
                sink.append(time.perf_counter() - started)

        ratio = statistics.median(unknown) / statistics.median(known)
        assert 0.5 <= ratio <= 2.0, (ratio, known, unknown)


# -- the signing secret -------------------------------------------------------------------------


def test_generated_secret_is_private_and_survives_restart(tmp_path: Path) -> None:
    data_dir = tmp_path / "server"

    def settings() -> Settings:
        # secret_key=None explicitly, so a FERRY_SECRET_KEY in the environment cannot mask the test.
        return Settings(mode="server", data_dir=data_dir, secret_key=None)

    with serve(settings()) as running, running.client() as client:
        user = new_user(client, "kate")
    key_file = data_dir / "secret.key"
    assert key_file.is_file()
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    secret = key_file.read_text().strip()
    assert len(secret) >= 32
    assert secret != TEST_SECRET
    # The tokens really are signed with that file's secret.
    assert jwt.decode(user["access_token"], secret, algorithms=["HS256"])["sub"] == user["id"]

    with serve(settings()) as running, running.client() as client:
        assert key_file.read_text().strip() == secret  # reused, not regenerated
        me = client.get("/api/users/me", headers=user["headers"])
        assert me.status_code == 200, me.text
        assert me.json()["username"] == "kate"
        assert refresh(client, user["refresh_token"]).status_code == 200

    # Another data directory gets its own secret, which does not accept the first one's tokens.
    other_dir = tmp_path / "other"
    with serve(Settings(mode="server", data_dir=other_dir, secret_key=None)) as running, running.client() as client:
        assert (other_dir / "secret.key").read_text().strip() != secret
        assert client.get("/api/tasks", headers=user["headers"]).status_code == 401


@pytest.mark.parametrize("content", ["", "short"])
def test_unusable_secret_file_is_refused(tmp_path: Path, content: str) -> None:
    """A truncated key file must stop the server rather than sign tokens with a weak key."""
    tmp_path.joinpath("secret.key").write_text(content)
    with (
        pytest.raises(RuntimeError, match=r"secret\.key"),
        serve(Settings(mode="server", data_dir=tmp_path, secret_key=None)),
    ):
        pass
