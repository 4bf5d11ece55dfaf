"""One delivery attempt of a webhook message: a signed POST, classified into a DeliveryOutcome."""

import asyncio
import ipaddress
import json
import random
import socket
import ssl
import time
from collections.abc import Iterator
from email.utils import parsedate_to_datetime
from urllib.parse import urlsplit

import httpx

from app.core.exceptions import ValidationFailedError
from app.services.webhook_sender.constants import (
    DEFAULT_USER_AGENT,
    MAX_BACKOFF_EXPONENT,
    MAX_ERROR_LENGTH,
    MAX_RESPONSE_BODY_BYTES,
    METADATA_ADDRESSES,
    RETRYABLE_STATUS_CODES,
)
from app.services.webhook_sender.models import DeliveryOutcome, WebhookMessage
from app.services.webhook_sender.signing import sign
from app.utils.time import utcnow

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_METADATA = frozenset(ipaddress.ip_address(address) for address in METADATA_ADDRESSES)


class TargetUnresolvableError(ValidationFailedError):
    """The target's host did not resolve. Rejected at registration, but retryable at delivery time."""


def is_forbidden_address(ip: IPAddress) -> bool:
    """True for any address that is not plainly on the public internet (SSRF protection)."""
    if isinstance(ip, ipaddress.IPv6Address):
        # IPv6 forms that carry an IPv4 address the packets end up at: judge that address.
        # (NAT64's 64:ff9b::/96 needs no unwrapping: it lies in ::/8, which is_reserved rejects.)
        embedded = ip.ipv4_mapped or ip.sixtofour
        if embedded is not None and is_forbidden_address(embedded):
            return True
    return (
        ip in _METADATA
        or ip.is_private
        or ip.is_loopback
        or ip.is_link_local
        or ip.is_multicast
        or ip.is_reserved
        or ip.is_unspecified
        or not ip.is_global  # shared (100.64/10), documentation and other special-purpose ranges
    )


async def check_target(url: str, allow_private: bool) -> None:
    """Raise ValidationFailedError unless `url` is http(s) with a host that is safe to POST to.

    Every address the host resolves to is checked, since the HTTP client may connect to any of them.
    This narrows but does not close DNS rebinding (the client resolves again when it connects).
    """
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise ValidationFailedError("The webhook URL must use http or https.")
    host = parts.hostname
    if not host:
        raise ValidationFailedError("The webhook URL has no host.")
    if allow_private:
        return
    try:
        addresses: list[IPAddress] = [ipaddress.ip_address(host)]
    except ValueError:
        addresses = await _resolve(host)
    if any(is_forbidden_address(address) for address in addresses):
        raise ValidationFailedError(
            "The webhook URL points to a private, loopback, link-local or otherwise non-public address."
        )


async def _resolve(host: str) -> list[IPAddress]:
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):  # socket.gaierror is an OSError; IDNA encoding raises UnicodeError
        raise TargetUnresolvableError(f"The webhook URL's host {host!r} could not be resolved.") from None
    # sockaddr[0] is the address text; link-local IPv6 may carry a "%scope", which ip_address accepts.
    addresses = [ipaddress.ip_address(info[4][0]) for info in infos if info[0] in (socket.AF_INET, socket.AF_INET6)]
    if not addresses:
        raise TargetUnresolvableError(f"The webhook URL's host {host!r} has no IP address.")
    return addresses


def retry_delay(attempt: int, base: float, cap: float, retry_after: float | None, retry_after_cap: float) -> float:
    """Seconds to wait before retrying after failed attempt number `attempt` (1-based).

    Without Retry-After: "full jitter" backoff, uniform in [0, min(cap, base * 2**(attempt-1))], which
    spreads retries of many failed deliveries out instead of sending them back in bursts.
    With Retry-After: exactly what the receiver asked for, capped at `retry_after_cap` so that a receiver
    cannot park a delivery for days, and without jitter: the receiver chose the time, and adding to it
    would only delay past it.
    """
    if attempt < 1:
        raise ValueError("attempt numbers start at 1")
    if retry_after is not None:
        return min(max(retry_after, 0.0), retry_after_cap)
    ceiling = min(cap, base * 2 ** min(attempt - 1, MAX_BACKOFF_EXPONENT))
    return random.uniform(0.0, ceiling)  # noqa: S311 - jitter, not cryptography


def parse_retry_after(value: str | None) -> float | None:
    """Retry-After as seconds from now: delta-seconds or an HTTP-date (RFC 9110 §10.2.3); None if invalid."""
    if value is None:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:  # "-0000" parses as naive; HTTP-dates are always GMT
        when = when.replace(tzinfo=utcnow().tzinfo)
    return max(0.0, (when - utcnow()).total_seconds())


def build_body(message: WebhookMessage) -> bytes:
    """The request body, serialised once: the signature covers exactly these bytes."""
    # The timestamp in the exact ISO 8601 form the API shows as the message's created_at.
    timestamp = message.model_dump(mode="json", include={"created_at"})["created_at"]
    document = {"type": message.event, "timestamp": timestamp, "data": message.payload}
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode()


class WebhookSender:
    """Delivers one attempt of a message to one target; retry scheduling is the caller's business."""

    def __init__(
        self, http_client: httpx.AsyncClient, *, allow_private: bool, user_agent: str = DEFAULT_USER_AGENT
    ) -> None:
        self.http_client = http_client
        self.allow_private = allow_private
        self.user_agent = user_agent

    async def deliver(self, url: str, secret: str, message: WebhookMessage, timeout_seconds: float) -> DeliveryOutcome:
        """POST `message` to `url`. Never raises for delivery failures; a malformed secret is a ValueError."""
        started = time.perf_counter()
        body = build_body(message)
        try:
            # One deadline for the whole attempt: httpx's own timeout applies per connect/read/write.
            async with asyncio.timeout(timeout_seconds) as deadline:
                # Checked on every attempt: what the host resolves to may have changed since registration.
                await check_target(url, self.allow_private)
                response = await self.http_client.send(
                    self._request(url, secret, message.id, body, timeout_seconds), stream=True, follow_redirects=False
                )
        except TargetUnresolvableError as exc:
            return _failed(started, exc.detail, retryable=True)
        except ValidationFailedError as exc:
            return _failed(started, exc.detail, retryable=False)
        except (TimeoutError, httpx.TimeoutException):
            return _failed(started, f"timeout after {timeout_seconds}s", retryable=True)
        except httpx.TransportError as exc:
            return _failed(started, _describe_transport_error(exc), retryable=True)
        except httpx.InvalidURL as exc:
            return _failed(started, f"invalid URL: {exc}", retryable=False)
        try:
            await _discard_body(response, deadline.when())
        finally:
            await response.aclose()
        return _classify(response, started)

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


def _classify(response: httpx.Response, started: float) -> DeliveryOutcome:
    status = response.status_code
    if 200 <= status < 300:
        return DeliveryOutcome(succeeded=True, retryable=False, response_status=status, duration_ms=_ms(started))
    retryable = status >= 500 or status in RETRYABLE_STATUS_CODES
    error = f"HTTP {status}: redirects are not followed" if 300 <= status < 400 else f"HTTP {status}"
    return DeliveryOutcome(
        succeeded=False,
        retryable=retryable,
        response_status=status,
        error=error,
        duration_ms=_ms(started),
        retry_after=parse_retry_after(response.headers.get("retry-after")) if retryable else None,
    )


def _failed(started: float, error: str, *, retryable: bool) -> DeliveryOutcome:
    return DeliveryOutcome(
        succeeded=False, retryable=retryable, error=error[:MAX_ERROR_LENGTH], duration_ms=_ms(started)
    )


def _describe_transport_error(exc: httpx.TransportError) -> str:
    # httpx reports most connection problems as "All connection attempts failed"; the cause says which.
    for cause in _causes(exc):
        if isinstance(cause, ConnectionRefusedError):
            return "connection refused"
        if isinstance(cause, socket.gaierror):
            return "DNS lookup failed"
        if isinstance(cause, ssl.SSLError):
            return f"TLS error: {cause.reason or cause}"
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def _causes(exc: BaseException) -> Iterator[BaseException]:
    seen: BaseException | None = exc
    while seen is not None:
        yield seen
        seen = seen.__cause__ or seen.__context__


def _ms(started: float) -> int:
    return round((time.perf_counter() - started) * 1000)
