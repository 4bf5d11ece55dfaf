"""A local TCP forwarder in front of a real server, to take the server away without touching it.

`cut()` drops every connection and refuses new ones (what clients see when PostgreSQL stops); `freeze()`
keeps connections open but forwards nothing (a network that swallows packets); `restore()` undoes either.
`strand()` makes the connections open now half-open for good (a failover, or a NAT that forgot them: the
client's packets go nowhere and nothing comes back), while new connections go through.
It runs on the test's event loop, like the app it sits under.
"""

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager


class TcpProxy:
    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = 0
        self.accepted = 0  # connections accepted, cut ones included
        self._server: asyncio.Server | None = None
        self._open = True
        self._generation = 0  # connections of an earlier generation were stranded
        self._flowing = asyncio.Event()
        self._flowing.set()
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    def cut(self) -> None:
        """Drop every connection now, and close each new one at once, until restore()."""
        self._open = False
        for writer in list(self._writers):
            writer.transport.abort()  # a reset, as from a server that went away

    def freeze(self) -> None:
        """Forward nothing more, either way, until restore(); connections stay open."""
        self._flowing.clear()

    def strand(self) -> None:
        """Forward nothing more, ever, on the connections open now; they stay open. New ones are forwarded."""
        self._generation += 1

    def restore(self) -> None:
        self._open = True
        self._flowing.set()

    async def close(self) -> None:
        self.cut()
        if self._server is not None:
            self._server.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        self._tasks.add(asyncio.current_task())  # type: ignore[arg-type]
        try:
            await self._forward(reader, writer)
        except asyncio.CancelledError:
            # close() cancels what is still running; ending normally keeps asyncio from logging each one.
            writer.transport.abort()

    async def _forward(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if not self._open:
            writer.transport.abort()
            return
        self._writers.add(writer)
        try:
            await self._flowing.wait()
            upstream_reader, upstream_writer = await asyncio.open_connection(*self.target)
        except OSError:
            self._writers.discard(writer)
            writer.transport.abort()
            return
        self._writers.add(upstream_writer)
        generation = self._generation
        await asyncio.gather(
            self._pipe(reader, upstream_writer, generation), self._pipe(upstream_reader, writer, generation)
        )
        self._writers.difference_update((writer, upstream_writer))

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, generation: int) -> None:
        try:
            while chunk := await reader.read(65536):
                await self._flowing.wait()
                if generation < self._generation:
                    await asyncio.Event().wait()  # stranded: held until close() cancels it
                if not self._open:
                    break
                writer.write(chunk)
                await writer.drain()
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            with contextlib.suppress(OSError, RuntimeError):
                writer.close()


@asynccontextmanager
async def tcp_proxy(target_host: str, target_port: int) -> AsyncIterator[TcpProxy]:
    """A TcpProxy listening on 127.0.0.1 (`.port`) and forwarding to the target, until the block ends."""
    proxy = TcpProxy(target_host, target_port)
    await proxy.start()
    try:
        yield proxy
    finally:
        await proxy.close()
