"""API shapes of partners, endpoints, the outbox, the delivery log and imports."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

Code = Annotated[str, StringConstraints(strip_whitespace=True, pattern=r"^[A-Za-z0-9._-]{2,40}$")]
SenderId = Annotated[str, StringConstraints(strip_whitespace=True, pattern=r"^[^\s,<&\"]{2,200}$")]
Topic = Literal["requests", "answers", "deployments", "alerts"]
DEFAULT_TOPICS: tuple[Topic, ...] = ("requests", "answers", "deployments")


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PartnerCreate(_In):
    code: Code
    name: Annotated[str, StringConstraints(strip_whitespace=True, min_length=2, max_length=200)]
    sender_id: SenderId = Field(description="Its EDXL-DE senderID / CAP sender.")
    unit_code: str | None = Field(
        default=None, description="A registered unit: the partner reads and is read as it."
    )
    country: Annotated[str, StringConstraints(pattern=r"^[A-Za-z]{2}$")] | None = None
    observer: bool = False
    de_version: Literal["2.0", "1.0"] = "2.0"
    topics: list[Topic] = Field(default_factory=lambda: list(DEFAULT_TOPICS))
    exercise_traffic: bool = True
    note: Annotated[str, StringConstraints(max_length=2000)] = ""


class PartnerUpdate(_In):
    """Fields left out keep their value."""

    name: Annotated[str, StringConstraints(min_length=2, max_length=200)] | None = None
    de_version: Literal["2.0", "1.0"] | None = None
    topics: list[Topic] | None = None
    exercise_traffic: bool | None = None
    observer: bool | None = None
    active: bool | None = None
    note: Annotated[str, StringConstraints(max_length=2000)] | None = None


class EndpointCreate(_In):
    kind: Literal["http", "directory"]
    target: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=500)]
    secret: Annotated[str, StringConstraints(max_length=200)] = Field(
        default="", description="HMAC-SHA256 key (HTTP); generated when left empty."
    )


class EndpointOut(BaseModel):
    id: int
    kind: str
    target: str
    active: bool
    created_at: datetime
    # Shown once, when the endpoint is created; never listed again.
    secret: str | None = None


class PartnerOut(BaseModel):
    id: int
    code: str
    name: str
    sender_id: str
    unit_code: str | None
    country: str | None
    observer: bool
    de_version: str
    topics: list[str]
    exercise_traffic: bool
    active: bool
    note: str
    created_at: datetime
    reads_as: str = Field(description="Whose view of requests its messages are shaped from.")
    endpoints: list[EndpointOut]
    pending: int
    parked: int


class OutboxOut(BaseModel):
    id: int
    message_id: str
    message_type: str
    partner: str
    endpoint: str
    request_reference: str | None
    state: str
    attempts: int
    next_attempt_at: datetime | None
    last_error: str
    created_at: datetime
    delivered_at: datetime | None


class AttemptOut(BaseModel):
    id: int
    outbox_id: int
    message_id: str
    partner: str
    at: datetime
    ok: bool
    status_code: int | None
    error: str
    duration_ms: int


class ImportResult(BaseModel):
    message_id: str
    message_type: str
    envelope: str | None = Field(description="EDXL-DE version, or None for a bare message.")
    sender: str
    partner: str | None
    duplicate: bool = Field(description="Seen before: nothing was changed.")
    request_id: int | None
    request_reference: str | None
    outcome: str
    schema_validation: str = Field(
        description="'official schemas' or why not (no schema folder configured)."
    )


class CheckResult(BaseModel):
    kind: str
    valid: bool
    schema_validation: str
    errors: list[dict[str, str]]
