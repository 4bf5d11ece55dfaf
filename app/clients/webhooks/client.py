"""One delivery attempt of a webhook message: a signed POST, classified into a DeliveryOutcome."""

import asyncio
import ssl
import time
from collections.abc import Sequence

import aiohttp
import yarl
from loguru import logger

from app.clients.webhooks.models import DeliveryOutcome, WebhookMessage
from app.clients.webhooks.outcome import classify, describe_transport_error, failed
from app.clients.webhooks.payload import build_body
from app.clients.webhooks.signing import signature_header
from app.clients.webhooks.target import (
    INVALID_HOST,
    TargetGuard,
    TargetRejectedError,
    TargetUnresolvableError,
    numeric_address,
    parse_target,
)
from app.clients.webhooks.transport import DEFAULT_MAX_CONNECTIONS, SocketFactory, create_http_session
from app.core.config import Settings
from app.core.encryption import KeyRing, Sealed, SecretUnavailableError

DEFAULT_USER_AGENT = "fastapi-postgres-stack-webhooks/1.0"
# Up to this much of a response body is read (so the connection can be reused) and thrown away.
MAX_RESPONSE_BODY_BYTES = 64 * 1024


class WebhookClient:
    """Delivers one attempt of a message to one target; retry scheduling is the caller's business.

    It owns its HTTP session (transport.py), made on the running event loop and used on that loop only:
    connections go only to addresses `guard` approved, looked up once per connection; no proxy is read from
    the environment; redirects are never followed. With an egress `proxy` every request goes through it
    instead: the guard checks the target's addresses first, but the proxy resolves the name itself and must
    enforce the same policy. `keyring` opens the signing secrets, only to sign. `ssl_context` replaces the
    certificate bundle and `socket_factory` makes the sockets the guard passed (tests: certificates, recorded
    connections); `max_connections` caps the connections open at once.
    """

    def __init__(
        self,
        guard: TargetGuard,
        keyring: KeyRing,
        *,
        proxy: str | None = None,
        ssl_context: ssl.SSLContext | None = None,
        socket_factory: SocketFactory | None = None,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
        user_agent: str = DEFAULT_USER_AGENT,
    ) -> None:
        self.guard = guard
        self.keyring = keyring
        self.proxy = proxy
        self.user_agent = user_agent
        self.session = create_http_session(
            guard, proxy=proxy, ssl_context=ssl_context, socket_factory=socket_factory, max_connections=max_connections
        )

    async def aclose(self) -> None:
        """Close the HTTP session's connections and the guard's resolver."""
        await self.session.close()
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
            # One deadline for the whole attempt: connecting, sending, the answer and the bounded body read.
            async with asyncio.timeout(timeout_seconds) as deadline:
                target = parse_target(url)  # scheme and host, as the guard judges them (TargetRejectedError)
                headers = self._headers(opened, message.id, body)
                if self.proxy or numeric_address(target.raw_host.decode("ascii")) is not None:
                    # Judged here, not by the connection: a proxy resolves the name itself (what it resolves to now
                    # is checked; the proxy's answer may differ), and aiohttp resolves no host written as an address.
                    await self.guard.check(url)
                # encoded=True: sent exactly as parsed, so the connection's host is the name the guard judged.
                response = await self.session.post(
                    yarl.URL(str(target), encoded=True),
                    data=body,
                    headers=headers,
                    allow_redirects=False,
                    proxy=self.proxy,
                )
        except TargetUnresolvableError as exc:
            return failed(started, exc.detail, retryable=True)
        except TargetRejectedError as exc:
            return failed(started, exc.detail, retryable=False)
        except aiohttp.InvalidURL:  # an address form aiohttp does not connect to (127.1), private targets allowed
            return failed(started, INVALID_HOST, retryable=False)
        except TimeoutError:  # aiohttp's own timeouts are TimeoutErrors too
            return failed(started, f"timeout after {timeout_seconds}s", retryable=True)
        except (aiohttp.ClientError, OSError) as exc:
            return failed(started, describe_transport_error(exc), retryable=True)
        await _discard_body(response, deadline.when())
        outcome = classify(response.status, response.headers.get("retry-after"), started)
        # The URL as registered, query string included: the log setup scrubs tokens in it (app/core/logging.py).
        logger.debug("Webhook POST {} answered {} in {} ms", url, response.status, outcome.duration_ms)
        return outcome

    def _headers(self, secrets: list[str], message_id: str, body: bytes) -> dict[str, str]:
        timestamp = int(time.time())  # of this attempt, so receivers' replay windows accept retries
        return {
            "content-type": "application/json",
            "user-agent": self.user_agent,
            "webhook-id": message_id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": signature_header(secrets, message_id, timestamp, body),
        }


def create_webhook_client(settings: Settings) -> WebhookClient:
    """The worker's webhook client, as the settings say: target policy, DNS deadline, keys, egress proxy, and as
    many connections as the process has deliveries in flight. Call it on the loop that will use it."""
    guard = TargetGuard(
        allow_private=settings.allow_private_webhook_targets, dns_timeout_seconds=settings.WEBHOOK_DNS_TIMEOUT_SECONDS
    )
    return WebhookClient(
        guard,
        KeyRing(settings.webhook_secret_keys),
        proxy=settings.WEBHOOK_EGRESS_PROXY,
        max_connections=settings.WEBHOOK_MAX_IN_FLIGHT,
    )


async def _discard_body(response: aiohttp.ClientResponse, deadline: float | None) -> None:
    """Read a bounded amount of the body, so that a small answer frees the connection for reuse; keep none of
    it. A larger, slower or broken body closes the connection instead: the status already decided."""
    received = 0
    try:
        async with asyncio.timeout_at(deadline):
            while received < MAX_RESPONSE_BODY_BYTES:
                chunk = await response.content.readany()
                if not chunk:
                    response.release()  # the whole body was read: the connection goes back to the pool
                    return
                received += len(chunk)
    except (TimeoutError, aiohttp.ClientError):
        pass
    response.close()
