"""Request and response schemas of the messages API."""

import uuid
from datetime import datetime
from typing import Annotated, Any

from fastapi import Query
from pydantic import BaseModel, ConfigDict, Field, field_validator

from app.api.pagination import PageParams
from app.api.validation import EVENT_NAME_MAX_LENGTH, EVENT_NAME_PATTERN, check_event_name, check_json_storable
from app.db.delivery.model import DeliveryStatus
from app.db.message.model import MessageStatus

IDEMPOTENCY_KEY_PATTERN = r"^[\x21-\x7e]{1,255}$"


class MessageCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    event: str = Field(description="event name, e.g. order.created")
    payload: dict[str, Any] = Field(description="any JSON object; delivered as `data`")

    @field_validator("event")
    @classmethod
    def _event(cls, value: str) -> str:
        return check_event_name(value)

    @field_validator("payload")
    @classmethod
    def _payload(cls, value: dict[str, Any]) -> dict[str, Any]:
        return check_json_storable(value)


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
