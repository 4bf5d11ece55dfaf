import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import ARRAY, Column, Text, Uuid
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, SQLModel

from app.core.time import utcnow
from app.db.columns import timestamptz


class MessageStatus(StrEnum):
    PENDING = "pending"
    DELIVERING = "delivering"
    DELIVERED = "delivered"
    FAILED = "failed"
    PARTIALLY_FAILED = "partially_failed"


class Message(SQLModel, table=True):
    __tablename__ = "messages"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    client_id: str = Field(sa_type=Text, nullable=False)
    event: str = Field(sa_type=Text, nullable=False)
    payload: dict[str, Any] = Field(sa_column=Column(JSONB, nullable=False))
    status: MessageStatus = Field(default=MessageStatus.PENDING, sa_type=Text, nullable=False)
    idempotency_key: str | None = Field(default=None, sa_type=Text, nullable=True)
    # SHA-256 of the request that used the idempotency key, to tell a retry from a different request.
    request_hash: str | None = Field(default=None, sa_type=Text, nullable=True)
    created_at: datetime = Field(default_factory=utcnow, sa_column=timestamptz())
    updated_at: datetime = Field(default_factory=utcnow, sa_column=timestamptz())
    # The fan-out's claim (app/api/messaging/delivery_service.py): who delivers it right now, until when
    # (past it, another worker takes over), and the webhooks still without a recorded attempt.
    claim_token: uuid.UUID | None = Field(default=None, sa_type=Uuid, nullable=True)
    claimed_until: datetime | None = Field(default=None, sa_column=timestamptz(nullable=True, default_now=False))
    unattempted_webhook_ids: list[uuid.UUID] | None = Field(default=None, sa_column=Column(ARRAY(Uuid), nullable=True))
