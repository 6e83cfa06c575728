"""A TCP proxy in front of a real Redis that loses one answer: the connection a chosen command travels on is cut
(an RST to the gateway) once Redis answered it, so the command ran but its caller never hears back, as when a
connection drops right after the command left (a NAT forgetting it, a network blip, a Redis failover). With
``run=False`` the connection is cut before the command reaches Redis: it never runs. The fault is injected from
outside the gateway: the store, its client library and the outbox are the real ones.

It can also make the path **silent** (:meth:`LosingProxy.blackhole`): nothing passes either way on any connection,
open or opened meanwhile, and nothing is closed: no RST, no FIN, as a network partition, a NAT or load balancer
that dropped its state, or a Redis host frozen (SIGSTOP) look to the gateway. :meth:`LosingProxy.resume` lets the
bytes flow again (what waited goes on, as TCP retransmits after a short partition), or with ``forget=True`` only on
connections opened from then on: the ones open during the silence stay silent for good (the NAT forgot them, or
Redis dropped its side meanwhile and its reset never reaches a gateway that sends nothing). :meth:`reset_all` cuts
every connection with an RST."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import socket
import struct
from collections.abc import AsyncIterator
from typing import Any
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
        self._flowing = asyncio.Event()  # cleared while the path is silent (:meth:`blackhole`)
        self._flowing.set()
        self._links: set[_Link] = set()
        self.serving: set[asyncio.Task[Any]] = set()  # each connection's (ended by :func:`losing_proxy`'s exit)

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"redis://127.0.0.1:{self.server.sockets[0].getsockname()[1]}{self.database}"

    def point_at(self, upstream: str) -> None:
        """The connections opened from now on go to another server (a virtual IP moved by a failover); those open
        stay where they are."""
        parts = urlsplit(upstream)
        self.upstream = (parts.hostname or "127.0.0.1", parts.port or 6379)

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

    def blackhole(self) -> None:
        """From now on nothing passes, either way, on any connection (open ones, and those opened meanwhile:
        accepted, as a partition's SYN would not be, but answered by nothing); every socket stays open. Only bytes
        are held: a connection the gateway closes meanwhile is closed towards Redis too."""
        self._flowing.clear()

    def resume(self, *, forget: bool = False) -> None:
        """The path carries bytes again: what waited goes on. ``forget``: on the connections opened from now on
        only; those open until now stay silent for good (what they are sent dropped, nothing ever comes back)."""
        if forget:
            for link in self._links:
                link.forgotten = True
        self._flowing.set()

    def reset_all(self) -> int:
        """Every connection cut with an RST to the gateway (and closed towards Redis); how many were open."""
        links, self._links = self._links, set()
        for link in links:
            reset_hard(link.client)
            link.upstream.close()
        return len(links)

    async def _pass(self, link: _Link) -> bool:
        """Whether a chunk read on ``link`` goes on: waits while the path is silent; never on a forgotten link."""
        await self._flowing.wait()
        return not link.forgotten

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
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        except OSError:  # nothing listens there (pointed at a server that is down): refused, as it would be
            reset_hard(writer)
            return
        cut = asyncio.Event()  # set once a marked command went up: its answer (and the connection) is lost
        link = _Link(writer, up_writer)
        self._links.add(link)
        task = asyncio.current_task()
        if task is not None:
            self.serving.add(task)

        async def up() -> None:
            with contextlib.suppress(ConnectionError):
                while data := await reader.read(1 << 16):
                    if not await self._pass(link):
                        continue
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
                    if not await self._pass(link):
                        continue
                    if cut.is_set():  # Redis ran the command and answered: the gateway never hears it
                        reset_hard(writer)
                        break
                    writer.write(data)
                    await writer.drain()
            writer.close()
            up_writer.close()

        try:
            await asyncio.gather(up(), down(), return_exceptions=True)
        finally:
            self._links.discard(link)
            if task is not None:
                self.serving.discard(task)


class _Link:
    """One proxied connection: the gateway's side, Redis's side, and whether it was forgotten (silent for good)."""

    def __init__(self, client: asyncio.StreamWriter, upstream: asyncio.StreamWriter) -> None:
        self.client, self.upstream, self.forgotten = client, upstream, False


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
        try:
            yield proxy
        finally:
            proxy.resume()  # no pump left waiting for the path: each sees its connection cut and ends
            proxy.reset_all()
            async with asyncio.timeout(10):
                await asyncio.gather(*proxy.serving, return_exceptions=True)
