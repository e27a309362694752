"""Server mode: the sync wire protocol (`sync.protocol`): push, pull and digest."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError

from server.deps import OwnerDep, StateDep
from server.routes.responses import AUTH, INPUT
from sync.protocol import (
    MAX_PUSH_CHANGES,
    PULL_PAGE_DEFAULT,
    PULL_PAGE_MAX,
    Digest,
    PullResponse,
    PushRequest,
    PushResponse,
)

router = APIRouter(prefix="/api/sync", tags=["sync"], responses={**AUTH})


@router.post(
    "/push",
    response_model=PushResponse,
    responses={**INPUT, 200: {"content": {"application/json": {}}}},
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/PushRequest"}}},
        }
    },
)
async def push(state: StateDep, owner: OwnerDep, request: Request) -> Any:
    """Apply a batch of changes atomically; changes already applied (by id) are skipped.

    With `pull`, the answer also holds the first page of the pull that follows, as `GET
    /api/sync/pull` would answer it with `exclude_node` set to the pushing node."""
    # Parsed and validated by pydantic's core straight from the bytes: FastAPI's own JSON
    # parsing would cost more than applying the batch.
    body = await request.body()
    try:
        push_request = PushRequest.model_validate_json(body)
    except ValidationError as exc:
        errors = [{**e, "loc": ("body", *e["loc"])} for e in exc.errors(include_url=False, include_input=False)]
        raise RequestValidationError(errors) from None
    if len(push_request.changes) > MAX_PUSH_CHANGES:
        raise HTTPException(413, f"at most {MAX_PUSH_CHANGES} changes per push")
    answer = await run_in_threadpool(
        state.sync_server.push, owner, push_request.node, push_request.changes, push_request.pull
    )
    return Response(answer, media_type="application/json")


@router.get(
    "/pull",
    response_model=PullResponse,
    responses={**INPUT, 200: {"content": {"application/json": {}}}},
)
def pull(
    state: StateDep,
    owner: OwnerDep,
    after: Annotated[int, Query(ge=0, le=2**62, description="The cursor: last sequence number applied")] = 0,
    limit: Annotated[int, Query(ge=1, le=PULL_PAGE_MAX)] = PULL_PAGE_DEFAULT,
    exclude_node: Annotated[
        str | None, Query(pattern=r"^[0-9a-f]{16}$", description="Leave out changes made by this node")
    ] = None,
    digest: Annotated[
        Literal["no", "yes", "changed"],
        Query(description="Add the user's digest to the last page: always, or only if the log grew past `after`"),
    ] = "no",
) -> Any:
    """The user's changes with sequence numbers above `after`, in order."""
    page = state.sync_server.pull(owner, after, limit, exclude_node, digest)
    return Response(page, media_type="application/json")


@router.get("/digest", response_model=Digest)
def digest(state: StateDep, owner: OwnerDep) -> Digest:
    """An order-independent summary of the user's records, to compare with a device's."""
    return state.sync_server.digest(owner)
