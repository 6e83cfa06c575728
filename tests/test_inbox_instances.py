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
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
import redis

from gateway.app import STORE, create_app
from gateway.messages import ChannelName
from gateway.settings import Settings
from gateway.store import Author
from gateway.testing import FakeGraphAPI, messenger_body, messenger_message, signed_messenger
from tests.e2e.channel_support import Client, RunningClock, eventually
from tests.store.conftest import redis_url

__all__ = ["redis_url"]  # fixtures used below

pytestmark = pytest.mark.redis

SECRET = "instances-app-secret"
STUCK, OTHER = "7555000000000011", "7555000000000012"


class Monotonic:
    """A monotonic clock moved by the test, counting how often it was read (the inbox reads it as a webhook starts
    being processed inline)."""

    def __init__(self) -> None:
        self.now, self.reads = 0.0, 0

    def __call__(self) -> float:
        self.reads += 1
        return self.now


@pytest.fixture
async def graph() -> AsyncIterator[FakeGraphAPI]:
    async with FakeGraphAPI() as fake:
        yield fake


async def test_an_instance_with_an_inline_webhook_at_it_too_long_stores_the_next_and_the_other_keeps_the_order(
    aiohttp_client: Callable[..., Awaitable[Client]], settings: Settings, graph: FakeGraphAPI, redis_url: str
) -> None:
    flushing = redis.Redis.from_url(redis_url)
    flushing.flushdb()
    flushing.close()
    settings = settings.replace(
        store=redis_url, messenger_app_secret=SECRET, messenger_verify_token="verify",
        messenger_page_access_token="page-token", messenger_api_url=graph.url + "/v23.0",
    )  # fmt: skip
    clock_b = Monotonic()
    a = await aiohttp_client(await create_app(settings, clock=RunningClock(), worker_poll_seconds=0.05))
    b = await aiohttp_client(
        await create_app(settings, clock=RunningClock(), worker_poll_seconds=0.05, monotonic=clock_b)
    )
    store = a.app[STORE]

    async def post(client: Client, psid: str, text: str, mid: str) -> int:
        raw, headers = signed_messenger(SECRET, messenger_body([messenger_message(psid, text, mid)]))
        response = await client.post("/webhooks/messenger", data=raw, headers=headers)
        return response.status

    async def deferred(client: Client) -> str:
        text = await (await client.get("/metrics")).text()
        return " ".join(line for line in text.splitlines() if line.startswith("gateway_inbox_deferred_total{"))

    assert await post(a, STUCK, "Bonjour", "m_stuck_0") == 200
    assert await post(a, OTHER, "Bonjour", "m_other_0") == 200
    stuck = await store.find_active_conversation(ChannelName.MESSENGER, STUCK)
    other = await store.find_active_conversation(ChannelName.MESSENGER, OTHER)
    assert stuck is not None and other is not None
    async with store.lock(stuck.id), store.lock(other.id):
        inline = asyncio.create_task(post(b, STUCK, "je suis là", "m_stuck_1"))
        await eventually(lambda: _async(clock_b.reads == 1))  # B processes it inline, waiting for the lock
        clock_b.now += settings.inline_seconds  # ...for inline_seconds already, by B's clock
        assert await asyncio.wait_for(post(b, OTHER, "deux", "m_other_1"), 10) == 200  # stored, not processed
        assert await asyncio.wait_for(post(a, OTHER, "trois", "m_other_2"), 10) == 200  # behind B's item
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
