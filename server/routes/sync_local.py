"""Local mode: the desktop's sync controls — status, connect, disconnect, sync now."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, status
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictBool

from server.deps import StateDep
from server.models import ErrorBody, _clean_text
from server.routes.responses import AUTH, INPUT
from sync.engine import ConnectError

router = APIRouter(prefix="/api/sync", tags=["sync"], responses={**AUTH})


def _http_url(value: str) -> str:
    if not value.startswith(("http://", "https://")) or len(value) < 10:
        raise ValueError("must be an http:// or https:// URL")
    return value


class Progress(BaseModel):
    done: int
    total: int


class SyncStatus(BaseModel):
    state: str = Field(description="signed_out, idle, syncing, offline or error")
    server_url: str | None
    username: str | None
    pending_changes: int
    last_synced_at: str | None
    last_error: str | None
    progress: Progress | None = None
    full_resyncs: int = 0
    last_round: dict[str, float] | None = Field(None, description="The last completed round: pushed, pulled, ms")


class ConnectRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    server_url: Annotated[str, Field(max_length=2048), AfterValidator(_clean_text), AfterValidator(_http_url)]
    username: Annotated[str, Field(min_length=1, max_length=64), AfterValidator(_clean_text)]
    password: Annotated[str, Field(min_length=1, max_length=1024), AfterValidator(_clean_text)]
    # "register" would shadow BaseModel.register; the JSON name stays "register".
    create_account: StrictBool = Field(False, alias="register", description="Create the account first")


def _engine(state: Any) -> Any:
    return state.sync_engine


@router.get("/status", response_model=SyncStatus)
async def sync_status(state: StateDep) -> dict[str, Any]:
    engine = _engine(state)
    return engine.status.as_dict()


@router.post(
    "/connect",
    response_model=SyncStatus,
    responses={
        **INPUT,
        401: {"model": ErrorBody, "description": "Wrong username or password"},
        409: {"model": ErrorBody, "description": "Username taken (when registering)"},
        429: {"model": ErrorBody, "description": "Too many failed sign-ins"},
        502: {"model": ErrorBody, "description": "The server could not be reached"},
    },
)
async def connect(state: StateDep, body: ConnectRequest) -> dict[str, Any]:
    try:
        result = await _engine(state).connect(body.server_url, body.username, body.password, body.create_account)
    except ConnectError as exc:
        raise HTTPException(exc.status, exc.message) from None
    return result.as_dict()


@router.post("/disconnect", response_model=SyncStatus)
async def disconnect(state: StateDep) -> dict[str, Any]:
    return (await _engine(state).disconnect()).as_dict()


@router.post(
    "/now",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=SyncStatus,
    responses={409: {"model": ErrorBody, "description": "Not signed in"}},
)
async def sync_now(state: StateDep) -> dict[str, Any]:
    engine = _engine(state)
    if engine.status.state == "signed_out":
        raise HTTPException(status.HTTP_409_CONFLICT, "not signed in to a server")
    engine.request_now()
    return engine.status.as_dict()
