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
* every connection at once is capped too (``max_open``: ``GATEWAY_MAX_CONNECTIONS``, within the open files limit,
  which :func:`fit_open_files` raises as far as the hard limit lets, keeping files for the gateway's own use: its
  store, its providers, its pages). At that cap, the client network holding the most of its own cap gives way
  (its newest closed) to a new one from a network holding less of its own (a school's declared network at 200 of
  256 holds less than a troll's at 64 of 64): many troll networks at 64 each never lock a young person out, nor
  does the process run out of file descriptors, which closed every new connection unseen (libuv accepts and closes
  them), answered a kept-alive page 503 and its script 404, and took the store's and the providers' new
  connections. Refused only when no network holds more than the new one's (a trusted proxy's are never closed for
  another's); told in the log at most once a minute while it lasts (no address), ``gateway_connections_open``;
* a connection must finish its first request's headers within ``header_timeout`` seconds, else it is closed.
  After that aiohttp's own keep-alive timeout applies, and request bodies have their deadline in the app
  (``_body_deadline`` in ``gateway/app.py``).

Each counts in ``gateway_connections_refused{reason}`` (too_many, full, evicted, slow_headers); the address itself
is never logged or labelled (the open counts are kept in memory by network, never written anywhere).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any, Protocol, cast

from aiohttp import web

from gateway.errors import GatewayError
from gateway.metrics import Metrics
from gateway.networks import ClientNetworks
from gateway.proxies import ClientAddresses

log = logging.getLogger(__name__)

HEADERS_END = b"\r\n\r\n"
OWN_FILES = 256  # file descriptors kept for the gateway's own: store, providers (100 sends at once), files, model
EASED = 0.9  # the cap on every connection is told as eased once they are this far under it again
TELL_EVERY = 60.0  # seconds: the cap on every connection reached is told at most this often (a flood comes and goes)
GC_YOUNG = 10_000  # new container objects before the garbage collector's youngest generation runs (Python: 700)
# seconds a stop waits for the requests in flight (a webhook, an upload) before cancelling them: within a process
# manager's grace period (Kubernetes' 30 s, systemd's 90 s) with the workers' and the store's closing after it
STOP_REQUESTS_SECONDS = 10.0
# Connections the kernel keeps waiting to be accepted (``listen``'s backlog; Linux caps it at net.core.somaxconn,
# 4096 by default since 5.4): a herd of web chat pages reconnecting at once (an instance of two killed, a proxy
# restarted) waits there for the event loop rather than having its handshakes dropped. Until 2026-12-07 asyncio's
# default, 100: beyond it each page's handshake was retried after 1, 3, 7, 15, 31 s (TCP's back-off), and of 1,000
# pages of a killed instance half were back after 21 s, a third not within a minute (tests/test_listen_backlog.py).
LISTEN_BACKLOG = 4096


class Evictable(Protocol):
    def evict(self) -> None: ...


class ConnectionGuard:
    def __init__(
        self, *, max_per_address: int, header_timeout: float, metrics: Metrics,
        networks: ClientNetworks | None = None, max_per_shared_network: int | None = None,
        addresses: ClientAddresses | None = None, max_open: int | None = None,
    ) -> None:  # fmt: skip
        self.max_per_address, self.header_timeout, self.metrics = max_per_address, header_timeout, metrics
        self.networks = networks or ClientNetworks()
        self.max_per_shared_network = max_per_shared_network or max_per_address
        self.addresses = addresses or ClientAddresses()  # a trusted proxy carries many clients: not capped here
        self.open: Counter[str] = Counter()  # open connections by client network
        self.max_open = max_open  # every connection at once (None: no cap)
        self.total = 0
        # The connections that may be closed to make room, by client network, oldest first (not a trusted proxy's),
        # their network's cap, and the networks by the share of it they hold (:meth:`share`), up to the most
        # (:meth:`_make_room` finds it at once)
        self.held: dict[str, dict[Evictable, None]] = {}
        self.caps: dict[str, int] = {}
        self.sizes: dict[int, dict[str, None]] = {}
        self.most = 0
        self.full = False  # the cap on every connection was reached, told, and has not eased since
        self.told: float | None = None  # when that was last told (time.monotonic)

    def admit(self, address: str, connection: Evictable | None = None) -> str | None:
        """The client network that ``address``'s new connection counts in, or None when it is at its cap, or
        every connection is taken and no network holds more than this one (:meth:`_make_room`)."""
        network = self.networks.key(address)
        cap = self.max_per_shared_network if self.networks.is_shared(address) else self.max_per_address
        trusted = self.addresses.trusted(address)
        if self.open[network] >= cap and not trusted:
            self.metrics.connections_refused.labels("too_many").inc()
            return None
        if self.max_open is not None and self.total >= self.max_open and not self._make_room(network, cap):
            self.metrics.connections_refused.labels("full").inc()
            return None
        self.open[network] += 1
        self.total += 1
        self.metrics.connections_open.set(self.total)
        if connection is not None and not trusted:
            held = self.held.setdefault(network, {})
            held[connection] = None
            self.caps[network] = cap
            self._resize(network, len(held) - 1, len(held))
        return network

    def share(self, count: int, cap: int) -> int:
        """How much of its own cap a network holding ``count`` connections holds, on one scale for every cap: a
        declared shared network (a school) holding 200 of its 256 holds less than a troll's holding 64 of 64."""
        return count * max(self.max_per_address, self.max_per_shared_network) // cap

    def _resize(self, network: str, count_before: int, count_after: int) -> None:
        cap = self.caps[network]
        before, after = self.share(count_before, cap), self.share(count_after, cap)
        if count_before:
            del self.sizes[before][network]
            if not self.sizes[before]:
                del self.sizes[before]
        if count_after:
            self.sizes.setdefault(after, {})[network] = None
        self.most = max(self.most, after)
        while self.most and self.most not in self.sizes:
            self.most -= 1

    def _make_room(self, network: str, cap: int) -> bool:
        """Every connection is taken: the client network holding the most of its cap closes its newest, when it
        holds more of it than ``network`` does of its own (a troll's networks give way to a young person's, not the
        reverse)."""
        if not self.full and (self.told is None or time.monotonic() - self.told >= TELL_EVERY):
            self.full, self.told = True, time.monotonic()
            log.warning("connections: all %d taken; the networks holding the most give way to new ones, else new "
                        "ones are closed (GATEWAY_MAX_CONNECTIONS, the open files limit)", self.max_open)  # fmt: skip
        if self.most <= self.share(self.open[network], cap):
            return False
        largest = next(iter(self.sizes[self.most]))
        victim = next(reversed(self.held[largest]))
        self.release(largest, victim)
        self.metrics.connections_refused.labels("evicted").inc()
        victim.evict()
        return True

    def release(self, network: str, connection: Evictable | None = None) -> None:
        self.open[network] -= 1
        if self.open[network] <= 0:
            del self.open[network]
        self.total -= 1
        self.metrics.connections_open.set(self.total)
        held = self.held.get(network)
        if held is not None and connection in held:
            del held[connection]
            self._resize(network, len(held) + 1, len(held))
            if not held:
                del self.held[network], self.caps[network]
        if self.full and self.max_open is not None and self.total < self.max_open * EASED:
            self.full = False
            log.info("connections: %d open, under the cap on all connections again", self.total)

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
        network = self._guard.admit(address, self)
        if network is None:
            tcp.abort()
            return
        self._network = network
        self._transport = tcp
        self._deadline = asyncio.get_running_loop().call_later(self._guard.header_timeout, self._too_slow)
        self._inner = self._factory()
        self._inner.connection_made(transport)

    def evict(self) -> None:
        """Closed to make room for a connection of a network holding fewer (released by the guard already)."""
        self._network = None
        if self._transport is not None:
            self._transport.abort()

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
            self._guard.release(self._network, self)
            self._network = None
        if self._inner is not None:
            self._inner.connection_lost(exc)


def fit_open_files(wanted: int, reserve: int) -> tuple[int, int]:
    """The cap on connections at once, at most ``wanted``, and the open files limit it fits in: the soft limit
    raised (as far as the hard limit lets) to hold ``wanted`` connections and ``reserve`` files of the gateway's
    own; a limit too low for that leaves it at least half. Where the limit cannot be read: ``wanted``."""
    try:
        import resource
    except ImportError:  # not a POSIX system
        return wanted, 0
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    needed = wanted + reserve
    if soft != resource.RLIM_INFINITY and soft < needed:
        raised = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (max(raised, soft), hard))
            soft = max(raised, soft)
    if soft == resource.RLIM_INFINITY:
        return wanted, soft
    return min(wanted, max(soft - reserve, soft // 2)), soft


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
        self._server = await loop.create_server(self._guard.wrap(server), self._host, self._port, reuse_address=True,
                                                backlog=LISTEN_BACKLOG)  # fmt: skip


def run(
    make_app: Awaitable[web.Application], host: str, port: int,
    guard_for: Callable[[web.Application], ConnectionGuard],
    loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = None,
    started: Callable[[], None] | None = None, **runner_args: Any,
) -> None:  # fmt: skip
    """Serve the app until SIGINT or SIGTERM, then shut down gracefully (what ``web.run_app`` does), on an event
    loop from ``loop_factory`` (default: asyncio's); ``started`` is called once the port listens. A port that cannot
    be listened on is a GatewayError (one line, no traceback).

    A stop is the runner's cleanup while everything still runs: no new connection, the sockets told to go, the
    requests in flight answered (``STOP_REQUESTS_SECONDS`` at most, then cancelled), then the app's workers stopped
    and the store closed; only then is whatever is left cancelled. A second signal stops at once (cancelling what is
    in flight, as a kill). Until 2026-12-05 the first signal escaped the event loop and every task was cancelled at
    the same moment: a webhook being processed had its connection closed unanswered, for the provider to redeliver.

    Once started, what startup made (modules, the flows, the model, the app: most of the process's objects, which
    live as long as it does) is moved out of the garbage collector's way (``gc.freeze``): its full collections
    otherwise walked all of it, about 50 ms each. Frozen objects are never collected; garbage is collected first,
    so none is kept. And the youngest generation is collected after ``GC_YOUNG`` new objects instead of 700: a
    message's objects are mostly freed by their reference counts before that, so far fewer collections run and
    fewer objects are promoted to be walked again. Together, the collector's CPU under load went from ~6 % of the
    gateway's to ~1 %, RSS unchanged (bench/README.md, "Sixth pass")."""

    async def serve() -> None:
        app = await make_app
        runner = web.AppRunner(app, handle_signals=False, **{"shutdown_timeout": STOP_REQUESTS_SECONDS, **runner_args})
        await runner.setup()
        loop, stopping = asyncio.get_running_loop(), asyncio.Event()

        def stop(number: signal.Signals) -> None:
            if stopping.is_set():  # a second signal: stop now, what is in flight cancelled
                log.warning("%s again: stopping at once", number.name)
                raise web.GracefulExit()
            log.info("%s: stopping: no new connection, the requests in flight answered, then the workers", number.name)
            stopping.set()

        for number in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(number, stop, number)
        try:
            try:
                await GuardedSite(runner, host, port, guard_for(app)).start()
            except OSError as error:  # in use, or an address not this machine's
                raise GatewayError(
                    f"cannot listen on {host}:{port}: {error.strerror or type(error).__name__}"
                ) from None
            if started is not None:
                started()
            gc.collect()
            gc.freeze()
            gc.set_threshold(GC_YOUNG, *gc.get_threshold()[1:])
            await stopping.wait()
        finally:
            began = time.monotonic()
            await runner.cleanup()
            for number in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(number)
        log.info("stopped in %.1f s", time.monotonic() - began)

    with contextlib.suppress(web.GracefulExit, KeyboardInterrupt), asyncio.Runner(loop_factory=loop_factory) as loop:
        loop.run(serve())
