"""The hybrid logical clock that stamps every field write.

A stamp is (wall milliseconds, counter, node id). It is rendered as a fixed-width string
`WWWWWWWWWWWWWWW-CCCCCC-NNNNNNNNNNNNNNNN` so that comparing two stamps as strings compares
them as tuples: the later wall time wins, then the higher counter, then the node id breaks
a tie. Fixed width also lets databases order and compare stamps without parsing them.
"""

from __future__ import annotations

import re
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

STAMP_RE = re.compile(r"^(\d{15})-(\d{6})-([0-9a-f]{16})$")
NODE_RE = re.compile(r"^[0-9a-f]{16}$")
MAX_COUNTER = 999_999


def new_node_id() -> str:
    """A random 64-bit node id, as 16 lowercase hex digits."""
    return secrets.token_hex(8)


def wall_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass(frozen=True, order=True, slots=True)
class Stamp:
    wall: int
    counter: int
    node: str

    def __str__(self) -> str:
        return f"{self.wall:015d}-{self.counter:06d}-{self.node}"

    @classmethod
    def parse(cls, text: str) -> Stamp:
        m = STAMP_RE.match(text)
        if m is None:
            raise ValueError(f"not a clock stamp: {text!r}")
        return cls(int(m.group(1)), int(m.group(2)), m.group(3))


def is_stamp(text: object) -> bool:
    return isinstance(text, str) and STAMP_RE.match(text) is not None


class HybridClock:
    """A thread-safe hybrid logical clock for one node.

    `now()` never returns a stamp less than or equal to one it returned or observed before,
    even if the wall clock steps backwards: the wall part then stays put and the counter
    advances. A clock running ahead elsewhere only pulls this one forward through `observe`.
    """

    def __init__(self, node: str, physical: Callable[[], int] = wall_ms) -> None:
        if not NODE_RE.match(node):
            raise ValueError(f"bad node id {node!r}")
        self.node = node
        self._physical = physical
        self._wall = 0
        self._counter = 0
        self._lock = threading.Lock()

    def now(self) -> str:
        with self._lock:
            phys = self._physical()
            if phys > self._wall:
                self._wall, self._counter = phys, 0
            else:
                self._advance_counter()
            return str(Stamp(self._wall, self._counter, self.node))

    def observe(self, stamp: str) -> None:
        """Move the clock past a stamp seen from another node."""
        remote = Stamp.parse(stamp)
        with self._lock:
            if (remote.wall, remote.counter) >= (self._wall, self._counter):
                self._wall, self._counter = remote.wall, remote.counter

    def _advance_counter(self) -> None:
        if self._counter >= MAX_COUNTER:
            # Borrow the next millisecond rather than overflow the fixed-width counter.
            self._wall += 1
            self._counter = 0
        else:
            self._counter += 1
