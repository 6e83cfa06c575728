"""A message's commit refused by the conversation lock's fence (``LockLost``: the lock's key lost, a failover) may
have landed its timers' writes (slot ``{timers}``, which cannot read the lock, sent before the record): a bot turn
that ends the bot's questions cancels every timer of the conversation first (``Dispatcher._after_bot``), a hand-off
then arms the queue's. The record refused, the conversation is still with the bot; the message is processed again
when its channel sends it again (a provider's redelivery, a web chat page's resend), and that turn arms the bot's
reminder again. One never sent again (a web chat page closed meanwhile) left, until 2026-12-07, the conversation with
the bot with no reminder nor abandon: after a refused ending with no timer at all, never closed, never purged; after
a refused hand-off, closed by the idle close a day later. Now the reminder is armed again under the lock taken
again when the record is unchanged since the refused turn read it (``Dispatcher._reminded_again``)."""

from __future__ import annotations

from datetime import timedelta
from typing import cast

import pytest
import redis

from gateway.conversation import Status
from gateway.dispatcher import Dispatcher
from gateway.errors import LockLost
from gateway.flowset import FlowSet
from gateway.messages import ChannelName, Inbound
from gateway.metrics import Metrics
from gateway.store import Store, TimerKind, open_store
from gateway.testing import store_keys
from gateway.timers import Timers
from tests.conftest import ROOT, Clock
from tests.store.conftest import emptied, redis_url
from tests.test_timers_stale import FailingOver

__all__ = ["redis_url"]  # the fixture used below

pytestmark = pytest.mark.redis


@pytest.mark.parametrize("words", ["stop", "je veux me tuer"], ids=["ending", "hand-off"])
async def test_a_bot_turn_refused_by_the_fence_leaves_the_bots_reminder_armed(
    redis_url: str,
    clock: Clock,
    words: str,
) -> None:
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
        clock.advance(minutes=2)
        losing = cast(Store, FailingOver(store, client))
        with pytest.raises(LockLost):
            await Dispatcher(losing, flows, clock=clock).handle_inbound(
                Inbound(ChannelName.MESSENGER, "zoe", "zoe-1", words)
            )
        record = await store.get_conversation(cid)
        assert record is not None and record.status is Status.BOT  # refused: still with the bot
        armed = {t.kind for t in await store.due_timers(clock() + timedelta(days=2)) if t.conversation_id == cid}
        assert TimerKind.BOT_REMINDER in armed, f"a refused bot turn left the bot's conversation with {armed or 'none'}"
        timers = Timers(dispatcher, store, flows, Metrics(), clock=clock)
        clock.advance(minutes=11)  # never sent again: reminded, then abandoned, as any quiet young person
        await timers.fire_due()
        clock.advance(minutes=31)
        await timers.fire_due()
        record = await store.get_conversation(cid)
        assert record is not None and record.status is Status.ABANDONED
    finally:
        client.close()
        await store.close()
