"""A purge on Redis forgets the processed marks of the young person's messages even when the transcript's TTL (the
purge's backstop, ``closed_days`` from the end: ``Store.expire_transcript``) deleted the transcript first, as it
always does on Redis: the TTL lapses the moment the retention ends, the daily purge comes later. The marks are named
from the conversation's own list of them too (``RetentionStore.marks_of``: Redis ``hg:d:{<conv>}``, kept as long as
its last mark). Until 2026-12-06 they were named from the transcript only: with a ``closed_days`` under the marks' 8
days, a purged young person's marks (digests of their provider message ids) stayed after the purge.

The real dispatcher, store and Redis; the TTL set to a second and waited for.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest
import redis

from gateway.app import DISPATCHER, FLOWS
from gateway.dispatcher import BACKSTOP_AFTER_PURGE, Dispatcher
from gateway.flows.lifecycle import Trigger
from gateway.flowset import FlowSet
from gateway.ids import inbound_key, seen_digest
from gateway.messages import ChannelName, Inbound
from gateway.metrics import Metrics
from gateway.retention import Retention
from gateway.settings import Settings
from gateway.store import Store, open_store
from gateway.store import redis_keys as K
from gateway.testing import store_keys
from tests.conftest import ROOT, AppFactory, Clock
from tests.redis_messenger import SECRET
from tests.store.conftest import emptied, redis_url
from tests.test_purge_outage import DEADLINE, ended

__all__ = ["redis_url"]  # the fixture used below
pytestmark = pytest.mark.redis


@contextlib.asynccontextmanager
async def on_redis(redis_url: str, clock: Clock) -> AsyncIterator[tuple[Store, FlowSet, Dispatcher]]:
    """The test's Redis emptied, the store on it, the default flow and the real dispatcher."""
    emptied(redis_url)
    store = await open_store(redis_url, keys=store_keys(redis_url))
    try:
        flows = FlowSet(ROOT / "flows.yaml")
        flows.reload()
        yield store, flows, Dispatcher(store, flows, clock=clock)
    finally:
        await store.close()


async def test_a_purge_after_the_transcripts_ttl_forgets_the_young_persons_marks(redis_url: str, clock: Clock) -> None:
    async with on_redis(redis_url, clock) as (store, flows, dispatcher):
        conversation, inbound = await ended(store, dispatcher, clock, "zoe")
        await store.expire_transcript(conversation.id, 1)  # the backstop's TTL, as at the end of its retention
        deadline = asyncio.get_running_loop().time() + DEADLINE
        while await store.transcript(conversation.id):
            assert asyncio.get_running_loop().time() < deadline, "the transcript's TTL did not lapse"
            await asyncio.sleep(0.05)
        assert seen_digest(inbound_key(inbound)) in await store.seen_keys()
        clock.advance(days=31)

        purged = await Retention(store, flows, clock=clock, metrics=Metrics()).purge(clock())

        assert purged.conversations == 1
        assert seen_digest(inbound_key(inbound)) not in await store.seen_keys()


async def test_the_transcripts_ttl_lapses_after_the_daily_purge_not_before_it(redis_url: str, clock: Clock) -> None:
    """The TTL the dispatcher gives an ended conversation's transcript outlasts its retention by the purge's day and
    one more: the daily purge finds the transcript and forgets the replies' provider-id index entries it names
    (``hg:p:…``: a reply's id pointing at the conversation for up to 31 days otherwise) and the messages' marks.
    Until 2026-12-07 the TTL was ``closed_days`` to the second: it always lapsed before the purge's pass."""
    async with on_redis(redis_url, clock) as (_, flows, dispatcher):
        ttl = await ended_ttl(redis_url, dispatcher, clock)
        days = flows.engine().flow.retention.closed_days
        assert days * 86_400 + 86_400 < ttl <= days * 86_400 + BACKSTOP_AFTER_PURGE  # before: days * 86,400


async def test_the_transcripts_ttl_outlasts_a_purge_interval_longer_than_a_day(
    redis_url: str, make_client: AppFactory, settings: Settings, clock: Clock
) -> None:
    """``GATEWAY_PURGE_INTERVAL_SECONDS`` of a week: the purge comes up to a week after a retention ends, and the
    transcript's TTL still lapses after it (the interval and a day). Until 2026-12-07 the margin was 2 days whatever
    the interval: the TTL lapsed first and the replies' provider-id index entries stayed, naming the conversation."""
    emptied(redis_url)
    week = 7 * 86_400
    client = await make_client(settings.replace(store=redis_url, purge_interval_seconds=week))
    ttl = await ended_ttl(redis_url, client.app[DISPATCHER], clock)
    days = client.app[FLOWS].engine().flow.retention.closed_days
    assert days * 86_400 + week < ttl <= days * 86_400 + week + 86_400  # before: days * 86,400 + 2 days


async def ended_ttl(redis_url: str, dispatcher: Dispatcher, clock: Clock) -> int:
    """The TTL of the transcript of a Messenger conversation begun and ended by ``dispatcher``."""
    store = dispatcher.store
    await dispatcher.handle_inbound(Inbound(ChannelName.MESSENGER, "yann", "m-yann", SECRET))
    found = await store.find_active_conversation(ChannelName.MESSENGER, "yann")
    assert found is not None
    async with store.lock(found.id):
        conversation = await store.get_conversation(found.id)
        assert conversation is not None
        await dispatcher.transition(conversation, Trigger.END, clock())
        await store.save_conversation(conversation)
    with redis.Redis.from_url(redis_url) as client:
        return int(client.ttl(K.transcript(conversation.id)))
