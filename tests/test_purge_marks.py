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

import pytest

from gateway.dispatcher import Dispatcher
from gateway.flowset import FlowSet
from gateway.ids import inbound_key, seen_digest
from gateway.retention import Retention
from gateway.store import open_store
from gateway.testing import store_keys
from tests.conftest import ROOT, Clock
from tests.store.conftest import emptied, redis_url
from tests.test_purge_outage import DEADLINE, ended

__all__ = ["redis_url"]  # the fixture used below
pytestmark = pytest.mark.redis


async def test_a_purge_after_the_transcripts_ttl_forgets_the_young_persons_marks(redis_url: str, clock: Clock) -> None:
    emptied(redis_url)
    store = await open_store(redis_url, keys=store_keys(redis_url))
    try:
        flows = FlowSet(ROOT / "flows.yaml")
        flows.reload()
        dispatcher = Dispatcher(store, flows, clock=clock)
        conversation, inbound = await ended(store, dispatcher, clock, "zoe")
        await store.expire_transcript(conversation.id, 1)  # the backstop's TTL, as at the end of its retention
        deadline = asyncio.get_running_loop().time() + DEADLINE
        while await store.transcript(conversation.id):
            assert asyncio.get_running_loop().time() < deadline, "the transcript's TTL did not lapse"
            await asyncio.sleep(0.05)
        assert seen_digest(inbound_key(inbound)) in await store.seen_keys()
        clock.advance(days=31)

        purged = await Retention(store, flows, clock=clock).purge(clock())

        assert purged.conversations == 1
        assert seen_digest(inbound_key(inbound)) not in await store.seen_keys()
    finally:
        await store.close()
