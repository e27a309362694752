"""The CRUD routes that tasks and notes share, built once per resource from its shapes.

No `from __future__ import annotations` here: FastAPI must see the real classes that the
factory closes over, not their names as strings.
"""

from collections.abc import Callable
from typing import Annotated, Any
from uuid import UUID

import orjson
from fastapi import APIRouter, Depends, HTTPException, Path, Query, Response, status
from pydantic import BaseModel

from server.deps import OwnerDep, StateDep
from server.models import SearchText
from server.records import Filters, KindSpec, to_read
from server.routes.responses import AUTH, CONFLICT, INPUT, NOT_FOUND

MAX_LIMIT = 500
MAX_SKIP = 1_000_000_000

Skip = Annotated[int, Query(ge=0, le=MAX_SKIP, description="Records to skip")]
Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT, description="Records to return (≤ 500)")]
Q = Annotated[SearchText | None, Query(description="Text to look for in the title and text")]
Conflicts = Annotated[bool | None, Query(description="Only conflict copies (true) or only the rest (false)")]
RecordId = Annotated[UUID, Path(description="The record's UUID")]


def _json(data: Any, status_code: int = 200, headers: dict[str, str] | None = None) -> Response:
    # Rows are already shaped for JSON (`records.read_view`); serialising them directly skips
    # a second validation pass through the response model, which only documents the shape.
    return Response(orjson.dumps(data), status_code, headers, media_type="application/json")


def build_router(
    spec: KindSpec,
    prefix: str,
    tag: str,
    create_model: type[BaseModel],
    write_model: type[BaseModel],
    patch_model: type[BaseModel],
    read_model: type[BaseModel],
    filters_dep: Callable[..., Filters],
) -> APIRouter:
    router = APIRouter(prefix=prefix, tags=[tag], responses={**AUTH})
    name = spec.kind
    FiltersDep = Annotated[Filters, Depends(filters_dep)]

    def not_found() -> HTTPException:
        return HTTPException(status.HTTP_404_NOT_FOUND, f"{name} not found")

    @router.get(
        "",
        response_model=list[read_model],  # type: ignore[valid-type]
        summary=f"List {name}s",
        responses={**INPUT, 200: {"headers": {"X-Total-Count": {"schema": {"type": "integer"}}}}},
    )
    def list_records(
        state: StateDep,
        owner: OwnerDep,
        filters: FiltersDep,
        skip: Skip = 0,
        limit: Limit = 100,
    ) -> Response:
        rows, total = state.records.list(spec, owner, filters, skip, limit)
        return _json(rows, headers={"X-Total-Count": str(total)})

    @router.post(
        "",
        response_model=read_model,
        status_code=status.HTTP_201_CREATED,
        summary=f"Create a {name}",
        responses={**INPUT, **CONFLICT},
    )
    def create_record(state: StateDep, owner: OwnerDep, body: create_model) -> Response:  # type: ignore[valid-type]
        values = body.model_dump(exclude={"id"})
        record_id = str(body.id) if body.id is not None else None  # type: ignore[attr-defined]
        row = state.records.create(spec, owner, values, record_id)
        if row is None:
            raise HTTPException(status.HTTP_409_CONFLICT, f"a {name} with this id already exists")
        return _json(row, status.HTTP_201_CREATED)

    @router.get("/{id}", response_model=read_model, summary=f"Get a {name}", responses={**NOT_FOUND, **INPUT})
    def get_record(state: StateDep, owner: OwnerDep, id: RecordId) -> Response:
        row = state.records.get(spec, owner, str(id))
        if row is None:
            raise not_found()
        return _json(to_read(row))

    @router.put("/{id}", response_model=read_model, summary=f"Replace a {name}", responses={**NOT_FOUND, **INPUT})
    def replace_record(state: StateDep, owner: OwnerDep, id: RecordId, body: write_model) -> Response:  # type: ignore[valid-type]
        row = state.records.update(spec, owner, str(id), body.model_dump())
        if row is None:
            raise not_found()
        return _json(to_read(row))

    @router.patch(
        "/{id}",
        response_model=read_model,
        summary=f"Change some fields of a {name}",
        responses={**NOT_FOUND, **INPUT},
    )
    def patch_record(state: StateDep, owner: OwnerDep, id: RecordId, body: patch_model) -> Response:  # type: ignore[valid-type]
        row = state.records.update(spec, owner, str(id), body.model_dump(exclude_unset=True))
        if row is None:
            raise not_found()
        return _json(to_read(row))

    @router.delete(
        "/{id}",
        status_code=status.HTTP_204_NO_CONTENT,
        summary=f"Delete a {name}",
        responses={**NOT_FOUND, **INPUT},
    )
    def delete_record(state: StateDep, owner: OwnerDep, id: RecordId) -> Response:
        if not state.records.delete(spec, owner, str(id)):
            raise not_found()
        return Response(status_code=status.HTTP_204_NO_CONTENT)

    @router.post(
        "/{id}/restore",
        response_model=read_model,
        summary=f"Restore a deleted {name} (undo a delete)",
        responses={**NOT_FOUND, **INPUT},
    )
    def restore_record(state: StateDep, owner: OwnerDep, id: RecordId) -> Response:
        view = state.records.restore(spec, owner, str(id))
        if view is None:
            raise not_found()
        return _json(view)

    return router
