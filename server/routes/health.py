"""`GET /api/health`: whether this app and its database answer (no token needed)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response, status

from server import __version__
from server.deps import StateDep
from server.models import Health

router = APIRouter(tags=["health"])


@router.get(
    "/api/health",
    response_model=Health,
    responses={503: {"model": Health, "description": "The database is unreachable"}},
)
def health(state: StateDep, response: Response) -> dict[str, Any]:
    reachable = state.db.ping()
    if not reachable:
        response.status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    return {
        "status": "ok" if reachable else "unavailable",
        "mode": state.settings.mode,
        "version": __version__,
        "database": "ok" if reachable else "unreachable",
    }
