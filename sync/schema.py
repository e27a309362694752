"""What a synced record is made of: its kinds, their fields, and which fields are text.

The server's tables and the client's tables both follow this list; a change on the wire may
carry only these fields, each with its own clock stamp.
"""

from __future__ import annotations

from typing import Literal

Kind = Literal["task", "note"]

#: Synced fields per kind. `deleted` is the tombstone flag: deletion is a field with its
#: own stamp, so it merges like any other (sync rule 3). `conflict_of` marks a conflict
#: copy with the id of the record whose edit it preserves (sync rule 4).
FIELDS: dict[str, tuple[str, ...]] = {
    "task": ("title", "description", "due_date", "completed", "created_at", "conflict_of", "deleted"),
    "note": ("title", "body", "done", "created_at", "conflict_of", "deleted"),
}

#: Fields whose concurrent edits are merged three-way rather than last-writer-wins.
TEXT_FIELDS: dict[str, frozenset[str]] = {
    "task": frozenset({"title", "description"}),
    "note": frozenset({"title", "body"}),
}

#: Values a freshly created record has for fields a change did not mention.
DEFAULTS: dict[str, dict[str, object]] = {
    "task": {
        "title": "",
        "description": "",
        "due_date": None,
        "completed": False,
        "created_at": None,
        "deleted": False,
    },
    "note": {"title": "", "body": "", "done": False, "created_at": None, "deleted": False},
}

TITLE_MAX = 200
DESCRIPTION_MAX = 10_000
BODY_MAX = 1_000_000
