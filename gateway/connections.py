"""Connections of ``gateway serve``: a cap per client network and a deadline for the request headers.

aiohttp closes idle keep-alive connections but waits for ever on a client that sends its headers a byte at a
time (slowloris), and accepts any number of connections from one address. :class:`GuardedSite` listens like
``web.TCPSite`` with each connection's protocol wrapped in :class:`_Guarded`:

* a client network holding ``max_per_address`` connections has the next one closed at once (websockets
  included: a browser needs one or two, up to six while it loads a page). The TCP peer is counted by its network
  as the web chat's guards count a client (``gateway/networks.py``: an IPv6 address by its /64, so that a client
  rotating through the addresses of its own /64 stays one; an IPv4 address by itself; an IPv4-mapped address as
  its IPv4 address); inside a network the operator declared shared (a school, a carrier's CGNAT), each client
  network gets ``max_per_shared_network`` (docs/security.md, "Shared addresses", has the arithmetic);
* a trusted reverse proxy (``GATEWAY_TRUSTED_PROXIES``, with ``GATEWAY_CLIENT_ADDRESS_HEADER`` set:
  ``gateway/proxies.py``) is not capped: it carries every young person's connections and caps them itself;
* a connection must finish its first request's headers within ``header_timeout`` seconds, else it is closed.
  After that aiohttp's own keep-alive timeout applies, and request bodies have their deadline in the app
  (``_body_deadline`` in ``gateway/app.py``).

Both count in ``gateway_connections_refused{reason}``; the address itself is never logged or labelled (the open
counts are kept in memory by network, never written anywhere).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any, cast

from aiohttp import web

from gateway.metrics import Metrics
from gateway.networks import ClientNetworks
from gateway.proxies import ClientAddresses

HEADERS_END = b"\r\n\r\n"
GC_YOUNG = 10_000  # new container objects before the garbage collector's youngest generation runs (Python: 700)


class ConnectionGuard:
    def __init__(
        self, *, max_per_address: int, header_timeout: float, metrics: Metrics,
        networks: ClientNetworks | None = None, max_per_shared_network: int | None = None,
        addresses: ClientAddresses | None = None,
    ) -> None:  # fmt: skip
        self.max_per_address, self.header_timeout, self.metrics = max_per_address, header_timeout, metrics
        self.networks = networks or ClientNetworks()
        self.max_per_shared_network = max_per_shared_network or max_per_address
        self.addresses = addresses or ClientAddresses()  # a trusted proxy carries many clients: not capped here
        self.open: Counter[str] = Counter()  # open connections by client network

    def admit(self, address: str) -> str | None:
        """The client network that ``address``'s new connection counts in, or None when it is at its cap."""
        network = self.networks.key(address)
        cap = self.max_per_shared_network if self.networks.is_shared(address) else self.max_per_address
        if self.open[network] >= cap and not self.addresses.trusted(address):
            self.metrics.connections_refused.labels("too_many").inc()
            return None
        self.open[network] += 1
        return network

    def release(self, network: str) -> None:
        self.open[network] -= 1
        if self.open[network] <= 0:
            del self.open[network]

    def wrap(self, factory: Callable[[], asyncio.Protocol]) -> Callable[[], asyncio.Protocol]:
        return lambda: _Guarded(self, factory)


class _Guarded(asyncio.Protocol):
    """Delegates everything to aiohttp's protocol, created only once the connection is admitted."""

    def __init__(self, guard: ConnectionGuard, factory: Callable[[], asyncio.Protocol]) -> None:
        self._guard, self._factory = guard, factory
        self._inner: asyncio.Protocol | None = None
        self._transport: asyncio.Transport | None = None
        self._network: str | None = None  # the client network counted for this connection
        self._deadline: asyncio.TimerHandle | None = None
        self._tail = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        peer = transport.get_extra_info("peername")
        address = str(peer[0]) if isinstance(peer, tuple) and peer else ""
        tcp = cast(asyncio.Transport, transport)  # a TCP server's (uvloop's is not an asyncio.Transport subclass)
        network = self._guard.admit(address)
        if network is None:
            tcp.abort()
            return
        self._network = network
        self._transport = tcp
        self._deadline = asyncio.get_running_loop().call_later(self._guard.header_timeout, self._too_slow)
        self._inner = self._factory()
        self._inner.connection_made(transport)

    def _too_slow(self) -> None:
        self._guard.metrics.connections_refused.labels("slow_headers").inc()
        self._deadline = None
        if self._transport is not None:
            self._transport.abort()

    def data_received(self, data: bytes) -> None:
        if self._deadline is not None:
            seen = self._tail + data
            if HEADERS_END in seen:
                self._deadline.cancel()
                self._deadline = None
            self._tail = seen[-3:]
        if self._inner is not None:
            self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self._inner.eof_received() if self._inner is not None else None

    def pause_writing(self) -> None:
        if self._inner is not None:
            self._inner.pause_writing()

    def resume_writing(self) -> None:
        if self._inner is not None:
            self._inner.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None
        if self._network is not None:
            self._guard.release(self._network)
            self._network = None
        if self._inner is not None:
            self._inner.connection_lost(exc)


class GuardedSite(web.BaseSite):
    """``web.TCPSite`` with guarded connections."""

    def __init__(self, runner: web.BaseRunner, host: str, port: int, guard: ConnectionGuard) -> None:
        super().__init__(runner)
        self._host, self._port, self._guard = host, port, guard

    @property
    def name(self) -> str:
        return f"http://{self._host}:{self._port}"

    async def start(self) -> None:
        await super().start()
        server = self._runner.server
        assert server is not None
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(self._guard.wrap(server), self._host, self._port, reuse_address=True)


def run(
    make_app: Awaitable[web.Application], host: str, port: int,
    guard_for: Callable[[web.Application], ConnectionGuard],
    loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = None, **runner_args: Any,
) -> None:  # fmt: skip
    """Serve the app until SIGINT or SIGTERM, then shut down gracefully (what ``web.run_app`` does), on an event
    loop from ``loop_factory`` (default: asyncio's).

    Once started, what startup made (modules, the flows, the model, the app: most of the process's objects, which
    live as long as it does) is moved out of the garbage collector's way (``gc.freeze``): its full collections
    otherwise walked all of it, about 50 ms each. Frozen objects are never collected; garbage is collected first,
    so none is kept. And the youngest generation is collected after ``GC_YOUNG`` new objects instead of 700: a
    message's objects are mostly freed by their reference counts before that, so far fewer collections run and
    fewer objects are promoted to be walked again. Together, the collector's CPU under load went from ~6 % of the
    gateway's to ~1 %, RSS unchanged (bench/README.md, "Sixth pass")."""

    async def serve() -> None:
        app = await make_app
        runner = web.AppRunner(app, handle_signals=True, **runner_args)
        await runner.setup()
        try:
            await GuardedSite(runner, host, port, guard_for(app)).start()
            gc.collect()
            gc.freeze()
            gc.set_threshold(GC_YOUNG, *gc.get_threshold()[1:])
            while True:
                await asyncio.sleep(3600)
        finally:
            await runner.cleanup()

    with contextlib.suppress(web.GracefulExit, KeyboardInterrupt), asyncio.Runner(loop_factory=loop_factory) as loop:
        loop.run(serve())
