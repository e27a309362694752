"""`/ws`: pushes DESIGN.md's events to connected pages and devices as they happen.

Local mode: the guard has already checked the token. Server mode: the client passes an
access token (`Authorization: Bearer` or `?access_token=`) and hears only its own user's events.
"""

from __future__ import annotations

import asyncio
import contextlib

from fastapi import APIRouter, HTTPException, WebSocket, WebSocketDisconnect

from server.deps import LOCAL_OWNER, user_id_from_token
from server.state import AppState

router = APIRouter()


def _ws_token(ws: WebSocket) -> str | None:
    auth = ws.headers.get("authorization")
    if auth and auth[:7].lower() == "bearer ":
        return auth[7:]
    return ws.query_params.get("access_token")


@router.websocket("/ws")
async def events(ws: WebSocket) -> None:
    state: AppState = ws.app.state.ferry
    channel = LOCAL_OWNER
    if state.server_mode:
        try:
            channel = user_id_from_token(state, _ws_token(ws))
        except HTTPException:
            await ws.close(code=1008)
            return
    # Listen before accepting, so no event published during the handshake is missed.
    queue = state.hub.subscribe(channel)
    try:
        await ws.accept()
    except Exception:
        state.hub.unsubscribe(channel, queue)
        raise

    async def drain_incoming() -> None:
        # Clients do not send anything meaningful; reading notices when they go away.
        with contextlib.suppress(WebSocketDisconnect):
            while True:
                await ws.receive_text()

    reader = asyncio.create_task(drain_incoming())
    try:
        while True:
            getter = asyncio.ensure_future(queue.get())
            done, _ = await asyncio.wait({getter, reader}, return_when=asyncio.FIRST_COMPLETED)
            if reader in done:
                getter.cancel()
                break
            message = getter.result()
            if message is None:
                await ws.close(code=1013)
                break
            await ws.send_text(message.decode())
    except (WebSocketDisconnect, RuntimeError):
        pass
    finally:
        reader.cancel()
        state.hub.unsubscribe(channel, queue)
