"""One websocket's outgoing frames: a bounded queue and a writer task, so one client's failure stays its own.

Whoever has something for a socket *offers* it (no await: a send is never awaited in turn across sockets); the
socket's own writer task sends the frames in order, each within ``send_timeout`` seconds. A socket whose queue
is full (it stopped reading), whose send times out, or whose connection went away (reset) is dropped: counted
in ``gateway_socket_drops{surface, reason}``, its connection aborted (which ends its handler; the page
reconnects and reloads), and nobody else waited on it.

:class:`Forwarding` is what the workers that follow the store's events share (the two surfaces' forwarding, the web
chat's and the console's; presence; the typing relay): the store subscription a worker holds while it runs, through
which the socket handlers follow what their sockets show. While the store does not answer it subscribes again
within :data:`RESUBSCRIBE` seconds, never later: while it is not subscribed, the sockets open on this instance get
nothing (left to the supervisor's backoff, up to 30 s after a few outages, a page kept acknowledging messages whose
replies did not come), and a worker waiting in that backoff is ``down`` in ``/readyz``, 503 after the store was back
(presence and typing until 2026-12-07: ``tests/test_subscribers_outage.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from aiohttp import WSCloseCode, WSMessage, WSMsgType, web

from gateway.errors import StoreError
from gateway.metrics import Metrics
from gateway.outage_log import StoreOutages
from gateway.store import EventStore, Subscription
from gateway.supervisor import where

log = logging.getLogger(__name__)

QUEUE_LIMIT = 256  # frames waiting for one socket; a reader this far behind has stopped reading
SEND_TIMEOUT = 5.0  # seconds for one frame to leave; a client slower than this is gone for practical purposes
RESUBSCRIBE = (0.1, 1.0)  # seconds before subscribing again while the store does not answer: first, most
STABLE = 10.0  # seconds a subscription served before failing: the next failure starts again from the first delay


class Forwarding:
    """A forwarding worker's store subscription, held while it runs: :attr:`current` (None between runs: a socket
    opened then is followed by the next run, which reads what its sockets follow as it starts)."""

    def __init__(self, store: EventStore, outages: StoreOutages | None, part: str) -> None:
        self._store, self._outages, self._part = store, outages, part
        self.current: Subscription | None = None

    async def run(self, forward: Callable[[Subscription], Awaitable[None]]) -> None:
        """Subscribe and hand the subscription to ``forward`` for the worker's lifetime (under the supervisor);
        when the store fails (StoreError: the subscription lost, or not made), again, after :data:`RESUBSCRIBE`
        (``forward`` starts each subscription with a resync: what was missed meanwhile), each failure reported to
        ``outages`` as ``part``. Any other failure is the supervisor's."""
        delay, loop = RESUBSCRIBE[0], asyncio.get_running_loop()
        while True:
            try:
                async with await self._store.subscribe(everything=False) as subscription:
                    self.current, started = subscription, loop.time()
                    if self._outages is not None:
                        self._outages.answered(self._part)
                    try:
                        await forward(subscription)
                        return
                    finally:
                        self.current = None
                        delay = RESUBSCRIBE[0] if loop.time() - started > STABLE else delay  # a new outage
            except StoreError as exc:  # counted and told once an outage (gateway/outage_log.py), not a line a try
                if self._outages is not None:
                    self._outages.failed(self._part, exc)
            await asyncio.sleep(delay)
            delay = min(delay * 2, RESUBSCRIBE[1])


KEEPALIVE = 20.0  # seconds (GATEWAY_SOCKET_KEEPALIVE_SECONDS): a socket the server sent nothing for gets a frame
SILENT_FACTOR = 2.5  # a page that hears nothing for this many keepalive periods takes its connection for dead


async def incoming(ws: web.WebSocketResponse, writer: SocketWriter, keepalive: float) -> AsyncIterator[WSMessage]:
    """The client's frames, as ``async for message in ws`` gives them, and meanwhile a ``{"type": "keepalive"}``
    frame offered to the socket whenever nothing was offered to it for ``keepalive`` seconds. A connection can die
    without a word (a phone changing networks, a Wi-Fi lost, a NAT forgetting it): the server notices by its
    heartbeat and closes its side, but the page is not told and, left alone, waits for minutes before its browser
    gives up, showing "connected" and receiving nothing (found 2026-12-02 with a proxy that dropped every byte: a
    console stayed "En direct" for over a minute). Hearing something at least every ``keepalive`` seconds, the
    page takes ``SILENT_FACTOR`` times as long without a frame for a dead connection and connects again (the
    server resends what it missed: the web chat's ``resync``, the console's reload)."""
    loop = asyncio.get_running_loop()
    while True:
        wait = max(0.05, writer.last_offer + keepalive - loop.time())
        try:
            message = await ws.receive(timeout=wait)
        except TimeoutError:
            if loop.time() - writer.last_offer >= keepalive:
                writer.offer({"type": "keepalive"})
            continue
        if message.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED):
            return
        yield message


class SocketWriter:
    def __init__(
        self,
        ws: web.WebSocketResponse,
        request: web.BaseRequest,
        *,
        surface: str,
        metrics: Metrics,
        limit: int = QUEUE_LIMIT,
        send_timeout: float = SEND_TIMEOUT,
    ) -> None:
        self.ws, self.surface, self.metrics, self.send_timeout = ws, surface, metrics, send_timeout
        self._transport = request.transport
        self.limit = limit
        self._queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(limit)
        self._task = asyncio.create_task(self._run(), name=f"{surface}-socket-writer")
        self.dropped = False
        self._closing: asyncio.Task[None] | None = None
        self.last_offer = asyncio.get_running_loop().time()  # when a frame was last offered (the keepalive's clock)

    def offer(self, frame: dict[str, Any]) -> bool:
        """Queue a frame for this socket; False (and the socket dropped) when it cannot keep up."""
        if self.dropped or self.ws.closed:
            return False
        try:
            self._queue.put_nowait(frame)
            self.last_offer = asyncio.get_running_loop().time()
        except asyncio.QueueFull:
            self._drop("queue_full")
            return False
        return True

    @property
    def gone(self) -> bool:
        """Whether nothing can reach the client any more: the socket dropped, closed, or its connection lost (the
        handler goes on: ``gateway serve`` does not cancel it when its client goes away)."""
        return self.dropped or self.ws.closed or self._transport is None or self._transport.is_closing()

    def overflow(self) -> None:
        """More frames are waiting for this socket elsewhere than its queue would hold (the web chat's, held while
        the socket opens): dropped as a socket whose queue is full is, so the page reconnects and reloads."""
        self._drop("queue_full")

    async def goodbye(self, timeout: float = 1.0) -> None:
        """The server stops: send what is queued (an acknowledgement, a reply) for up to ``timeout`` seconds,
        then close with "going away" so the page reconnects to another instance."""
        if not self.dropped:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await self._queue.join()
        await self.ws.close(code=WSCloseCode.GOING_AWAY, message=b"server restarting")

    def revoke(self) -> None:
        """The session behind this socket ended: send nothing more, close at once with 1008 (policy); the page
        reconnects, finds no session and goes to the login page. A client that does not answer the close within a
        second is cut off."""
        if self.dropped:
            return
        self.dropped = True
        self._task.cancel()
        self._closing = asyncio.create_task(self._close_now(), name=f"{self.surface}-socket-revoke")

    async def _close_now(self) -> None:
        try:
            async with asyncio.timeout(1.0):
                await self.ws.close(code=WSCloseCode.POLICY_VIOLATION, message=b"session ended")
        except (TimeoutError, ConnectionError, RuntimeError):
            self._abort()
        except Exception as exc:  # a bug: this one socket is cut off all the same, and it is said
            log.error("%s socket: closing a revoked session failed (%s)", self.surface, exc.__class__.__name__)
            self._abort()

    def _abort(self) -> None:
        if self._transport is not None:
            self._transport.abort()

    async def close(self) -> None:
        """The socket's handler ends: stop writing (frames still queued are for a socket that is gone)."""
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)

    async def _run(self) -> None:
        while True:
            frame = await self._queue.get()
            try:
                async with asyncio.timeout(self.send_timeout):
                    await self.ws.send_json(frame)
                self._queue.task_done()
            except TimeoutError:
                self._drop("send_timeout")
                return
            except (ConnectionError, RuntimeError):  # reset, or closing: aiohttp refuses to write
                self._drop("gone")
                return
            except Exception as exc:  # a bug (e.g. a frame that is not JSON): this socket only, and said where
                log.error("%s socket: unexpected %s at %s", self.surface, type(exc).__name__, where(exc))
                self._drop("error")
                return

    def _drop(self, reason: str) -> None:
        if self.dropped:
            return
        self.dropped = True
        self.metrics.socket_drops.labels(self.surface, reason).inc()
        log.info("%s socket dropped (%s)", self.surface, reason)
        if self._transport is not None:
            self._transport.abort()  # ends the handler's read loop; the client reconnects and resynchronises
        if asyncio.current_task() is not self._task:
            self._task.cancel()
