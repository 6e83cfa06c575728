"""A Redis restart while the inbox processes a message: once Redis is back, its live worker processes it again at
once, not when its lease lapses.

A message's processing that meets the outage fails (StoreError), and so does the worker's record that it is due
again: the item stayed leased to the worker until the lease's end (twice the dispatcher's claim: 20 s by default),
although the worker holding it was alive and the store answered again within a second (note30.md: 21–31 s in 3 of
~20 failovers). The worker now records the item's outcome as soon as the store answers.

The test's own redis-server keeps its data across the restart (an append-only file, as production's does). The
message is caught mid-processing by the test holding its conversation's lock (a key of the real store, set by a
client of the test's own); the claim's lease is made long (``GATEWAY_INBOUND_CLAIM_SECONDS`` 30 s, so the inbox's
lease is 60 s), and the reply must reach the fake Graph API within half of that lease from Redis's return: it
came after the lease lapsed before the fix. Every wait is on a condition (a key, a counter, a request at the fake
provider), bounded by a deadline.

The same for a message processed whose removal from the inbox could not be recorded (the command cut before it
reached Redis, by a proxy: ``tests/losing_proxy.py``): the item stayed leased, and the sender's next message
waited behind it for the lease.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
import redis.asyncio as aioredis

from gateway.app import METRICS, STORE, create_app
from gateway.messages import ChannelName
from gateway.settings import Settings
from gateway.store import Author, redis_keys
from gateway.testing import FakeGraphAPI
from tests.conftest import outbox_drained
from tests.e2e.channel_support import Client, RunningClock, eventually
from tests.losing_proxy import LosingProxy, losing_proxy, script_sha
from tests.redis_messenger import SECRET, post_message
from tests.store.conftest import emptied, redis_url
from tests.test_redis_restart import OwnRedis, own_redis

__all__ = ["own_redis", "redis_url"]  # the fixtures used below

pytestmark = pytest.mark.redis

PSID = "7555000000000031"
CLAIM_SECONDS = 30.0  # the inbox's lease is twice that (``create_app``): 60 s
LEASE_SECONDS = 2 * CLAIM_SECONDS
BOUND = 30.0  # seconds for each wait before the restart: a safety net on a busy machine


def failures(client: Client, part: str) -> float:
    """``gateway_store_failures_total`` of one part, every error class summed."""
    return sum(sample.value for metric in client.app[METRICS].registry.collect() for sample in metric.samples
               if sample.name == "gateway_store_failures_total" and sample.labels.get("part") == part)  # fmt: skip


def replies(graph: FakeGraphAPI) -> int:
    """The messages the fake Graph API accepted (not the typing indicators)."""
    return sum(1 for request in graph.accepted() if "message" in request.body)


def inboxing(settings: Settings, store: str, graph: FakeGraphAPI) -> Settings:
    """Messenger on ``store``, every webhook through the inbox, the inbox's lease 60 s."""
    return settings.replace(
        store=store, messenger_app_secret=SECRET, messenger_verify_token="verify",
        messenger_page_access_token="page-token", messenger_api_url=graph.url + "/v23.0",
        inline_max=0,  # every webhook through the inbox
        inbound_claim_seconds=CLAIM_SECONDS, understanding="off",
    )  # fmt: skip


async def test_a_message_caught_by_a_redis_restart_is_processed_once_redis_is_back_not_after_its_lease(
    aiohttp_client: Callable[..., Awaitable[Client]], settings: Settings, graph: FakeGraphAPI, own_redis: OwnRedis
) -> None:
    client = await aiohttp_client(await create_app(inboxing(settings, own_redis.url, graph), clock=RunningClock(),
                                                   worker_poll_seconds=0.05))  # fmt: skip
    store = client.app[STORE]
    assert await post_message(client, PSID, "Bonjour", "m_outage_0") == 200
    await eventually(lambda: _true(replies(graph) > 0), BOUND)
    await outbox_drained(client, BOUND)
    before = replies(graph)
    conversation = await store.find_active_conversation(ChannelName.MESSENGER, PSID)
    assert conversation is not None

    raw = aioredis.Redis.from_url(own_redis.url)
    try:
        # The conversation held: the message's processing waits for it, its inbox item and its claim taken.
        assert await raw.set(redis_keys.lock(conversation.id), secrets.token_hex(8), px=300_000, nx=True)
        assert await post_message(client, PSID, "toujours là", "m_outage_1") == 200  # stored in the inbox
        await eventually(lambda: raw.exists(redis_keys.seen_claim("in:messenger:m_outage_1")), BOUND)
        await raw.aclose()

        own_redis.stop()  # the processing fails, and so does the worker's record of its retry
        await eventually(lambda: _true(failures(client, "inbox") >= 2), BOUND)  # and the worker's next pass

        own_redis.start()
        raw = aioredis.Redis.from_url(own_redis.url)
        assert await raw.delete(redis_keys.lock(conversation.id)) == 1  # kept across the restart, let go now
        back = time.monotonic()
        await eventually(lambda: _true(replies(graph) > before), LEASE_SECONDS / 2)
        waited = time.monotonic() - back
        assert waited < LEASE_SECONDS / 2, waited
    finally:
        await raw.aclose()

    await outbox_drained(client, BOUND)
    entries = await store.transcript(conversation.id)
    assert [e.text for e in entries if e.author is Author.USER].count("toujours là") == 1  # processed once


async def _true(value: bool) -> bool:
    return value


@pytest.fixture
async def proxy(redis_url: str) -> AsyncIterator[LosingProxy]:
    emptied(redis_url)
    async with losing_proxy(redis_url) as losing:
        yield losing


async def test_a_message_whose_removal_from_the_inbox_failed_does_not_hold_the_next_for_its_lease(
    aiohttp_client: Callable[..., Awaitable[Client]], settings: Settings, graph: FakeGraphAPI, proxy: LosingProxy
) -> None:
    client = await aiohttp_client(await create_app(inboxing(settings, proxy.url, graph), clock=RunningClock(),
                                                   worker_poll_seconds=0.05))  # fmt: skip
    proxy.lose(script_sha("inbox_done"), run=False)  # the first message's removal never reaches Redis
    assert await post_message(client, PSID, "Bonjour", "m_done_0") == 200
    await eventually(lambda: _true(replies(graph) > 0), BOUND)  # processed
    await eventually(lambda: _true(proxy.lost == 1), BOUND)
    await outbox_drained(client, BOUND)
    answered = replies(graph)

    sent = time.monotonic()
    assert await post_message(client, PSID, "toujours là", "m_done_1") == 200  # behind the first in the inbox
    await eventually(lambda: _true(replies(graph) > answered), LEASE_SECONDS / 2)
    waited = time.monotonic() - sent
    assert waited < LEASE_SECONDS / 2, waited

    await outbox_drained(client, BOUND)
    conversation = await client.app[STORE].find_active_conversation(ChannelName.MESSENGER, PSID)
    assert conversation is not None
    said = [e.text for e in await client.app[STORE].transcript(conversation.id) if e.author is Author.USER]
    assert said == ["Bonjour", "toujours là"]  # in order, each once
