import uuid
from datetime import datetime
from enum import StrEnum

from sqlalchemy import ARRAY, Column, Text
from sqlmodel import Field, SQLModel

from app.core.time import utcnow
from app.db.columns import timestamptz


class DisabledReason(StrEnum):
    GONE = "gone"  # the endpoint answered 410 Gone
    FAILING = "failing"  # every attempt failed for WEBHOOK_DISABLE_AFTER_FAILING_DAYS
    MANUAL = "manual"  # the client set active to false


class Webhook(SQLModel, table=True):
    __tablename__ = "webhooks"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    client_id: str = Field(sa_type=Text, nullable=False)
    url: str = Field(sa_type=Text, nullable=False)
    events: list[str] = Field(sa_column=Column(ARRAY(Text), nullable=False))
    description: str | None = Field(default=None, sa_type=Text, nullable=True)
    active: bool = Field(default=True, nullable=False)
    # Kept to sign deliveries; shown to the client once, at creation.
    secret: str = Field(sa_type=Text, nullable=False)
    # The first failed attempt since the last successful one (None while the endpoint answers 2xx).
    failing_since: datetime | None = Field(default=None, sa_column=timestamptz(nullable=True, default_now=False))
    # Why and since when it is inactive; both None while it is active (a constraint says so).
    disabled_reason: DisabledReason | None = Field(default=None, sa_type=Text, nullable=True)
    disabled_at: datetime | None = Field(default=None, sa_column=timestamptz(nullable=True, default_now=False))
    created_at: datetime = Field(default_factory=utcnow, sa_column=timestamptz())
    updated_at: datetime = Field(default_factory=utcnow, sa_column=timestamptz())
    deleted_at: datetime | None = Field(default=None, sa_column=timestamptz(nullable=True, default_now=False))

    def set_active(self, active: bool, at: datetime) -> None:
        """The client's switch: off records why and when; on starts afresh (no failing streak carried over,
        or the next failure would disable it again at once). Setting the current state changes nothing."""
        if active == self.active:
            return
        self.active = active
        self.failing_since = None
        self.disabled_reason = None if active else DisabledReason.MANUAL
        self.disabled_at = None if active else at
