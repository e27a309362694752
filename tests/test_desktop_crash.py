"""Crash safety: 20 rounds of concurrent writes through the local API of `python -m desktop
--headless`, each ended by `kill -9` at a random moment (one during the very first start,
while the schema is being created), then a restart. After every crash the database passes
`PRAGMA integrity_check`, every write the API acknowledged is there (and in the change log),
nothing appears that was never sent, and an unacknowledged write is either fully there or not.

The seed is printed on failure; FERRY_CRASH_SEED=N replays a run.
"""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.desktop_harness import ARTIFACTS, App

ROUNDS = 20
WRITERS = 3
DELETE = "<deleted>"
HEADLESS = [sys.executable, "-m", "desktop", "--headless"]


@dataclass
class Record:
    kind: str  # "tasks" or "notes"
    acked: str | None = None  # the value last acknowledged (None: not created yet; DELETE)
    inflight: str | None = None  # a write sent but not answered when the process died

    def text(self, value: str) -> str:
        """What the database holds for `value`: a task's title, or a note's (long) body."""
        return value if self.kind == "tasks" else value * 200


class Model:
    """What the API acknowledged, shared by the writer threads."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.records: dict[str, Record] = {}
        self.acked_writes = 0
        self.errors: list[str] = []


def writer(base: str, token: str, model: Model, rng: random.Random) -> None:
    """Writes until the app dies under it: creates, edits and deletes of tasks and notes."""
    mine: list[Record] = []
    ids: dict[int, str] = {}
    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=10) as client:
        while True:
            live = [r for r in mine if r.acked not in (None, DELETE)]
            roll = rng.random()
            if not live or roll < 0.45:
                record = Record("tasks" if rng.random() < 0.7 else "notes")
                record_id, value = str(uuid.uuid4()), f"{record.kind[:4]} {uuid.uuid4().hex[:12]}"
                field = "title" if record.kind == "tasks" else "body"
                body: dict | None = {"id": record_id, "title": "a note", field: record.text(value)}
                with model.lock:
                    model.records[record_id] = record
                mine.append(record)
                ids[id(record)] = record_id
                method, path, expect = "POST", f"/api/{record.kind}", 201
            else:
                record = rng.choice(live)
                path = f"/api/{record.kind}/{ids[id(record)]}"
                if roll < 0.9:
                    value = f"edit {uuid.uuid4().hex[:12]}"
                    body = {"title" if record.kind == "tasks" else "body": record.text(value)}
                    method, expect = "PATCH", 200
                else:
                    value, body, method, expect = DELETE, None, "DELETE", 204
            record.inflight = value
            try:
                response = client.request(method, path, json=body)
            except httpx.HTTPError:
                return  # the process died with this write in flight
            if response.status_code != expect:
                model.errors.append(f"{method} {path}: {response.status_code} {response.text[:300]}")
                return
            with model.lock:
                record.acked, record.inflight = record.inflight, None
                model.acked_writes += 1


def stored(db: Path) -> dict[str, tuple[str, bool, int]]:
    """Every task and note in the file: id -> (title or body, deleted, change-log rows)."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        tables = {name for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if "changes" not in tables:
            return {}  # killed before the schema was made
        changes = dict(conn.execute("SELECT record_id, count(*) FROM changes GROUP BY record_id").fetchall())
        found = {}
        for table, column in (("tasks", "title"), ("notes", "body")):
            for record_id, text, deleted in conn.execute(f"SELECT id, {column}, deleted FROM {table}"):
                found[record_id] = (text, bool(deleted), changes.get(record_id, 0))
        return found
    finally:
        conn.close()


def check(db: Path, model: Model) -> int:
    """Checks the file against what was acknowledged, then takes what it holds as the truth
    for the writes that were in flight; returns the number of live records."""
    found = stored(db)
    for record_id, record in model.records.items():
        present = found.get(record_id)
        if present is None or present[1]:
            state = None if present is None else DELETE
            # A deletion may leave a tombstone or (once compacted) nothing.
            allowed = {None} if record.acked is None else {None, DELETE} if record.acked == DELETE else set()
            if record.inflight == DELETE:
                allowed |= {None, DELETE}
            assert state in allowed, f"{record.kind} {record_id}: acknowledged {record.acked!r}, the file has {state}"
            record.acked = state
        else:
            values = {v: record.text(v) for v in (record.acked, record.inflight) if v not in (None, DELETE)}
            matching = [v for v, text in values.items() if text == present[0]]
            assert matching, (
                f"{record.kind} {record_id}: expected one of {list(values)}, the file has {present[0][:40]!r}"
            )
            record.acked = matching[0]
        if present is not None:
            assert present[2] >= 1, f"{record_id} is stored but has no row in the change log"
        record.inflight = None
    phantoms = set(found) - set(model.records)
    assert not phantoms, f"records nobody wrote: {phantoms}"
    return sum(1 for _, deleted, _ in found.values() if not deleted)


def test_kill_9_at_random_moments_loses_no_acknowledged_write(tmp_path: Path) -> None:
    seed = int(os.environ.get("FERRY_CRASH_SEED", random.randrange(1 << 30)))
    rng = random.Random(seed)
    data_dir = tmp_path / "data"
    db = data_dir / "ferry.db"
    model = Model()
    killed_during = []
    for round_no in range(ROUNDS + 2):
        app = App(HEADLESS, data_dir, None).start()
        try:
            assert app.proc is not None
            if round_no == 0:
                # The first start creates the schema: die somewhere in it, or just after.
                time.sleep(rng.uniform(0.3, 1.6))
                killed_during.append("ready" if "local API at" in app.log() else "start")
                app.proc.send_signal(signal.SIGKILL)
                app.proc.wait(10)
                continue
            app.wait_log("local API at", 60)
            info = app.runtime()
            assert info["pid"] == app.proc.pid  # a stale runtime file from the crash was replaced
            live = check(db, model) if db.exists() else 0
            with app.api() as api:
                listed = api.get("/api/tasks", params={"limit": 1})
                notes = api.get("/api/notes", params={"limit": 1})
                assert int(listed.headers["x-total-count"]) + int(notes.headers["x-total-count"]) == live
            if round_no == ROUNDS + 1:
                break
            threads = [
                threading.Thread(target=writer, args=(info["url"], info["token"], model, random.Random(rng.random())))
                for _ in range(WRITERS)
            ]
            for thread in threads:
                thread.start()
            time.sleep(rng.uniform(0.02, 0.8))
            app.proc.send_signal(signal.SIGKILL)
            app.proc.wait(10)
            for thread in threads:
                thread.join(15)
                assert not thread.is_alive()
            assert not model.errors, model.errors
            killed_during.append("writes")
        except BaseException:
            print(f"FERRY_CRASH_SEED={seed} (round {round_no})")
            raise
        finally:
            app.stop()
    # Every round wrote something, and the acknowledged writes were checked after each crash.
    assert model.acked_writes >= ROUNDS, model.acked_writes
    assert killed_during.count("writes") == ROUNDS
    ARTIFACTS.mkdir(exist_ok=True)
    figures = {"seed": seed, "acknowledged_writes": model.acked_writes, "records": len(model.records)}
    (ARTIFACTS / "crash-figures.json").write_text(json.dumps({**figures, "kills": killed_during}) + "\n")
