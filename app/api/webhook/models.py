"""Request and response schemas of the webhooks API."""

import uuid
from datetime import datetime
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints, field_validator

from app.api.validation import StorableText, check_event_name, check_http_url, check_text
from app.db.webhook.model import DisabledReason

MAX_EVENTS = 50
DESCRIPTION_MAX_LENGTH = 500
MAX_SECRET_OVERLAP_SECONDS = 7 * 86_400

Description = Annotated[str, StringConstraints(max_length=DESCRIPTION_MAX_LENGTH), AfterValidator(check_text)]


def _events(values: list[str]) -> list[str]:
    # The event name pattern admits neither NUL nor surrogates, so names are storable text too.
    # Duplicates are dropped, first occurrence wins, so the stored list is what the client meant.
    return list(dict.fromkeys(check_event_name(v) for v in values))


class WebhookCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: StorableText = Field(description="http(s) URL that receives the signed POSTs")
    events: list[str] = Field(min_length=1, max_length=MAX_EVENTS, description="event names, e.g. order.created")
    description: Description | None = None

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        return check_http_url(value)

    @field_validator("events")
    @classmethod
    def _events(cls, values: list[str]) -> list[str]:
        return _events(values)


class WebhookUpdate(BaseModel):
    """Only the fields sent are changed; `description: null` clears it."""

    model_config = ConfigDict(extra="forbid")

    url: StorableText | None = None
    events: list[str] | None = Field(default=None, min_length=1, max_length=MAX_EVENTS)
    description: Description | None = None
    active: bool | None = None

    @field_validator("url")
    @classmethod
    def _url(cls, value: str | None) -> str:
        if value is None:
            raise ValueError("url cannot be null")
        return check_http_url(value)

    @field_validator("events")
    @classmethod
    def _events(cls, values: list[str] | None) -> list[str]:
        if values is None:
            raise ValueError("events cannot be null")
        return _events(values)

    @field_validator("active")
    @classmethod
    def _active(cls, value: bool | None) -> bool:
        if value is None:
            raise ValueError("active cannot be null")
        return value


class WebhookRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    url: str
    events: list[str]
    description: str | None
    active: bool = Field(
        description="False: sent nothing (its messages are recorded as not sent) until set true again with PATCH."
    )
    disabled_reason: DisabledReason | None = Field(
        description="Why it is inactive: `gone` (the endpoint answered 410 Gone), `failing` (every attempt failed "
        "for WEBHOOK_DISABLE_AFTER_FAILING_DAYS, default 5) or `manual` (the client turned it off); null if active."
    )
    disabled_at: datetime | None = Field(description="When it became inactive; null if active.")
    failing_since: datetime | None = Field(
        description="The first failed attempt since the last successful one; null while the endpoint answers 2xx."
    )
    created_at: datetime
    updated_at: datetime


class WebhookCreated(WebhookRead):
    """The create response: the only time the signing secret is shown."""

    secret: str = Field(description="Standard Webhooks signing secret (whsec_...). Store it now.")


class SecretRotation(BaseModel):
    model_config = ConfigDict(extra="forbid")

    overlap_seconds: int | None = Field(
        default=None,
        ge=0,
        le=MAX_SECRET_OVERLAP_SECONDS,
        description="How long the current secret keeps signing deliveries beside the new one; 0 ends it at once "
        "(after a leak). Default: the service's overlap window (24 h unless configured otherwise).",
    )


class WebhookSecretRotated(BaseModel):
    """The rotate-secret response: the only time the new signing secret is shown."""

    secret: str = Field(description="The new Standard Webhooks signing secret (whsec_...). Store it now.")
    previous_secret_expires_at: datetime | None = Field(
        description="Until then deliveries carry a signature with the previous secret too (null: they do not)."
    )
