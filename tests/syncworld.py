"""A small world of real Ferry replicas for sync tests: one shared server and N devices.

Every part is real: the shared server is the server-mode app (uvicorn in a thread, or any
server reachable by URL, e.g. a `python -m server` subprocess), each device is the local-mode
app (uvicorn in a thread, its own SQLite file, its own sync engine), and each device talks to
the server through its own `tests.netproxy.Proxy`, so a test can cut one device off
(`device.offline()`) or lose a response (`device.proxy.lose_next_responses(1)`). Tests act
through each device's public surface (the local REST API and `/api/sync/*`); the world reads
each replica's database only to check what is stored and where sync stands.

    with sync_world(tmp_path, devices=3) as world:
        a, b, c = world.devices
        world.sign_in_all("alice")
        a.offline()
        a.create("task", title="Buy milk")
        a.online()
        world.settle()
        world.assert_converged("alice")

- `settle()` is the quiescence barrier: it asks every signed-in device to sync and repeats
  until a whole round changes nothing — every device idle with nothing pending, its cursor
  at its account's last sequence number, and that number unchanged over the round.
- `assert_converged(user)` compares every replica of an account: what each REST API lists
  (every field), what each database stores (tombstones and stamps included), and the
  server's `/api/sync/digest` against a digest recomputed from each replica's records.
- Every wait is bounded (`wait_for`); every app, proxy and client is stopped on exit.

Starting a world costs about a second (one app per replica, migrations included), so a
property-based test should build one world and reuse it across examples: `settle()` and
`assert_converged()` hold from whatever state the previous example left.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx
import orjson
from sqlalchemy import select

from server.bulk import TABLES, fields_of
from server.db import Database
from server.settings import Settings
from sync.digest import record_hash
from tests.netproxy import Proxy
from tests.servers import Running, local_settings, serve, server_settings

T = TypeVar("T")

PASSWORD = "correct horse battery staple"
KINDS = ("task", "note")
PATHS = {"task": "/api/tasks", "note": "/api/notes"}
PAGE = 500  # the REST API's largest page


def wait_for(predicate: Callable[[], T], timeout: float, what: str, interval: float = 0.02) -> T:
    """Call `predicate` until it returns something truthy (returned); fail after `timeout` s.

    The failure names `what` and the last value seen, so a stuck wait explains itself.
    """
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        last = predicate()
        if last:
            return last
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:.1f} s waiting for {what}; last seen: {last!r}")
        time.sleep(interval)


def read_records(db: Database, owner: str) -> dict[tuple[str, str], dict[str, Any]]:
    """Every record of `owner` as stored, tombstones included: (kind, id) -> columns.

    `stamps` is parsed (its JSON key order is not meaningful); every other column is kept,
    so two replicas compare equal only if they agree on values, stamps, creation and update
    times, and digest shares.
    """
    out: dict[tuple[str, str], dict[str, Any]] = {}
    with db.read() as session:
        for kind, table in TABLES.items():
            for row in session.execute(select(table).where(table.c.owner_id == owner)).mappings():
                record = dict(row)
                record["stamps"] = orjson.loads(record["stamps"])
                out[(kind, record["id"])] = record
    return out


def digest_of(records: dict[tuple[str, str], dict[str, Any]]) -> tuple[int, int, int]:
    """The sync digest (count, sum_a, sum_b), recomputed from field values — not from the
    hash columns — so it also checks that every replica keeps its stored hashes right."""
    sum_a = sum_b = 0
    for (kind, rid), row in records.items():
        a, b = record_hash(kind, rid, fields_of(kind, row))
        sum_a, sum_b = sum_a + a, sum_b + b
    return len(records), sum_a, sum_b


@dataclass
class Account:
    username: str
    password: str
    user_id: str
    access_token: str


class Device:
    """One desktop app (local mode) whose route to the shared server goes through `proxy`."""

    running: Running
    http: httpx.Client

    def __init__(self, name: str, settings: Settings, proxy: Proxy) -> None:
        self.name = name
        self.settings = settings
        self.proxy = proxy
        self.username: str | None = None
        self._stack = ExitStack()
        self.start()

    def start(self) -> None:
        """Start the app on this device's data directory (on a new local port)."""
        self._stack = ExitStack()
        self.running = self._stack.enter_context(serve(self.settings))
        self.http = self.running.client()
        self._stack.callback(self.http.close)

    def stop(self) -> None:
        """Stop the app cleanly (the engine makes its last bounded sync)."""
        self._stack.close()

    def restart(self) -> None:
        """Quit and start again on the same data directory, like a person reopening the app."""
        self.stop()
        self.start()

    # -- the sync controls (`/api/sync/*`) -------------------------------------------------

    @property
    def state(self) -> Any:
        """The app's state (database, clock, engine), for inspection only."""
        return self.running.app.state.ferry

    def status(self) -> dict[str, Any]:
        r = self.http.get("/api/sync/status")
        assert r.status_code == 200, r.text
        return r.json()

    def connect(self, username: str, password: str = PASSWORD, register: bool = False) -> dict[str, Any]:
        body = {"server_url": self.proxy.url, "username": username, "password": password, "register": register}
        r = self.http.post("/api/sync/connect", json=body)
        assert r.status_code == 200, f"{self.name}: connect as {username}: {r.status_code} {r.text}"
        self.username = username
        return r.json()

    def disconnect(self) -> None:
        r = self.http.post("/api/sync/disconnect")
        assert r.status_code == 200, r.text
        assert r.json()["state"] == "signed_out"
        self.username = None

    def sync_now(self) -> None:
        r = self.http.post("/api/sync/now")
        assert r.status_code == 202, f"{self.name}: sync now: {r.status_code} {r.text}"

    def sync_once(self, timeout: float = 20.0) -> dict[str, Any]:
        """Ask for a sync and wait until a round finishes successfully after the ask.

        "Sync now" answers at once (202); the round runs in the engine. The round seen may
        be one already running when asked (the engine then runs another right after it);
        `World.settle()` repeats until nothing changes, so that is enough. A round that ends
        offline or in error is asked for again (skipping the back-off) until the timeout.
        """
        before = self.status()["last_synced_at"]
        self.sync_now()
        asked = time.monotonic()

        def done() -> dict[str, Any] | None:
            nonlocal asked
            status = self.status()
            if status["state"] == "idle" and status["last_synced_at"] != before:
                return status
            if status["state"] in ("offline", "error") and time.monotonic() - asked > 0.5:
                self.sync_now()
                asked = time.monotonic()
            return None

        return wait_for(done, timeout, f"{self.name} to finish a sync round")

    def cursor(self) -> int:
        """The highest server sequence number this device has applied (its current account)."""
        return int(self.state.sync_engine.store.cursor())

    def pending(self) -> int:
        return int(self.state.sync_engine.store.pending_count())

    def offline(self) -> None:
        self.proxy.down()

    def online(self) -> None:
        self.proxy.up()

    # -- the records API -------------------------------------------------------------------

    def create(self, kind: str, **fields: Any) -> dict[str, Any]:
        r = self.http.post(PATHS[kind], json=fields)
        assert r.status_code == 201, f"{self.name}: create {kind}: {r.status_code} {r.text}"
        return r.json()

    def patch(self, kind: str, record_id: str, **fields: Any) -> dict[str, Any]:
        r = self.http.patch(f"{PATHS[kind]}/{record_id}", json=fields)
        assert r.status_code == 200, f"{self.name}: patch {kind} {record_id}: {r.status_code} {r.text}"
        return r.json()

    def delete(self, kind: str, record_id: str) -> None:
        r = self.http.delete(f"{PATHS[kind]}/{record_id}")
        assert r.status_code == 204, f"{self.name}: delete {kind} {record_id}: {r.status_code} {r.text}"

    def get(self, kind: str, record_id: str) -> dict[str, Any] | None:
        r = self.http.get(f"{PATHS[kind]}/{record_id}")
        assert r.status_code in (200, 404), r.text
        return r.json() if r.status_code == 200 else None

    def list(self, kind: str) -> list[dict[str, Any]]:
        return list_all(self.http, kind)

    def snapshot(self) -> dict[str, list[dict[str, Any]]]:
        """What this device's API shows, every field (updated_at included), sorted by id."""
        return {kind: self.list(kind) for kind in KINDS}

    def records(self) -> dict[tuple[str, str], dict[str, Any]]:
        """What this device stores for its current account, tombstones included."""
        return read_records(self.state.db, self.state.local_owner)


def list_all(http: httpx.Client, kind: str) -> list[dict[str, Any]]:
    """Every live record of a kind through the REST API (all pages), sorted by id."""
    out: list[dict[str, Any]] = []
    for _ in range(10_000):  # bounded: 5 million records is far beyond any test
        r = http.get(PATHS[kind], params={"skip": len(out), "limit": PAGE})
        assert r.status_code == 200, r.text
        out.extend(r.json())
        if len(out) >= int(r.headers["X-Total-Count"]) or not r.json():
            break
    return sorted(out, key=lambda rec: rec["id"])


@dataclass
class World:
    """The shared server (at `server_url`, reached directly) and the devices syncing with it."""

    root: Path
    server_url: str
    server_port: int
    server_db: Database
    stack: ExitStack
    server: Running | None = None  # set when the server runs in this process
    devices: list[Device] = field(default_factory=list)
    accounts: dict[str, Account] = field(default_factory=dict)

    # -- devices ---------------------------------------------------------------------------

    def add_device(self, name: str | None = None, **settings: Any) -> Device:
        """Start one more device (local mode, its own data directory), behind its own proxy."""
        name = name or f"dev{len(self.devices)}"
        proxy = Proxy(self.server_port)
        self.stack.callback(proxy.close)
        device = Device(name, local_settings(self.root / name, use_keyring=False, **settings), proxy)
        self.stack.callback(device.stop)  # before its proxy closes (the stack unwinds in reverse)
        self.devices.append(device)
        return device

    def sign_in_all(self, username: str, password: str = PASSWORD, devices: list[Device] | None = None) -> None:
        """Connect every device (or those given) to `username`, registering it if it is new."""
        for device in devices if devices is not None else self.devices:
            device.connect(username, password, register=username not in self.accounts)
            if username not in self.accounts:
                self.account(username, password)

    # -- the server's side -----------------------------------------------------------------

    def account(self, username: str, password: str = PASSWORD, register: bool = False) -> Account:
        """An account's id and a fresh access token for the server's own API."""
        if username in self.accounts and not register:
            return self.accounts[username]
        with httpx.Client(base_url=self.server_url, timeout=30) as anon:
            if register:
                r = anon.post("/api/auth/register", json={"username": username, "password": password})
                assert r.status_code == 201, r.text
            r = anon.post("/api/auth/token", data={"username": username, "password": password})
            assert r.status_code == 200, r.text
            token = r.json()["access_token"]
            me = anon.get("/api/users/me", headers={"Authorization": f"Bearer {token}"})
            assert me.status_code == 200, me.text
        found = Account(username, password, me.json()["id"], token)
        self.accounts[username] = found
        return found

    def server_api(self, username: str) -> httpx.Client:
        """A client for the shared server's REST API, signed in as `username` (close it)."""
        token = self.account(username).access_token
        return httpx.Client(base_url=self.server_url, headers={"Authorization": f"Bearer {token}"}, timeout=30)

    def server_digest(self, username: str) -> dict[str, int]:
        with self.server_api(username) as api:
            r = api.get("/api/sync/digest")
        assert r.status_code == 200, r.text
        return r.json()

    def server_last_seq(self, username: str) -> int:
        return int(self.server_digest(username)["last_seq"])

    def server_snapshot(self, username: str) -> dict[str, list[dict[str, Any]]]:
        with self.server_api(username) as api:
            return {kind: list_all(api, kind) for kind in KINDS}

    def server_records(self, username: str) -> dict[tuple[str, str], dict[str, Any]]:
        return read_records(self.server_db, self.account(username).user_id)

    def wait_sockets(self, username: str, count: int, timeout: float = 10.0) -> None:
        """Wait until `count` sockets listen for `username`'s changes (in-process server only)."""
        assert self.server is not None, "needs the server in this process"
        hub = self.server.app.state.ferry.hub
        user_id = self.account(username).user_id
        wait_for(lambda: hub.subscribers(user_id) >= count, timeout, f"{count} sockets for {username}")

    # -- quiescence and convergence --------------------------------------------------------

    def signed_in(self, devices: list[Device] | None = None) -> list[Device]:
        return [d for d in (devices if devices is not None else self.devices) if d.username is not None]

    def settle(self, devices: list[Device] | None = None, timeout: float = 60.0, max_rounds: int = 8) -> int:
        """Sync every signed-in device until nothing changes; returns the rounds it took.

        A round asks each device to sync and waits for it to finish. The world is quiet
        after a round in which the server's sequence numbers did not move, and every device
        is idle with nothing pending and its cursor at its account's last sequence number.
        """
        devices = self.signed_in(devices)
        deadline = time.monotonic() + timeout
        users = sorted({d.username for d in devices if d.username})
        before = {u: self.server_last_seq(u) for u in users}
        report: list[Any] = []
        for round_no in range(1, max_rounds + 1):
            for device in devices:
                device.sync_once(max(deadline - time.monotonic(), 0.1))
            after = {u: self.server_last_seq(u) for u in users}
            report = [
                (d.name, d.username, d.status()["state"], d.pending(), d.cursor(), after[d.username or ""])
                for d in devices
            ]
            quiet = all(
                state == "idle" and pending == 0 and cursor == last for _, _, state, pending, cursor, last in report
            )
            if quiet and after == before:
                return round_no
            before = after
            if time.monotonic() > deadline:
                break
        raise AssertionError(
            f"no quiescence after {max_rounds} rounds: (device, user, state, pending, cursor, last)={report}"
        )

    def assert_converged(self, username: str, devices: list[Device] | None = None, resyncs_ok: bool = False) -> None:
        """Every device signed in as `username` and the server hold the same data.

        Compared: what each API lists (every field, `updated_at` included — it derives from
        the stamps, so it is equal everywhere), what each database stores (tombstones,
        stamps, digest shares), and the server's `/api/sync/digest` against each replica's
        records. Unless `resyncs_ok`, no device may have needed a full re-sync (rule 6
        repairs divergence; in a correct run there is none to repair).
        """
        devices = [d for d in (devices if devices is not None else self.devices) if d.username == username]
        assert devices, f"no device is signed in as {username}"
        server_view = self.server_snapshot(username)
        server_rows = self.server_records(username)
        server_digest = self.server_digest(username)
        assert digest_of(server_rows) == (server_digest["count"], server_digest["sum_a"], server_digest["sum_b"])
        for device in devices:
            view = device.snapshot()
            for kind in KINDS:
                assert view[kind] == server_view[kind], _diff(
                    f"{device.name} vs server: {kind}s", view[kind], server_view[kind]
                )
            rows = device.records()
            assert rows == server_rows, _diff(f"{device.name} vs server: stored records", rows, server_rows)
            assert digest_of(rows) == digest_of(server_rows)
            local = device.state.sync_engine.store.digest()
            assert (local.count, local.sum_a, local.sum_b) == digest_of(rows), f"{device.name}: stored hashes are stale"
            if not resyncs_ok:
                assert device.status()["full_resyncs"] == 0, f"{device.name} needed a full re-sync"


def _diff(title: str, ours: Any, theirs: Any) -> str:
    """A readable account of how two record collections differ (for assertion messages)."""
    if isinstance(ours, dict) and isinstance(theirs, dict):
        a, b = ours, theirs
    else:
        a = {r["id"]: r for r in ours}
        b = {r["id"]: r for r in theirs}
    lines = [title]
    for key in sorted(set(a) | set(b), key=str):
        if key not in b:
            lines.append(f"  only left:  {key}: {a[key]}")
        elif key not in a:
            lines.append(f"  only right: {key}: {b[key]}")
        elif a[key] != b[key]:
            changed = {
                k: (a[key].get(k), b[key].get(k)) for k in set(a[key]) | set(b[key]) if a[key].get(k) != b[key].get(k)
            }
            lines.append(f"  differs:    {key}: {changed}")
        if len(lines) > 20:
            lines.append("  ...")
            break
    return "\n".join(lines)


@contextmanager
def sync_world(
    root: Path,
    devices: int = 2,
    database_url: str | None = None,
    server_url: str | None = None,
    server_settings_: Settings | None = None,
    **device_settings: Any,
) -> Iterator[World]:
    """A shared server and `devices` devices, all stopped on exit.

    By default the server runs in this process on a SQLite file under `root` (or on
    `database_url`, e.g. PostgreSQL). Pass `server_url` and `server_settings_` to use a
    server running elsewhere (a subprocess): its database is then opened only to read it.
    """
    with ExitStack() as stack:
        running: Running | None = None
        if server_url is None:
            settings = server_settings(root / "server", database_url)
            running = stack.enter_context(serve(settings))
            url, port = running.url, running.port
            db = running.app.state.ferry.db
        else:
            assert server_settings_ is not None, "a server given by URL needs its settings to read its database"
            url = server_url
            port = int(server_url.rsplit(":", 1)[1])
            db = Database(server_settings_)
            stack.callback(db.dispose)
        world = World(root, url, port, db, stack, running)
        for i in range(devices):
            world.add_device(chr(ord("a") + i) if devices <= 26 else None, **device_settings)
        # ExitStack unwinds in reverse: each device stops (with its last bounded sync) before
        # its proxy closes, and the server stops last.
        yield world
