"""Request and response schemas of the webhooks API."""

import uuid
from datetime import datetime
from typing import Annotated

from pydantic import MISSING, AfterValidator, BaseModel, ConfigDict, Field, StringConstraints, field_validator
from pydantic.config import JsonDict

from app.api.validation import (
    EVENT_NAME_SCHEMA,
    STORABLE_TEXT_PATTERN,
    URL_SCHEMA,
    StorableText,
    check_event_name,
    check_http_url,
    check_text,
)
from app.db.webhook.model import DisabledReason

MAX_EVENTS = 50
DESCRIPTION_MAX_LENGTH = 500
MAX_SECRET_OVERLAP_SECONDS = 7 * 86_400

Description = Annotated[
    str,
    StringConstraints(max_length=DESCRIPTION_MAX_LENGTH),
    AfterValidator(check_text),
    Field(json_schema_extra={"pattern": STORABLE_TEXT_PATTERN}),
]
# The event names' rule, stated in OpenAPI for every item (the validator checks them with its own messages).
EVENTS_SCHEMA: JsonDict = {"items": EVENT_NAME_SCHEMA}


def _events(values: list[str]) -> list[str]:
    # The event name pattern admits neither NUL nor surrogates, so names are storable text too.
    # Duplicates are dropped, first occurrence wins, so the stored list is what the client meant.
    return list(dict.fromkeys(check_event_name(v) for v in values))


class WebhookCreate(BaseModel):
    # strict: a JSON value of another type is refused, not converted (as OpenAPI says).
    model_config = ConfigDict(extra="forbid", strict=True)

    url: StorableText = Field(description="http(s) URL that receives the signed POSTs", json_schema_extra=URL_SCHEMA)
    events: list[str] = Field(
        min_length=1,
        max_length=MAX_EVENTS,
        description="event names, e.g. order.created (duplicates are dropped)",
        json_schema_extra=EVENTS_SCHEMA,
    )
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
    """Only the fields sent are changed; `description: null` clears it. The others cannot be null."""

    model_config = ConfigDict(extra="forbid", strict=True)

    # MISSING, not None: a field left out is absent from the model (and from OpenAPI's defaults), and null is
    # refused for the fields that cannot be cleared, as the document says.
    url: StorableText | MISSING = Field(default=MISSING, json_schema_extra=URL_SCHEMA)
    events: list[str] | MISSING = Field(
        default=MISSING, min_length=1, max_length=MAX_EVENTS, json_schema_extra=EVENTS_SCHEMA
    )
    description: Description | None = None
    active: bool | MISSING = MISSING

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        return check_http_url(value)

    @field_validator("events")
    @classmethod
    def _events(cls, values: list[str]) -> list[str]:
        return _events(values)


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
    # strict: a JSON value of another type is refused, not converted (as OpenAPI says).
    model_config = ConfigDict(extra="forbid", strict=True)

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
