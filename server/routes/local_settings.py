"""`GET/PUT /api/settings` (local mode): the desktop's own preferences, kept in its database."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter

from server.deps import StateDep
from server.models import LocalSettings, Meta
from server.routes.responses import AUTH, INPUT
from server.state import AppState

router = APIRouter(prefix="/api/settings", tags=["settings"], responses={**AUTH})
SETTINGS_KEY = "local_settings"


def read_settings(state: AppState) -> LocalSettings:
    with state.db.read() as session:
        row = session.get(Meta, SETTINGS_KEY)
    if row is None:
        return LocalSettings()
    return LocalSettings.model_validate(orjson.loads(row.value), strict=False)


@router.get("", response_model=LocalSettings)
def get_settings(state: StateDep) -> Any:
    return read_settings(state)


@router.put("", response_model=LocalSettings, responses={**INPUT})
def put_settings(state: StateDep, body: LocalSettings) -> Any:
    with state.db.write() as session:
        session.merge(Meta(key=SETTINGS_KEY, value=body.model_dump_json()))
    if state.sync_engine is not None:
        state.sync_engine.set_interval(body.sync_interval_seconds)
    state.hub.publish("", "settings.updated", body.model_dump())
    return body


def remember_server_url(state: AppState, url: str) -> None:
    """`ferry --server URL`: the server the connect form offers (the person still signs in)."""
    current = read_settings(state)
    with state.db.write() as session:
        session.merge(Meta(key=SETTINGS_KEY, value=current.model_copy(update={"server_url": url}).model_dump_json()))
