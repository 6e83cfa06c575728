"""A TCP proxy in front of a real Redis that loses one answer: the connection a chosen command travels on is cut
(an RST to the gateway) once Redis answered it, so the command ran but its caller never hears back, as when a
connection drops right after the command left (a NAT forgetting it, a network blip, a Redis failover). With
``run=False`` the connection is cut before the command reaches Redis: it never runs. The fault is injected from
outside the gateway: the store, its client library and the outbox are the real ones."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import socket
import struct
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

from gateway.store.redis_lua import SCRIPTS


def script_sha(name: str) -> bytes:
    """What an ``EVALSHA`` of the store's script ``name`` carries on the wire (the store's calls alone)."""
    return hashlib.sha1(SCRIPTS[name].encode()).hexdigest().encode()


def script_text(name: str) -> bytes:
    """What an ``EVAL`` of the store's script ``name`` carries on the wire (the store's pipelines)."""
    return SCRIPTS[name].encode()


class LosingProxy:
    """``lose(*markers)``: the next command whose bytes hold every marker (a script's :func:`script_sha`, an item's
    id) loses its answer (``run=True``) or never reaches Redis (``run=False``); ``lost`` counts the cuts. ``hold``:
    the next such command waits on its way to Redis until released (a slow network, or forever: a hung host)."""

    def __init__(self, upstream: str) -> None:
        parts = urlsplit(upstream)
        self.upstream = (parts.hostname or "127.0.0.1", parts.port or 6379)
        self.database = parts.path or "/0"
        self.server: asyncio.Server | None = None
        self.lost = 0
        self._markers: tuple[bytes, ...] | None = None
        self._run = True
        self._hold: tuple[bytes, ...] | None = None
        self.held = asyncio.Event()  # a command marked by :meth:`hold` reached the proxy and waits
        self._released = asyncio.Event()

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"redis://127.0.0.1:{self.server.sockets[0].getsockname()[1]}{self.database}"

    def lose(self, *markers: bytes, run: bool = True) -> None:
        self._markers, self._run = markers, run

    def hold(self, *markers: bytes) -> None:
        """The next command whose bytes hold every marker waits before Redis until :meth:`release` (``held`` set).
        A hold set right after a release applies to the commands after the released one."""
        self._hold = markers
        self.held = asyncio.Event()
        self._released = asyncio.Event()

    def release(self) -> None:
        self._released.set()

    async def _held(self, data: bytes) -> None:
        if self._hold is not None and all(marker in data for marker in self._hold):
            self._hold, released = None, self._released
            self.held.set()
            await released.wait()

    def _matches(self, data: bytes) -> bool:
        if self._markers is None or not all(marker in data for marker in self._markers):
            return False
        self._markers = None
        self.lost += 1
        return True

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        cut = asyncio.Event()  # set once a marked command went up: its answer (and the connection) is lost

        async def up() -> None:
            with contextlib.suppress(ConnectionError):
                while data := await reader.read(1 << 16):
                    await self._held(data)
                    if self._matches(data):
                        if not self._run:
                            reset_hard(writer)
                            break
                        cut.set()
                    up_writer.write(data)
                    await up_writer.drain()
            up_writer.close()

        async def down() -> None:
            with contextlib.suppress(ConnectionError):
                while data := await up_reader.read(1 << 16):
                    if cut.is_set():  # Redis ran the command and answered: the gateway never hears it
                        reset_hard(writer)
                        break
                    writer.write(data)
                    await writer.drain()
            writer.close()
            up_writer.close()

        await asyncio.gather(up(), down(), return_exceptions=True)


def reset_hard(writer: asyncio.StreamWriter) -> None:
    """The connection closed with a TCP reset (SO_LINGER 0), as a dropped network does; nothing if closing."""
    if not writer.is_closing():
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        writer.transport.abort()


@contextlib.asynccontextmanager
async def losing_proxy(upstream: str) -> AsyncIterator[LosingProxy]:
    proxy = LosingProxy(upstream)
    proxy.server = await asyncio.start_server(proxy._serve, "127.0.0.1", 0)
    async with proxy.server:
        yield proxy
