"""What the API shows of a record, and what `/ws` events carry: one shape, ready for JSON.

Light on purpose (the standard library only): the desktop's first page is served from it
before the rest of the API has loaded (`server.boot`).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

READ_FIELDS = {
    "task": ("id", "title", "description", "due_date", "completed", "conflict_of"),
    "note": ("id", "title", "body", "done", "conflict_of"),
}


def ms_to_iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat(timespec="milliseconds")


def read_view(kind: str, row: Mapping[str, Any]) -> dict[str, Any]:
    """What the API shows of a record (and what `/ws` events carry), ready for JSON."""
    out = {name: row[name] for name in READ_FIELDS[kind]}
    out["created_at"] = ms_to_iso(row["created_ms"])
    out["updated_at"] = ms_to_iso(row["updated_ms"])
    return out
