"""`/api/tasks`: list (filters `completed`, `q`, `due_before`, `due_after`), create, get, replace,
patch, delete."""

from __future__ import annotations

from datetime import date
from typing import Annotated

from fastapi import Query

from server.models import TaskCreate, TaskPatch, TaskRead, TaskWrite
from server.records import TASKS, Filters
from server.routes.crud import Q, build_router


def task_filters(
    completed: Annotated[bool | None, Query(description="Only completed (true) or open (false) tasks")] = None,
    q: Q = None,
    due_before: Annotated[date | None, Query(description="Due strictly before this date")] = None,
    due_after: Annotated[date | None, Query(description="Due strictly after this date")] = None,
) -> Filters:
    return Filters(completed=completed, q=q, due_before=due_before, due_after=due_after)


router = build_router(TASKS, "/api/tasks", "tasks", TaskCreate, TaskWrite, TaskPatch, TaskRead, task_filters)
