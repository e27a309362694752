"""What one running app holds: settings, database, clock, event hub and the auth helpers."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from typing import Any

from sqlmodel import select

from server.db import Database
from server.events import EventHub
from server.models import Meta
from server.records import Records
from server.security import Passwords, Tokens, load_or_create_secret
from server.settings import Settings
from server.sync_server import SyncServer
from sync.hlc import HybridClock, new_node_id

NODE_KEY = "node_id"
LOCAL_OWNER_KEY = "local_owner"


@dataclass
class AppState:
    settings: Settings
    db: Database
    clock: HybridClock
    hub: EventHub
    records: Records
    local_token: str | None = None
    tokens: Tokens | None = None
    passwords: Passwords = field(default_factory=Passwords)
    sync_server: SyncServer | None = None
    #: local mode: whose records this desktop shows ("" until the first sign-in)
    local_owner: str = ""
    sync_engine: Any = None  # sync.engine.SyncEngine, local mode

    @property
    def server_mode(self) -> bool:
        return self.settings.mode == "server"


def load_node_id(db: Database) -> str:
    """This database's clock node id, made on first start and kept in `meta`."""
    with db.read() as session:
        found = session.exec(select(Meta).where(Meta.key == NODE_KEY)).first()
        if found is not None:
            return found.value
    with db.write() as session:
        found = session.get(Meta, NODE_KEY)
        if found is None:
            found = Meta(key=NODE_KEY, value=new_node_id())
            session.add(found)
        return found.value


def load_meta(db: Database, key: str) -> str | None:
    with db.read() as session:
        found = session.get(Meta, key)
        return found.value if found is not None else None


def build_state(settings: Settings, db: Database) -> AppState:
    clock = HybridClock(load_node_id(db))
    hub = EventHub()
    state = AppState(
        settings=settings,
        db=db,
        clock=clock,
        hub=hub,
        records=Records(db, clock, hub, server_mode=settings.mode == "server"),
    )
    if settings.mode == "local":
        state.local_token = settings.local_token or secrets.token_urlsafe(32)
        state.local_owner = load_meta(db, LOCAL_OWNER_KEY) or ""
    else:
        secret = settings.secret_key or load_or_create_secret(settings.resolved_data_dir())
        state.tokens = Tokens(secret, settings.access_token_minutes, settings.refresh_token_days)
        state.sync_server = SyncServer(db, clock, hub)
    return state
