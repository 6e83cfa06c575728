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

import contextlib
from collections.abc import AsyncIterator
from datetime import datetime, timedelta

import pytest

from gateway.dispatcher import Dispatcher
from gateway.errors import StoreError
from gateway.flowset import FlowSet
from gateway.messages import ChannelName, Inbound
from gateway.metrics import Metrics
from gateway.store import Author, Store, TimerKind, open_store
from gateway.testing import store_keys
from gateway.timers import BASE_DELAY, Timers
from tests.conftest import ROOT, Clock
from tests.cutting_proxy import cutting_proxy
from tests.losing_proxy import LosingProxy, losing_proxy, script_sha, script_text
from tests.store.conftest import emptied, redis_url

__all__ = ["redis_url"]  # the fixture used below
pytestmark = pytest.mark.redis


@pytest.fixture
async def proxy(redis_url: str) -> AsyncIterator[LosingProxy]:
    emptied(redis_url)
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


REMINDER = "Tu es toujours là"  # flows.yaml's reminder, in French


async def zoe_at_the_first_question(store: Store, clock: Clock) -> tuple[Dispatcher, FlowSet, str]:
    """Zoé on Messenger said hello and got the first question: her reminder is armed for 10 minutes later."""
    flows = FlowSet(ROOT / "flows.yaml")
    flows.reload()
    dispatcher = Dispatcher(store, flows, clock=clock)
    await dispatcher.handle_inbound(Inbound(ChannelName.MESSENGER, "zoe", "zoe-0", "Bonjour"))
    conversation = await store.find_active_conversation(ChannelName.MESSENGER, "zoe")
    assert conversation is not None
    return dispatcher, flows, conversation.id


async def reminded(store: Store, conversation_id: str, now: datetime) -> int:
    """How many times Zoé was reminded: the transcript's reminders, each with one outbox item listed to be sent
    (``outbox_due`` hands out every listed item once)."""
    told = {e.id for e in await store.transcript(conversation_id) if e.author is Author.BOT and REMINDER in e.text}
    listed = [item.id for item in await store.outbox_due(now, 10, run=100) if item.id in told]
    assert sorted(listed) == sorted(told), "a reminder written and not listed to be sent (or listed twice)"
    return len(told)


async def retries_until_quiet(timers: Timers, clock: Clock) -> None:
    """The timers' passes over the next few minutes, each retry's lease over (10 s doubling), before the abandon's
    30 minutes."""
    for _ in range(8):
        clock.advance(seconds=BASE_DELAY * 8)
        with contextlib.suppress(StoreError):  # a release lost with the cut may hold the lock a moment: next pass
            await timers.fire_due()


@pytest.mark.parametrize("by", ["same", "other"])
@pytest.mark.parametrize("lost", ["batch", "postpone", "removal"])
async def test_a_timer_whose_answer_was_lost_after_the_store_made_it_is_told_once(
    store: Store, proxy: LosingProxy, clock: Clock, lost: str, by: str
) -> None:
    """Redis runs a step of the reminder's handling and its answer is lost (the connection cut once Redis ran it):
    the handling's batch (the reminder, the question, the abandon timer, the record), the postpone that leases the
    timer, or its removal. The next passes, on this instance or another (``other``: nothing kept in memory), retry
    what is left: Zoé is reminded once, and the reminder is no longer armed. Before, a lost batch left the timer at
    its lease's end and it fired anew: the reminder and the question a second time, 10 s later."""
    dispatcher, flows, conversation_id = await zoe_at_the_first_question(store, clock)
    timers = Timers(dispatcher, store, flows, Metrics(), clock=clock)
    clock.advance(minutes=11)  # past the 10-minute reminder
    marker = {"batch": script_text("put_conversation"), "postpone": script_sha("timer_postpone"),
              "removal": script_sha("timer_done")}[lost]  # fmt: skip
    proxy.lose(marker, run=True)  # Redis runs it; its answer never comes back
    with pytest.raises(StoreError):
        await timers.fire_due()
    assert proxy.lost == 1
    if by == "other":  # another instance (or this one restarted): nothing of the first handling in memory
        timers = Timers(Dispatcher(store, flows, clock=clock), store, flows, Metrics(), clock=clock)
    await retries_until_quiet(timers, clock)
    assert await reminded(store, conversation_id, clock()) == 1
    assert not await armed(store, clock, conversation_id, TimerKind.BOT_REMINDER)
    assert await armed(store, clock, conversation_id, TimerKind.BOT_ABANDON)


async def armed(store: Store, clock: Clock, conversation_id: str, kind: TimerKind) -> bool:
    due = await store.due_timers(clock() + timedelta(days=1))
    return any(t.conversation_id == conversation_id and t.kind is kind for t in due)


@pytest.mark.parametrize("cut", ["outbox_list", "put_conversation"])
async def test_a_timer_cut_in_its_batch_is_completed_by_the_retry_told_once(
    store: Store, redis_url: str, clock: Clock, cut: str
) -> None:
    """The instance handling the reminder dies in its batch's pipeline (a connection reset before the reminder's
    listing, or before the record: ``tests/cutting_proxy.py``, the prefix a crash leaves); another instance retries
    once the lease is over. The reminder written by the first is written again with its ids, which the store
    ignores, and what the cut left undone is made: Zoé reminded once, the reminder listed to be sent once."""
    _, flows, conversation_id = await zoe_at_the_first_question(store, clock)
    clock.advance(minutes=11)
    async with cutting_proxy(redis_url) as cutting:
        through = await open_store(cutting.url, keys=store_keys(redis_url))
        try:
            dying = Timers(Dispatcher(through, flows, clock=clock), through, flows, Metrics(), clock=clock)
            cutting.cut_before(script_text(cut), conversation_id.encode())
            with pytest.raises(StoreError):
                await dying.fire_due()
        finally:
            await through.close()
    assert cutting.cut == 1
    other = Timers(Dispatcher(store, flows, clock=clock), store, flows, Metrics(), clock=clock)
    await retries_until_quiet(other, clock)
    assert await reminded(store, conversation_id, clock()) == 1
    assert not await armed(store, clock, conversation_id, TimerKind.BOT_REMINDER)
    assert await armed(store, clock, conversation_id, TimerKind.BOT_ABANDON)


async def test_a_timer_whose_retries_lose_their_answers_too_is_told_once(
    store: Store, proxy: LosingProxy, clock: Clock
) -> None:
    """The batch's answer lost, then its retry's (an outage cutting every connection a few times): the instance
    keeps the firing's key through its retries (its timer left at each retry's lease end), so the third try still
    writes the same reminder. Only the transcript's look-up (the first firing's lease end) would miss the second
    retry: its timer is due at the first retry's lease end."""
    dispatcher, flows, conversation_id = await zoe_at_the_first_question(store, clock)
    timers = Timers(dispatcher, store, flows, Metrics(), clock=clock)
    clock.advance(minutes=11)
    for tries in (1, 2):
        proxy.lose(script_text("put_conversation"), run=True)
        with pytest.raises(StoreError):
            while proxy.lost < tries:  # the retry's pass (a lock held a moment by a lost release: the next one)
                clock.advance(seconds=BASE_DELAY * 4)
                await timers.fire_due()
        assert proxy.lost == tries
    await retries_until_quiet(timers, clock)
    assert await reminded(store, conversation_id, clock()) == 1
    assert not await armed(store, clock, conversation_id, TimerKind.BOT_REMINDER)
