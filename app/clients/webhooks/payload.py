"""The body of a webhook request, in the Standard Webhooks shape: `{"type", "timestamp", "data"}`."""

import json

from app.clients.webhooks.models import WebhookMessage


def build_body(message: WebhookMessage) -> bytes:
    """The request body, serialised once: the signature covers exactly these bytes."""
    # The timestamp in the exact ISO 8601 form the API shows as the message's created_at.
    timestamp = message.model_dump(mode="json", include={"created_at"})["created_at"]
    document = {"type": message.event, "timestamp": timestamp, "data": message.payload}
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode()
