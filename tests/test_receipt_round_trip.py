"""A provider's receipt that comes in the one round trip between the outbox's read of what was kept for a send and
the send's record (its keeper, another instance, kept it and looked the reply up before the record: not found),
when the record's own take of it then fails or its instance dies before the take: applied all the same, by the
outbox's sweep of the receipts kept (issue 8; before, it expired unapplied, and a ``failed`` or ``read`` was never
shown). Real Redis, the real store, dispatcher and outbox, the fake Graph API on 127.0.0.1; the outbox's instance
reaches Redis through ``tests/losing_proxy.py``, which holds its record on the way (so that the receipt comes in
that round trip) and then cuts its take, or holds it for ever while the instance is killed (its worker cancelled).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
import redis.asyncio

from gateway.channels.messenger import MessengerChannel
from gateway.clock import utcnow
from gateway.messages import ChannelName, Receipt
from gateway.outbox import Outbox
from gateway.store import Delivery, Store, open_store
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


@pytest.mark.parametrize("fault", ["take fails", "killed before the take"])
async def test_a_receipt_kept_between_the_read_and_the_record_is_applied_when_the_take_never_comes(
    proxy: LosingProxy,
    stores: tuple[Store, Store],
    graph: FakeGraphAPI,
    channels: dict[ChannelName, MessengerChannel],
    fault: str,
) -> None:
    store, other = stores
    await put_replies(store, "c1", 1)
    proxy.hold(script_sha("outbox_resolve"), b"c1-r1")  # the record, on its way: the outbox read nothing kept
    killed = fault == "killed before the take"
    after_the_record = (b"HKEYS", b"hg:rk:")  # the look at what was kept, once the send is recorded
    first = Outbox(store, channels, poll_seconds=0.05, sweep_seconds=0.5)
    worker = asyncio.create_task(first.run())
    second: asyncio.Task[None] | None = None
    try:
        await asyncio.wait_for(proxy.held.wait(), BOUND)
        mid = graph.accepted()[0].answer["message_id"]
        await dispatcher_of(other).handle_receipt(Receipt(ChannelName.MESSENGER, "psid-c1", "read", mid))
        assert await other.find_by_provider_id(mid) is None  # its keeper found no record: kept, left to the outbox
        proxy.release()
        if not killed:
            proxy.lose(*after_the_record, run=False)  # cut before Redis: it fails
        else:
            proxy.hold(*after_the_record)  # the record goes; the look after it never reaches Redis
            await asyncio.wait_for(proxy.held.wait(), BOUND)  # recorded, its take on its way: the instance dies
            worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await worker
            second = asyncio.create_task(Outbox(other, channels, poll_seconds=0.05, sweep_seconds=0.5).run())

        async def read() -> bool:
            found = await other.find_by_provider_id(mid)
            return found is not None and found.delivery is Delivery.READ

        await eventually(read, timeout=BOUND)  # before: `sent` for ever (the receipt expired after 10 minutes)
        await eventually(lambda: _none_waiting(other), timeout=BOUND)  # taken
    finally:
        for task in (worker, second):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
    assert proxy.lost == (0 if killed else 1)
    assert [r.body["message"]["text"] for r in graph.requests_to(graph.send_endpoint)] == ["reply 1"]


async def _none_waiting(store: Store) -> bool:
    return await store.kept_receipts_waiting(utcnow() + timedelta(minutes=1), 10) == []
