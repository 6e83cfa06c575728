"""``gateway serve``'s listening socket takes a herd of reconnections at once: one instance of two killed, its
thousand web chat pages reconnect to the other within the same second (chat.js: 0.5 s after the close).

Until 2026-12-07 the port listened with asyncio's default backlog, 100: beyond 100 connections not yet accepted the
kernel dropped the pages' handshakes, and each retried after 1, 3, 7, 15, 31 s… (TCP's own back-off, not the
page's): ``bench/pages.py --instances 2 --kill`` with 2,000 pages had the killed instance's 1,000 back in session
after 20.9 s for half of them, 321 not within a minute, the survivor's event loop never late over 1 s meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import select
import socket
import time

from aiohttp import web

from gateway.connections import ConnectionGuard, GuardedSite
from gateway.metrics import Metrics

HERD = 400  # connections at once, none accepted yet (the event loop busy): more than asyncio's default backlog


def _connected(port: int, count: int, patience: float) -> int:
    """How many of ``count`` connections to ``port`` complete their handshake within ``patience`` s, while
    nothing accepts them (the caller holds the event loop): the kernel's listen queue alone takes them."""
    sockets = []
    try:
        for _ in range(count):
            client = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            client.setblocking(False)
            client.connect_ex(("127.0.0.1", port))
            sockets.append(client)
        waiting, done = set(sockets), 0
        deadline = time.monotonic() + patience
        while waiting and time.monotonic() < deadline:  # a dropped handshake is tried again after 1 s, 3 s…
            _, writable, _ = select.select([], list(waiting), [], max(0.0, deadline - time.monotonic()))
            for client in writable:
                waiting.discard(client)
                done += client.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0
        return done
    finally:
        for client in sockets:
            client.close()


async def test_a_herd_of_connections_waits_in_the_listen_queue_until_the_loop_accepts_it() -> None:
    runner = web.AppRunner(web.Application())
    await runner.setup()
    guard = ConnectionGuard(max_per_address=100_000, header_timeout=10, metrics=Metrics())
    site = GuardedSite(runner, "127.0.0.1", 0, guard)
    await site.start()
    try:
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        # Blocking here holds the event loop: nothing is accepted, as on an instance busy with a herd's hellos.
        # With a backlog of 100, the 101st handshake on is dropped, and dropped again at each retry (the queue
        # stays full): at most 101 complete however long this waits. 8 s: the retries at 1, 3 and 7 s included.
        assert _connected(port, HERD, patience=8.0) == HERD
    finally:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(runner.cleanup(), 10)
