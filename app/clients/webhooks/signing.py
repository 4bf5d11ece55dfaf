"""Standard Webhooks signing: `v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`."""

import base64
import binascii
import hashlib
import hmac
import secrets
from collections.abc import Sequence

SECRET_PREFIX = "whsec_"  # noqa: S105 - the Standard Webhooks prefix, not a secret
SECRET_BYTES = 32
SIGNATURE_VERSION = "v1"


def generate_secret() -> str:
    """A new signing secret, `whsec_` + base64 of 32 random bytes (the form receivers' libraries expect)."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode("ascii")


def sign(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    """The `webhook-signature` header value. Raises ValueError for a malformed secret."""
    try:
        key = base64.b64decode(secret.removeprefix(SECRET_PREFIX), validate=True)
    except binascii.Error:
        raise ValueError("the webhook signing secret is not valid base64") from None
    if not key:
        raise ValueError("the webhook signing secret is empty")
    digest = hmac.new(key, f"{message_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return f"{SIGNATURE_VERSION},{base64.b64encode(digest).decode('ascii')}"


def signature_header(signing_secrets: Sequence[str], message_id: str, timestamp: int, body: bytes) -> str:
    """One signature per secret, space-separated, as Standard Webhooks specifies for secret rotation:
    a receiver accepts the request if any of them verifies with the secret it holds."""
    if not signing_secrets:
        raise ValueError("at least one signing secret is needed")
    return " ".join(sign(secret, message_id, timestamp, body) for secret in signing_secrets)
