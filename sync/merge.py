"""The merge rules, as pure functions: given what a replica holds and a change, what it holds next.

Rule: per field, the change's value is taken when its stamp is later than the stamp held
(stamps compare as strings; see `sync.hlc`). Applying the same changes in any order, any
number of times, therefore gives the same record everywhere.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Merged:
    """The outcome of applying one change to one record."""

    fields: dict[str, Any]
    stamps: dict[str, str]
    #: the fields whose value this change set (empty when the change lost on every field)
    taken: dict[str, Any] = field(default_factory=dict)


def merge_fields(
    fields: Mapping[str, Any],
    stamps: Mapping[str, str],
    incoming: Mapping[str, Any],
    incoming_stamps: Mapping[str, str],
) -> Merged:
    """Last-writer-wins per field; a missing stamp loses to any stamp."""
    out_fields = dict(fields)
    out_stamps = dict(stamps)
    taken: dict[str, Any] = {}
    for name, value in incoming.items():
        stamp = incoming_stamps[name]
        held = out_stamps.get(name)
        if held is None or stamp > held:
            out_fields[name] = value
            out_stamps[name] = stamp
            taken[name] = value
    return Merged(out_fields, out_stamps, taken)
