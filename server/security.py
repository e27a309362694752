"""Passwords (pwdlib, Argon2), JWTs (PyJWT, HS256) and the signing secret.

Access and refresh tokens carry a `typ` claim, and each decoder insists on its own type,
so a refresh token is never accepted where an access token is expected (or the reverse).

PyJWT (which loads `cryptography`) and Argon2 are imported on first use: the desktop's local
mode never needs them, and importing them cost its start-up ~150 ms.
"""

from __future__ import annotations

import os
import secrets
import time
import uuid
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

ALGORITHM = "HS256"
SECRET_FILE = "secret.key"


class TokenError(Exception):
    """The token is missing, malformed, forged, expired or of the wrong type."""


def load_or_create_secret(data_dir: Path) -> str:
    """The signing secret kept in the data directory, created once with mode 0600."""
    path = data_dir / SECRET_FILE
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        secret = path.read_text().strip()
        if len(secret) < 32:
            raise RuntimeError(f"{path} holds no usable secret; delete it to make a new one") from None
        return secret
    secret = secrets.token_urlsafe(64)
    with os.fdopen(fd, "w") as fh:
        fh.write(secret)
    return secret


@dataclass(frozen=True)
class IssuedToken:
    token: str
    jti: str
    expires_at: int  # unix seconds


#: Access tokens already verified, kept until they expire: a device sends the same one with
#: every request, and checking it again (PyJWT: key preparation, base64, JSON, HMAC) was an
#: eighth of a server worker's time under load. Bounded.
VERIFIED_MAX = 10_000


class Tokens:
    def __init__(self, secret: str, access_minutes: int, refresh_days: int) -> None:
        self._secret = secret
        self.access_seconds = access_minutes * 60
        self.refresh_seconds = refresh_days * 86_400
        self._verified: dict[str, dict] = {}

    def _issue(self, sub: str, typ: str, lifetime: int, extra: dict | None = None) -> IssuedToken:
        now = int(time.time())
        jti = str(uuid.uuid4())
        claims = {"sub": sub, "typ": typ, "iat": now, "exp": now + lifetime, "jti": jti}
        if extra:
            claims.update(extra)
        import jwt

        return IssuedToken(jwt.encode(claims, self._secret, algorithm=ALGORITHM), jti, now + lifetime)

    def access(self, user_id: str) -> IssuedToken:
        return self._issue(user_id, "access", self.access_seconds)

    def refresh(self, user_id: str, family: str) -> IssuedToken:
        return self._issue(user_id, "refresh", self.refresh_seconds, {"fam": family})

    def decode(self, token: str, typ: str) -> dict:
        """The token's claims, if it is a valid, unexpired token of type `typ` (the claims of
        a cached access token are shared: read them, do not change them)."""
        if typ == "access":
            claims = self._verified.get(token)
            # Only expiry can turn a token that verified into one that does not.
            if claims is not None and time.time() < claims["exp"]:
                return claims
        import jwt

        try:
            claims = jwt.decode(
                token,
                self._secret,
                algorithms=[ALGORITHM],
                options={"require": ["exp", "iat", "sub", "typ", "jti"]},
            )
        except jwt.PyJWTError as exc:
            raise TokenError(str(exc)) from None
        if claims.get("typ") != typ or not isinstance(claims.get("sub"), str):
            raise TokenError(f"not an {typ} token")
        if typ == "access" and isinstance(claims["exp"], int | float):
            if len(self._verified) >= VERIFIED_MAX:
                self._verified.clear()  # (not one at a time: other threads use it meanwhile)
            self._verified[token] = claims
        return claims


class Passwords:
    @cached_property
    def _hash(self):  # type: ignore[no-untyped-def]
        from pwdlib import PasswordHash
        from pwdlib.hashers.argon2 import Argon2Hasher

        return PasswordHash((Argon2Hasher(),))

    @cached_property
    def _dummy(self) -> str:
        return self._hash.hash(secrets.token_urlsafe(16))

    def hash(self, password: str) -> str:
        return self._hash.hash(password)

    def verify(self, password: str, hashed: str | None) -> bool:
        # An unknown user still costs one Argon2 verification, so timing does not tell
        # whether a username exists.
        if hashed is None:
            self._hash.verify(password, self._dummy)
            return False
        return self._hash.verify(password, hashed)
