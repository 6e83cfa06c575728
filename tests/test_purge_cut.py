"""A purge cut between a conversation's content deletion and its stripped record is finished by the next pass,
leaving nothing: the processed marks of the young person's messages (their provider ids' digests) are forgotten under
the conversation's lock before its content goes. Until 2026-12-06 they were named from the transcript at the end of
the pass: the cut pass never got there, the next one found the transcript gone, and the marks stayed their 8 days.

The real dispatcher, store and Redis; the stripped record's save cut before it reaches Redis
(``tests/losing_proxy.py``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from gateway.dispatcher import Dispatcher
from gateway.errors import StoreError
from gateway.flowset import FlowSet
from gateway.ids import inbound_key, seen_digest
from gateway.metrics import Metrics
from gateway.retention import Retention
from gateway.store import open_store
from gateway.testing import store_keys
from tests.conftest import ROOT, Clock
from tests.losing_proxy import LosingProxy, losing_proxy, script_text
from tests.store.conftest import emptied, redis_url
from tests.test_purge_outage import ended

__all__ = ["redis_url"]  # the fixture used below
pytestmark = pytest.mark.redis


@pytest.fixture
async def proxy(redis_url: str) -> AsyncIterator[LosingProxy]:
    emptied(redis_url)
    async with losing_proxy(redis_url) as losing:
        yield losing


async def test_a_purge_cut_between_the_content_and_the_stripped_record_is_finished_leaving_nothing(
    proxy: LosingProxy, clock: Clock
) -> None:
    store = await open_store(proxy.url, keys=store_keys(proxy.url))
    try:
        flows = FlowSet(ROOT / "flows.yaml")
        flows.reload()
        dispatcher = Dispatcher(store, flows, clock=clock)
        conversation, inbound = await ended(store, dispatcher, clock, "zoe")
        other, kept = await ended(store, dispatcher, clock, "lea")
        clock.advance(days=31)
        later = clock()
        # the stripped record's save never reaches Redis: the content (transcript, its index, outbox, timers) went
        proxy.lose(script_text("index_conversation"), conversation.id.encode(), run=False)
        retention = Retention(store, flows, clock=clock, metrics=Metrics())
        with pytest.raises(StoreError):
            await retention.purge(later)
        assert proxy.lost == 1
        record = await store.get_conversation(conversation.id)
        assert record is not None and record.purged_at is None  # half purged: still due
        assert await store.transcript(conversation.id) == []

        await retention.purge(later)  # the next pass finishes it

        record = await store.get_conversation(conversation.id)
        assert record is not None and record.purged_at is not None and record.sender == ""
        marks = await store.seen_keys()
        assert seen_digest(inbound_key(inbound)) not in marks  # its message's mark: no provider id left for 8 days
        assert seen_digest(inbound_key(kept)) not in marks  # the other one's, purged in the same passes
        assert (await store.get_conversation(other.id) or other).purged_at is not None
    finally:
        await store.close()
