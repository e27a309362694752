"""Benchmark of the local API over real HTTP on loopback (not a pytest test; run on demand).

    .venv/bin/python tests/bench/api_bench.py [--n 1000] [--synchronous FULL|NORMAL] [--tasks 10000]

The app is the desktop's own: `server.app.create_app` with local Settings in a temporary data
directory, served by uvicorn in a thread (`desktop.local_server.LocalServer` on a socket from
`bind_loopback`), and driven by one `httpx.Client` with keep-alive, one request at a time. The
database is first seeded with `--tasks` tasks through `server.records` (the same code the API
writes with), then each operation runs `--n` times after a short warm-up:

- create: POST /api/tasks
- get:    GET /api/tasks/{id} of a random seeded task
- patch:  PATCH /api/tasks/{id} (a new title each time, so every request writes)
- list:   GET /api/tasks?limit=100&skip=<random> over the seeded tasks (run first, so it is
          exactly 100 of `--tasks`)

Output: JSON lines, one with the machine and settings, then one per operation with p50 and p99
latency (ms, as the client sees it, including httpx's own time in this process) and requests
per second. Goals, for information: create p50 <= 2 ms and p99 <= 10 ms; list p50 <= 5 ms.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx
from sqlalchemy import text

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from desktop.local_server import LocalServer, bind_loopback  # noqa: E402
from server.app import create_app  # noqa: E402
from server.records import TASKS  # noqa: E402
from server.settings import Settings  # noqa: E402

TOKEN = "bench-token-" + "x" * 32
OWNER = ""  # the desktop's one person
OPERATIONS = ("list", "get", "patch", "create")


def settings_for(data_dir: Path, synchronous: str) -> Settings:
    return Settings(mode="local", data_dir=data_dir, local_token=TOKEN, sqlite_synchronous=synchronous)


def seed(data_dir: Path, count: int) -> tuple[list[str], float]:
    """`count` tasks written through `server.records`, one transaction each as the API does;
    with synchronous=NORMAL so that seeding does not wait for a disk flush per task."""
    app = create_app(settings_for(data_dir, "NORMAL"))
    records = app.state.ferry.records
    rng = random.Random(1)
    started = time.perf_counter()
    ids = []
    for i in range(count):
        values = {
            "title": f"seeded task {i}",
            "description": "some words " * rng.randint(0, 20),
            "due_date": f"2031-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}" if i % 3 else None,
            "completed": i % 7 == 0,
        }
        row = records.create(TASKS, OWNER, values, None)
        assert row is not None
        ids.append(row["id"])
    elapsed = time.perf_counter() - started
    app.state.ferry.db.dispose()
    return ids, elapsed


def percentile(sorted_ms: list[float], fraction: float) -> float:
    """Nearest-rank percentile of an ascending list."""
    index = max(0, min(len(sorted_ms) - 1, round(fraction * len(sorted_ms) + 0.5) - 1))
    return sorted_ms[index]


def measure(name: str, n: int, warmup: int, call: Callable[[int], httpx.Response], expect: int) -> dict:
    for i in range(warmup):
        response = call(-1 - i)
        assert response.status_code == expect, (name, response.status_code, response.text[:300])
    timings = []
    started = time.perf_counter()
    for i in range(n):
        t0 = time.perf_counter()
        response = call(i)
        timings.append((time.perf_counter() - t0) * 1000)
        if response.status_code != expect:
            raise SystemExit(f"{name}: {response.status_code} {response.text[:300]}")
    total = time.perf_counter() - started
    timings.sort()
    return {
        "op": name,
        "n": n,
        "p50_ms": round(percentile(timings, 0.50), 3),
        "p99_ms": round(percentile(timings, 0.99), 3),
        "mean_ms": round(sum(timings) / n, 3),
        "max_ms": round(timings[-1], 3),
        "rps": round(n / total, 1),
    }


def machine_info(app, synchronous: str, seeded: int, seed_seconds: float) -> dict:  # type: ignore[no-untyped-def]
    with app.state.ferry.db.write_engine.connect() as conn:
        in_effect = conn.execute(text("PRAGMA synchronous")).scalar_one()
        journal = conn.execute(text("PRAGMA journal_mode")).scalar_one()
    return {
        "machine": {
            "cpu_count": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "sqlite_version": sqlite3.sqlite_version,
        },
        "sqlite_synchronous": synchronous,
        "sqlite_synchronous_in_effect": {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}.get(in_effect, in_effect),
        "sqlite_journal_mode": journal,
        "seeded_tasks": seeded,
        "seed_seconds": round(seed_seconds, 2),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=1000, help="measured requests per operation (default 1000)")
    parser.add_argument("--synchronous", choices=("FULL", "NORMAL"), default="FULL", help="SQLite synchronous")
    parser.add_argument("--tasks", type=int, default=10_000, help="tasks to seed (default 10000)")
    parser.add_argument("--warmup", type=int, default=50, help="unmeasured requests before each operation")
    parser.add_argument("--only", choices=OPERATIONS, action="append", help="run only these operations")
    args = parser.parse_args(argv)
    operations = [op for op in OPERATIONS if not args.only or op in args.only]

    with tempfile.TemporaryDirectory(prefix="ferry-bench-") as tmp:
        data_dir = Path(tmp)
        ids, seed_seconds = seed(data_dir, args.tasks)
        app = create_app(settings_for(data_dir, args.synchronous))
        server = LocalServer(app, bind_loopback())
        server.start()
        try:
            print(json.dumps(machine_info(app, args.synchronous, len(ids), seed_seconds)), flush=True)
            rng = random.Random(2)
            headers = {"Authorization": f"Bearer {TOKEN}"}
            with httpx.Client(base_url=server.url, headers=headers, timeout=30) as client:
                total = client.get("/api/tasks", params={"limit": 1}).headers["x-total-count"]
                assert int(total) == args.tasks, total
                calls: dict[str, tuple[Callable[[int], httpx.Response], int]] = {
                    "list": (
                        lambda i: client.get(
                            "/api/tasks", params={"limit": 100, "skip": rng.randrange(0, max(1, args.tasks - 100))}
                        ),
                        200,
                    ),
                    "get": (lambda i: client.get(f"/api/tasks/{rng.choice(ids)}"), 200),
                    "patch": (
                        lambda i: client.patch(f"/api/tasks/{rng.choice(ids)}", json={"title": f"patched {i}"}),
                        200,
                    ),
                    "create": (
                        lambda i: client.post(
                            "/api/tasks", json={"title": f"bench task {i}", "description": "created by the bench"}
                        ),
                        201,
                    ),
                }
                for name in operations:
                    call, expect = calls[name]
                    result = measure(name, args.n, args.warmup, call, expect)
                    result["synchronous"] = args.synchronous
                    print(json.dumps(result), flush=True)
        finally:
            server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
