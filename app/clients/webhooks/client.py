"""One delivery attempt of a webhook message: a signed POST, classified into a DeliveryOutcome."""

import asyncio
import time

import httpx

from app.clients.webhooks.models import DeliveryOutcome, WebhookMessage
from app.clients.webhooks.outcome import classify, describe_transport_error, failed
from app.clients.webhooks.payload import build_body
from app.clients.webhooks.signing import sign
from app.clients.webhooks.target import TargetGuard, TargetRejectedError, TargetUnresolvableError

DEFAULT_USER_AGENT = "fastapi-postgres-stack-webhooks/1.0"
# Up to this much of a response body is read (so the connection can be reused) and thrown away.
MAX_RESPONSE_BODY_BYTES = 64 * 1024


class WebhookClient:
    """Delivers one attempt of a message to one target; retry scheduling is the caller's business."""

    def __init__(
        self, http_client: httpx.AsyncClient, guard: TargetGuard, user_agent: str = DEFAULT_USER_AGENT
    ) -> None:
        self.http_client = http_client
        self.guard = guard
        self.user_agent = user_agent

    async def deliver(self, url: str, secret: str, message: WebhookMessage, timeout_seconds: float) -> DeliveryOutcome:
        """POST `message` to `url`. Never raises for delivery failures; a malformed secret is a ValueError."""
        started = time.perf_counter()
        body = build_body(message)
        try:
            # One deadline for the whole attempt: httpx's own timeout applies per connect/read/write.
            async with asyncio.timeout(timeout_seconds) as deadline:
                # Checked on every attempt: what the host resolves to may have changed since registration.
                await self.guard.check(url)
                response = await self.http_client.send(
                    self._request(url, secret, message.id, body, timeout_seconds), stream=True, follow_redirects=False
                )
        except TargetUnresolvableError as exc:
            return failed(started, exc.detail, retryable=True)
        except TargetRejectedError as exc:
            return failed(started, exc.detail, retryable=False)
        except (TimeoutError, httpx.TimeoutException):
            return failed(started, f"timeout after {timeout_seconds}s", retryable=True)
        except httpx.TransportError as exc:
            return failed(started, describe_transport_error(exc), retryable=True)
        except httpx.InvalidURL as exc:
            return failed(started, f"invalid URL: {exc}", retryable=False)
        try:
            await _discard_body(response, deadline.when())
        finally:
            await response.aclose()
        return classify(response, started)

    def _request(self, url: str, secret: str, message_id: str, body: bytes, timeout_seconds: float) -> httpx.Request:
        timestamp = int(time.time())  # of this attempt, so receivers' replay windows accept retries
        headers = {
            "content-type": "application/json",
            "user-agent": self.user_agent,
            "webhook-id": message_id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": sign(secret, message_id, timestamp, body),
        }
        return self.http_client.build_request("POST", url, content=body, headers=headers, timeout=timeout_seconds)


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
