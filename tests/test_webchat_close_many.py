"""Many web chat pages closing at once on one instance (a load balancer or proxy restarting, a network cut between it
and the gateway): each closing socket is let go without looking at every other page's conversation.

Until 2026-12-07 ``WebChatHub.detach`` looked for the closing socket in every followed conversation's sockets, so
closing N pages cost N² lookups, all in the one turn of the event loop that read their closes: 4,050 pages closing at
once held the loop 0.7-2.1 s (``bench/pages.py --pages 4000 --drop``: the loop_watch line it prints at its end, which
is when its pages close, not when Redis dropped its connections). Counted here in the closing socket's hashes (one
per conversation looked at), not in time: a slow machine only makes the test slower.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any, cast

from aiohttp.test_utils import TestClient

from gateway.app import WEBCHAT
from gateway.sockets import SocketWriter
from gateway.webchat import ARM_AT_ONCE

PAGES = 1000


class CountedSocket:
    """A socket's writer as the hub keys its tables by it, counting how often it is hashed (a lookup each)."""

    hashed = 0

    def __hash__(self) -> int:
        CountedSocket.hashed += 1
        return id(self)


async def test_a_closing_page_is_let_go_without_looking_at_every_other_page(client: TestClient) -> None:  # type: ignore[type-arg]
    hub = client.app[WEBCHAT]
    pages = [cast(SocketWriter, CountedSocket()) for _ in range(PAGES)]
    for number, page in enumerate(pages):
        hub.attach(f"conversation-{number}", page)
    CountedSocket.hashed = 0
    hub.detach(pages[PAGES // 2])
    assert CountedSocket.hashed <= 10, CountedSocket.hashed  # before: one a followed conversation (1,000 here)
    assert f"conversation-{PAGES // 2}" not in hub.sockets and f"conversation-{PAGES // 2 + 1}" in hub.sockets
    CountedSocket.hashed = 0
    hub.attach("conversation-0", pages[1])  # a socket attached again (a second hello) leaves what it followed
    assert CountedSocket.hashed <= 10, CountedSocket.hashed
    assert "conversation-1" not in hub.sockets and set(hub.sockets["conversation-0"]) == {pages[0], pages[1]}
    for page in pages:
        hub.detach(page)
    assert not hub.sockets and not hub.holding and not hub.outgoing


class Concurrency:
    """The hub's store, counting how many conversations' locks are held at once (the gone timer is armed under its
    conversation's lock: ``leaving.socket_closed``)."""

    def __init__(self, store: Any) -> None:
        self._store, self.held, self.most = store, 0, 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    @contextlib.asynccontextmanager
    async def lock(self, conversation_id: str, timeout: float = 10.0) -> AsyncIterator[None]:
        async with self._store.lock(conversation_id, timeout):
            self.held += 1
            self.most = max(self.most, self.held)
            try:
                yield
            finally:
                self.held -= 1


async def test_the_gone_timers_of_pages_closing_at_once_are_armed_a_few_at_a_time(client: TestClient) -> None:  # type: ignore[type-arg]
    """Until 2026-12-07 every closed page's gone timer was armed at once: 4,050 pages closing together had their
    4,050 locks, conversations and timers read and written in the same turns of the event loop, each turn decoding
    thousands of records (0.5 s of CPU a turn on bench/pages.py's closing). Now ``ARM_AT_ONCE`` at a time."""
    hub = client.app[WEBCHAT]
    counted = Concurrency(hub.store)
    hub.store = counted
    now = datetime.now(UTC)
    first_tries = [hub.arm_gone(f"conversation-{number}", now) for number in range(PAGES // 5)]
    async with asyncio.timeout(120):  # a safety net against a hang, not a timing assumption
        await asyncio.gather(*first_tries)
        while hub.arming:
            await asyncio.sleep(0.01)
    assert counted.held == 0
    assert 0 < counted.most <= ARM_AT_ONCE, counted.most  # before: all 200 at once
