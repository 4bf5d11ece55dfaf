"""Request and response schemas of the messages API."""

import uuid
from datetime import datetime
from typing import Annotated, Any

from fastapi import Query
from pydantic import BaseModel, ConfigDict, Field, field_validator

from app.api.pagination import PageParams
from app.api.validation import (
    EVENT_NAME_MAX_LENGTH,
    EVENT_NAME_PATTERN,
    EVENT_NAME_SCHEMA,
    StorableJsonObject,
    check_event_name,
)
from app.db.delivery.model import DeliveryStatus
from app.db.message.model import MessageStatus

IDEMPOTENCY_KEY_PATTERN = r"^[\x21-\x7e]{1,255}$"


class MessageCreate(BaseModel):
    # strict: a JSON value of another type is refused, not converted (as OpenAPI says).
    model_config = ConfigDict(extra="forbid", strict=True)

    event: str = Field(description="event name, e.g. order.created", json_schema_extra=EVENT_NAME_SCHEMA)
    payload: StorableJsonObject = Field(
        description="any JSON object, delivered as `data`: nested at most 64 levels, finite numbers, and no NUL "
        "character or lone surrogate in any string or key (PostgreSQL could not store them)"
    )

    @field_validator("event")
    @classmethod
    def _event(cls, value: str) -> str:
        return check_event_name(value)


class MessageSummary(BaseModel):
    """A message as lists show it: without its payload, so that a page stays small whatever the payloads
    (a page of 100 is some 30 KB, where payloads of up to MAX_BODY_BYTES could make it 100 MiB)."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    event: str
    status: MessageStatus
    created_at: datetime
    updated_at: datetime


class MessageRead(MessageSummary):
    """A message with its payload (`GET /messages/{id}` and the answers to create and redeliver)."""

    payload: dict[str, Any]


class MessageFilters(PageParams):
    event: str | None = Field(default=None, max_length=EVENT_NAME_MAX_LENGTH, pattern=EVENT_NAME_PATTERN)
    status: MessageStatus | None = None


MessageFilterQuery = Annotated[MessageFilters, Query()]


class DeliveryRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    webhook_id: uuid.UUID
    attempt: int
    status: DeliveryStatus
    response_status: int | None
    error: str | None
    duration_ms: int
    created_at: datetime
