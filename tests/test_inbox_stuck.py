"""One webhook stuck inline does not make its instance busy for as long as it stays stuck.

``Inbox.busy`` times the oldest webhook processed inline: at ``GATEWAY_INLINE_SECONDS`` the instance is busy and
acknowledges the next webhooks once stored in the durable inbox (slower, never lost). One webhook stuck for long
(its conversation's lock held by a slow holder, a hung call) kept the instance busy all that time. Now only
webhooks that started inline in the last ``GATEWAY_INLINE_WINDOW_SECONDS`` are timed: the real server on the
session's Redis, signed Messenger webhooks, a fake Graph API; the test holds conversations' locks to keep a webhook
inline, and moves the inbox's monotonic clock (the app factory's ``monotonic``). Every message is recorded once,
in the order each sender sent them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest
import redis

from gateway.app import STORE, create_app
from gateway.messages import ChannelName
from gateway.settings import Settings
from gateway.store import Author, Store
from gateway.store.redis_keys import seen_claim
from tests.e2e.channel_support import Client, RunningClock, eventually
from tests.redis_messenger import Monotonic, messenger_on_redis, post_message
from tests.store.conftest import redis_url

__all__ = ["messenger_on_redis", "redis_url"]  # fixtures used below

pytestmark = pytest.mark.redis

STUCK, OTHER, THIRD, SLOW, LAST = (f"755500000000002{n}" for n in range(5))


async def test_a_webhook_stuck_longer_than_the_window_no_longer_makes_the_instance_busy(
    aiohttp_client: Callable[..., Awaitable[Client]], messenger_on_redis: Settings, redis_url: str
) -> None:
    settings, plain = messenger_on_redis, redis.asyncio.Redis.from_url(redis_url)
    clock = Monotonic()
    client = await aiohttp_client(
        await create_app(settings, clock=RunningClock(), worker_poll_seconds=0.05, monotonic=clock)
    )
    store: Store = client.app[STORE]

    async def post(psid: str, text: str, mid: str) -> int:
        return await post_message(client, psid, text, mid)

    async def busy() -> float:
        text = await (await client.get("/metrics")).text()
        line = 'gateway_inbox_deferred_total{reason="busy"} '
        return next((float(x.removeprefix(line)) for x in text.splitlines() if x.startswith(line)), 0.0)

    async def inline_on_its_lock(mid: str) -> bool:  # claimed: being processed inline, waiting for the lock
        return bool(await plain.exists(seen_claim(f"in:messenger:{mid}")))

    async def said(psid: str, count: int = 0) -> list[str]:
        conversation = await store.find_active_conversation(ChannelName.MESSENGER, psid)
        assert conversation is not None
        users = [e.text for e in await store.transcript(conversation.id) if e.author is Author.USER]
        return users if len(users) >= count else []

    conversations = {}
    for psid in (STUCK, OTHER, THIRD, SLOW, LAST):
        assert await post(psid, "Bonjour", f"m_{psid}_0") == 200
        conversation = await store.find_active_conversation(ChannelName.MESSENGER, psid)
        assert conversation is not None
        conversations[psid] = conversation.id

    async with store.lock(conversations[STUCK]):
        stuck = asyncio.create_task(post(STUCK, "je suis là", f"m_{STUCK}_1"))
        await eventually(lambda: inline_on_its_lock(f"m_{STUCK}_1"))
        clock.now += settings.inline_seconds  # at it for inline_seconds: the instance is busy
        assert await asyncio.wait_for(post(OTHER, "deux", f"m_{OTHER}_1"), 10) == 200
        assert await busy() == 1

        clock.now += settings.inline_window_seconds  # still at it, but started before the window: stuck, not load
        assert await asyncio.wait_for(post(THIRD, "deux", f"m_{THIRD}_1"), 10) == 200
        assert await said(THIRD) == ["Bonjour", "deux"]  # processed before the answer: inline
        assert await busy() == 1

        async with store.lock(conversations[SLOW]):  # a webhook that started within the window is timed as ever
            slow = asyncio.create_task(post(SLOW, "deux", f"m_{SLOW}_1"))
            await eventually(lambda: inline_on_its_lock(f"m_{SLOW}_1"))
            clock.now += settings.inline_seconds
            assert await asyncio.wait_for(post(LAST, "deux", f"m_{LAST}_1"), 10) == 200
            assert await busy() == 2
            assert not stuck.done() and not slow.done()
    assert await stuck == 200 and await slow == 200
    for psid in (STUCK, OTHER, THIRD, SLOW, LAST):
        second = "je suis là" if psid == STUCK else "deux"
        assert await eventually(lambda psid=psid: said(psid, 2)) == ["Bonjour", second]  # once each, in order
    await plain.aclose()
