"""The worker's HTTP transport: connection pools split by endpoint, so that none grows large.

httpcore looks at every connection of a pool on each request, so a request through a pool of N
connections costs CPU in proportion to N. A worker process keeps up to WEBHOOK_MAX_IN_FLIGHT requests
in flight; spread over `shards` pools by URL, each pool holds a few connections, and the requests to one
endpoint still reuse theirs (an endpoint always goes to the same pool).
"""

import ssl
import zlib

import httpx


class ShardedTransport(httpx.AsyncBaseTransport):
    def __init__(self, shards: int, connections: int) -> None:
        # Each pool may hold them all (one endpoint may take every slot); DeliveryLimits caps the total.
        limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
        tls = ssl.create_default_context()  # loaded once, shared by the pools
        self.transports = [httpx.AsyncHTTPTransport(verify=tls, limits=limits) for _ in range(shards)]

    def index(self, url: httpx.URL) -> int:
        """The pool requests to `url` go through: always the same one (the query string does not count)."""
        endpoint = f"{url.scheme}://{url.netloc.decode()}{url.path}"
        return zlib.crc32(endpoint.encode()) % len(self.transports)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        return await self.transports[self.index(request.url)].handle_async_request(request)

    async def aclose(self) -> None:
        for transport in self.transports:
            await transport.aclose()
