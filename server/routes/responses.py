"""Error responses the API documents, so `/openapi.json` tells clients what can come back."""

from __future__ import annotations

from typing import Any

from server.models import ErrorBody

_E = {"model": ErrorBody}

AUTH: dict[int | str, dict[str, Any]] = {
    401: {**_E, "description": "Missing, wrong or expired token"},
    403: {**_E, "description": "Forbidden host or origin (local mode)"},
}
INPUT: dict[int | str, dict[str, Any]] = {
    413: {**_E, "description": "Request body too large"},
    422: {**_E, "description": "Invalid input; `detail` names each field and the reason"},
}
NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {**_E, "description": "No such record"}}
CONFLICT: dict[int | str, dict[str, Any]] = {409: {**_E, "description": "Already exists"}}
