"""Two instances on one Redis: each decides by itself that it is busy, and both keep one sender's order.

Two real aiohttp servers from the app factory share the session's Redis, with signed Messenger webhooks and a fake
Graph API. Before ``Inbox.busy`` looked at how long the oldest inline webhook had been at it, only a count of
webhooks in flight (64) made an instance busy: a provider's connections split over two instances kept each below
it, and at overload each processed before answering, seconds late (bench/README.md, "Seventh pass"). Here instance
B has one webhook stuck inline (its conversation's lock held by the test) for longer than ``inline_seconds`` by its
own clock (the app factory's ``monotonic``, which the test moves): B's next webhook, of another sender whose
conversation the test also holds, must be acknowledged once stored in the inbox, and that sender's next webhook,
sent to instance A, must go behind the item B stored. Once the locks are released every message is recorded once,
in the order each sender sent them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from gateway.app import STORE, create_app
from gateway.messages import ChannelName
from gateway.settings import Settings
from gateway.store import Author
from tests.e2e.channel_support import Client, RunningClock, eventually
from tests.redis_messenger import Monotonic, messenger_on_redis, post_message
from tests.store.conftest import redis_url

__all__ = ["messenger_on_redis", "redis_url"]  # fixtures used below

pytestmark = pytest.mark.redis

STUCK, OTHER = "7555000000000011", "7555000000000012"


async def test_an_instance_with_an_inline_webhook_at_it_too_long_stores_the_next_and_the_other_keeps_the_order(
    aiohttp_client: Callable[..., Awaitable[Client]], messenger_on_redis: Settings
) -> None:
    settings = messenger_on_redis
    clock_b = Monotonic()
    a = await aiohttp_client(await create_app(settings, clock=RunningClock(), worker_poll_seconds=0.05))
    b = await aiohttp_client(
        await create_app(settings, clock=RunningClock(), worker_poll_seconds=0.05, monotonic=clock_b)
    )
    store = a.app[STORE]

    async def deferred(client: Client) -> str:
        text = await (await client.get("/metrics")).text()
        return " ".join(line for line in text.splitlines() if line.startswith("gateway_inbox_deferred_total{"))

    assert await post_message(a, STUCK, "Bonjour", "m_stuck_0") == 200
    assert await post_message(a, OTHER, "Bonjour", "m_other_0") == 200
    stuck = await store.find_active_conversation(ChannelName.MESSENGER, STUCK)
    other = await store.find_active_conversation(ChannelName.MESSENGER, OTHER)
    assert stuck is not None and other is not None
    async with store.lock(stuck.id), store.lock(other.id):
        inline = asyncio.create_task(post_message(b, STUCK, "je suis là", "m_stuck_1"))
        await eventually(lambda: _async(clock_b.reads == 1))  # B processes it inline, waiting for the lock
        clock_b.now += settings.inline_seconds  # ...for inline_seconds already, by B's clock
        assert await asyncio.wait_for(post_message(b, OTHER, "deux", "m_other_1"), 10) == 200  # stored, not processed
        assert await asyncio.wait_for(post_message(a, OTHER, "trois", "m_other_2"), 10) == 200  # behind B's item
        assert not inline.done()
        assert 'reason="busy"} 1.0' in await deferred(b)
        assert 'reason="behind"} 1.0' in await deferred(a)
    assert await inline == 200

    async def said(conversation_id: str, count: int) -> list[str]:
        entries = await store.transcript(conversation_id)
        users = [e.text for e in entries if e.author is Author.USER]
        return users if len(users) >= count else []

    assert await eventually(lambda: said(stuck.id, 2)) == ["Bonjour", "je suis là"]
    assert await eventually(lambda: said(other.id, 3)) == ["Bonjour", "deux", "trois"]  # once each, in order


async def _async(value: bool) -> bool:
    return value
