"""The shared server with several worker processes on one PostgreSQL database.

Every server here is a real `python -m server --database-url postgresql+psycopg://...`
subprocess on loopback. Two such processes on different ports are two different workers for
certain (uvicorn's own `--workers N` shares one socket, and the kernel picks who accepts), so
a test can push to one and listen on the other. What must hold (DESIGN.md sync rules 2, 5, 7):

- a WebSocket on one process hears about a push (and a REST write) handled by another,
  within a second (PostgreSQL LISTEN/NOTIFY);
- several clients of one user pushing at once to several workers, with pullers reading all
  the while: no puller ever sees sequence number N+1 before N, the numbers are 1..N with no
  gap, every change is logged exactly once, and every client ends with the server's data;
- a worker killed with SIGKILL in the middle of a push: the client retries elsewhere and the
  batch lands exactly once.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from sync.hlc import HybridClock, new_node_id
from sync.ids import new_id
from tests.helpers_auth import PASSWORD
from tests.servers import ROOT, Process, ferry_server_process, free_port, wait_healthy
from tests.syncworld import list_all
from tests.wsclient import expect_event, open_ws

pytestmark = pytest.mark.postgres

SECRET = {"FERRY_SECRET_KEY": "w" * 64}


@contextmanager
def servers(tmp_path: Path, pg_url: str, count: int, workers: int = 1) -> Iterator[list[Process]]:
    """`count` server processes (each with `workers` uvicorn workers) on one database."""
    with ExitStack() as stack:
        procs = [
            stack.enter_context(
                ferry_server_process(
                    tmp_path / f"server{i}", "--database-url", pg_url, "--workers", str(workers), env=SECRET
                )
            )
            for i in range(count)
        ]
        yield procs


def sign_up(url: str, username: str) -> str:
    with httpx.Client(base_url=url, timeout=30) as anon:
        assert anon.post("/api/auth/register", json={"username": username, "password": PASSWORD}).status_code == 201
        response = anon.post("/api/auth/token", data={"username": username, "password": PASSWORD})
        assert response.status_code == 200, response.text
        return response.json()["access_token"]


def task_change(clock: HybridClock, record_id: str, **fields: Any) -> dict[str, Any]:
    return {
        "id": new_id(),
        "kind": "task",
        "record_id": record_id,
        "fields": fields,
        "stamps": {name: clock.now() for name in fields},
    }


def pull_all(client: httpx.Client, after: int = 0) -> list[dict[str, Any]]:
    """Every change after `after`, page by page (bounded), checking the numbers run on."""
    got: list[dict[str, Any]] = []
    for _ in range(1000):
        page = client.get("/api/sync/pull", params={"after": after, "limit": 500})
        assert page.status_code == 200, page.text
        body = page.json()
        seqs = [c["seq"] for c in body["changes"]]
        assert seqs == list(range(after + 1, after + 1 + len(seqs))), f"gap or reorder after {after}: {seqs[:10]}"
        got.extend(body["changes"])
        after = body["next"]
        if not body["more"]:
            return got
    raise AssertionError("pull did not finish")


def apply_lww(state: dict[str, dict[str, tuple[str, Any]]], changes: list[dict[str, Any]]) -> None:
    """A client's replica: per field, the value with the latest stamp (sync rule 3)."""
    for change in changes:
        record = state.setdefault(change["record_id"], {})
        for name, value in change["fields"].items():
            stamp = change["stamps"][name]
            if name not in record or record[name][0] < stamp:
                record[name] = (stamp, value)


def server_node(log: list[dict[str, Any]], pushed: list[str]) -> str | None:
    """The node of the changes no client pushed (the server's merges), if any."""
    mine = set(pushed)
    nodes = {c["node"] for c in log if c["id"] not in mine}
    assert len(nodes) <= 1, f"changes from unknown nodes: {nodes}"
    return next(iter(nodes), None)


# -- notifications across workers ----------------------------------------------------------


def test_a_socket_on_one_worker_hears_a_push_and_a_write_handled_by_another(tmp_path: Path, pg_url: str) -> None:
    with servers(tmp_path, pg_url, 2) as (one, two):
        token = sign_up(one.url, "alice")
        other = sign_up(one.url, "bob")
        auth = {"Authorization": f"Bearer {token}"}
        ws = open_ws(one.url, headers=auth)
        bobs = open_ws(one.url, headers={"Authorization": f"Bearer {other}"})
        try:
            clock = HybridClock(new_node_id())
            with httpx.Client(base_url=two.url, headers=auth, timeout=10) as api:
                for round_ in range(3):
                    started = time.monotonic()
                    push = {"node": clock.node, "changes": [task_change(clock, new_id(), title=f"t{round_}")]}
                    response = api.post("/api/sync/push", json=push)
                    assert response.status_code == 200, response.text
                    last = response.json()["last_seq"]
                    expect_event(ws, "sync.changes", timeout=1.0, last_seq=last)
                    assert time.monotonic() - started < 1.0
                # A REST write on worker two reaches the page on worker one too.
                created = api.post("/api/tasks", json={"title": "from REST"})
                assert created.status_code == 201, created.text
                event = expect_event(ws, "task.created", timeout=1.0)
                assert event["data"]["id"] == created.json()["id"]
            # Bob hears nothing of Alice's.
            with pytest.raises(TimeoutError):
                bobs.recv(timeout=0.5)
        finally:
            ws.close()
            bobs.close()


def test_notifications_resume_after_the_listener_connection_is_killed(tmp_path: Path, pg_url: str) -> None:
    import psycopg

    with servers(tmp_path, pg_url, 2) as (one, two):
        token = sign_up(one.url, "alice")
        auth = {"Authorization": f"Bearer {token}"}
        dsn = pg_url.replace("postgresql+psycopg://", "postgresql://")
        with psycopg.connect(dsn, autocommit=True) as admin:
            killed = admin.execute(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = current_database() AND query ILIKE 'LISTEN%%' AND pid <> pg_backend_pid()"
            ).fetchone()
        assert killed is not None and killed[0] >= 2
        ws = open_ws(one.url, headers=auth)
        try:
            clock = HybridClock(new_node_id())
            with httpx.Client(base_url=two.url, headers=auth, timeout=10) as api:
                deadline = time.monotonic() + 10
                while True:  # bounded: the listener reconnects within a second or so
                    push = {"node": clock.node, "changes": [task_change(clock, new_id(), title="again")]}
                    last = api.post("/api/sync/push", json=push).json()["last_seq"]
                    try:
                        expect_event(ws, "sync.changes", timeout=1.0, last_seq=last)
                        break
                    except AssertionError:
                        assert time.monotonic() < deadline, "notifications never came back"
        finally:
            ws.close()


# -- concurrency: commit order across workers ----------------------------------------------


def test_concurrent_pushes_to_several_workers_keep_commit_order(tmp_path: Path, pg_url: str) -> None:
    clients, rounds, per_push, loops = 4, 10, 5, 2
    with servers(tmp_path, pg_url, 2, workers=2) as procs:
        urls = [p.url for p in procs]
        token = sign_up(urls[0], "alice")
        auth = {"Authorization": f"Bearer {token}"}
        shared = [new_id() for _ in range(3)]  # records every client edits: real contention
        pushed: list[str] = []
        errors: list[BaseException] = []
        lock = threading.Lock()

        def client_loop(index: int, replica: dict[str, dict[str, tuple[str, Any]]], cursors: list[int]) -> None:
            clock = HybridClock(new_node_id())
            cursor = 0
            with ExitStack() as stack:
                apis = [stack.enter_context(httpx.Client(base_url=u, headers=auth, timeout=30)) for u in urls]
                try:
                    for r in range(rounds):
                        api = apis[(index + r) % len(apis)]
                        changes = [task_change(clock, new_id(), title=f"c{index} r{r} #{k}") for k in range(per_push)]
                        changes.append(task_change(clock, shared[r % len(shared)], title=f"shared by c{index} r{r}"))
                        response = api.post("/api/sync/push", json={"node": clock.node, "changes": changes})
                        assert response.status_code == 200, response.text
                        assert response.json()["accepted"] == len(changes)
                        with lock:
                            pushed.extend(c["id"] for c in changes)
                        page = pull_all(apis[(index + r + 1) % len(apis)], cursor)
                        apply_lww(replica, page)
                        if page:
                            cursor = page[-1]["seq"]
                    cursors[index] = cursor
                except BaseException as exc:  # reported by the main thread
                    errors.append(exc)

        stop = threading.Event()
        pulls = [0]

        def puller(index: int) -> None:
            # Reads the log from the start over and over, on alternating workers, while the
            # pushes run: every read must be 1..N with no hole (N+1 never before N).
            with ExitStack() as stack:
                apis = [stack.enter_context(httpx.Client(base_url=u, headers=auth, timeout=30)) for u in urls]
                try:
                    i = index
                    while not stop.is_set():
                        i += 1
                        cursor = 0
                        for _ in range(3):  # follow the log incrementally for a few steps
                            got = pull_all(apis[i % len(apis)], cursor)
                            if got:
                                cursor = got[-1]["seq"]
                            pulls[0] += 1
                except BaseException as exc:
                    errors.append(exc)

        for _loop in range(loops):
            replicas: list[dict[str, dict[str, tuple[str, Any]]]] = [{} for _ in range(clients)]
            cursors = [0] * clients
            threads = [threading.Thread(target=client_loop, args=(i, replicas[i], cursors)) for i in range(clients)]
            pullers = [threading.Thread(target=puller, args=(i,)) for i in range(2)]
            for thread in threads + pullers:
                thread.start()
            for thread in threads:
                thread.join(120)
            stop.set()
            for thread in pullers:
                thread.join(30)
            stop.clear()
            assert not any(t.is_alive() for t in threads + pullers), "a client hung"
            if errors:
                raise errors[0]

            with httpx.Client(base_url=urls[1], headers=auth, timeout=30) as api:
                for replica, cursor in zip(replicas, cursors, strict=True):
                    apply_lww(replica, pull_all(api, cursor))  # each client's last sync
                log = pull_all(api)
                ids = [c["id"] for c in log]
                assert len(ids) == len(set(ids)), "a change was logged twice"
                assert set(pushed) <= set(ids), "a pushed change is missing from the log"
                # The rest are the server's own verdicts on the concurrent title edits.
                assert {c["node"] for c in log if c["id"] not in set(pushed)} <= {server_node(log, pushed)}
                server: dict[str, dict[str, tuple[str, Any]]] = {}
                apply_lww(server, log)
                titles = {t["id"]: t["title"] for t in list_all(api, "task")}
            assert {rid: f["title"][1] for rid, f in server.items()} == titles
            for replica in replicas:
                assert {rid: f["title"][1] for rid, f in replica.items()} == titles
        assert pulls[0] > 10, "the pullers hardly ran"


# -- a worker killed mid-push ------------------------------------------------------------


def test_a_worker_killed_mid_push_the_retry_lands_once(tmp_path: Path, pg_url: str) -> None:
    with servers(tmp_path, pg_url, 1) as (survivor,):
        token = sign_up(survivor.url, "alice")
        auth = {"Authorization": f"Bearer {token}"}
        clock = HybridClock(new_node_id())
        outcomes: list[str] = []
        pushed: list[str] = []
        for attempt, delay in enumerate((0.05, 0.2, 0.6)):
            # A victim worker in its own process; the push to it is big enough to be cut
            # anywhere from reading the body to committing.
            port = free_port()
            log = tmp_path / f"victim{attempt}.log"
            with open(log, "wb") as fh:
                victim = subprocess.Popen(
                    [sys.executable, "-m", "server", "--port", str(port), "--data-dir", str(tmp_path / "victim"),
                     "--database-url", pg_url],
                    stdout=fh, stderr=subprocess.STDOUT, cwd=ROOT, env={**__import__("os").environ, **SECRET},
                )  # fmt: skip
            try:
                url = f"http://127.0.0.1:{port}"
                wait_healthy(url, victim)
                batch = [task_change(clock, new_id(), title=f"a{attempt} #{k}") for k in range(3000)]
                pushed.extend(c["id"] for c in batch)
                body = {"node": clock.node, "changes": batch}
                result: list[Any] = []

                def send(url: str = url, body: dict[str, Any] = body, result: list[Any] = result) -> None:
                    try:
                        result.append(httpx.post(f"{url}/api/sync/push", json=body, headers=auth, timeout=30))
                    except httpx.HTTPError as exc:
                        result.append(exc)

                sender = threading.Thread(target=send)
                sender.start()
                time.sleep(delay)
                victim.send_signal(signal.SIGKILL)
                victim.wait(10)
                sender.join(30)
                assert not sender.is_alive()
                outcomes.append("answered" if isinstance(result[0], httpx.Response) else "cut")
            finally:
                if victim.poll() is None:
                    victim.kill()
                    victim.wait(10)
            # The client never trusts a lost answer: it retries the same batch on a live worker.
            retry = httpx.post(f"{survivor.url}/api/sync/push", json=body, headers=auth, timeout=60)
            assert retry.status_code == 200, retry.text
            answer = retry.json()
            assert answer["accepted"] + answer["duplicates"] == len(batch)
        assert "cut" in outcomes, f"no push was cut by the kill: {outcomes}"
        with httpx.Client(base_url=survivor.url, headers=auth, timeout=30) as api:
            log_ids = [c["id"] for c in pull_all(api)]
        assert len(log_ids) == len(set(log_ids)), "a change landed twice"
        assert sorted(log_ids) == sorted(pushed), "a change was lost"


# -- operations -----------------------------------------------------------------------------------


def test_every_worker_writes_the_access_log_with_request_ids(tmp_path: Path, pg_url: str) -> None:
    """Workers are fresh interpreters: each sets up its own log, or its access lines are lost."""
    with servers(tmp_path, pg_url, 1, workers=2) as (server,):
        token = sign_up(server.url, "olga")
        ids = set()
        pids = set()
        # Separate connections, so that both workers get some of them.
        for _ in range(20):
            with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {token}"}) as api:
                response = api.get("/api/sync/pull")
                assert response.status_code == 200, response.text
                ids.add(response.headers["x-request-id"])
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            lines = [line for line in server.log.read_text().splitlines() if "GET /api/sync/pull 200" in line]
            if {rid for rid in ids if any(f"rid={rid}" in line for line in lines)} == ids:
                break
            time.sleep(0.05)
        assert all(any(f"rid={rid}" in line for line in lines) for rid in ids), lines[-5:]
        for line in server.log.read_text().splitlines():
            if "Started server process [" in line:
                pids.add(line.rsplit("[", 1)[1].rstrip("]"))
        assert len(pids) == 2, "the server runs two workers"
