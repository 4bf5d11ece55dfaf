"""The worker bench's webhook receiver: a bare asyncio HTTP/1.1 server that counts what it receives.

Run as a process of its own (`python -m bench.receiver`): it binds 127.0.0.1 on a free port, prints
`PORT <n>` on stdout, and serves until terminated. The path says how to answer a POST:

    /hook/fast/<name>             204 at once
    /hook/delay/<ms>/<name>       204 after <ms> milliseconds
    /hook/hang/<name>             reads the request and never answers (the sender times out)

`GET /_stats` answers the counts as JSON (requests per path, total, the process's CPU seconds);
`POST /_reset` zeroes them. Keep-alive and pipelining are supported; nothing is parsed beyond the
request line and Content-Length, so that the receiver costs as little as possible per request.

`measure_capacity` is the load test the bench runs against it, so that a run shows the receiver
could take several times what the worker fed it.
"""

import asyncio
import contextlib
import json
import sys
import time
from collections import Counter
from collections.abc import Coroutine
from typing import Any, TypeVar, cast

REQUEST_HEAD_LIMIT = 64 * 1024
T = TypeVar("T")

NO_CONTENT = b"HTTP/1.1 204 No Content\r\nconnection: keep-alive\r\n\r\n"
NOT_FOUND = b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: keep-alive\r\n\r\n"
BAD_REQUEST = b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"


class Counts:
    def __init__(self) -> None:
        self.by_path: Counter[str] = Counter()
        self.total = 0
        self.hanging = 0  # connections holding a request that will never be answered

    def reset(self) -> None:
        self.by_path.clear()
        self.total = 0

    def snapshot(self) -> dict[str, Any]:
        return {
            "total": self.total,
            "by_path": dict(self.by_path),
            "hanging": self.hanging,
            "cpu_seconds": time.process_time(),
        }


def _content_length(head: bytes) -> int:
    start = head.lower().find(b"\r\ncontent-length:")
    if start < 0:
        return 0
    start += len(b"\r\ncontent-length:")
    end = head.find(b"\r\n", start)
    return int(head[start : end if end >= 0 else len(head)].strip())


class Connection(asyncio.Protocol):
    def __init__(self, counts: Counts) -> None:
        self.counts = counts
        self.buffer = bytearray()
        self.transport: asyncio.Transport | None = None
        self.hangs = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's transports are not subclasses

    def connection_lost(self, exc: Exception | None) -> None:
        self.counts.hanging -= self.hangs
        self.hangs = 0

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            head_end = self.buffer.find(b"\r\n\r\n")
            if head_end < 0:
                if len(self.buffer) > REQUEST_HEAD_LIMIT:
                    self._write(BAD_REQUEST, close=True)
                return
            head = bytes(self.buffer[:head_end])
            try:
                request_end = head_end + 4 + _content_length(head)
                method, target = head.split(b"\r\n", 1)[0].decode("latin-1").split(" ")[:2]
            except ValueError:
                self._write(BAD_REQUEST, close=True)
                return
            if len(self.buffer) < request_end:
                return
            del self.buffer[:request_end]
            self._handle(method, target.split("?", 1)[0])

    def _handle(self, method: str, path: str) -> None:
        if path == "/_stats":
            body = json.dumps(self.counts.snapshot()).encode()
            head = f"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {len(body)}\r\n\r\n"
            self._write(head.encode() + body)
            return
        if path == "/_reset" and method == "POST":
            self.counts.reset()
            self._write(NO_CONTENT)
            return
        parts = path.split("/")  # ["", "hook", kind, ...]
        if len(parts) < 4 or parts[1] != "hook":
            self._write(NOT_FOUND)
            return
        self.counts.total += 1
        self.counts.by_path[path] += 1
        kind = parts[2]
        if kind == "fast":
            self._write(NO_CONTENT)
        elif kind == "delay" and parts[3].isdigit():
            asyncio.get_running_loop().call_later(int(parts[3]) / 1000, self._write, NO_CONTENT)
        elif kind == "hang":
            self.hangs += 1
            self.counts.hanging += 1
        else:
            self._write(NOT_FOUND)

    def _write(self, data: bytes, close: bool = False) -> None:
        if self.transport is None or self.transport.is_closing():
            return
        self.transport.write(data)
        if close:
            self.transport.close()


async def serve() -> None:
    counts = Counts()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: Connection(counts), "127.0.0.1", 0, backlog=1024)
    port = server.sockets[0].getsockname()[1]
    print(f"PORT {port}", flush=True)
    async with server:
        await server.serve_forever()


async def measure_capacity(host: str, port: int, seconds: float = 3.0, connections: int = 64) -> float:
    """Requests per second the receiver answers on /hook/fast, from `connections` keep-alive clients.

    One request in flight per connection, as the worker sends them; a body and headers the size of a
    signed delivery. The client runs in Python too, so this is a lower bound of what the receiver takes.
    """
    body = json.dumps({"type": "order.created", "timestamp": "2026-01-01T00:00:00Z", "data": {"n": 1}}).encode()
    request = (
        "POST /hook/fast/capacity HTTP/1.1\r\n"
        f"host: {host}:{port}\r\n"
        "content-type: application/json\r\n"
        "user-agent: bench-capacity\r\n"
        "webhook-id: 00000000-0000-0000-0000-000000000000\r\n"
        "webhook-timestamp: 1767225600\r\n"
        f"webhook-signature: v1,{'A' * 44}\r\n"
        f"content-length: {len(body)}\r\n\r\n"
    ).encode() + body
    loop = asyncio.get_running_loop()
    warm_until = loop.time() + 0.5
    stop_at = warm_until + seconds

    async def client() -> int:
        reader, writer = await asyncio.open_connection(host, port)
        answered = 0
        try:
            while (now := loop.time()) < stop_at:
                writer.write(request)
                await reader.readuntil(b"\r\n\r\n")
                if now >= warm_until:
                    answered += 1
        finally:
            writer.close()
            await writer.wait_closed()
        return answered

    answered = await asyncio.gather(*(client() for _ in range(connections)))
    return sum(answered) / seconds


def run(main: Coroutine[Any, Any, T]) -> T:
    """asyncio.run, on uvloop when it is installed (uvicorn[standard] brings it)."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is in the locked set
        return asyncio.run(main)
    return uvloop.run(main)


async def _print_capacity(port: int) -> None:
    print(f"{await measure_capacity('127.0.0.1', port):.0f} requests/s")


if __name__ == "__main__":
    # `python -m bench.receiver` serves; `python -m bench.receiver load PORT` load-tests a running one.
    with contextlib.suppress(KeyboardInterrupt):
        run(_print_capacity(int(sys.argv[2])) if sys.argv[1:2] == ["load"] else serve())
