"""An order-independent digest of a user's records, so a device and the server can check they
hold the same data after a sync (sync rule 6).

Each record hashes to two 31-bit numbers; the digest is (count, sum of the first, sum of the
second) over all records, tombstones included. Sums need no ordering and no full scan in
Python: each side keeps every record's hash in its row and adds them up in SQL.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

import orjson

from sync.schema import FIELDS

MASK31 = 0x7FFF_FFFF


def record_hash(kind: str, record_id: str, fields: Mapping[str, Any]) -> tuple[int, int]:
    return values_hash(kind, record_id, [fields.get(name) for name in FIELDS[kind]])


def values_hash(kind: str, record_id: str, values: list[Any]) -> tuple[int, int]:
    """`record_hash` of a record whose values are at hand in the order of `FIELDS[kind]`."""
    payload = orjson.dumps([kind, record_id, values])
    value = int.from_bytes(hashlib.blake2b(payload, digest_size=8).digest(), "big")
    return value & MASK31, (value >> 31) & MASK31
