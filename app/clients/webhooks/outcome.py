"""What an attempt's answer (or failure) means: a DeliveryOutcome, retryable or not."""

import socket
import ssl
import time
from collections.abc import Iterator
from email.utils import parsedate_to_datetime

import aiohttp

from app.clients.webhooks.models import DeliveryOutcome
from app.core.time import utcnow

# 408 and 429 are the 4xx answers that say "later", not "never"; every 5xx is retryable too.
RETRYABLE_STATUS_CODES: frozenset[int] = frozenset({408, 429})
MAX_ERROR_LENGTH = 200


def classify(status: int, retry_after: str | None, started: float) -> DeliveryOutcome:
    """The outcome of an attempt the receiver answered with `status` (and a Retry-After header, if any);
    `started` is its `time.perf_counter()`."""
    if 200 <= status < 300:
        return DeliveryOutcome(succeeded=True, retryable=False, response_status=status, duration_ms=elapsed_ms(started))
    retryable = status >= 500 or status in RETRYABLE_STATUS_CODES
    error = f"HTTP {status}: redirects are not followed" if 300 <= status < 400 else f"HTTP {status}"
    return DeliveryOutcome(
        succeeded=False,
        retryable=retryable,
        response_status=status,
        error=error,
        duration_ms=elapsed_ms(started),
        retry_after=parse_retry_after(retry_after) if retryable else None,
    )


def failed(started: float, error: str, *, retryable: bool) -> DeliveryOutcome:
    """The outcome of an attempt that got no answer."""
    return DeliveryOutcome(
        succeeded=False, retryable=retryable, error=error[:MAX_ERROR_LENGTH], duration_ms=elapsed_ms(started)
    )


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


def describe_transport_error(exc: aiohttp.ClientError | OSError) -> str:
    """A short, secret-free description of an attempt that got no answer; the chained causes say which."""
    tls: ssl.SSLError | None = None
    for cause in _causes(exc):
        if isinstance(cause, ConnectionRefusedError):
            return "connection refused"
        if isinstance(cause, socket.gaierror):
            return "DNS lookup failed"
        if isinstance(cause, ssl.SSLError):
            # aiohttp's certificate errors are SSLErrors too; the one they wrap says why (its `reason`).
            if getattr(cause, "reason", None):
                return f"TLS error: {cause.reason}"
            tls = tls or cause
    if tls is not None:
        return f"TLS error: {tls}"
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def _causes(exc: BaseException) -> Iterator[BaseException]:
    seen: BaseException | None = exc
    while seen is not None:
        yield seen
        seen = seen.__cause__ or seen.__context__


def elapsed_ms(started: float) -> int:
    return round((time.perf_counter() - started) * 1000)
