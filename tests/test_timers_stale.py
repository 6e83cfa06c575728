"""A timer firing for a conversation no longer in the state it was armed for does nothing harmful: it never ends a
conversation whose young person has written since it was armed.

The bot's abandon is armed by its reminder (``bot_abandon_minutes`` after it) and nothing cancels it while the young
person answers the bot (each answer moves the reminder on, not the abandon); an idle close may be left armed on a
record still with the bot (a hand-off whose record the lock's fence refused, ``LockLost``: its timers, slot
``{timers}``, landed beside it; an idle close armed on another app's thread, the bot then answering on the gateway's
own). Until 2026-12-07 each checked the record's status only, and ended a conversation whose young person had just
written: abandoned ("plus de nouvelles") or closed for a day's silence between two of their answers."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any, cast

import pytest
import redis

from gateway.app import STORE, TIMERS
from gateway.conversation import Conversation, Priority, Status
from gateway.dispatcher import Dispatcher
from gateway.errors import LockLost
from gateway.flowset import FlowSet
from gateway.messages import ChannelName, Inbound
from gateway.metrics import Metrics
from gateway.settings import Settings
from gateway.store import Author, DoneMark, Store, TimerKind, open_store
from gateway.testing import store_keys
from gateway.timers import BASE_DELAY, Timers
from tests.conftest import ROOT, Clock
from tests.store.conftest import emptied, redis_url
from tests.store.fencing_setup import lose_the_lock
from tests.test_timers import Client, bot_lines, conversation_of, settled, start
from tests.test_webchat import hello, say

__all__ = ["redis_url"]  # the fixture used below


async def answer(client: Client, token: str, key: str, text: str) -> None:
    async with client.ws_connect("/chat/ws") as ws:
        await hello(ws, token)
        await say(ws, key, text)


async def test_a_young_person_answering_the_bot_after_its_reminder_is_never_abandoned(
    client: Client, clock: Clock
) -> None:
    token = await start(client, ["2"])  # waiting at the next question
    conversation = await conversation_of(client, token, clock)
    clock.advance(minutes=11)
    await client.app[TIMERS].fire_due()  # the reminder: the abandon armed 30 minutes on
    await settled(client, conversation.id)
    reminded = await bot_lines(client, conversation.id)
    assert any("toujours là" in line for line in reminded)
    clock.advance(minutes=25)
    await answer(client, token, "back", "1")  # they answer, 25 minutes after the reminder
    clock.advance(minutes=6)  # the abandon due, 6 minutes after their answer
    await client.app[TIMERS].fire_due()
    await settled(client, conversation.id)
    record = await conversation_of(client, token, clock)
    assert record.status is Status.BOT, "abandoned 6 minutes after the young person answered the bot"
    assert not any("plus de nouvelles" in line for line in await bot_lines(client, conversation.id))
    clock.advance(minutes=11)  # now quiet: reminded, then abandoned as ever
    await client.app[TIMERS].fire_due()
    await settled(client, conversation.id)
    assert sum("toujours là" in line for line in await bot_lines(client, conversation.id)) == 2
    clock.advance(minutes=31)
    await client.app[TIMERS].fire_due()
    await settled(client, conversation.id)
    assert (await conversation_of(client, token, clock)).status is Status.ABANDONED


async def test_an_idle_close_left_on_a_conversation_whose_young_person_just_wrote_closes_nothing(
    client: Client, clock: Clock
) -> None:
    token = await start(client, ["2"])
    conversation = await conversation_of(client, token, clock)
    store = client.app[STORE]
    # as a refused hand-off leaves it: an idle close armed beside a record still with the bot
    await store.set_timer(conversation.id, TimerKind.IDLE_CLOSE, clock() + timedelta(minutes=5))
    clock.advance(minutes=4)
    await answer(client, token, "now", "1")
    clock.advance(minutes=2)  # the idle close due, 2 minutes after their answer
    await client.app[TIMERS].fire_due()
    await settled(client, conversation.id)
    record = await conversation_of(client, token, clock)
    assert record.status is Status.BOT, "closed for a day's silence 2 minutes after the young person wrote"
    assert not any("faute de nouvelles" in line for line in await bot_lines(client, conversation.id))


class FailingOver:
    """The store, whose conversation's lock key is lost (a failover) as a timer's firing saves its record: the
    firing's batch, its timers' writes (slot ``{timers}``) before the record, is sent after that."""

    def __init__(self, store: Store, client: redis.Redis) -> None:
        self.store, self.client = store, client

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)

    async def save_conversation(self, conversation: Conversation, *, done: DoneMark | None = None) -> None:
        lose_the_lock(self.client, conversation.id)
        await self.store.save_conversation(conversation, done=done)


@pytest.mark.redis
async def test_an_abandon_refused_by_the_fence_is_retried_not_dropped(redis_url: str, clock: Clock) -> None:
    """The abandon's batch cancels every timer of the conversation (``StatusEffects.finished``) before its record;
    the record refused (``LockLost``), that cancellation landed all the same and took the abandon's own retry: until
    2026-12-07 the conversation stayed with the bot, active, with no timer, never told goodbye nor abandoned."""
    store = await open_store(emptied(redis_url), keys=store_keys(redis_url))
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        flows = FlowSet(ROOT / "flows.yaml")
        flows.reload()
        dispatcher = Dispatcher(store, flows, clock=clock)
        assert await dispatcher.handle_inbound(Inbound(ChannelName.MESSENGER, "zoe", "zoe-0", "Bonjour"))
        found = await store.find_active_conversation(ChannelName.MESSENGER, "zoe")
        assert found is not None
        cid = found.id
        clock.advance(minutes=11)
        assert await Timers(dispatcher, store, flows, Metrics(), clock=clock).fire_due() == 1  # the reminder
        clock.advance(minutes=31)
        losing = cast(Store, FailingOver(store, client))
        with pytest.raises(LockLost):
            await Timers(Dispatcher(losing, flows, clock=clock), losing, flows, Metrics(), clock=clock).fire_due()
        record = await store.get_conversation(cid)
        assert record is not None and record.status is Status.BOT  # refused: still with the bot
        armed = {(t.conversation_id, t.kind) for t in await store.due_timers(clock() + timedelta(days=1))}
        assert (cid, TimerKind.BOT_ABANDON) in armed, "the refused abandon's retry was dropped"
        clock.advance(seconds=BASE_DELAY + 1)
        assert await Timers(dispatcher, store, flows, Metrics(), clock=clock).fire_due() == 1  # the retry
        record = await store.get_conversation(cid)
        assert record is not None and record.status is Status.ABANDONED
        said = [e.text for e in await store.transcript(cid) if e.author is Author.BOT]
        assert sum("plus de nouvelles" in text for text in said) == 1
    finally:
        client.close()
        await store.close()


async def test_an_abandon_shorter_than_the_reminder_still_comes_after_the_answers_reminder(
    make_client: Any, settings: Settings, clock: Clock, tmp_path: Path
) -> None:
    """A flow whose abandon (5 minutes) is shorter than its reminder (20): a young person answering after the
    reminder is reminded again before being abandoned, never abandoned 5 minutes after writing."""
    text = (ROOT / "flows.yaml").read_text(encoding="utf-8")
    text = text.replace("bot_reminder_minutes: 10", "bot_reminder_minutes: 20")
    text = text.replace("bot_abandon_minutes: 30", "bot_abandon_minutes: 5")
    flows = tmp_path / "flows.yaml"
    flows.write_text(text, encoding="utf-8")
    client = await make_client(settings.model_copy(update={"flows": str(flows)}))
    token = await start(client, ["2"])
    conversation = await conversation_of(client, token, clock)
    clock.advance(minutes=21)
    await client.app[TIMERS].fire_due()  # the reminder: the abandon armed 5 minutes on
    await settled(client, conversation.id)
    clock.advance(minutes=3)
    await answer(client, token, "back", "1")  # they answer, 3 minutes after the reminder
    for _ in range(3):  # 6 minutes after their answer: the abandon due, then due again, before the reminder
        clock.advance(minutes=3)
        await client.app[TIMERS].fire_due()
        await settled(client, conversation.id)
    assert (await conversation_of(client, token, clock)).status is Status.BOT, "abandoned before a reminder"
    clock.advance(minutes=12)  # 21 minutes after the answer: reminded again
    await client.app[TIMERS].fire_due()
    await settled(client, conversation.id)
    assert sum("toujours là" in line for line in await bot_lines(client, conversation.id)) == 2
    clock.advance(minutes=6)
    await client.app[TIMERS].fire_due()
    await settled(client, conversation.id)
    assert (await conversation_of(client, token, clock)).status is Status.ABANDONED


@pytest.mark.redis
async def test_a_queue_reassurance_refused_by_the_fence_keeps_its_retry(redis_url: str, clock: Clock) -> None:
    """The reassurance's batch arms its next time (``queue_reassurance_minutes`` on, slot ``{timers}``) before its
    record; the record refused (``LockLost``), that arming landed all the same over the firing's own retry (10 s):
    the retry is armed again under the lock taken again (``Timers._armed_again``), so the waiting young person is
    told once, 10 s later, not skipped until the next regular time."""
    store = await open_store(emptied(redis_url), keys=store_keys(redis_url))
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        flows = FlowSet(ROOT / "flows.yaml")
        flows.reload()
        dispatcher = Dispatcher(store, flows, clock=clock)
        conversation, _ = await store.active_conversation(ChannelName.MESSENGER, "zoe", clock())
        cid = conversation.id
        async with store.locked_batch(cid):  # handed off: the queue's message, the reassurance armed
            found = await store.get_conversation(cid)
            assert found is not None
            await dispatcher.enqueue(found, flows.engine(), "listeners", Priority.NORMAL, clock())
            await store.save_conversation(found)
        told = len([e for e in await store.transcript(cid) if e.author is Author.BOT])
        clock.advance(minutes=6)
        losing = cast(Store, FailingOver(store, client))
        with pytest.raises(LockLost):
            await Timers(Dispatcher(losing, flows, clock=clock), losing, flows, Metrics(), clock=clock).fire_due()
        armed = {
            t.kind: t.due_at for t in await store.due_timers(clock() + timedelta(days=2)) if t.conversation_id == cid
        }
        assert armed[TimerKind.QUEUE_REASSURE] <= clock() + timedelta(seconds=BASE_DELAY), (
            "the refused reassurance's retry was replaced by its next regular time"
        )
        clock.advance(seconds=BASE_DELAY + 1)
        assert await Timers(dispatcher, store, flows, Metrics(), clock=clock).fire_due() == 1  # the retry
        said = [e for e in await store.transcript(cid) if e.author is Author.BOT]
        assert len(said) == told + 1  # told once
    finally:
        client.close()
        await store.close()
