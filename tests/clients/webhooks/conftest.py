from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest

from app.clients.webhooks.client import WebhookClient
from app.clients.webhooks.models import WebhookMessage
from app.clients.webhooks.signing import generate_secret
from app.clients.webhooks.target import TargetGuard
from tests.support.sealing import KEYRING

# The body carries it as the API shows it: ISO 8601, UTC as `Z`.
CREATED_AT = datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)
CREATED_AT_JSON = "2026-01-02T03:04:05.678000Z"


@pytest.fixture
def secret() -> str:
    return generate_secret()


@pytest.fixture
def message() -> WebhookMessage:
    return WebhookMessage(
        id="msg_2mTzW1ZQ5tq8a0S5Zx2yJ0bq",
        event="order.created",
        created_at=CREATED_AT,
        payload={"order_id": 42, "items": [{"sku": "A-1", "qty": 2}], "note": "café ☕"},
    )


@pytest.fixture
async def public_only() -> AsyncIterator[WebhookClient]:
    """The webhook client as outside local/test: public targets only."""
    client = WebhookClient(TargetGuard(allow_private=False), KEYRING)
    yield client
    await client.aclose()
