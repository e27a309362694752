"""`/api/notes`: list (filters `completed` — a note's `done` — and `q`), create, get, replace,
patch, delete."""

from __future__ import annotations

from typing import Annotated

from fastapi import Query

from server.models import NoteCreate, NotePatch, NoteRead, NoteWrite
from server.records import NOTES, Filters
from server.routes.crud import Conflicts, Q, build_router


async def note_filters(  # async: no I/O, so no worker-thread round trip (see server/deps.py)
    completed: Annotated[bool | None, Query(description="Only done (true) or not done (false) notes")] = None,
    q: Q = None,
    conflicts: Conflicts = None,
) -> Filters:
    return Filters(completed=completed, q=q, conflicts=conflicts)


router = build_router(NOTES, "/api/notes", "notes", NoteCreate, NoteWrite, NotePatch, NoteRead, note_filters)
