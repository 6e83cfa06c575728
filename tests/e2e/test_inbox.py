"""The durable inbox: a signed Messenger batch of 2,000 events is acknowledged once stored, then each event is
processed exactly once (the real app on a real Redis, a fake Graph API).

Meta gives up on a webhook it does not see acknowledged within about 20 seconds and sends it again: processing
2,000 events before answering took about a minute, so the batch kept coming back. The test's provider waits 20
seconds, as Meta would; then it redelivers the same batch once (as Meta does when an answer is lost), which must
change nothing.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter

import aiohttp
import pytest
import redis

from gateway.app import STORE
from gateway.inbox import sender_key
from gateway.keyed import KeyedHash
from gateway.messages import ChannelName, Inbound
from gateway.settings import Settings
from gateway.store import Author
from gateway.testing import FakeGraphAPI, messenger_body, messenger_message, signed_messenger
from tests.e2e.channel_support import GatewayFactory, gateway, offline
from tests.e2e.test_messenger import PATH, SECRET, messenger_settings
from tests.store.conftest import redis_url

__all__ = ["gateway", "messenger_settings", "offline", "redis_url"]  # fixtures used below

pytestmark = pytest.mark.redis

EVENTS = 2000
META_PATIENCE = 20.0  # seconds Meta waits for a webhook's 200 before it sends the webhook again


def psid(number: int) -> str:
    return f"73{number:014d}"


async def test_a_signed_batch_of_2000_events_is_acknowledged_once_stored_and_each_processed_once(
    gateway: GatewayFactory, messenger_settings: Settings, graph: FakeGraphAPI, redis_url: str
) -> None:
    flushing = redis.Redis.from_url(redis_url)
    flushing.flushdb()
    flushing.close()
    client = await gateway(messenger_settings.replace(store=redis_url))
    document = messenger_body([messenger_message(psid(n), "Bonjour", f"m_batch_{n}") for n in range(EVENTS)])
    raw, headers = signed_messenger(SECRET, document)
    url = str(client.make_url(PATH))
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=META_PATIENCE)) as meta:
        started = time.monotonic()
        async with meta.post(url, data=raw, headers=headers) as response:
            assert response.status == 200
        acknowledged = time.monotonic() - started
        store = client.app[STORE]
        keyed = KeyedHash(messenger_settings.secret_key.get_secret_value())
        keys = [sender_key(keyed, Inbound(ChannelName.MESSENGER, psid(n), "")) for n in range(EVENTS)]
        waiting = sum([await store.inbox_waiting(key) for key in keys])
        assert waiting > 0  # acknowledged once stored, not once processed (processing takes seconds)
        async with meta.post(url, data=raw, headers=headers) as again:  # the 200 was lost: Meta sends it again
            assert again.status == 200

    for _ in range(1200):  # processing 2,000 new conversations takes a while on a busy machine
        if len(graph.accepted()) >= 2 * EVENTS:
            break
        await asyncio.sleep(0.1)
    processed = time.monotonic() - started
    users: Counter[str] = Counter()
    for n in range(EVENTS):
        conversation = await store.find_active_conversation(ChannelName.MESSENGER, psid(n))
        assert conversation is not None, n
        entries = await store.transcript(conversation.id)
        users[psid(n)] = sum(e.author is Author.USER for e in entries)
    assert set(users.values()) == {1}  # every event processed, none twice
    replies = Counter(r.body["recipient"]["id"] for r in graph.accepted())
    assert set(replies.values()) == {2} and len(replies) == EVENTS  # the greeting and the first question, once
    print(
        f"{EVENTS} events: acknowledged in {acknowledged:.2f} s ({waiting} still in the inbox),"
        f" processed in {processed:.1f} s"
    )
