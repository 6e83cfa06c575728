"""A provider's receipt kept while a send's record is on its way (its keeper, another instance, kept it and looked
the reply up before the record: not found). Until issue 8's twenty-third pass the outbox read what was kept before
the record and took it after, and this file proved a receipt kept in that round trip applied by the sweep when the
take failed or its instance died; on one Redis node the record now reads, applies and takes it in its own script
(``outbox_sent``), so that window is gone (the Cluster path keeps the read and the take:
``tests/store/test_contract_early_receipts.py``). Real Redis, the real store, dispatcher and outbox, the fake Graph
API on 127.0.0.1; the outbox's instance reaches Redis through ``tests/losing_proxy.py``, which holds its record on
the way.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
import redis.asyncio

from gateway.channels.messenger import MessengerChannel
from gateway.clock import utcnow
from gateway.dispatcher import outbox_item
from gateway.messages import ChannelName, Receipt
from gateway.outbox import Outbox
from gateway.store import Author, Delivery, Store, TranscriptEntry, open_store
from gateway.store.redis_lua import SCRIPTS
from gateway.testing import FakeGraphAPI, store_keys
from tests.e2e.channel_support import eventually
from tests.losing_proxy import LosingProxy, losing_proxy, script_sha
from tests.store.conftest import redis_url
from tests.store.test_contract_early_receipts import dispatcher_of
from tests.test_outbox_record_lost import put_replies
from tests.test_outbox_runs import channels, graph

__all__ = ["channels", "graph", "redis_url"]  # fixtures
pytestmark = pytest.mark.redis
BOUND = 10.0  # seconds: the sweep comes every 0.5 s here, a receipt kept 2 s before it is taken


@pytest.fixture
async def proxy(redis_url: str) -> AsyncIterator[LosingProxy]:
    client = redis.asyncio.Redis.from_url(redis_url)
    await client.flushdb()
    for source in SCRIPTS.values():
        await client.script_load(source)
    await client.aclose()
    async with losing_proxy(redis_url) as losing:
        yield losing


@pytest.fixture
async def stores(proxy: LosingProxy, redis_url: str) -> AsyncIterator[tuple[Store, Store]]:
    """The outbox's instance (through the proxy), and the instance the receipt reaches (straight to Redis)."""
    outboxes = await open_store(proxy.url, keys=store_keys(proxy.url))
    other = await open_store(redis_url, keys=store_keys(proxy.url))
    yield outboxes, other
    proxy.release()
    await outboxes.close()
    await other.close()


async def test_a_receipt_kept_while_the_record_is_on_its_way_is_applied_by_the_record_itself(
    proxy: LosingProxy,
    stores: tuple[Store, Store],
    graph: FakeGraphAPI,
    channels: dict[ChannelName, MessengerChannel],
) -> None:
    """Since issue 8's twenty-third pass, on one Redis node the record reads what was kept in its own script
    (``outbox_sent``): the receipt kept while the record was on its way (its keeper's look-up found nothing) is
    applied and taken by the record, with no look after it and no sweep (here every hour: never in the test).
    Before (and still in Cluster, ``tests/store/test_contract_early_receipts.py``) a read before the record and a
    take after it, where a take that failed or never came left the receipt to the sweep."""
    store, other = stores
    await put_replies(store, "c1", 1)
    proxy.hold(script_sha("outbox_sent"), b"c1-r1")  # the record, on its way
    worker = asyncio.create_task(Outbox(store, channels, poll_seconds=0.05, sweep_seconds=3600).run())
    try:
        await asyncio.wait_for(proxy.held.wait(), BOUND)
        mid = graph.accepted()[0].answer["message_id"]
        await dispatcher_of(other).handle_receipt(Receipt(ChannelName.MESSENGER, "psid-c1", "read", mid))
        assert await other.find_by_provider_id(mid) is None  # its keeper found no record: kept, left to the outbox
        proxy.release()

        async def read() -> bool:
            found = await other.find_by_provider_id(mid)
            return found is not None and found.delivery is Delivery.READ

        await eventually(read, timeout=BOUND)
        await eventually(lambda: _none_waiting(other), timeout=BOUND)  # taken by the record
        assert await other.kept_receipt(mid) is None
    finally:
        worker.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await worker
    assert [r.body["message"]["text"] for r in graph.requests_to(graph.send_endpoint)] == ["reply 1"]


async def _none_waiting(store: Store) -> bool:
    return await store.kept_receipts_waiting(utcnow() + timedelta(minutes=1), 10) == []


async def test_a_watermark_that_comes_while_the_record_is_on_its_way_is_applied_by_the_record(
    proxy: LosingProxy,
    stores: tuple[Store, Store],
    graph: FakeGraphAPI,
    channels: dict[ChannelName, MessengerChannel],
) -> None:
    """Messenger's ``read`` is a watermark (no message id): the young person read the reply once Meta accepted it,
    while the outbox's record of Meta's answer was still on its way (here held; in bench/chaos.py --seed 21 retried
    through a Redis outage). The watermark, after the answer, is kept on the conversation and applied by the record:
    the reply shows read. Before: left pending by the watermark, then recorded ``sent``, shown so for ever when no
    later watermark came (often a conversation's last reply)."""
    store, other = stores
    conversation, _ = await store.active_conversation(ChannelName.MESSENGER, "psid-c1", utcnow())
    entry = TranscriptEntry("c1-r1", conversation.id, utcnow(), Author.BOT, "reply 1")
    async with store.batch():
        await store.append_transcript(entry)
        await store.outbox_put(outbox_item(conversation, entry, entry.at))  # as the dispatcher puts it
    proxy.hold(script_sha("outbox_sent"), entry.id.encode())  # the record, on its way
    worker = asyncio.create_task(Outbox(store, channels, poll_seconds=0.05, sweep_seconds=3600).run())
    try:
        await asyncio.wait_for(proxy.held.wait(), BOUND)
        assert len(graph.accepted()) == 1  # Meta answered before the record went out
        read_at = math.ceil(utcnow().timestamp() * 1000)  # the young person reads it now: after the answer
        await dispatcher_of(other).handle_receipt(Receipt(ChannelName.MESSENGER, "psid-c1", "read", watermark=read_at))
        assert [e.delivery for e in await other.transcript(conversation.id)] == [Delivery.PENDING]
        proxy.release()

        async def read() -> bool:
            return [e.delivery for e in await other.transcript(conversation.id)] == [Delivery.READ]

        await eventually(read, timeout=BOUND)  # before: sent
    finally:
        worker.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await worker
