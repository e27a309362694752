"""The merge rules, as pure functions: given what a replica holds and a change, what it holds next.

- Scalar fields (and `deleted`): the later clock stamp wins; stamps compare as strings
  (see `sync.hlc`), ties broken by node id. Applying the same changes in any order, any
  number of times, gives the same record everywhere.
- Text fields: an edit names the stamp of the version it started from (`base`). On the
  server, an edit based on the version it holds simply replaces it; an edit based on an
  older version is merged three-way; overlapping edits keep the later one in place and the
  other becomes a conflict copy. The server's verdict gets a stamp later than both, so
  devices adopt it by the scalar rule.
- On a device, a pulled text value never replaces a local edit still waiting to be pushed:
  the server will merge that edit and send back its verdict.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

from sync.textmerge import merge3


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
    keep: Collection[str] = (),
) -> Merged:
    """Last-writer-wins per field; a missing stamp loses to any stamp. Fields in `keep` are
    left alone (a device's text fields with unpushed local edits)."""
    out_fields = dict(fields)
    out_stamps = dict(stamps)
    taken: dict[str, Any] = {}
    for name, value in incoming.items():
        if name in keep:
            continue
        stamp = incoming_stamps[name]
        held = out_stamps.get(name)
        if held is None or stamp > held:
            out_fields[name] = value
            out_stamps[name] = stamp
            taken[name] = value
    return Merged(out_fields, out_stamps, taken)


@dataclass
class ServerMerge(Merged):
    #: text fields whose value the server stamped anew (a merge, or a kept version)
    restamped: dict[str, Any] = field(default_factory=dict)
    #: (field, text) pairs that lost an overlapping edit and become conflict copies
    conflicts: list[tuple[str, str]] = field(default_factory=list)


def merge_on_server(
    fields: Mapping[str, Any],
    stamps: Mapping[str, str],
    incoming: Mapping[str, Any],
    incoming_stamps: Mapping[str, str],
    base: Mapping[str, str] | None,
    text_fields: Collection[str],
    text_at: Callable[[str, str], str | None],
    new_stamp: Callable[[], str],
) -> ServerMerge:
    """Apply a pushed change to the server's copy of a record.

    `text_at(field, stamp)` returns the text a field had at a stamp (from the change log),
    or None if unknown; `new_stamp()` returns a stamp later than every stamp seen so far.
    """
    scalar = {k: v for k, v in incoming.items() if k not in text_fields}
    result = merge_fields(fields, stamps, scalar, incoming_stamps)
    out = ServerMerge(result.fields, result.stamps, result.taken)
    base = base or {}
    for name in incoming.keys() & set(text_fields):
        value, stamp = incoming[name], incoming_stamps[name]
        held_stamp = out.stamps.get(name)
        held = out.fields.get(name)
        if held_stamp is None or held_stamp == stamp:
            if held_stamp is None:
                _take(out, name, value, stamp)
            continue
        if base.get(name) == held_stamp or held == value:
            # The edit was made on top of what the server holds (or changes nothing).
            if stamp > held_stamp:
                _take(out, name, value, stamp)
            elif held != value:
                _restamp(out, name, value, new_stamp())
            continue
        base_text = text_at(name, base[name]) if name in base else None
        merged = merge3(base_text, held, value) if base_text is not None else None
        if merged is not None:
            if merged == value and stamp > held_stamp:
                _take(out, name, value, stamp)
            else:
                _restamp(out, name, merged, new_stamp())
            continue
        # Overlapping edits: the later stays in place, the other is kept as a copy.
        if stamp > held_stamp:
            _take(out, name, value, stamp)
            out.conflicts.append((name, held))
        else:
            out.conflicts.append((name, value))
    return out


def _take(out: ServerMerge, name: str, value: Any, stamp: str) -> None:
    out.fields[name] = value
    out.stamps[name] = stamp
    out.taken[name] = value


def _restamp(out: ServerMerge, name: str, value: Any, stamp: str) -> None:
    _take(out, name, value, stamp)
    out.restamped[name] = value
