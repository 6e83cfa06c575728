"""A store call of the outbox whose answer is lost (the connection to Redis cut right after the command left, cut
from outside by a proxy: ``tests/losing_proxy.py``) holds a conversation's replies for the outbox's own backoff, not
for the lease (60 s) the items were claimed under (issue 8). The store, redis-py, the outbox and the Messenger
channel are the real ones; the provider is the fake Graph API on 127.0.0.1, answering 429 or 500 when asked."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
import redis.asyncio

from gateway.channels.messenger import MessengerChannel
from gateway.clock import utcnow
from gateway.messages import ChannelName
from gateway.outbox import Outbox
from gateway.store import Delivery, Store, open_store
from gateway.store.redis_lua import SCRIPTS
from gateway.testing import Failure, FakeGraphAPI, store_keys
from tests.e2e.channel_support import eventually
from tests.losing_proxy import LosingProxy, losing_proxy, script_sha, script_text
from tests.store.conftest import redis_url
from tests.test_outbox_record_lost import put_replies
from tests.test_outbox_runs import channels, graph, texts

__all__ = ["channels", "graph", "redis_url"]  # fixtures
pytestmark = pytest.mark.redis
BOUND = 10.0  # seconds: the outbox's backoff (0.2 s, 1 s retry-after) with room to spare; the lease is 60 s


@pytest.fixture
async def proxy(redis_url: str) -> AsyncIterator[LosingProxy]:
    client = redis.asyncio.Redis.from_url(redis_url)
    await client.flushdb()
    for source in SCRIPTS.values():  # loaded: the marked EVALSHA is the one that runs (no NOSCRIPT, then EVAL)
        await client.script_load(source)
    await client.aclose()
    async with losing_proxy(redis_url) as losing:
        yield losing


@pytest.fixture
async def store(proxy: LosingProxy) -> AsyncIterator[Store]:
    opened = await open_store(proxy.url, keys=store_keys(proxy.url))
    yield opened
    await opened.close()


async def deliver_all(
    store: Store, channels: dict[ChannelName, MessengerChannel], graph: FakeGraphAPI, accepted: int, ids: bool = True
) -> None:
    """``Outbox.run`` (its 60 s lease, a 0.2 s first retry) until the fake accepted ``accepted`` sends and the
    transcript shows every reply sent; then, every lease long over, nothing is due any more."""
    sending = Outbox(
        store, channels, poll_seconds=0.05, base_delay=0.2, record_pause=(0.05, 0.5), lease_seconds=60
    )  # far past BOUND, whatever the default (15 s)
    worker = asyncio.create_task(sending.run())

    async def all_sent() -> bool:
        shown = await store.transcript("c1")
        return all(e.delivery is Delivery.SENT and bool(e.provider_message_id) is ids for e in shown)

    try:
        await graph.wait_accepted(accepted, timeout=BOUND)  # before: the rest a lease (60 s) later
        await eventually(all_sent, timeout=BOUND)
    finally:
        worker.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await worker
    later = Outbox(store, channels, clock=lambda: utcnow() + timedelta(minutes=10))
    assert await later.deliver_due() == 0  # nothing left, nothing sent again


@pytest.mark.parametrize(("refusal", "lost_on"), [(Failure(429, retry_after=1), "c1-r1"), (Failure(500), "c1-r2")])
async def test_a_store_failure_rescheduling_a_refused_reply_or_giving_back_its_run_holds_it_seconds(
    proxy: LosingProxy,
    store: Store,
    graph: FakeGraphAPI,
    channels: dict[ChannelName, MessengerChannel],
    refusal: Failure,
    lost_on: str,
) -> None:
    """The provider refuses a message's first reply for now; the answer of the store's step that reschedules it
    (``c1-r1``), or of the one giving back the next reply of its run (``c1-r2``), is lost after Redis ran it. Before,
    the error ended the run: what it held stayed leased, and the three replies waited 60 s."""
    await put_replies(store, "c1", 3)
    graph.fail_next(refusal)
    proxy.lose(script_sha("outbox_reschedule"), lost_on.encode())
    await deliver_all(store, channels, graph, 3)
    assert proxy.lost == 1
    assert texts(graph, "c1") == ["reply 1", "reply 2", "reply 3"]  # in order, each once
    asked = [r.body["message"]["text"] for r in graph.requests_to(graph.send_endpoint)]
    assert asked == ["reply 1", "reply 1", "reply 2", "reply 3"]  # the refused one asked again, the rest once


@pytest.mark.parametrize("lost", ["outbox_due", "outbox_claim"])
async def test_a_claim_whose_answer_is_lost_is_recognised_by_its_worker_not_waited_out(
    proxy: LosingProxy, store: Store, graph: FakeGraphAPI, channels: dict[ChannelName, MessengerChannel], lost: str
) -> None:
    """The claim ran in Redis (``outbox_due``: the conversations' lines taken for the lease; ``outbox_claim``: the
    run's items leased) and its answer was lost. Before, the replies waited for that lease (60 s): nobody knew the
    claim was made. The worker tries the claim again with the token it chose before sending it, and the store hands
    out what that token claimed."""
    await put_replies(store, "c1", 3)
    proxy.lose(script_sha(lost) if lost == "outbox_due" else script_text(lost))  # its pipeline sends the text
    await deliver_all(store, channels, graph, 3)
    assert proxy.lost == 1
    assert texts(graph, "c1") == ["reply 1", "reply 2", "reply 3"]
    asked = [r.body["message"]["text"] for r in graph.requests_to(graph.send_endpoint)]
    assert asked == ["reply 1", "reply 2", "reply 3"]


async def test_a_send_without_a_provider_id_whose_record_answer_is_lost_holds_the_run_seconds(
    proxy: LosingProxy, store: Store, graph: FakeGraphAPI, channels: dict[ChannelName, MessengerChannel]
) -> None:
    """The provider accepts each reply without a message id (a 200 without ``message_id``); the first record's answer
    is lost after Redis ran it. Before, Redis could not tell its own record from another worker's (the item dropped
    once its entry shows the send, and no provider id on the entry to compare): the retry was refused as a lost
    lease, the run ended, and the next replies waited for their lease (60 s)."""
    graph.without_ids = True
    await put_replies(store, "c1", 3)
    proxy.lose(script_sha("outbox_resolve"), b"c1-r1")
    await deliver_all(store, channels, graph, 3, ids=False)
    assert proxy.lost == 1
    assert texts(graph, "c1") == ["reply 1", "reply 2", "reply 3"]
    asked = [r.body["message"]["text"] for r in graph.requests_to(graph.send_endpoint)]
    assert asked == ["reply 1", "reply 2", "reply 3"]
