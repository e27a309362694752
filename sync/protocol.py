"""The wire protocol between a device and the shared server (pydantic models).

See `sync/README.md` for what each side stores and why it converges. In short:
- `POST /api/sync/push` sends a batch of `ChangeIn` in the order they were made; the server
  applies them atomically and answers with what it resolved;
- `GET /api/sync/pull?after=N` returns the user's changes with sequence numbers above N;
- `GET /api/sync/digest` summarises the user's data so both sides can compare.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from sync.hlc import STAMP_RE
from sync.schema import BODY_MAX, DESCRIPTION_MAX, FIELDS, TEXT_FIELDS, TITLE_MAX

StampStr = Annotated[str, StringConstraints(pattern=STAMP_RE.pattern)]
NodeStr = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{16}$")]

MAX_PUSH_CHANGES = 5000
PULL_PAGE_DEFAULT = 2000
PULL_PAGE_MAX = 5000


def _text(value: Any, name: str, max_len: int, min_len: int = 0) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{name} must be a string")
    if "\x00" in value:
        raise ValueError(f"{name} must not contain NUL characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError(f"{name} must be valid Unicode") from None
    if not min_len <= len(value) <= max_len:
        raise ValueError(f"{name} must be {min_len} to {max_len} characters")
    return value


def _bool(value: Any, name: str) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be a boolean")
    return value


def _iso_date(value: Any, name: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or len(value) != 10:
        raise ValueError(f"{name} must be an ISO date or null")
    try:
        date.fromisoformat(value)
    except ValueError:
        raise ValueError(f"{name} must be an ISO date or null") from None
    return value


def _timestamp(value: Any, name: str) -> str:
    if not isinstance(value, str) or not 20 <= len(value) <= 40:
        raise ValueError(f"{name} must be an ISO 8601 timestamp")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(f"{name} must be an ISO 8601 timestamp") from None
    if parsed.tzinfo is None:
        raise ValueError(f"{name} must carry a UTC offset")
    return value


def _record_id_or_none(value: Any, name: str) -> str | None:
    if value is None:
        return None
    try:
        return str(uuid.UUID(str(value)))
    except ValueError:
        raise ValueError(f"{name} must be a UUID or null") from None


def validate_field(kind: str, name: str, value: Any) -> Any:
    """Check one field value as it may travel on the wire; returns it (normalised)."""
    if name == "title":
        return _text(value, name, TITLE_MAX)
    if name == "description":
        return _text(value, name, DESCRIPTION_MAX)
    if name == "body":
        return _text(value, name, BODY_MAX)
    if name in ("completed", "done", "deleted"):
        return _bool(value, name)
    if name == "due_date":
        return _iso_date(value, name)
    if name == "created_at":
        return _timestamp(value, name)
    if name == "conflict_of":
        return _record_id_or_none(value, name)
    raise ValueError(f"{name} is not a field of a {kind}")


class ChangeIn(BaseModel):
    """One write to one record: some fields, each with its clock stamp.

    `base` names, for each text field, the stamp of the version the edit started from, so
    the server can merge three-way instead of overwriting an edit the device had not seen.
    """

    model_config = ConfigDict(extra="forbid")

    id: uuid.UUID
    kind: Literal["task", "note"]
    record_id: uuid.UUID
    fields: dict[str, Any] = Field(min_length=1)
    stamps: dict[str, StampStr]
    base: dict[str, StampStr] | None = None

    @model_validator(mode="after")
    def _consistent(self) -> ChangeIn:
        allowed = FIELDS[self.kind]
        for name, value in self.fields.items():
            if name not in allowed:
                raise ValueError(f"fields.{name}: not a field of a {self.kind}")
            try:
                self.fields[name] = validate_field(self.kind, name, value)
            except ValueError as exc:
                raise ValueError(f"fields.{name}: {exc}") from None
        if set(self.stamps) != set(self.fields):
            raise ValueError("stamps must name exactly the fields the change sets")
        if self.base and not set(self.base) <= set(TEXT_FIELDS[self.kind]) & set(self.fields):
            raise ValueError("base may name only text fields the change sets")
        return self


class PushRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    node: NodeStr
    # The count limit is checked by the server, which answers 413 rather than 422.
    changes: list[ChangeIn]


class Resolved(BaseModel):
    """The server's value for a text field after it merged or kept a conflicting edit."""

    change_id: str
    kind: str
    record_id: str
    field: str
    value: Any
    stamp: str


class PushResponse(BaseModel):
    accepted: int  # changes applied now
    duplicates: int  # changes the server already had (a retried push)
    last_seq: int  # the user's newest sequence number after this push
    resolved: list[Resolved] = []


class ChangeOut(BaseModel):
    seq: int
    id: str
    kind: str
    record_id: str
    node: str
    fields: dict[str, Any]
    stamps: dict[str, str]


class PullResponse(BaseModel):
    changes: list[ChangeOut]
    next: int  # the cursor to send next time
    last_seq: int  # the user's newest sequence number at the time of this page
    more: bool


class Digest(BaseModel):
    """An order-independent summary of a user's records (see `sync.digest`)."""

    count: int
    sum_a: int
    sum_b: int
    #: server only: the user's newest sequence number when the digest was taken
    last_seq: int = 0
