"""Request dependencies as `Annotated` types: the app state, the signed-in owner, the user."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from server.models import User
from server.security import TokenError
from server.state import AppState

LOCAL_OWNER = ""
bearer = HTTPBearer(auto_error=False, description="Local mode: the per-launch token. Server mode: an access token.")


# The dependencies that only read memory (or check a token's signature) are `async`: FastAPI
# runs a plain `def` dependency in a worker thread, a thread round trip on every request.


async def get_state(request: Request) -> AppState:
    return request.app.state.ferry


StateDep = Annotated[AppState, Depends(get_state)]
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]


def _unauthorized(detail: str) -> HTTPException:
    return HTTPException(status.HTTP_401_UNAUTHORIZED, detail, headers={"WWW-Authenticate": "Bearer"})


def user_id_from_token(state: AppState, token: str | None) -> str:
    """The user an access token belongs to, or a 401."""
    if not token or state.tokens is None:
        raise _unauthorized("not signed in")
    try:
        claims = state.tokens.decode(token, "access")
    except TokenError:
        raise _unauthorized("invalid or expired access token") from None
    return claims["sub"]


def current_user(state: StateDep, creds: Credentials) -> User:
    user_id = user_id_from_token(state, creds.credentials if creds else None)
    with state.db.read() as session:
        user = session.get(User, user_id)
    if user is None:
        raise _unauthorized("no such user")
    return user


async def current_owner(request: Request, state: StateDep, creds: Credentials) -> str:
    """Whose records this request may see: the signed-in user, or the desktop's one person.

    In local mode the guard middleware has already checked the per-launch token.
    """
    if not state.server_mode:
        return state.local_owner
    # The token's signature is proof enough; no database read on the hot path.
    return user_id_from_token(state, creds.credentials if creds else None)


OwnerDep = Annotated[str, Depends(current_owner)]
UserDep = Annotated[User, Depends(current_user)]
