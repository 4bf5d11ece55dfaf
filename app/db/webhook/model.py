import uuid
from datetime import datetime

from sqlalchemy import ARRAY, Column, Text
from sqlmodel import Field, SQLModel

from app.core.time import utcnow
from app.db.columns import timestamptz


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
    created_at: datetime = Field(default_factory=utcnow, sa_column=timestamptz())
    updated_at: datetime = Field(default_factory=utcnow, sa_column=timestamptz())
    deleted_at: datetime | None = Field(default=None, sa_column=timestamptz(nullable=True, default_now=False))
