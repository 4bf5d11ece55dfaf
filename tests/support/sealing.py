"""Signing secrets as the suite stores them: sealed with the test settings' key ring (the development key)."""

from app.core.encryption import KeyRing, Sealed
from app.db.webhook.model import Webhook
from tests.support.settings import test_settings

KEYRING = KeyRing(test_settings().webhook_secret_keys)


def sealed(*secrets: str, context: bytes = b"tests") -> list[Sealed]:
    """`secrets` as WebhookClient.deliver takes them."""
    return [KEYRING.seal(secret, context=context) for secret in secrets]


def secret_of(webhook: Webhook) -> str:
    """The webhook's signing secret in plain text, as a receiver holds it."""
    return KEYRING.open(webhook.sealed_secret)
