"""The worker's HTTP transport: requests spread over several connection pools, one endpoint per pool."""

import httpx

from app.worker.http_transport import ShardedTransport
from tests.support.receiver import Receiver


async def test_each_endpoint_keeps_to_one_pool_and_the_endpoints_spread_over_them(receiver: Receiver) -> None:
    transport = ShardedTransport(shards=4, connections=8)
    urls = [receiver.url(204) for _ in range(16)]
    async with httpx.AsyncClient(transport=transport) as client:
        for url in urls * 2:
            assert (await client.post(url, content=b"{}")).status_code == 204

    assert len(receiver.requests) == 32
    pools = {url: transport.index(httpx.URL(url)) for url in urls}
    assert all(transport.index(httpx.URL(url + "?again=1")) == pool for url, pool in pools.items())
    assert len(set(pools.values())) > 1
