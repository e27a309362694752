"""Ferry's data: the database tables (SQLModel) and the shapes the HTTP API accepts and returns.

Times are stored as integer UTC milliseconds (identical on SQLite and PostgreSQL, cheap to
order) and rendered as ISO 8601 with an offset, to the millisecond. Records are keyed by
(owner_id, id): the id is the client's UUID and owner_id is the signed-in user in server
mode ("" on the desktop), so one user's ids can never reach another's rows.
"""

from __future__ import annotations

import re
import uuid
from datetime import date
from typing import Annotated, Any, ClassVar

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    PlainSerializer,
    StrictBool,
    StrictInt,
    StringConstraints,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
)
from pydantic import (
    Field as PField,
)
from sqlalchemy import BigInteger, Column, Index, Text, UniqueConstraint, text
from sqlmodel import Field, SQLModel

from server.views import ms_to_iso
from sync.schema import BODY_MAX, DESCRIPTION_MAX, TITLE_MAX

# ---------------------------------------------------------------------------------------------
# Tables


CONFLICT_COPY = text("conflict_of IS NOT NULL")
PENDING = text("pushed = false")


class Task(SQLModel, table=True):
    __tablename__ = "tasks"
    # The index follows the list order exactly (dated first, by date, then by creation), so a
    # page of a long list is read straight off the index instead of sorting every row.
    __table_args__ = (
        # Covers the digest's sums (`sync.digest`): no table rows are read to add them up.
        # Ordered by id, so records with time-ordered ids are appended (migration 0004).
        Index("ix_tasks_digest", "owner_id", "id", "hash_a", "hash_b"),
        Index(
            "ix_tasks_owner_order",
            "owner_id",
            "deleted",
            text("(due_date IS NULL)"),
            "due_date",
            "created_ms",
            "id",
        ),
        # Only conflict copies (the UI's Conflicts view and count): a handful of rows.
        Index(
            "ix_tasks_conflict_copies",
            "owner_id",
            "deleted",
            sqlite_where=CONFLICT_COPY,
            postgresql_where=CONFLICT_COPY,
        ),
    )

    owner_id: str = Field(primary_key=True, max_length=36)
    id: str = Field(primary_key=True, max_length=36)
    title: str = Field(sa_column=Column(Text, nullable=False))
    description: str = Field(default="", sa_column=Column(Text, nullable=False))
    due_date: str | None = Field(default=None, max_length=10)
    completed: bool = False
    conflict_of: str | None = Field(default=None, max_length=36)
    deleted: bool = False
    created_ms: int = Field(sa_type=BigInteger)
    updated_ms: int = Field(sa_type=BigInteger)
    #: JSON object: field name -> hybrid-logical-clock stamp of its last write
    stamps: str = Field(sa_column=Column(Text, nullable=False))
    #: this record's share of the user's digest (`sync.digest`)
    hash_a: int = Field(default=0, sa_type=BigInteger)
    hash_b: int = Field(default=0, sa_type=BigInteger)


class Note(SQLModel, table=True):
    __tablename__ = "notes"
    __table_args__ = (
        Index("ix_notes_digest", "owner_id", "id", "hash_a", "hash_b"),
        Index("ix_notes_owner_order", "owner_id", "deleted", "created_ms", "id"),
        Index(
            "ix_notes_conflict_copies",
            "owner_id",
            "deleted",
            sqlite_where=CONFLICT_COPY,
            postgresql_where=CONFLICT_COPY,
        ),
    )

    owner_id: str = Field(primary_key=True, max_length=36)
    id: str = Field(primary_key=True, max_length=36)
    title: str = Field(sa_column=Column(Text, nullable=False))
    body: str = Field(default="", sa_column=Column(Text, nullable=False))
    done: bool = False
    conflict_of: str | None = Field(default=None, max_length=36)
    deleted: bool = False
    created_ms: int = Field(sa_type=BigInteger)
    updated_ms: int = Field(sa_type=BigInteger)
    stamps: str = Field(sa_column=Column(Text, nullable=False))
    hash_a: int = Field(default=0, sa_type=BigInteger)
    hash_b: int = Field(default=0, sa_type=BigInteger)


class Change(SQLModel, table=True):
    """The durable change log: one row per write, committed with the write itself."""

    __tablename__ = "changes"
    __table_args__ = (
        UniqueConstraint("owner_id", "change_id", name="uq_changes_owner_change"),
        Index("ix_changes_owner_user_seq", "owner_id", "user_seq"),
        # Only the changes a device has not pushed yet (none on the server): migration 0005.
        Index("ix_changes_pending", "owner_id", "seq", sqlite_where=PENDING, postgresql_where=PENDING),
        Index("ix_changes_record", "owner_id", "record_id"),
    )

    seq: int | None = Field(default=None, primary_key=True)
    owner_id: str = Field(max_length=36)
    #: server mode: the per-user sequence number, assigned in commit order (sync rule 5)
    user_seq: int | None = Field(default=None, sa_type=BigInteger)
    change_id: str = Field(max_length=36)
    kind: str = Field(max_length=8)
    record_id: str = Field(max_length=36)
    fields: str = Field(sa_column=Column(Text, nullable=False))
    stamps: str = Field(sa_column=Column(Text, nullable=False))
    #: text fields only: the stamp of the version an edit was based on
    base: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    node: str = Field(max_length=16)
    created_ms: int = Field(sa_type=BigInteger)
    #: desktop: whether the shared server has acknowledged this change
    pushed: bool = False


class UserSeq(SQLModel, table=True):
    """Server mode: the last sequence number given to a user's changes (locked per push)."""

    __tablename__ = "user_seqs"
    owner_id: str = Field(primary_key=True, max_length=36)
    last_seq: int = Field(default=0, sa_type=BigInteger)


class User(SQLModel, table=True):
    __tablename__ = "users"
    id: str = Field(primary_key=True, max_length=36)
    username: str = Field(max_length=64, unique=True, index=True)
    email: str | None = Field(default=None, max_length=254)
    password_hash: str = Field(max_length=255)
    created_ms: int = Field(sa_type=BigInteger)


class RefreshToken(SQLModel, table=True):
    """Rotating refresh tokens: each is used once; reusing one revokes its whole family.

    One exception keeps a device signed in when the answer to a refresh is lost on the way:
    a used token may be shown again while the token that replaced it has never been used.
    """

    __tablename__ = "refresh_tokens"
    jti: str = Field(primary_key=True, max_length=36)
    user_id: str = Field(foreign_key="users.id", index=True, max_length=36, ondelete="CASCADE")
    family: str = Field(max_length=36, index=True)
    expires_ms: int = Field(sa_type=BigInteger)
    used: bool = False
    revoked: bool = False
    replaced_by: str | None = Field(default=None, max_length=36)


class LoginFailure(SQLModel, table=True):
    """Failed sign-ins, kept in the database so every worker counts the same failures."""

    __tablename__ = "login_failures"
    id: int | None = Field(default=None, primary_key=True)
    key: str = Field(max_length=400, index=True)
    at_ms: int = Field(sa_type=BigInteger, index=True)


class Meta(SQLModel, table=True):
    """Small key/value facts about this database: node id, local settings."""

    __tablename__ = "meta"
    key: str = Field(primary_key=True, max_length=64)
    value: str = Field(sa_column=Column(Text, nullable=False))


# ---------------------------------------------------------------------------------------------
# API shapes


def _clean_text(value: str) -> str:
    # PostgreSQL refuses NUL in text and no database stores a lone surrogate; refusing both
    # here turns what would be a 500 into a 422 that names the field.
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("must be valid Unicode (no lone surrogates)") from None
    return value


Title = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=TITLE_MAX),
    AfterValidator(_clean_text),
]
Description = Annotated[str, PField(max_length=DESCRIPTION_MAX), AfterValidator(_clean_text)]
Body = Annotated[str, PField(max_length=BODY_MAX), AfterValidator(_clean_text)]
SearchText = Annotated[str, PField(max_length=200), AfterValidator(_clean_text)]


_ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def _iso_date(value: Any) -> Any:
    # JSON has no date type: accept only the ISO text "YYYY-MM-DD", never a number. The
    # pattern matters: Python's date.fromisoformat also takes week dates ("2024-W05-1").
    if isinstance(value, date):
        return value
    if not isinstance(value, str) or _ISO_DATE.fullmatch(value) is None:
        raise ValueError("must be an ISO date (YYYY-MM-DD)")
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise ValueError("must be an ISO date (YYYY-MM-DD)") from None


StrictDate = Annotated[date, BeforeValidator(_iso_date)]
Timestamp = Annotated[
    int,
    PlainSerializer(ms_to_iso, return_type=str),
    WithJsonSchema({"type": "string", "format": "date-time"}),
]


class _Input(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TaskWrite(_Input):
    """A whole task, as PUT replaces it."""

    title: Title
    description: Description = ""
    due_date: StrictDate | None = None
    completed: StrictBool = False


class TaskCreate(TaskWrite):
    id: uuid.UUID | None = PField(default=None, description="Client-generated UUID (v7 preferred).")


def _patch_schema(schema: dict[str, Any], model: type[BaseModel]) -> None:
    # The fields default to None only to tell "not sent" apart; an explicit null is refused,
    # so /openapi.json must not offer it (clients and schema-driven tests believe the schema).
    nullable = getattr(model, "NULLABLE", frozenset())
    for name, prop in schema.get("properties", {}).items():
        options = prop.get("anyOf")
        if name in nullable or not options:
            continue
        kept = [option for option in options if option.get("type") != "null"]
        if len(kept) == 1:
            del prop["anyOf"]
            prop.update(kept[0])


class _Patch(_Input):
    """A partial update: only the fields sent change; `null` is refused except where it means
    "none" (a task's due date)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=_patch_schema)

    @field_validator("*", mode="after")
    @classmethod
    def _not_null(cls, value: Any, info: ValidationInfo) -> Any:
        if value is None and info.field_name not in cls.NULLABLE:
            raise ValueError("may not be null")
        return value

    NULLABLE: ClassVar[frozenset[str]] = frozenset()


class TaskPatch(_Patch):
    NULLABLE: ClassVar[frozenset[str]] = frozenset({"due_date"})

    title: Title | None = None
    description: Description | None = None
    due_date: StrictDate | None = None
    completed: StrictBool | None = None


class TaskRead(BaseModel):
    id: str
    title: str
    description: str
    due_date: str | None = PField(json_schema_extra={"format": "date"})
    completed: bool
    conflict_of: str | None = PField(None, description="Set on a conflict copy: the record it was split from")
    created_at: Timestamp
    updated_at: Timestamp


class NoteWrite(_Input):
    title: Title
    body: Body = ""
    done: StrictBool = False


class NoteCreate(NoteWrite):
    id: uuid.UUID | None = PField(default=None, description="Client-generated UUID (v7 preferred).")


class NotePatch(_Patch):
    title: Title | None = None
    body: Body | None = None
    done: StrictBool | None = None


class NoteRead(BaseModel):
    id: str
    title: str
    body: str
    done: bool
    conflict_of: str | None = PField(None, description="Set on a conflict copy: the record it was split from")
    created_at: Timestamp
    updated_at: Timestamp


# Auth -----------------------------------------------------------------------------------------

Username = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=3, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$"),
]
Password = Annotated[str, PField(min_length=8, max_length=1024), AfterValidator(_clean_text)]
Email = Annotated[
    str,
    StringConstraints(strip_whitespace=True, max_length=254, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$"),
    AfterValidator(_clean_text),  # the pattern lets NUL through, which PostgreSQL refuses (a 500)
]


class UserRegister(_Input):
    username: Username
    password: Password
    email: Email | None = None


class UserRead(BaseModel):
    id: str
    username: str
    email: str | None
    created_at: Timestamp


class TokenPair(BaseModel):
    access_token: str
    token_type: str = "bearer"
    expires_in: int
    refresh_token: str


class RefreshRequest(_Input):
    refresh_token: Annotated[str, PField(min_length=1, max_length=4096)]


# Health and local settings -------------------------------------------------------------------


class Health(BaseModel):
    status: str
    mode: str
    version: str
    database: str


class LocalSettings(_Input):
    server_url: Annotated[str, PField(max_length=2048), AfterValidator(_clean_text)] | None = None
    # Strict, like the records' booleans: the JSON string "30" is a wrong type, not a number.
    sync_interval_seconds: Annotated[StrictInt, PField(ge=5, le=86_400)] = 30
    theme: Annotated[str, PField(pattern=r"^(system|light|dark)$")] = "system"


class ErrorItem(BaseModel):
    field: str
    loc: list[Any]
    msg: str
    type: str


class ErrorBody(BaseModel):
    detail: Any
    request_id: str | None = None
