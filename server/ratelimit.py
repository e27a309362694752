"""Failed sign-in counting, kept in the database so every worker process sees the same count."""

from __future__ import annotations

from sqlalchemy import delete, func, select

from server.db import Database
from server.models import LoginFailure
from server.records import now_ms


class LoginLimiter:
    def __init__(self, db: Database, max_failures: int, window_seconds: int) -> None:
        self.db = db
        self.max_failures = max_failures
        self.window_ms = window_seconds * 1000

    def retry_after(self, key: str) -> int | None:
        """Seconds until `key` may try again, or None if it may try now."""
        since = now_ms() - self.window_ms
        with self.db.read() as session:
            count, oldest = session.execute(
                select(func.count(), func.min(LoginFailure.at_ms)).where(
                    LoginFailure.key == key, LoginFailure.at_ms > since
                )
            ).one()
        if count < self.max_failures:
            return None
        return max(1, (oldest + self.window_ms - now_ms() + 999) // 1000)

    def record_failure(self, key: str) -> None:
        ms = now_ms()
        with self.db.write() as session:
            session.add(LoginFailure(key=key, at_ms=ms))
            # Old failures no longer count; dropping them here keeps the table small.
            session.execute(delete(LoginFailure).where(LoginFailure.at_ms <= ms - self.window_ms))

    def clear(self, key: str) -> None:
        with self.db.write() as session:
            session.execute(delete(LoginFailure).where(LoginFailure.key == key))
