"""One delivery attempt of a webhook message: a signed POST, classified into a DeliveryOutcome."""

import asyncio
import time
from collections.abc import Sequence

import httpx
from loguru import logger

from app.clients.webhooks.models import DeliveryOutcome, WebhookMessage
from app.clients.webhooks.outcome import classify, describe_transport_error, failed
from app.clients.webhooks.payload import build_body
from app.clients.webhooks.signing import signature_header
from app.clients.webhooks.target import TargetGuard, TargetRejectedError, TargetUnresolvableError, parse_target
from app.clients.webhooks.transport import create_http_client
from app.core.config import Settings
from app.core.encryption import KeyRing, Sealed, SecretUnavailableError

DEFAULT_USER_AGENT = "fastapi-postgres-stack-webhooks/1.0"
# Up to this much of a response body is read (so the connection can be reused) and thrown away.
MAX_RESPONSE_BODY_BYTES = 64 * 1024


class WebhookClient:
    """Delivers one attempt of a message to one target; retry scheduling is the caller's business.

    It owns its HTTP client (transport.py): connections go only to addresses `guard` approved, looked up once
    per connection; no proxy is read from the environment; redirects are never followed. With an egress
    `proxy` every request goes through it instead: the guard checks the target's addresses first, but the
    proxy resolves the name itself and must enforce the same policy. `keyring` opens the signing secrets,
    only to sign. `transport` replaces the connection layer (tests: certificates, recording backends).
    """

    def __init__(
        self,
        guard: TargetGuard,
        keyring: KeyRing,
        *,
        proxy: str | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        user_agent: str = DEFAULT_USER_AGENT,
    ) -> None:
        self.guard = guard
        self.keyring = keyring
        self.proxy = proxy
        self.user_agent = user_agent
        self.http_client = create_http_client(guard, proxy=proxy, transport=transport)

    async def aclose(self) -> None:
        """Close the HTTP client's connections and the guard's resolver."""
        await self.http_client.aclose()
        self.guard.close()

    async def deliver(
        self, url: str, secrets: Sequence[Sealed], message: WebhookMessage, timeout_seconds: float
    ) -> DeliveryOutcome:
        """POST `message` to `url`, signed with each of `secrets` (more than one while a rotation overlaps).
        Never raises for delivery failures; a malformed secret is a ValueError."""
        started = time.perf_counter()
        body = build_body(message)
        try:
            opened = [self.keyring.open(secret) for secret in secrets]
        except SecretUnavailableError as exc:
            # An operator's fix (a key removed before its values were re-sealed), so worth retrying.
            logger.error("Cannot sign message {}: {}", message.id, exc)
            return failed(started, "the signing secret is unavailable (service configuration)", retryable=True)
        try:
            # One deadline for the whole attempt: httpx's own timeout applies per connect/read/write.
            async with asyncio.timeout(timeout_seconds) as deadline:
                request = self._request(url, opened, message.id, body, timeout_seconds)
                if self.proxy:
                    # The proxy connects, not us: check what the name resolves to now (the proxy may differ).
                    await self.guard.check(url)
                response = await self.http_client.send(request, stream=True, follow_redirects=False)
        except TargetUnresolvableError as exc:
            return failed(started, exc.detail, retryable=True)
        except TargetRejectedError as exc:
            return failed(started, exc.detail, retryable=False)
        except (TimeoutError, httpx.TimeoutException):
            return failed(started, f"timeout after {timeout_seconds}s", retryable=True)
        except httpx.TransportError as exc:
            return failed(started, describe_transport_error(exc), retryable=True)
        try:
            await _discard_body(response, deadline.when())
        finally:
            await response.aclose()
        return classify(response, started)

    def _request(
        self, url: str, secrets: list[str], message_id: str, body: bytes, timeout_seconds: float
    ) -> httpx.Request:
        target = parse_target(url)  # scheme and host, as the connection will see them (TargetRejectedError)
        timestamp = int(time.time())  # of this attempt, so receivers' replay windows accept retries
        headers = {
            "content-type": "application/json",
            "user-agent": self.user_agent,
            "webhook-id": message_id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": signature_header(secrets, message_id, timestamp, body),
        }
        return self.http_client.build_request("POST", target, content=body, headers=headers, timeout=timeout_seconds)


def create_webhook_client(settings: Settings) -> WebhookClient:
    """The worker's webhook client, as the settings say: target policy, DNS deadline, keys, egress proxy."""
    guard = TargetGuard(
        allow_private=settings.allow_private_webhook_targets, dns_timeout_seconds=settings.WEBHOOK_DNS_TIMEOUT_SECONDS
    )
    return WebhookClient(guard, KeyRing(settings.webhook_secret_keys), proxy=settings.WEBHOOK_EGRESS_PROXY)


async def _discard_body(response: httpx.Response, deadline: float | None) -> None:
    """Read a bounded amount of the body so a small answer frees the connection for reuse; keep none of it."""
    received = 0
    try:
        async with asyncio.timeout_at(deadline):
            async for chunk in response.aiter_raw():
                received += len(chunk)
                if received >= MAX_RESPONSE_BODY_BYTES:
                    break
    except (TimeoutError, httpx.HTTPError):
        pass  # the status already decided the outcome
