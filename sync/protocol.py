"""The wire protocol between a device and the shared server (pydantic models).

See `sync/README.md` for what each side stores and why it converges. In short:
- `POST /api/sync/push` sends a batch of `ChangeIn` in the order they were made; the server
  applies them atomically and answers with what it resolved;
- `GET /api/sync/pull?after=N` returns the user's changes with sequence numbers above N;
- `GET /api/sync/digest` summarises the user's data so both sides can compare.
"""

from datetime import date, datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints, model_validator
from typing_extensions import TypedDict

from sync.hlc import STAMP_RE
from sync.schema import BODY_MAX, DESCRIPTION_MAX, TEXT_FIELDS, TITLE_MAX

StampStr = Annotated[str, StringConstraints(pattern=STAMP_RE.pattern)]
NodeStr = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{16}$")]

MAX_PUSH_CHANGES = 5000
PULL_PAGE_DEFAULT = 2000
PULL_PAGE_MAX = 5000


UUID_PATTERN = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
Uuid = Annotated[str, StringConstraints(pattern=UUID_PATTERN, to_lower=True)]
NO_NUL = r"^[^\x00]*$"  # PostgreSQL text cannot hold NUL


def _real_date(value: str | None) -> str | None:
    if value is not None:
        try:
            date.fromisoformat(value)
        except ValueError:
            raise ValueError("must be a real calendar date") from None
    return value


def _aware_timestamp(value: str) -> str:
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError("must be an ISO 8601 timestamp") from None
    if parsed.tzinfo is None:
        raise ValueError("must carry a UTC offset")
    return value


Title = Annotated[str, StringConstraints(max_length=TITLE_MAX, pattern=NO_NUL)]
Description = Annotated[str, StringConstraints(max_length=DESCRIPTION_MAX, pattern=NO_NUL)]
Body = Annotated[str, StringConstraints(max_length=BODY_MAX, pattern=NO_NUL)]
DueDate = Annotated[
    Annotated[str, StringConstraints(pattern=r"^\d{4}-\d{2}-\d{2}$")] | None, AfterValidator(_real_date)
]
CreatedAt = Annotated[str, StringConstraints(min_length=20, max_length=40), AfterValidator(_aware_timestamp)]


# The field types are checked by pydantic's core (in Rust): a push of thousands of changes
# must not spend its time in Python validators.
class TaskFields(TypedDict, total=False):
    __pydantic_config__ = ConfigDict(extra="forbid", strict=True)  # type: ignore[misc]
    title: Title
    description: Description
    due_date: DueDate
    completed: bool
    created_at: CreatedAt
    conflict_of: Uuid | None
    deleted: bool


class NoteFields(TypedDict, total=False):
    __pydantic_config__ = ConfigDict(extra="forbid", strict=True)  # type: ignore[misc]
    title: Title
    body: Body
    done: bool
    created_at: CreatedAt
    conflict_of: Uuid | None
    deleted: bool


class _Change(BaseModel):
    """One write to one record: some fields, each with its clock stamp.

    `base` names, for each text field, the stamp of the version the edit started from, so
    the server can merge three-way instead of overwriting an edit the device had not seen.
    """

    model_config = ConfigDict(extra="forbid")

    id: Uuid
    record_id: Uuid
    stamps: dict[str, StampStr]
    base: dict[str, StampStr] | None = None

    @model_validator(mode="after")
    def _consistent(self) -> "_Change":
        fields: dict[str, Any] = self.fields  # type: ignore[attr-defined]
        if not fields:
            raise ValueError("fields: a change sets at least one field")
        if self.stamps.keys() != fields.keys():
            raise ValueError("stamps must name exactly the fields the change sets")
        if self.base and not self.base.keys() <= TEXT_FIELDS[self.kind] & fields.keys():  # type: ignore[attr-defined]
            raise ValueError("base may name only text fields the change sets")
        return self


class TaskChange(_Change):
    kind: Literal["task"]
    fields: TaskFields


class NoteChange(_Change):
    kind: Literal["note"]
    fields: NoteFields


ChangeIn = Annotated[TaskChange | NoteChange, Field(discriminator="kind")]


class PullAsk(BaseModel):
    """A push's request for the first page of the pull that follows it (see `PushRequest`)."""

    model_config = ConfigDict(extra="forbid")

    after: int = Field(ge=0, le=2**62, description="The cursor: last sequence number applied")
    limit: int = Field(default=PULL_PAGE_DEFAULT, ge=1, le=PULL_PAGE_MAX)
    digest: Literal["no", "yes", "changed"] = "no"


class PushRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    node: NodeStr
    # The count limit is checked by the server, which answers 413 rather than 422.
    changes: list[ChangeIn]
    #: also answer with the first page of a pull after the push (the pushing node's own
    #: changes left out), as `GET /api/sync/pull` would give it: one request for a round
    pull: PullAsk | None = None


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
    #: the page the push asked for (`PushRequest.pull`), read after the push committed
    pull: "PullResponse | None" = None


class ChangeOut(BaseModel):
    seq: int
    id: str
    kind: str
    record_id: str
    node: str
    fields: dict[str, Any]
    stamps: dict[str, str]


class Digest(BaseModel):
    """An order-independent summary of a user's records (see `sync.digest`)."""

    count: int
    sum_a: int
    sum_b: int
    #: server only: the user's newest sequence number when the digest was taken
    last_seq: int = 0


class PullResponse(BaseModel):
    changes: list[ChangeOut]
    next: int  # the cursor to send next time
    last_seq: int  # the user's newest sequence number at the time of this page
    more: bool
    #: on the last page when asked for (`digest=yes|changed`): the user's digest at `last_seq`
    digest: Digest | None = None


PushResponse.model_rebuild()
