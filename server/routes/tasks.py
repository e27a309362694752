"""`/api/tasks`: list (filters `completed`, `q`, `due_before`, `due_after`), create, get, replace,
patch, delete."""

from __future__ import annotations

from typing import Annotated

from fastapi import Query

from server.models import StrictDate, TaskCreate, TaskPatch, TaskRead, TaskWrite
from server.records import TASKS, Filters
from server.routes.crud import Conflicts, Q, build_router


async def task_filters(  # async: no I/O, so no worker-thread round trip (see server/deps.py)
    completed: Annotated[bool | None, Query(description="Only completed (true) or open (false) tasks")] = None,
    q: Q = None,
    # StrictDate, as in bodies: a plain `date` would also take "0" (a Unix timestamp) as 1970-01-01.
    due_before: Annotated[StrictDate | None, Query(description="Due strictly before this date (YYYY-MM-DD)")] = None,
    due_after: Annotated[StrictDate | None, Query(description="Due strictly after this date (YYYY-MM-DD)")] = None,
    conflicts: Conflicts = None,
) -> Filters:
    return Filters(completed=completed, q=q, due_before=due_before, due_after=due_after, conflicts=conflicts)


router = build_router(TASKS, "/api/tasks", "tasks", TaskCreate, TaskWrite, TaskPatch, TaskRead, task_filters)
