"""The outbox worker (gateway/outbox.py) against a real store and a fake provider.

No reply twice without a fault: a send that outlasts the outbox lease (a provider or a store slow under load) has
its lease renewed while it runs, so a second worker (another instance) never claims and sends it again."""

from __future__ import annotations

import asyncio

import aiohttp

from gateway.channels.messenger import MessengerChannel
from gateway.dispatcher import outbound_to_dict
from gateway.messages import ChannelName, Outbound
from gateway.outbox import Outbox
from gateway.settings import Settings
from gateway.store import OutboxItem, OutboxStatus, Store
from gateway.testing import FakeGraphAPI
from tests.conftest import Clock
from tests.e2e.channel_support import eventually
from tests.store.conftest import redis_url, store, store_url

__all__ = ["redis_url", "store", "store_url"]  # fixtures used by the tests below

LEASE = 1  # seconds: renewed every third of it while a send runs


async def test_a_send_slower_than_its_lease_is_never_sent_by_a_second_worker(
    store: Store, settings: Settings, clock: Clock
) -> None:
    async with FakeGraphAPI() as graph, aiohttp.ClientSession() as session:
        messenger = MessengerChannel(settings.replace(messenger_api_url=graph.url,
                                                      messenger_page_access_token="token"), session)  # fmt: skip
        channels = {ChannelName.MESSENGER: messenger}
        first, second = (Outbox(store, channels, clock=clock, lease_seconds=LEASE) for _ in range(2))
        reply = Outbound("r1", "c1", ChannelName.MESSENGER, "psid-1", "Bonjour")
        await store.outbox_put(OutboxItem("r1", "c1", outbound_to_dict(reply), clock()))

        graph.stall()  # the provider takes its time: the send outlasts the lease many times over
        sending = asyncio.create_task(first.deliver_due())
        await graph.wait_held(1)
        clock.advance(seconds=10 * LEASE)

        async def renewed() -> bool:
            item = await store.outbox_get("r1")
            return item is not None and item.next_attempt_at is not None and item.next_attempt_at > clock()

        await eventually(renewed)  # the first worker still holds it
        assert await second.deliver_due() == 0  # so the second one finds nothing due

        graph.resume()
        assert await sending == 1
        assert [r.body["message"]["text"] for r in graph.accepted()] == ["Bonjour"]
        item = await store.outbox_get("r1")
        assert item is not None and item.status == OutboxStatus.SENT
