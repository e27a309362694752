"""What the sync engine needs from a device's local storage.

The engine (`sync.engine`) speaks HTTP and keeps time; the store keeps the data. The desktop's
store lives with its database (`server.sync_store`); this protocol is the whole contract.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from sync.protocol import Digest


@dataclass(frozen=True)
class Account:
    server_url: str
    username: str
    user_id: str


@dataclass(frozen=True)
class Pending:
    """A local change waiting to be pushed: its log position and its wire form (JSON bytes)."""

    seq: int
    wire: bytes


class SyncStore(Protocol):
    node: str

    def account(self) -> Account | None:
        """The account this device last signed into (kept after signing out)."""

    def sign_in(self, account: Account) -> None:
        """Make `account` current: records made before any sign-in are adopted into it;
        another account's records stay in the database but out of sight (sync rule 8)."""

    def sign_out(self) -> None: ...

    def pending(self, limit: int, after: int = 0) -> list[Pending]:
        """The oldest local changes not yet acknowledged by the server, in order, from log
        position `after` on (so the next batch can be read while one is in flight)."""

    def newest_pending(self) -> int:
        """The log position of the newest change not yet acknowledged (0 if none)."""

    def pending_count(self) -> int: ...

    def acknowledge(self, seqs: list[int], resolved: list[dict[str, Any]]) -> None:
        """Mark pushed changes as acknowledged and adopt the server's verdicts on merged or
        conflicting text fields, in one transaction."""

    def cursor(self) -> int: ...

    def apply_page(self, changes: list[dict[str, Any]], next_cursor: int) -> int:
        """Apply a page of pulled changes and move the cursor, in one transaction; returns how
        many records changed."""

    def acknowledge_and_apply(
        self,
        seqs: list[int],
        resolved: list[dict[str, Any]],
        changes: list[dict[str, Any]] | None,
        next_cursor: int | None,
    ) -> int:
        """`acknowledge`, then `apply_page` (unless `next_cursor` is None), in one transaction:
        a push's answer that brought the pull's first page."""

    def reset_cursor(self) -> None: ...

    def requeue_all(self) -> int:
        """Queue every local record as a change (after a digest mismatch); returns the count."""

    def digest(self) -> Digest: ...
