from pydantic import AwareDatetime, BaseModel, ConfigDict, JsonValue


class WebhookMessage(BaseModel):
    """What is delivered: the same id, type, timestamp and data on every attempt."""

    model_config = ConfigDict(frozen=True)

    id: str
    event: str
    created_at: AwareDatetime
    payload: JsonValue


class DeliveryOutcome(BaseModel):
    """The result of one attempt. `error` is for people: short, and never carries secrets."""

    model_config = ConfigDict(frozen=True)

    succeeded: bool
    retryable: bool
    response_status: int | None = None
    error: str | None = None
    duration_ms: int
    # Seconds the receiver asked us to wait (Retry-After), on retryable answers only.
    retry_after: float | None = None
