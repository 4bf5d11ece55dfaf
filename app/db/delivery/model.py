import uuid
from datetime import datetime
from enum import StrEnum

from sqlalchemy import ForeignKey, Text, Uuid
from sqlmodel import Field, SQLModel

from app.core.time import utcnow
from app.db.columns import timestamptz


class DeliveryStatus(StrEnum):
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class Delivery(SQLModel, table=True):
    """One attempt to deliver one message to one webhook."""

    __tablename__ = "deliveries"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    message_id: uuid.UUID = Field(sa_type=Uuid, sa_column_args=[ForeignKey("messages.id", ondelete="CASCADE")])
    webhook_id: uuid.UUID = Field(sa_type=Uuid, sa_column_args=[ForeignKey("webhooks.id", ondelete="CASCADE")])
    attempt: int = Field(nullable=False)
    status: DeliveryStatus = Field(sa_type=Text, nullable=False)
    response_status: int | None = Field(default=None, nullable=True)
    error: str | None = Field(default=None, sa_type=Text, nullable=True)
    duration_ms: int = Field(nullable=False)
    # Set while a retry of this failed attempt is scheduled, on the webhook's latest attempt only;
    # None once the outcome is final or a later attempt has been recorded.
    next_attempt_at: datetime | None = Field(default=None, sa_column=timestamptz(nullable=True, default_now=False))
    # The last attempt number the scheduled retries may reach (their budget); None if none was scheduled.
    last_attempt: int | None = Field(default=None, nullable=True)
    created_at: datetime = Field(default_factory=utcnow, sa_column=timestamptz())
