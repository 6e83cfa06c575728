"""Many web chat pages open on one instance when Redis drops its connections (a restart, a failover): the instance
follows their conversations again and sends each page what it may have missed with their store calls made together
(``gateway/webchat.py``'s ``RESYNC_AT_ONCE``), not one round trip after another.

Until 2026-12-07 each followed conversation was subscribed again, then each page's conversation read, one at a time:
with 4,000 pages open every live reply waited 3-8 s after a dropped connection, and the events queued meanwhile
overflowed the subscription's buffer, which asked for the whole pass again (7 resync frames a page;
``bench/pages.py --pages 4000 --drop``: 1 frame a page and a reply p99 of 0.5 s after). Counted here in Redis's own
read events, not in time: a slow machine only makes the test slower.

Its own redis-server (tests/test_redis_restart.py's): the test drops its pub/sub connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import subprocess

import aiohttp
import pytest

from gateway.settings import Settings
from tests.conftest import AppFactory
from tests.test_redis_restart import OwnRedis, own_redis
from tests.test_webchat import hello, receive_until

__all__ = ["own_redis"]  # the fixture, imported to be used here

pytestmark = pytest.mark.redis

PAGES = 100


def reads(redis: OwnRedis) -> int:
    """Read events Redis processed on client sockets so far: one per round trip (a pipeline is one)."""
    info = subprocess.run(["redis-cli", "-p", str(redis.port), "INFO", "stats"], capture_output=True, text=True,
                          check=True).stdout  # fmt: skip
    found = re.search(r"total_reads_processed:(\d+)", info)
    assert found is not None
    return int(found.group(1))


async def test_pages_are_resynchronised_with_their_reads_together_after_a_dropped_connection(
    make_client: AppFactory, settings: Settings, own_redis: OwnRedis
) -> None:
    client = await make_client(settings.replace(
        store=own_redis.url, limit_chats_per_address="10000/hour", limit_chats_per_browser="10000/hour",
        max_waiting_per_client=10000,
    ))  # fmt: skip
    async with contextlib.AsyncExitStack() as stack:
        pages: list[aiohttp.ClientWebSocketResponse] = []
        for _ in range(PAGES):
            page = await stack.enter_async_context(client.ws_connect("/chat/ws"))
            await hello(page)
            pages.append(page)
        before = reads(own_redis)
        killed = subprocess.run(["redis-cli", "-p", str(own_redis.port), "CLIENT", "KILL", "TYPE", "pubsub"],
                                capture_output=True, text=True, check=True).stdout  # fmt: skip
        assert killed.strip() == "1"  # the instance's one events connection
        async with asyncio.timeout(120):  # a safety net against a hang, not a timing assumption
            resyncs = await asyncio.gather(*(receive_until(page, lambda f: f["type"] == "resync") for page in pages))
        after = reads(own_redis)
    assert [frames[-1]["status"] for frames in resyncs] == ["bot"] * PAGES  # each told where its conversation stands
    # One at a time, the pass took a round trip per subscription and two or three per page (3.2 a page, 256 for 80
    # pages); together, the subscriptions' commands still arrive one by one on the events connection (~1 a page),
    # the pages' reads a few per batch of RESYNC_AT_ONCE, plus the instance's own polls meanwhile (1.2 a page).
    assert after - before < 2 * PAGES, after - before
