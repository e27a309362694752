"""Shared-server load benchmark: prints one JSON line per figure (not part of the test suite).

    .venv/bin/python tests/bench/server_load.py [--devices 100,200,300,400,500] [--seconds 20]
        [--workers 2] [--per-account 2] [--changes 3] [--big 0]

A real `python -m server --workers N` on a throwaway PostgreSQL database (127.0.0.1:5432,
made for the run and dropped after it). Simulated devices speak the wire protocol from this
process, each with its own async httpx client (one connection, as a desktop has). Each
belongs to an account shared with `--per-account - 1` other devices, and every 2 s (first
cycle at a random offset) it makes `--changes` changes — a new task, the rest toggling
`completed` on tasks it knows, its own or its other devices' — and syncs as the desktop's
engine does: one push that also asks for the first page of everything after its cursor
(leaving out its own node), with the account's digest on the last page, then further pull
pages only if there are more.

For each device count (ascending, the same accounts and server throughout), after
`--seconds` of load: cycles per second, cycle latency p50/p99 (the whole round), request
latency p50/p99, errors (any non-2xx answer or transport error), and convergence: every
device pulls to the end and its replica (last-writer-wins per field over what it made and
what it pulled) must equal its account's full server log replayed the same way.
`largest_ok` names the largest count whose cycle p99 stayed within 250 ms with no errors.

The load generator runs on the same machine and shares its cores with the server and
PostgreSQL; the figures are for the whole machine, not for the server alone.

`--big N`: one account pushes N tasks in batches of 5,000, then the time one fresh device
takes to pull all of them over the wire (pages of 5,000; parsing included, no local database).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import random
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson
import psycopg

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from sync.hlc import HybridClock, new_node_id  # noqa: E402
from sync.ids import new_id  # noqa: E402
from tests.servers import ferry_server_process  # noqa: E402

PASSWORD = "benchmark-password"
PG_DSN = os.environ.get("FERRY_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
CYCLE_SECONDS = 2.0
P99_GOAL_MS = 250.0


def emit(case: str, **figures: object) -> None:
    print(json.dumps({"bench": "server_load", "case": case, **figures}), flush=True)


def pct(values: list[float], p: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


@dataclass
class Device:
    token: str
    account: int
    clock: HybridClock = field(default_factory=lambda: HybridClock(new_node_id()))
    cursor: int = 0
    #: its own connection, as a desktop's engine has (None: the shared client)
    client: httpx.AsyncClient | None = None
    #: record id -> field -> (stamp, value): what this device holds
    replica: dict[str, dict[str, tuple[str, Any]]] = field(default_factory=dict)

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def apply(self, changes: list[dict[str, Any]]) -> None:
        for change in changes:
            record = self.replica.setdefault(change["record_id"], {})
            for name, value in change["fields"].items():
                stamp = change["stamps"][name]
                if name not in record or record[name][0] < stamp:
                    record[name] = (stamp, value)

    def make_changes(self, count: int) -> list[dict[str, Any]]:
        out = []
        rid = new_id()
        out.append({"id": new_id(), "kind": "task", "record_id": rid,
                    "fields": {"title": f"task {rid[-8:]}", "completed": False},
                    "stamps": {"title": self.clock.now(), "completed": self.clock.now()}})  # fmt: skip
        known = list(self.replica)
        for _ in range(count - 1):
            if not known:
                break
            target = random.choice(known)
            done = not self.replica[target].get("completed", ("", False))[1]
            out.append({"id": new_id(), "kind": "task", "record_id": target, "fields": {"completed": done},
                        "stamps": {"completed": self.clock.now()}})  # fmt: skip
        return out


@dataclass
class Stats:
    cycles: list[float] = field(default_factory=list)
    requests: list[float] = field(default_factory=list)
    errors: int = 0
    error_kinds: dict[str, int] = field(default_factory=dict)

    def error(self, what: str) -> None:
        self.errors += 1
        self.error_kinds[what] = self.error_kinds.get(what, 0) + 1


async def request(client: httpx.AsyncClient, stats: Stats, method: str, url: str, body: Any = None, **kw: Any) -> Any:
    """JSON in and out with orjson, as the desktop's engine sends and reads it."""
    started = time.perf_counter()
    if body is not None:
        kw["content"] = orjson.dumps(body)
        kw["headers"] = {**kw.get("headers", {}), "Content-Type": "application/json"}
    try:
        response = await client.request(method, url, **kw)
    except httpx.HTTPError as exc:
        stats.error(type(exc).__name__)
        return None
    stats.requests.append((time.perf_counter() - started) * 1000)
    if response.status_code >= 300:
        stats.error(str(response.status_code))
        return None
    return orjson.loads(response.content)


async def pull_to_end(
    client: httpx.AsyncClient, stats: Stats, device: Device, limit: int = 2000, page: dict[str, Any] | None = None
) -> bool:
    """Pages until the end of the log; `page`: the first one, if the push brought it."""
    start = device.cursor
    for _ in range(10_000):
        if page is None:
            # As the desktop's engine asks: the digest on the last page whenever the log moved.
            digest = "changed" if device.cursor == start else "yes"
            params = {"after": device.cursor, "limit": limit, "exclude_node": device.clock.node, "digest": digest}
            page = await request(client, stats, "GET", "/api/sync/pull", params=params, headers=device.headers)
            if page is None:
                return False
        device.apply(page["changes"])
        device.cursor = page["next"]
        if not page["more"]:
            return True
        page = None
    return False


async def cycle(client: httpx.AsyncClient, stats: Stats, device: Device, changes: int) -> None:
    """A round as the desktop's engine makes it: the push asks for the pull's first page
    (with the digest when the log moved), and further pages follow only if there are more."""
    started = time.perf_counter()
    batch = device.make_changes(changes)
    ask = {"after": device.cursor, "digest": "changed"}
    body = {"node": device.clock.node, "changes": batch, "pull": ask}
    pushed = await request(client, stats, "POST", "/api/sync/push", body, headers=device.headers)
    if pushed is None:
        return
    device.apply(batch)
    if await pull_to_end(client, stats, device, page=pushed["pull"]):
        stats.cycles.append((time.perf_counter() - started) * 1000)


async def run_level(client: httpx.AsyncClient, devices: list[Device], seconds: float, changes: int) -> Stats:
    stats = Stats()
    stop_at = time.monotonic() + seconds

    async def device_loop(device: Device) -> None:
        await asyncio.sleep(random.uniform(0, CYCLE_SECONDS))
        next_at = time.monotonic()
        while time.monotonic() < stop_at:
            await cycle(device.client or client, stats, device, changes)
            next_at += CYCLE_SECONDS
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))

    await asyncio.gather(*(device_loop(d) for d in devices))
    return stats


async def converged(client: httpx.AsyncClient, devices: list[Device]) -> tuple[bool, int, dict[str, int]]:
    """Every device pulls to the end; its replica must equal its account's whole log."""
    stats = Stats()
    sem = asyncio.Semaphore(50)

    async def finish(device: Device) -> None:
        async with sem:
            await pull_to_end(client, stats, device)

    await asyncio.gather(*(finish(d) for d in devices))
    bad = 0
    by_account: dict[int, list[Device]] = {}
    for device in devices:
        by_account.setdefault(device.account, []).append(device)
    for group in by_account.values():
        truth = Device(token=group[0].token, account=group[0].account)
        truth.clock = HybridClock(new_node_id())
        async with sem:
            ok = await pull_to_end(client, stats, truth, limit=5000)
        bad += sum(1 for d in group if not ok or d.replica != truth.replica)
    return bad == 0 and stats.errors == 0, bad, stats.error_kinds


async def sign_up(client: httpx.AsyncClient, count: int, prefix: str) -> list[str]:
    sem = asyncio.Semaphore(8)

    async def one(i: int) -> str:
        name = f"{prefix}{i}"
        async with sem:
            r = await client.post("/api/auth/register", json={"username": name, "password": PASSWORD})
            assert r.status_code == 201, r.text
            r = await client.post("/api/auth/token", data={"username": name, "password": PASSWORD})
            assert r.status_code == 200, r.text
            return r.json()["access_token"]

    return await asyncio.gather(*(one(i) for i in range(count)))


async def load(url: str, args: argparse.Namespace) -> None:
    levels = sorted(int(x) for x in args.devices.split(","))
    most = levels[-1]
    accounts = (most + args.per_account - 1) // args.per_account
    limits = httpx.Limits(max_connections=most + 50, max_keepalive_connections=most + 50)
    async with contextlib.AsyncExitStack() as stack:
        client = await stack.enter_async_context(httpx.AsyncClient(base_url=url, timeout=30, limits=limits))
        started = time.perf_counter()
        tokens = await sign_up(client, accounts, "load")
        emit("setup", accounts=accounts, seconds=round(time.perf_counter() - started, 1))
        # Each device its own client with one connection, as each desktop has. (One client
        # shared by hundreds of devices spent most of the generator's time in its connection
        # pool, which looks through every waiting request and connection on each request.)
        own = httpx.Limits(max_connections=1, max_keepalive_connections=1)
        all_devices = [
            Device(
                tokens[i // args.per_account],
                i // args.per_account,
                client=await stack.enter_async_context(httpx.AsyncClient(base_url=url, timeout=30, limits=own)),
            )
            for i in range(most)
        ]
        largest_ok = 0
        for count in levels:
            devices = all_devices[:count]
            cpu_before = time.process_time()
            stats = await run_level(client, devices, args.seconds, args.changes)
            generator_cpu = (time.process_time() - cpu_before) / args.seconds
            ok, diverged, check_errors = await converged(client, devices)
            p99 = pct(stats.cycles, 99)
            if p99 <= P99_GOAL_MS and stats.errors == 0 and ok:
                largest_ok = count
            emit(
                "cycle",
                devices=count,
                accounts=len({d.account for d in devices}),
                workers=args.workers,
                seconds=args.seconds,
                cycles=len(stats.cycles),
                cycles_per_s=round(len(stats.cycles) / args.seconds, 1),
                p50_ms=round(pct(stats.cycles, 50), 1),
                p99_ms=round(p99, 1),
                request_p50_ms=round(pct(stats.requests, 50), 1),
                request_p99_ms=round(pct(stats.requests, 99), 1),
                errors=stats.errors,
                error_kinds=stats.error_kinds,
                converged=ok,
                diverged_devices=diverged,
                convergence_check_errors=check_errors,
                generator_cpu_cores=round(generator_cpu, 2),  # this process's share of the machine
            )
        emit("summary", largest_ok=largest_ok, p99_goal_ms=P99_GOAL_MS, levels=levels)

        if args.big:
            await big_pull(client, args.big)


async def big_pull(client: httpx.AsyncClient, total: int) -> None:
    (token,) = await sign_up(client, 1, "big")
    headers = {"Authorization": f"Bearer {token}"}
    clock = HybridClock(new_node_id())
    pushes = []
    for start in range(0, total, 5000):
        changes = [
            {"id": new_id(), "kind": "task", "record_id": new_id(), "fields": {"title": f"task {i}"},
             "stamps": {"title": clock.now()}}
            for i in range(start, min(total, start + 5000))
        ]  # fmt: skip
        began = time.perf_counter()
        r = await client.post(
            "/api/sync/push",
            content=orjson.dumps({"node": clock.node, "changes": changes}),
            headers={**headers, "Content-Type": "application/json"},
            timeout=300,
        )
        assert r.status_code == 200, r.text
        pushes.append(time.perf_counter() - began)
    emit("push_big", records=total, batches=len(pushes), seconds=round(sum(pushes), 2),
         slowest_batch_s=round(max(pushes), 2))  # fmt: skip
    reader = Device(token, 0)
    stats = Stats()
    started = time.perf_counter()
    ok = await pull_to_end(client, stats, reader, limit=5000)
    emit("pull_big", records=len(reader.replica), seconds=round(time.perf_counter() - started, 2), ok=ok)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--devices", default="100,200,300,400,500")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--per-account", type=int, default=2)
    parser.add_argument("--changes", type=int, default=3)
    parser.add_argument("--big", type=int, default=0)
    args = parser.parse_args()
    emit("machine", cpus=os.cpu_count(), python=platform.python_version(), load_generator="same machine")

    name = f"ferry_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_DSN, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    url = PG_DSN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://") + f"/{name}"
    try:
        with tempfile.TemporaryDirectory() as tmp:
            env = {"FERRY_ACCESS_LOG": "false", "FERRY_LOG_LEVEL": "warning"}
            with ferry_server_process(
                Path(tmp), "--database-url", url, "--workers", str(args.workers), env=env
            ) as server:
                asyncio.run(load(server.url, args))
    finally:
        with psycopg.connect(PG_DSN, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


if __name__ == "__main__":
    main()
