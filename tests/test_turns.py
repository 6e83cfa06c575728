"""One young person's webhooks, in flight at once, are processed in the order they arrived (``Inbox.turns``).

The real app on the session's Redis (whose conversation lock polls: without turns, whichever webhook polls first
after a release goes next), with signed Messenger webhooks and a fake Graph API. The test holds the
conversation's lock while the webhooks arrive, so that all of them are in flight together; a middleware of the
test, innermost, notes the order in which their handlers start (the handler enters its sender's turn before
anything else is awaited). Without turns, the messages were processed in another order (answers landing on the
wrong questions, as in the overloaded open loop of bench/load.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest
from aiohttp import web

from gateway.app import STORE, create_app
from gateway.messages import ChannelName
from gateway.settings import Settings
from gateway.store import Author
from tests.e2e.channel_support import Client, RunningClock, eventually
from tests.redis_messenger import messenger_on_redis, post_message
from tests.store.conftest import redis_url

__all__ = ["messenger_on_redis", "redis_url"]  # fixtures used below

pytestmark = pytest.mark.redis

PSID = "7555000000000001"
MESSAGES = 8


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


async def test_one_senders_concurrent_webhooks_are_processed_in_arrival_order(
    aiohttp_client: Callable[..., Awaitable[Client]], messenger_on_redis: Settings
) -> None:
    arrived: list[str] = []

    @web.middleware
    async def arrivals(request: web.Request, handler: Handler) -> web.StreamResponse:
        arrived.append(request.headers.get("X-Test-Text", ""))
        return await handler(request)

    app = await create_app(messenger_on_redis, clock=RunningClock(), worker_poll_seconds=0.05)
    app.middlewares.append(arrivals)  # innermost: right before the webhook's handler
    client = await aiohttp_client(app)
    store = client.app[STORE]

    async def post(text: str, mid: str) -> int:
        return await post_message(client, PSID, text, mid, {"X-Test-Text": text})

    assert await post("Bonjour", "m_first") == 200
    conversation = await store.find_active_conversation(ChannelName.MESSENGER, PSID)
    assert conversation is not None
    texts = [f"message {n}" for n in range(MESSAGES)]
    async with store.lock(conversation.id):  # every webhook below is in flight at once
        posts = [asyncio.create_task(post(text, f"m_{n}")) for n, text in enumerate(texts)]
        await eventually(lambda: _async(len(arrived) == 1 + MESSAGES))
    assert await asyncio.gather(*posts) == [200] * MESSAGES

    async def said() -> list[str]:
        entries = await store.transcript(conversation.id)
        users = [e.text for e in entries if e.author is Author.USER]
        return users if len(users) == 1 + MESSAGES else []

    assert await eventually(said) == arrived  # processed in the order the webhooks arrived


async def _async(value: bool) -> bool:
    return value
