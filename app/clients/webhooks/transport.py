"""The webhook client's connections: made only to addresses the TargetGuard approved, looked up once.

httpx resolves a URL's host when it connects; a check that resolved it earlier could be answered
differently (DNS rebinding, a TTL of 0). Here the connection itself asks the guard: httpcore hands the
network backend the host as httpx encoded it, the guard resolves it once and checks every address, and
the backend connects to one of those addresses. The URL keeps its name, so the Host header, TLS SNI and
certificate verification all use the name, and pooled connections stay per name (never shared between two
names that happen to resolve to the same address).
"""

import ssl
from collections.abc import Iterable

import httpcore
import httpx

from app.clients.webhooks.target import TargetGuard

DEFAULT_LIMITS = httpx.Limits(max_connections=100, max_keepalive_connections=20)  # httpx's own defaults


class GuardedNetworkBackend(httpcore.AsyncNetworkBackend):
    """Connects to the guard's addresses for a host, in the resolver's order, the first that answers."""

    def __init__(self, guard: TargetGuard, inner: httpcore.AsyncNetworkBackend | None = None) -> None:
        self.guard = guard
        self.inner = inner or httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        # TargetRejectedError (a refused address) passes through httpcore and httpx unchanged.
        addresses = await self.guard.addresses(host)
        failure: httpcore.ConnectError | httpcore.ConnectTimeout | None = None
        for address in addresses:
            try:
                return await self.inner.connect_tcp(
                    str(address), port, timeout=timeout, local_address=local_address, socket_options=socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc
        assert failure is not None  # addresses is never empty: the resolver raises instead
        raise failure

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise httpcore.ConnectError("webhooks are delivered over TCP only")

    async def sleep(self, seconds: float) -> None:
        await self.inner.sleep(seconds)


class GuardedTransport(httpx.AsyncHTTPTransport):
    """httpx's own transport (request mapping, errors, HTTP/1.1) over a connection pool whose connections
    a GuardedNetworkBackend makes. Reads nothing from the environment (no proxy, no certificate bundle)."""

    def __init__(
        self,
        guard: TargetGuard,
        *,
        verify: ssl.SSLContext | bool = True,
        limits: httpx.Limits = DEFAULT_LIMITS,
        inner: httpcore.AsyncNetworkBackend | None = None,
    ) -> None:
        super().__init__(verify=verify, trust_env=False, limits=limits)
        # httpx 0.28 has no parameter for the network backend, so the pool it built is replaced by the same
        # pool with ours. If a release stops using `_pool`, fail here rather than connect unguarded.
        if not isinstance(getattr(self, "_pool", None), httpcore.AsyncConnectionPool):
            raise RuntimeError("httpx.AsyncHTTPTransport no longer keeps its pool in `_pool`: update GuardedTransport")
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=httpx.create_ssl_context(verify=verify, trust_env=False),
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=GuardedNetworkBackend(guard, inner),
        )


def create_http_client(
    guard: TargetGuard, *, proxy: str | None = None, transport: httpx.AsyncBaseTransport | None = None
) -> httpx.AsyncClient:
    """The webhook client's HTTP client: guarded connections, or all through the egress `proxy` (which then
    connects, and must enforce the address policy itself). Never environment proxies, never redirects."""
    if transport is None:
        transport = httpx.AsyncHTTPTransport(proxy=proxy, trust_env=False) if proxy else GuardedTransport(guard)
    return httpx.AsyncClient(transport=transport, trust_env=False, follow_redirects=False)
