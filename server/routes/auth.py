"""Server-mode accounts: register, sign in (OAuth2 password form), refresh (rotating), `me`."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.security import OAuth2PasswordRequestForm
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from server.deps import StateDep, UserDep
from server.models import RefreshRequest, RefreshToken, TokenPair, User, UserRead, UserRegister, _clean_text
from server.records import now_ms
from server.routes.responses import AUTH, CONFLICT, INPUT
from server.security import TokenError
from server.state import AppState

router = APIRouter(tags=["auth"])

TOO_MANY = {429: {"description": "Too many failed sign-ins; see Retry-After"}}
BAD_CREDENTIALS = "wrong username or password"


def _user_read(user: User) -> dict[str, Any]:
    return {"id": user.id, "username": user.username, "email": user.email, "created_at": user.created_ms}


def _issue_pair(state: AppState, session: Any, user_id: str, family: str) -> tuple[dict[str, Any], str]:
    """A new access token and refresh token, the latter recorded in `session`; returns the
    response body and the refresh token's id."""
    assert state.tokens is not None
    access = state.tokens.access(user_id)
    refresh = state.tokens.refresh(user_id, family)
    session.add(RefreshToken(jti=refresh.jti, user_id=user_id, family=family, expires_ms=refresh.expires_at * 1000))
    body = {
        "access_token": access.token,
        "token_type": "bearer",
        "expires_in": state.tokens.access_seconds,
        "refresh_token": refresh.token,
    }
    return body, refresh.jti


@router.post(
    "/api/auth/register",
    status_code=status.HTTP_201_CREATED,
    response_model=UserRead,
    responses={**INPUT, **CONFLICT},
)
def register(state: StateDep, body: UserRegister) -> dict[str, Any]:
    username = body.username.lower()
    password_hash = state.passwords.hash(body.password)
    taken_error = HTTPException(status.HTTP_409_CONFLICT, "that username is taken")
    try:
        with state.db.write() as session:
            taken = session.execute(select(User.id).where(User.username == username)).first()
            if taken is not None:
                raise taken_error
            user = User(
                id=str(uuid.uuid4()),
                username=username,
                email=body.email,
                password_hash=password_hash,
                created_ms=now_ms(),
            )
            session.add(user)
    except IntegrityError:
        # On PostgreSQL a concurrent registration of the same name (another request or
        # worker) can commit between the check above and this insert; the unique index
        # then refuses the insert, which is the same "taken" answer, not a 500.
        raise taken_error from None
    return _user_read(user)


def _client_address(request: Request) -> str:
    return request.client.host if request.client else "-"


@router.post("/api/auth/token", response_model=TokenPair, responses={**AUTH, **INPUT, **TOO_MANY})
def token(state: StateDep, request: Request, form: Annotated[OAuth2PasswordRequestForm, Depends()]) -> dict[str, Any]:
    try:
        # The form is not a model we validate, and a NUL in the username would reach the
        # database (sign-in lookup, failure log), which PostgreSQL refuses with a 500.
        username = _clean_text(form.username).strip().lower()
    except ValueError as exc:
        raise RequestValidationError([{"type": "value_error", "loc": ("body", "username"), "msg": str(exc)}]) from None
    limiter = request.app.state.login_limiter
    key = f"{username[:200]}|{_client_address(request)}"
    wait = limiter.retry_after(key)
    if wait is not None:
        raise HTTPException(
            status.HTTP_429_TOO_MANY_REQUESTS,
            "too many failed sign-ins; try again later",
            headers={"Retry-After": str(wait)},
        )
    with state.db.read() as session:
        user = session.execute(select(User).where(User.username == username)).scalar_one_or_none()
    if not state.passwords.verify(form.password, user.password_hash if user else None) or user is None:
        limiter.record_failure(key)
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, BAD_CREDENTIALS, headers={"WWW-Authenticate": "Bearer"})
    limiter.clear(key)
    with state.db.write() as session:
        body, _ = _issue_pair(state, session, user.id, family=str(uuid.uuid4()))
    return body


@router.post("/api/auth/refresh", response_model=TokenPair, responses={**AUTH, **INPUT})
def refresh(state: StateDep, body: RefreshRequest) -> dict[str, Any]:
    assert state.tokens is not None
    denied = HTTPException(
        status.HTTP_401_UNAUTHORIZED, "invalid or expired refresh token", headers={"WWW-Authenticate": "Bearer"}
    )
    try:
        claims = state.tokens.decode(body.refresh_token, "refresh")
    except TokenError:
        raise denied from None
    with state.db.write() as session:
        # The row lock (SQLite: the write lock) makes racing refreshes take turns.
        row = session.execute(
            select(RefreshToken).where(RefreshToken.jti == claims["jti"]).with_for_update()
        ).scalar_one_or_none()
        rotate = False
        if row is not None and not row.revoked and row.expires_ms > now_ms():
            if not row.used:
                rotate = True
            elif row.replaced_by is not None:
                successor = session.get(RefreshToken, row.replaced_by, with_for_update=True)
                if successor is not None and not successor.used and not successor.revoked:
                    # The device never received (so never used) the token that replaced this
                    # one: the answer was lost. Replace that token instead of ending the session.
                    successor.revoked = True
                    rotate = True
        if rotate and row is not None:
            body, new_jti = _issue_pair(state, session, claims["sub"], row.family)
            row.used = True
            row.replaced_by = new_jti
        else:
            # A used token shown again after its successor was used means it leaked: end the
            # whole family of sessions.
            session.execute(
                update(RefreshToken).where(RefreshToken.family == claims.get("fam", "")).values(revoked=True)
            )
    if not rotate:
        raise denied
    return body


@router.get("/api/users/me", response_model=UserRead, responses={**AUTH})
def me(user: UserDep) -> dict[str, Any]:
    return _user_read(user)
