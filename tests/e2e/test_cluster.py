"""The gateway on a Redis Cluster: the real app on a one-node Cluster through one endpoint, and on a Cluster of
three primaries through the Cluster client (``GATEWAY_REDIS_CLUSTER=1``) (``tests/store/conftest.py``); both refuse
any script or transaction whose keys hash to different slots. Signed Messenger messages go through the inbox, the
dispatcher (claim, lock, conversation, transcript, timers), the outbox and the fake Graph API; each is answered
once, and a redelivered batch changes nothing."""

from __future__ import annotations

import asyncio
from collections import Counter

import aiohttp
import pytest

from gateway.app import STORE
from gateway.messages import ChannelName
from gateway.settings import Settings
from gateway.store import Author
from gateway.testing import FakeGraphAPI, messenger_body, messenger_message, signed_messenger
from tests.e2e.channel_support import GatewayFactory, gateway, offline
from tests.e2e.test_messenger import PATH, SECRET, messenger_settings
from tests.store.conftest import flush_cluster, redis_cluster3_url, redis_cluster_url

__all__ = ["gateway", "messenger_settings", "offline", "redis_cluster3_url", "redis_cluster_url"]  # fixtures

pytestmark = pytest.mark.redis

SENDERS = 20


def psid(number: int) -> str:
    return f"74{number:014d}"


@pytest.mark.parametrize("cluster", ["redis_cluster_url", "redis_cluster3_url"])
async def test_messages_through_inbox_dispatcher_and_outbox_on_a_cluster_are_answered_once(
    gateway: GatewayFactory,
    messenger_settings: Settings,
    graph: FakeGraphAPI,
    cluster: str,
    request: pytest.FixtureRequest,
) -> None:
    url: str = request.getfixturevalue(cluster)
    flush_cluster(url)
    client = await gateway(messenger_settings.replace(store=url, redis_cluster=int(cluster == "redis_cluster3_url")))
    document = messenger_body([messenger_message(psid(n), "Bonjour", f"m_cluster_{n}") for n in range(SENDERS)])
    raw, headers = signed_messenger(SECRET, document)
    url = str(client.make_url(PATH))
    async with aiohttp.ClientSession() as meta:
        for _ in range(2):  # the second time as Meta sends it again when its 200 was lost
            async with meta.post(url, data=raw, headers=headers) as response:
                assert response.status == 200
    for _ in range(600):
        if len(graph.accepted()) >= 2 * SENDERS:
            break
        await asyncio.sleep(0.1)
    store = client.app[STORE]
    for n in range(SENDERS):
        conversation = await store.find_active_conversation(ChannelName.MESSENGER, psid(n))
        assert conversation is not None, n
        entries = await store.transcript(conversation.id)
        assert sum(e.author is Author.USER for e in entries) == 1  # processed once
    replies = Counter(r.body["recipient"]["id"] for r in graph.accepted())
    assert set(replies.values()) == {2} and len(replies) == SENDERS  # the greeting and the first question, once
