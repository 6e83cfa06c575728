"""A timer handled whose removal the store did not take (cut on its way to Redis: an outage, a failover) is removed
as soon as the store answers, before the next pass reads any timer: it is not fired again when the handling's
lease lapses.

The handling's writes (the reminder, the question again, the abandon timer) are one batch made before the removal
(``timer_done``); before the fix the removal's failure was dropped, the timer stayed armed at the end of the
handling's lease (``BASE_DELAY``, 10 s) and fired again then: the young person got the reminder and the question a
second time. The real dispatcher, timers, flows.yaml and Redis; the removal cut by a proxy before it reaches Redis
(``tests/losing_proxy.py``); time is the test's clock, so nothing waits.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
import redis.asyncio

from gateway.dispatcher import Dispatcher
from gateway.errors import StoreError
from gateway.flowset import FlowSet
from gateway.messages import ChannelName, Inbound
from gateway.metrics import Metrics
from gateway.store import Author, Store, TimerKind, open_store
from gateway.testing import store_keys
from gateway.timers import BASE_DELAY, Timers
from tests.conftest import ROOT, Clock
from tests.losing_proxy import LosingProxy, losing_proxy, script_sha
from tests.store.conftest import redis_url

__all__ = ["redis_url"]  # the fixture used below
pytestmark = pytest.mark.redis


@pytest.fixture
async def proxy(redis_url: str) -> AsyncIterator[LosingProxy]:
    client = redis.asyncio.Redis.from_url(redis_url)
    await client.flushdb()
    await client.aclose()
    async with losing_proxy(redis_url) as losing:
        yield losing


@pytest.fixture
async def store(proxy: LosingProxy) -> AsyncIterator[Store]:
    opened = await open_store(proxy.url, keys=store_keys(proxy.url))
    yield opened
    await opened.close()


async def test_a_handled_timer_whose_removal_failed_is_removed_once_the_store_answers_not_fired_again(
    store: Store, proxy: LosingProxy, clock: Clock
) -> None:
    flows = FlowSet(ROOT / "flows.yaml")
    flows.reload()
    dispatcher = Dispatcher(store, flows, clock=clock)
    await dispatcher.handle_inbound(Inbound(ChannelName.MESSENGER, "zoe", "zoe-0", "Bonjour"))  # a reminder armed
    conversation = await store.find_active_conversation(ChannelName.MESSENGER, "zoe")
    assert conversation is not None
    timers = Timers(dispatcher, store, flows, Metrics(), clock=clock)

    async def said() -> int:
        return sum(1 for e in await store.transcript(conversation.id) if e.author is Author.BOT)

    async def reminder_armed() -> bool:
        armed = await store.due_timers(clock() + timedelta(days=1))
        return any(t.conversation_id == conversation.id and t.kind is TimerKind.BOT_REMINDER for t in armed)

    before = await said()
    clock.advance(minutes=11)  # past the 10-minute reminder
    proxy.lose(script_sha("timer_done"), run=False)  # the handled reminder's removal never reaches Redis
    with pytest.raises(StoreError):
        await timers.fire_due()
    assert proxy.lost == 1
    reminded = await said()
    assert reminded > before  # the reminder (and the question) went out once

    assert await timers.fire_due() == 0  # the store answers: the removal first, nothing fired
    assert not await reminder_armed()  # removed now, not left to fire at its lease's end
    clock.advance(seconds=BASE_DELAY + 1)  # past the handling's lease
    assert await timers.fire_due() == 0
    assert await said() == reminded  # before the fix: the reminder and the question a second time
