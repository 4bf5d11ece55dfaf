"""Rows written straight to the tables, as the API and the worker would have left them.

`await create_x(session, **overrides)`: sensible defaults, any column overridden; the row is flushed
(it has its id), not committed: the test decides.
"""

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.clients.webhooks.signing import generate_secret
from app.core.time import utcnow
from app.db.delivery.model import Delivery, DeliveryStatus
from app.db.delivery.table import DeliveriesTable
from app.db.message.model import Message
from app.db.message.table import MessagesTable
from app.db.webhook.model import DisabledReason, Webhook
from app.db.webhook.table import WebhooksTable
from tests.support.sealing import KEYRING


async def create_webhook(session: AsyncSession, **overrides: Any) -> Webhook:
    """A webhook; `secret=` (plain text, default a new one) is stored sealed, as the API stores it; given
    `active=False` alone, the client turned it off just now."""
    secret = overrides.pop("secret", None) or generate_secret()
    values: dict[str, Any] = {"client_id": "client-a", "url": "https://example.com/hooks", "events": ["order.created"]}
    if overrides.get("active") is False:
        values |= {"disabled_reason": DisabledReason.MANUAL, "disabled_at": utcnow()}
    webhook = Webhook(**{**values, **overrides})
    webhook.set_secret(KEYRING.seal(secret, context=webhook.secret_context))
    return await WebhooksTable(session).insert_model(webhook)


async def create_message(session: AsyncSession, **overrides: Any) -> Message:
    """A message; given `created_at` alone, it was not updated since (updated_at is the same instant)."""
    values: dict[str, Any] = {"client_id": "client-a", "event": "order.created", "payload": {"n": 1}}
    return await MessagesTable(session).insert_model(Message(**{**values, **overrides}))


async def create_delivery(session: AsyncSession, **overrides: Any) -> Delivery:
    """An attempt of message `message_id` to webhook `webhook_id` (both required): by default the first, failed
    with a 500; `succeeded=True` for one answered 200."""
    missing = {"message_id", "webhook_id"} - overrides.keys()
    if missing:
        raise TypeError(f"create_delivery needs {', '.join(sorted(missing))}")
    succeeded = bool(overrides.pop("succeeded", False))
    values: dict[str, Any] = {
        "attempt": 1,
        "status": DeliveryStatus.SUCCEEDED if succeeded else DeliveryStatus.FAILED,
        "response_status": 200 if succeeded else 500,
        "error": None if succeeded else "HTTP 500",
        "duration_ms": 5,
    }
    return await DeliveriesTable(session).insert_model(Delivery(**{**values, **overrides}))
