import base64
from datetime import UTC, datetime

import pytest
from standardwebhooks.webhooks import Webhook

from app.clients.webhooks.signing import generate_secret, sign


def test_generated_secrets_are_whsec_and_32_random_bytes() -> None:
    secrets = {generate_secret() for _ in range(20)}

    assert len(secrets) == 20
    for secret in secrets:
        assert secret.startswith("whsec_")
        assert len(base64.b64decode(secret.removeprefix("whsec_"), validate=True)) == 32


def test_signature_matches_the_reference_library() -> None:
    secret = generate_secret()
    body = '{"type":"a.b","timestamp":"2025-01-02T03:04:05+00:00","data":{"k":"é"}}'
    timestamp = 1_735_787_045

    ours = sign(secret, "msg_1", timestamp, body.encode())

    assert ours == Webhook(secret).sign("msg_1", datetime.fromtimestamp(timestamp, UTC), body)
    assert ours != sign(secret, "msg_2", timestamp, body.encode())
    assert ours != sign(secret, "msg_1", timestamp + 1, body.encode())


@pytest.mark.parametrize("secret", ["whsec_***", "whsec_", ""])
def test_malformed_secrets_are_rejected(secret: str) -> None:
    with pytest.raises(ValueError, match="signing secret is"):
        sign(secret, "msg_1", 0, b"{}")
