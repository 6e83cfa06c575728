"""A hand-off's queue step reaching Redis late, after its lock and its message's claim lapsed, never replaces the next
holder's entry.

As a transfer's queue step (``tests/console/test_transfer_late_enqueue.py``): the bot's hand-off puts the young person
in a queue (``Dispatcher.enqueue`` → ``store.enqueue``, slot ``{queue}``, which cannot read the conversation's lock),
sent before the fenced writes. Instance A reads the message that hands off and stalls with that step on its way (a GC
pause, a frozen VM) past its lock's and its claim's leases; the platform's redelivery of the message is processed on
instance B (the same hand-off, the record still in the bot's flow) and Bob takes the young person; then A's step
lands. Until 2026-12-08 it replaced whoever held the entry (``ANYONE``): Bob's entry waited in the queue beside a
record naming Bob; A's record refused (``LockLost``), a message's step is not undone (only a console's action is),
and the next alert check (``Actions.complete_hand_back``) handed Bob's young person back to the queue in the middle of
his conversation. Now a hand-off expects no holder (``holder=None``: a conversation with the bot has no entry, or a
waiting one): Bob's is refused (Conflict), nothing changed.

The stall is at the wire (``tests/cutting_proxy.py``: A's store talks to Redis through it; its queue step waits there
while the lock's and the claim's keys are deleted, their leases lapsed, and B acts), the real store and gateway
otherwise. Redis standalone: the proxy fronts one server. SQLite cannot have it: its locks have no lease and the step
is in the batch's one transaction."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest
import redis

from gateway.conversation import Status
from gateway.dispatcher import Dispatcher
from gateway.errors import Conflict, LockLost, StoreError
from gateway.ids import echo_key, inbound_key
from gateway.messages import ChannelName, Echo, Inbound
from gateway.store import Store, open_store
from gateway.store import redis_keys as K
from gateway.testing import store_keys
from tests.conftest import Clock
from tests.console.test_handback_crash import instance, redis_store
from tests.console.test_transfer_late_enqueue import bob_keeps_it, lapse
from tests.cutting_proxy import cutting_proxy
from tests.losing_proxy import script_text
from tests.store.conftest import redis_url
from tests.test_webchat import WALK_TO_QUEUE

__all__ = ["redis_store", "redis_url"]  # fixtures used below

pytestmark = pytest.mark.redis

SENDER = "psid-handoff"
FIRST, DANGER = WALK_TO_QUEUE[:2]  # on Messenger: the greeting; then "1", in danger now: an urgent hand-off
LAST = Inbound(ChannelName.MESSENGER, SENDER, "mid.1", DANGER)


def unclaim(url: str, key: str) -> None:
    """A frozen instance's claim on a message past its lease: lapsed."""
    client = redis.Redis.from_url(url)
    try:
        assert client.delete(K.seen_claim(key)) == 1
    finally:
        client.close()


async def stalled_hand_off(
    store: Store, url: str, clock: Clock, key: str, hand_off: Callable[[Dispatcher], Awaitable[object]]
) -> None:
    """A young person with the bot (the greeting said); ``hand_off`` (the message of claim ``key``) made on A, its
    queue step held at the wire while its lock and its claim lapse, made again on B (the redelivery) and Bob takes;
    then A's step goes on: made (before: Bob's entry replaced) or refused (now). Then the alert check: Bob keeps it."""
    b_dispatcher, b = instance(store, clock)
    assert await b_dispatcher.handle_inbound(Inbound(ChannelName.MESSENGER, SENDER, "mid.0", FIRST))
    conversation, created = await store.active_conversation(ChannelName.MESSENGER, SENDER, clock())
    assert not created and conversation.status is Status.BOT
    conversation_id = conversation.id

    async def meanwhile() -> None:  # A frozen with its queue step on its way
        lapse(url, conversation_id)  # past its lease: the lock lapsed, and the message's claim
        unclaim(url, key)
        assert await hand_off(b_dispatcher)  # the platform's redelivery, on B: handed off
        await b.take(conversation_id, "bob", 3)

    async with cutting_proxy(url) as proxy:
        a_store = await open_store(proxy.url, keys=store_keys(url))
        try:
            a_dispatcher, _ = instance(a_store, clock)
            proxy.hold_before(script_text("enqueue"), conversation_id.encode(), meanwhile=meanwhile)
            with pytest.raises((Conflict, LockLost, StoreError)):  # its step made (before), or refused (now)
                await hand_off(a_dispatcher)
        finally:
            await a_store.close()
    assert (proxy.held, proxy.failures) == (1, [])
    entry = await store.queue_entry(conversation_id)
    assert entry is not None
    await bob_keeps_it(store, clock, conversation_id, entry.queue)


async def test_a_stalled_hand_offs_late_queue_step_leaves_the_next_holder_holding(
    redis_store: Store, redis_url: str, clock: Clock
) -> None:
    await stalled_hand_off(redis_store, redis_url, clock, inbound_key(LAST), lambda d: d.handle_inbound(LAST))


async def test_a_stalled_hand_over_by_the_pages_human_leaves_the_next_holder_holding(
    redis_store: Store, redis_url: str, clock: Clock
) -> None:
    """The page's human answers in Meta's inbox (an echo of a human's app): the bot's part ends, the young person
    handed to the listeners (``Dispatcher._handed_over``), its queue step as the bot's hand-off's."""
    echo = Echo(ChannelName.MESSENGER, SENDER, "m_echo.1", "Bonjour, ici l'équipe.", human=True)
    await stalled_hand_off(redis_store, redis_url, clock, echo_key(echo), lambda d: d.handle_echo(echo))
