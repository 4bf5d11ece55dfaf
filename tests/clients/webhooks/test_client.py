import base64
import hashlib
import hmac
import json
import os
import time
from datetime import timedelta
from email.utils import format_datetime

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from app.clients.webhooks.client import WebhookClient
from app.clients.webhooks.models import WebhookMessage
from app.clients.webhooks.signing import generate_secret
from app.core.encryption import KeyRing
from app.core.time import utcnow
from tests.clients.webhooks.conftest import CREATED_AT_JSON
from tests.support.ports import closed_port
from tests.support.receiver import Answer, Receiver
from tests.support.sealing import sealed

TIMEOUT = 2.0


async def test_request_is_signed_per_standard_webhooks(
    webhook_client: WebhookClient, receiver: Receiver, secret: str, message: WebhookMessage
) -> None:
    outcome = await webhook_client.deliver(receiver.url(), sealed(secret), message, TIMEOUT)

    assert outcome.succeeded
    assert outcome.response_status == 200
    assert outcome.error is None
    [request] = receiver.requests
    assert request.method == "POST"
    assert request.headers["content-type"] == "application/json"
    assert request.headers["user-agent"].startswith("fastapi-postgres-stack")
    assert request.headers["webhook-id"] == message.id
    assert abs(int(request.headers["webhook-timestamp"]) - time.time()) < 5
    # Verified by the reference library, exactly as a receiver would...
    verified = Webhook(secret).verify(request.body, request.headers)
    assert verified == {"type": message.event, "timestamp": CREATED_AT_JSON, "data": message.payload}
    # ...and by recomputing the HMAC over "{id}.{timestamp}.{body}" ourselves.
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{message.id}.{request.headers['webhook-timestamp']}.".encode() + request.body
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    assert request.headers["webhook-signature"] == f"v1,{expected}"


async def test_signature_does_not_verify_with_another_secret_or_body(
    webhook_client: WebhookClient, receiver: Receiver, secret: str, message: WebhookMessage
) -> None:
    await webhook_client.deliver(receiver.url(), sealed(secret), message, TIMEOUT)

    [request] = receiver.requests
    with pytest.raises(WebhookVerificationError):
        Webhook(generate_secret()).verify(request.body, request.headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(request.body.replace(b"42", b"43"), request.headers)


async def test_body_is_exactly_type_timestamp_data(
    webhook_client: WebhookClient, receiver: Receiver, secret: str, message: WebhookMessage
) -> None:
    await webhook_client.deliver(receiver.url(), sealed(secret), message, TIMEOUT)

    document = json.loads(receiver.requests[0].body)
    assert list(document) == ["type", "timestamp", "data"]
    assert document["type"] == "order.created"
    assert document["timestamp"] == CREATED_AT_JSON
    assert document["data"] == {"order_id": 42, "items": [{"sku": "A-1", "qty": 2}], "note": "café ☕"}


async def test_webhook_id_is_the_same_on_every_attempt(
    webhook_client: WebhookClient, receiver: Receiver, secret: str, message: WebhookMessage
) -> None:
    url = receiver.url(500)

    first = await webhook_client.deliver(url, sealed(secret), message, TIMEOUT)
    second = await webhook_client.deliver(url, sealed(secret), message, TIMEOUT)

    assert first.retryable
    assert second.retryable
    assert [request.headers["webhook-id"] for request in receiver.requests] == [message.id, message.id]
    for request in receiver.requests:
        Webhook(secret).verify(request.body, request.headers)


@pytest.mark.parametrize(
    ("status", "succeeded", "retryable"),
    [
        (200, True, False),
        (202, True, False),
        (204, True, False),
        (500, False, True),
        (502, False, True),
        (503, False, True),
        (408, False, True),
        (429, False, True),
        (400, False, False),
        (401, False, False),
        (404, False, False),
        (410, False, False),
        (422, False, False),
    ],
)
async def test_status_codes_are_classified(
    webhook_client: WebhookClient,
    receiver: Receiver,
    secret: str,
    message: WebhookMessage,
    status: int,
    succeeded: bool,
    retryable: bool,
) -> None:
    outcome = await webhook_client.deliver(receiver.url(status), sealed(secret), message, TIMEOUT)

    assert (outcome.succeeded, outcome.retryable, outcome.response_status) == (succeeded, retryable, status)
    assert outcome.error == (None if succeeded else f"HTTP {status}")
    assert outcome.retry_after is None
    assert outcome.duration_ms >= 0


@pytest.mark.parametrize("status", [429, 503])
async def test_retry_after_seconds_is_reported(
    webhook_client: WebhookClient, receiver: Receiver, secret: str, message: WebhookMessage, status: int
) -> None:
    url = receiver.url(Answer(status, headers={"Retry-After": "7"}))

    outcome = await webhook_client.deliver(url, sealed(secret), message, TIMEOUT)

    assert outcome.retryable
    assert outcome.retry_after == 7.0


async def test_retry_after_http_date_is_reported_as_seconds(
    webhook_client: WebhookClient, receiver: Receiver, secret: str, message: WebhookMessage
) -> None:
    when = format_datetime(utcnow() + timedelta(seconds=120), usegmt=True)

    outcome = await webhook_client.deliver(
        receiver.url(Answer(429, headers={"Retry-After": when})), sealed(secret), message, 2
    )

    assert outcome.retry_after is not None
    assert 117 <= outcome.retry_after <= 120


async def test_retry_after_is_ignored_on_permanent_failures(
    webhook_client: WebhookClient, receiver: Receiver, secret: str, message: WebhookMessage
) -> None:
    url = receiver.url(Answer(400, headers={"Retry-After": "7"}))

    outcome = await webhook_client.deliver(url, sealed(secret), message, TIMEOUT)

    assert not outcome.retryable
    assert outcome.retry_after is None


@pytest.mark.parametrize("status", [301, 302, 307, 308])
async def test_redirects_are_permanent_failures_and_not_followed(
    webhook_client: WebhookClient, receiver: Receiver, secret: str, message: WebhookMessage, status: int
) -> None:
    elsewhere = receiver.url()
    url = receiver.url(Answer(status, headers={"Location": elsewhere}))

    outcome = await webhook_client.deliver(url, sealed(secret), message, TIMEOUT)

    assert (outcome.succeeded, outcome.retryable, outcome.response_status) == (False, False, status)
    assert outcome.error == f"HTTP {status}: redirects are not followed"
    assert [request.path for request in receiver.requests] == [url.removeprefix(receiver.base_url)]


async def test_timeout_is_retryable(
    webhook_client: WebhookClient, receiver: Receiver, secret: str, message: WebhookMessage
) -> None:
    outcome = await webhook_client.deliver(receiver.url(Answer(delay=1.0)), sealed(secret), message, 0.2)

    assert (outcome.succeeded, outcome.retryable, outcome.response_status) == (False, True, None)
    assert outcome.error == "timeout after 0.2s"
    assert outcome.duration_ms < 900
    assert len(receiver.requests) == 1


async def test_connection_refused_is_retryable(
    webhook_client: WebhookClient, secret: str, message: WebhookMessage
) -> None:
    outcome = await webhook_client.deliver(f"http://127.0.0.1:{closed_port()}/hook", sealed(secret), message, TIMEOUT)

    assert (outcome.succeeded, outcome.retryable, outcome.response_status) == (False, True, None)
    assert outcome.error == "connection refused"


async def test_a_large_response_body_is_not_kept(
    webhook_client: WebhookClient, receiver: Receiver, secret: str, message: WebhookMessage
) -> None:
    outcome = await webhook_client.deliver(
        receiver.url(Answer(body=b"x" * 5_000_000)), sealed(secret), message, TIMEOUT
    )

    assert outcome.succeeded
    assert "x" * 100 not in outcome.model_dump_json()


async def test_errors_never_contain_the_secret_or_signature(
    webhook_client: WebhookClient, receiver: Receiver, secret: str, message: WebhookMessage
) -> None:
    outcomes = [
        await webhook_client.deliver(receiver.url(status), sealed(secret), message, TIMEOUT)
        for status in (302, 400, 500)
    ]
    outcomes.append(await webhook_client.deliver(receiver.url(Answer(delay=1.0)), sealed(secret), message, 0.1))

    signatures = [request.headers["webhook-signature"] for request in receiver.requests]
    for outcome in outcomes:
        assert outcome.error
        for sensitive in [secret, secret.removeprefix("whsec_"), *signatures]:
            assert sensitive not in outcome.model_dump_json()


async def test_private_targets_are_refused_before_sending(
    public_only: WebhookClient, receiver: Receiver, secret: str, message: WebhookMessage
) -> None:
    outcome = await public_only.deliver(receiver.url(), sealed(secret), message, TIMEOUT)

    assert (outcome.succeeded, outcome.retryable, outcome.response_status) == (False, False, None)
    assert outcome.error is not None
    assert "non-public address" in outcome.error
    assert receiver.requests == []


async def test_unsupported_scheme_is_a_permanent_failure(
    webhook_client: WebhookClient, secret: str, message: WebhookMessage
) -> None:
    outcome = await webhook_client.deliver("ftp://example.com/hook", sealed(secret), message, TIMEOUT)

    assert (outcome.succeeded, outcome.retryable) == (False, False)
    assert outcome.error == "The webhook URL must use http or https."


async def test_an_unresolvable_host_is_retryable(
    public_only: WebhookClient, secret: str, message: WebhookMessage
) -> None:
    # A DNS label longer than 63 characters fails to resolve without asking any DNS server.
    outcome = await public_only.deliver(f"https://{'a' * 64}.example/hook", sealed(secret), message, TIMEOUT)

    assert (outcome.succeeded, outcome.retryable) == (False, True)
    assert outcome.error is not None
    assert "could not be resolved" in outcome.error


async def test_a_malformed_secret_is_a_programming_error(
    webhook_client: WebhookClient, receiver: Receiver, message: WebhookMessage
) -> None:
    with pytest.raises(ValueError, match="signing secret is not valid base64"):
        await webhook_client.deliver(receiver.url(), sealed("whsec_not base64!"), message, TIMEOUT)
    assert receiver.requests == []


async def test_a_secret_that_does_not_open_is_a_retryable_failure_and_nothing_is_sent(
    webhook_client: WebhookClient, receiver: Receiver, secret: str, message: WebhookMessage
) -> None:
    # A key removed from WEBHOOK_SECRET_KEYS before its values were re-sealed: the operator can put it back.
    retired = KeyRing([("retired", os.urandom(32))]).seal(secret, context=b"tests")

    outcome = await webhook_client.deliver(receiver.url(), [retired], message, TIMEOUT)

    assert (outcome.succeeded, outcome.retryable, outcome.response_status) == (False, True, None)
    assert outcome.error == "the signing secret is unavailable (service configuration)"
    assert receiver.requests == []


async def test_a_delivery_needs_a_secret_to_sign_with(
    webhook_client: WebhookClient, receiver: Receiver, message: WebhookMessage
) -> None:
    with pytest.raises(ValueError, match="at least one signing secret"):
        await webhook_client.deliver(receiver.url(), [], message, TIMEOUT)
    assert receiver.requests == []


async def test_each_secret_gives_one_signature_in_order(
    webhook_client: WebhookClient, receiver: Receiver, message: WebhookMessage
) -> None:
    new, old = generate_secret(), generate_secret()

    outcome = await webhook_client.deliver(receiver.url(), sealed(new, old), message, TIMEOUT)

    assert outcome.succeeded
    [request] = receiver.requests
    header = request.headers["webhook-signature"]
    first, second = header.split(" ")
    assert Webhook(new).verify(request.body, {**request.headers, "webhook-signature": first})
    assert Webhook(old).verify(request.body, {**request.headers, "webhook-signature": second})
