"""Sync benchmark: prints one JSON line per figure.

    .venv/bin/python tests/bench/sync_bench.py [--big 100000] [--edits 50] [--random-ids]

A real shared server (`python -m server`, SQLite) in a subprocess; devices are the desktop's
local app (real uvicorn on loopback, real SQLite files) in this process, except the device
that pulls 100,000 records, which runs as its own `python -m desktop --headless` process so
its memory can be measured. Figures:
- push_10k: one sync round of a device holding 10,000 new tasks (push, pull, digest check);
- pull_10k: first sync of a freshly signed-in device, until it holds the 10,000 tasks;
  both the median of `--repeat` pairs of fresh devices, each pair on an account of its own;
- noop: a sync round with nothing to do (median of 30);
- edits_100: a sync round after 100 local edits (median of 7);
- pull_100k: first sync of 100,000 records into a fresh device process, with its peak
  memory growth (VmHWM after minus VmRSS before). The records are tasks made one a minute
  with Ferry's own time-ordered ids, as a person's would be; `--random-ids` gives them random
  UUIDs and one date instead (every index insert lands on a random page: the worst case);
- edit_to_visible: a title edited on one online device, until the other device's `/ws`
  delivers it (p50 and p99).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NamedTuple

import httpx

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from server.models import ms_to_iso  # noqa: E402
from server.records import TASKS  # noqa: E402
from sync.hlc import HybridClock, new_node_id  # noqa: E402
from sync.ids import new_id  # noqa: E402
from tests.servers import ferry_server_process, local_settings, serve, wait_healthy  # noqa: E402

PASSWORD = "benchmark-password"


def emit(case: str, **figures: object) -> None:
    print(json.dumps({"bench": "sync", "case": case, **figures}), flush=True)


def run_in_app(running, coro_fn):  # type: ignore[no-untyped-def]
    """Run a coroutine on a device's event loop and wait for it."""
    engine = running.app.state.ferry.sync_engine
    return asyncio.run_coroutine_threadsafe(coro_fn(engine), engine._loop).result(600)


def timed_round(running) -> float:  # type: ignore[no-untyped-def]
    started = time.perf_counter()
    status = run_in_app(running, lambda e: e.run(manual=True))
    elapsed = time.perf_counter() - started
    if status.state != "idle":
        raise RuntimeError(f"sync round ended {status.state}: {status.last_error}")
    return elapsed


def wait_settled(running, timeout: float = 600) -> None:  # type: ignore[no-untyped-def]
    """Wait until the device is idle with nothing pending and no round running."""
    engine = running.app.state.ferry.sync_engine
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = engine.status
        if (
            status.state == "idle"
            and status.pending_changes == 0
            and not engine._lock.locked()
            and status.last_synced_at
        ):
            return
        time.sleep(0.005)
    raise TimeoutError("device did not settle")


def first_round(running, key: str, count: int) -> dict[str, float]:  # type: ignore[no-untyped-def]
    """The figures of the round that moved `count` changes (the engine keeps its last rounds)."""
    for entry in running.app.state.ferry.sync_engine.history:
        if entry[key] >= count:
            return {"seconds": round(entry["ms"] / 1000, 3), key: entry[key]}
    raise RuntimeError(f"no round {key} {count} changes: {list(running.app.state.ferry.sync_engine.history)}")


def seed_local(running, count: int) -> list[str]:  # type: ignore[no-untyped-def]
    """Create tasks through the app's write path, without waking the sync engine."""
    state = running.app.state.ferry
    hook, state.records.on_local_change = state.records.on_local_change, None
    try:
        ids = []
        for i in range(count):
            row = state.records.create(TASKS, state.local_owner, {"title": f"task {i}", "description": "x" * 40}, None)
            ids.append(row["id"])
        return ids
    finally:
        state.records.on_local_change = hook


class Pair(NamedTuple):
    """Two fresh devices on one new account: `a` pushed `ids`, then `b` pulled them."""

    a: Any
    b: Any
    cb: httpx.Client  # `b`'s client
    ids: list[str]
    pushed: float  # seconds of `a`'s first round
    pulled: float  # seconds of `b`'s first round


@contextmanager
def fresh_pair(server_url: str, work: Path, username: str, count: int) -> Iterator[Pair]:
    """A fresh device pushes `count` new tasks (made before signing in: adopted at first
    sign-in) to a new account, then another fresh device signs in and pulls them."""
    with (
        serve(local_settings(work / f"{username}-pusher", use_keyring=False)) as a,
        serve(local_settings(work / f"{username}-puller", use_keyring=False)) as b,
    ):
        ca, cb = a.client(), b.client()
        try:
            ids = seed_local(a, count)
            connect(ca, server_url, username, register=True)
            wait_settled(a)
            pushed = first_round(a, "pushed", count)["seconds"]
            connect(cb, server_url, username, register=False)
            wait_settled(b)
            pulled = first_round(b, "pulled", count)["seconds"]
            yield Pair(a, b, cb, ids, pushed, pulled)
        finally:
            ca.close()
            cb.close()


def connect(client: httpx.Client, server_url: str, username: str, register: bool) -> None:
    r = client.post(
        "/api/sync/connect",
        json={"server_url": server_url, "username": username, "password": PASSWORD, "register": register},
    )
    r.raise_for_status()


def push_synthetic(server_url: str, username: str, total: int, random_ids: bool = False) -> None:
    """Fill an account with `total` new tasks, as another device would push them."""
    with httpx.Client(base_url=server_url, timeout=120) as http:
        http.post("/api/auth/register", json={"username": username, "password": PASSWORD}).raise_for_status()
        token = http.post("/api/auth/token", data={"username": username, "password": PASSWORD}).json()["access_token"]
        node = new_node_id()
        clock = HybridClock(node)
        batch = []
        first_ms = int(time.time() * 1000) - total * 60_000
        for i in range(total):
            stamp = clock.now()
            fields = {
                "title": f"task {i}",
                "description": "x" * 40,
                "due_date": None,
                "completed": False,
                # A person's tasks, made over time on a Ferry device: one a minute, with
                # Ferry's time-ordered ids (`--random-ids`: random UUIDs, dated alike).
                "created_at": ms_to_iso(1_767_225_600_000 if random_ids else first_ms + i * 60_000),
                "deleted": False,
            }
            batch.append(
                {
                    "id": str(uuid.uuid4()) if random_ids else new_id(),
                    "kind": "task",
                    "record_id": str(uuid.uuid4()) if random_ids else new_id(),
                    "fields": fields,
                    "stamps": dict.fromkeys(fields, stamp),
                }
            )
            if len(batch) == 5000 or i == total - 1:
                r = http.post(
                    "/api/sync/push",
                    json={"node": node, "changes": batch},
                    headers={"Authorization": f"Bearer {token}"},
                )
                r.raise_for_status()
                batch = []


def proc_memory(pid: int) -> dict[str, int]:
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = int(value.split()[0]) * 1024
    return out


def bench_big(server_url: str, work: Path, total: int, random_ids: bool = False) -> None:
    push_synthetic(server_url, "big", total, random_ids)
    data_dir = work / "big-device"
    env = {**os.environ, "FERRY_USE_KEYRING": "0"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "desktop", "--headless", "--data-dir", str(data_dir)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while not (data_dir / "runtime.json").exists():
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError("device process did not start")
            time.sleep(0.02)
        info = json.loads((data_dir / "runtime.json").read_text())
        wait_healthy(info["url"], proc)
        before = proc_memory(proc.pid)["VmRSS"]
        with httpx.Client(base_url=info["url"], headers={"Authorization": f"Bearer {info['token']}"}, timeout=60) as c:
            started = time.perf_counter()
            connect(c, server_url, "big", register=False)
            max_progress = 0
            deadline = time.monotonic() + 300
            while time.monotonic() < deadline:
                status = c.get("/api/sync/status").json()
                if status.get("progress"):
                    max_progress = max(max_progress, status["progress"]["done"])
                if status["state"] == "idle" and status["last_synced_at"]:
                    break
                # Every 50 ms: asked every 10 ms, answering took a sixth of the device's time.
                time.sleep(0.05)
            elapsed = time.perf_counter() - started
            count = int(c.get("/api/tasks", params={"limit": 1}).headers["x-total-count"])
        mem = proc_memory(proc.pid)
        emit(
            "pull_100k",
            records=count,
            seconds=round(elapsed, 3),
            rss_before_mb=round(before / 2**20, 1),
            peak_mb=round(mem["VmHWM"] / 2**20, 1),
            growth_mb=round((mem["VmHWM"] - before) / 2**20, 1),
            progress_seen=max_progress,
            ids="random UUIDs" if random_ids else "Ferry's time-ordered ids",
            note="includes sign-in (one Argon2 verification on the server)",
        )
        if count != total:
            raise RuntimeError(f"pulled {count} of {total}")
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


async def edit_to_visible(a, b, edits: int) -> list[float]:  # type: ignore[no-untyped-def]
    from websockets.asyncio.client import connect as ws_connect

    latencies = []
    async with httpx.AsyncClient(base_url=a.url, headers={"Authorization": f"Bearer {a.token}"}) as ca:
        task = (await ca.post("/api/tasks", json={"title": "latency probe"})).json()
        await asyncio.sleep(1.0)
        ws_url = b.url.replace("http://", "ws://") + "/ws"
        async with ws_connect(ws_url, additional_headers={"Authorization": f"Bearer {b.token}"}) as ws:
            for i in range(edits):
                title = f"probe {i} {uuid.uuid4().hex[:6]}"
                started = time.perf_counter()
                await ca.patch(f"/api/tasks/{task['id']}", json={"title": title})
                async with asyncio.timeout(10):
                    while True:
                        event = json.loads(await ws.recv())
                        if event["type"] == "task.updated" and event["data"].get("title") == title:
                            break
                latencies.append(time.perf_counter() - started)
                await asyncio.sleep(0.35)  # let the debounce window pass, as a person typing would
    return latencies


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", type=int, default=10_000)
    parser.add_argument("--big", type=int, default=100_000, help="0 to skip the large pull")
    parser.add_argument("--edits", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=5, help="push_10k and pull_10k: the median of this many")
    parser.add_argument(
        "--random-ids", action="store_true", help="the large pull's records get random UUIDs (worst case for indexes)"
    )
    args = parser.parse_args()
    import sqlite3

    emit(
        "machine",
        cpus=os.cpu_count(),
        python=platform.python_version(),
        sqlite=sqlite3.sqlite_version,
        server="python -m server (1 worker, SQLite) in a subprocess; devices in this process",
        note="load generator, devices and server share the same 2 cores",
    )
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        with ferry_server_process(work / "server") as server:
            # Pairs of fresh devices first (the last pair is the one the other cases use).
            pushes, pulls = [], []
            for rep in range(args.repeat - 1):
                with fresh_pair(server.url, work, f"pair{rep}", args.small) as pair:
                    pushes.append(pair.pushed)
                    pulls.append(pair.pulled)
            with fresh_pair(server.url, work, "alice", args.small) as pair:
                a, b, ids = pair.a, pair.b, pair.ids
                pushes.append(pair.pushed)
                pulls.append(pair.pulled)
                emit(
                    "push_10k",
                    records=args.small,
                    seconds=statistics.median(pushes),
                    runs=pushes,
                    note="the round that pushed them: push, pull (own changes excluded), digest check; median",
                )
                count = int(pair.cb.get("/api/tasks", params={"limit": 1}).headers["x-total-count"])
                emit(
                    "pull_10k",
                    records=count,
                    seconds=statistics.median(pulls),
                    runs=pulls,
                    note="the first round of a freshly signed-in device: pull, digest check; median",
                )
                noops = [timed_round(a) for _ in range(30)]
                emit(
                    "noop",
                    ms_p50=round(statistics.median(noops) * 1000, 2),
                    ms_max=round(max(noops) * 1000, 2),
                    rounds=len(noops),
                )
                state = a.app.state.ferry
                rounds = []
                for rep in range(7):
                    hook, state.records.on_local_change = state.records.on_local_change, None
                    for i, rid in enumerate(ids[rep * 100 : rep * 100 + 100]):
                        state.records.update(
                            TASKS, state.local_owner, rid, {"completed": True, "title": f"edited {rep}.{i}"}
                        )
                    state.records.on_local_change = hook
                    rounds.append(timed_round(a))
                emit(
                    "edits_100",
                    edits=100,
                    ms_p50=round(statistics.median(rounds) * 1000, 1),
                    ms_max=round(max(rounds) * 1000, 1),
                    rounds=len(rounds),
                    note="a round after 100 local edits (push, pull, digest check), median of 7",
                )
                wait_settled(b)
                latencies = asyncio.run(edit_to_visible(a, b, args.edits))
                emit(
                    "edit_to_visible",
                    edits=len(latencies),
                    ms_p50=round(statistics.median(latencies) * 1000, 1),
                    ms_p99=round(pct(latencies, 0.99) * 1000, 1),
                )
            if args.big:
                bench_big(server.url, work, args.big, args.random_ids)


if __name__ == "__main__":
    main()
