"""Property: whatever happens, every replica ends identical and no acknowledged write vanishes.

Hypothesis draws schedules of operations across three devices syncing through one shared
server: creating, editing and deleting tasks and notes, syncing, going offline and back,
losing the server's answer to a push, and restarting a device. Devices sync on their own
too (after each local change, on server notifications), so the schedules interleave with
real background syncs. After each schedule every device comes back online and the world
settles; then:
- every replica (the three devices and the server) holds exactly the same records, stamps
  and digest, with no full re-sync needed (`World.assert_converged`);
- no acknowledged write vanished: every record whose creation a device acknowledged exists
  unless a device acknowledged its deletion; every scalar field holds a value some device
  acknowledged writing; and every word any device inserted into a note body (each a unique
  token; bodies only ever grow) is still in that note or one of its conflict copies, unless
  the note was deleted.

The suite runs 200 schedules (about a couple of minutes). More:
    FERRY_SYNC_EXAMPLES=10000 ./ferry.sh test tests/test_sync_property.py
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.syncworld import World, sync_world

EXAMPLES = int(os.environ.get("FERRY_SYNC_EXAMPLES", "200"))
DEVICES = 3
USER = "propertyuser"
TOKEN = re.compile(r"w[0-9a-f]{8}")

device_index = st.integers(0, DEVICES - 1)
pick = st.integers(0, 10_000)  # which record, modulo what the device knows
operations = st.one_of(
    st.tuples(st.just("create_task"), device_index),
    st.tuples(st.just("create_note"), device_index),
    st.tuples(st.just("complete"), device_index, pick, st.booleans()),
    st.tuples(st.just("due"), device_index, pick, st.sampled_from([None, "2026-12-01", "2027-01-15"])),
    st.tuples(st.just("grow_note"), device_index, pick, st.floats(0, 1)),
    st.tuples(st.just("delete"), device_index, pick, st.sampled_from(["task", "note"])),
    st.tuples(st.just("sync"), device_index),
    st.tuples(st.just("offline"), device_index),
    st.tuples(st.just("online"), device_index),
    st.tuples(st.just("lose_answer"), device_index),
    st.tuples(st.just("restart"), device_index),
)


@dataclass
class Ledger:
    """What the devices acknowledged during one schedule."""

    created: dict[str, str] = field(default_factory=dict)  # record id -> kind
    deleted: set[str] = field(default_factory=set)
    scalars: dict[tuple[str, str], set[Any]] = field(default_factory=dict)  # (id, field) -> values
    tokens: dict[str, set[str]] = field(default_factory=dict)  # note id -> words inserted


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    root: Path = tmp_path_factory.mktemp("property")
    with sync_world(root, devices=DEVICES) as w:
        w.sign_in_all(USER)
        w.settle()
        yield w


def _known(world: World, device: int, kind: str) -> list[dict[str, Any]]:
    return world.devices[device].list(kind)


def _write(world: World, device: int, method: str, kind: str, record_id: str, body: Any = None) -> bool:
    """A PATCH or DELETE; False when a background sync removed the record in the meantime
    (then nothing was acknowledged)."""
    path = f"{'/api/tasks' if kind == 'task' else '/api/notes'}/{record_id}"
    r = world.devices[device].http.request(method, path, json=body)
    assert r.status_code in (200, 204, 404), f"{method} {path}: {r.status_code} {r.text}"
    return r.status_code != 404


def _run(world: World, ledger: Ledger, op: tuple[Any, ...]) -> None:
    name, i = op[0], op[1]
    device = world.devices[i]
    if name == "create_task":
        task = device.create("task", title=f"task {uuid.uuid4().hex[:6]}")
        ledger.created[task["id"]] = "task"
        ledger.scalars[(task["id"], "completed")] = {False}
        ledger.scalars[(task["id"], "due_date")] = {None}
    elif name == "create_note":
        word = f"w{uuid.uuid4().hex[:8]}"
        note = device.create("note", title="note", body=word)
        ledger.created[note["id"]] = "note"
        ledger.tokens[note["id"]] = {word}
    elif name in ("complete", "due"):
        tasks = _known(world, i, "task")
        if tasks:
            task = tasks[op[2] % len(tasks)]
            column, value = ("completed", op[3]) if name == "complete" else ("due_date", op[3])
            if _write(world, i, "PATCH", "task", task["id"], {column: value}):
                ledger.scalars.setdefault((task["id"], column), set()).add(value)
    elif name == "grow_note":
        notes = [n for n in _known(world, i, "note") if n["conflict_of"] is None]
        if notes:
            note = notes[op[2] % len(notes)]
            body = note["body"]
            cut = round(op[3] * len(body))
            # Insert at a word boundary so that every word stays whole.
            while 0 < cut < len(body) and body[cut - 1] != " ":
                cut -= 1
            word = f"w{uuid.uuid4().hex[:8]}"
            grown = f"{body[:cut]}{word} {body[cut:]}".strip()
            if _write(world, i, "PATCH", "note", note["id"], {"body": grown}):
                ledger.tokens.setdefault(note["id"], set()).add(word)
    elif name == "delete":
        kind = op[3]
        records = [r for r in _known(world, i, kind) if r["conflict_of"] is None]
        if records:
            record = records[op[2] % len(records)]
            if _write(world, i, "DELETE", kind, record["id"]):
                ledger.deleted.add(record["id"])
    elif name == "sync":
        device.sync_now()
    elif name == "offline":
        device.offline()
    elif name == "online":
        device.online()
    elif name == "lose_answer":
        device.proxy.lose_next_responses(1)
    elif name == "restart":
        device.restart()


def _check_nothing_vanished(world: World, ledger: Ledger) -> None:
    device = world.devices[0]
    tasks = {t["id"]: t for t in device.list("task")}
    notes = {n["id"]: n for n in device.list("note")}
    live = {**tasks, **notes}
    for record_id, kind in ledger.created.items():
        if record_id not in ledger.deleted:
            assert record_id in live, f"acknowledged {kind} {record_id} vanished"
    for (record_id, column), values in ledger.scalars.items():
        if record_id in tasks:
            held = tasks[record_id][column]
            assert held in values, f"{record_id}.{column}={held!r} was never written"
    copies: dict[str, list[dict[str, Any]]] = {}
    for note in notes.values():
        if note["conflict_of"]:
            copies.setdefault(note["conflict_of"], []).append(note)
    for note_id, words in ledger.tokens.items():
        if note_id in ledger.deleted or note_id not in notes:
            continue
        text = " ".join(n["body"] for n in [notes[note_id], *copies.get(note_id, [])])
        missing = words - set(TOKEN.findall(text))
        assert not missing, f"note {note_id} lost {sorted(missing)}"


@pytest.mark.timeout(max(900, EXAMPLES * 6))
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    database=None,
)
@given(schedule=st.lists(operations, min_size=1, max_size=12))
def test_random_schedules_converge_and_lose_nothing(world: World, schedule: list[tuple[Any, ...]]) -> None:
    ledger = Ledger()
    try:
        for op in schedule:
            _run(world, ledger, op)
    finally:
        for device in world.devices:
            device.online()
    world.settle(timeout=120, max_rounds=12)
    world.assert_converged(USER)
    _check_nothing_vanished(world, ledger)
