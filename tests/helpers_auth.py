"""Signing in to a server-mode Ferry from a test: register one account, get an access token
(OAuth2 password form) and hand back an httpx client that sends it on every request.

Argon2 makes registering and signing in cost ~50-100 ms each, so a test should do this once
and reuse the client, never once per request.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import httpx

from tests.servers import Running

PASSWORD = "correct horse battery staple"


@dataclass
class SignedIn:
    client: httpx.Client
    user_id: str
    username: str
    access_token: str


def register(running: Running, username: str, password: str = PASSWORD) -> str:
    """Create an account; returns the new user's id."""
    with running.client() as anon:
        response = anon.post("/api/auth/register", json={"username": username, "password": password})
    assert response.status_code == 201, response.text
    return response.json()["id"]


def access_token(running: Running, username: str, password: str = PASSWORD) -> str:
    with running.client() as anon:
        response = anon.post("/api/auth/token", data={"username": username, "password": password})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["token_type"] == "bearer"
    return body["access_token"]


@contextmanager
def signed_in(
    running: Running, username: str = "alice", password: str = PASSWORD, *, register_first: bool = True
) -> Iterator[SignedIn]:
    """A client signed in as `username` (registered first unless `register_first` is False)."""
    user_id = register(running, username, password) if register_first else None
    token = access_token(running, username, password)
    with running.client(headers={"Authorization": f"Bearer {token}"}) as client:
        if user_id is None:
            me = client.get("/api/users/me")
            assert me.status_code == 200, me.text
            user_id = me.json()["id"]
        yield SignedIn(client, user_id, username, token)
