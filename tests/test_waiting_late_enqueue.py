"""A priority raised by words read while waiting, its queue step reaching Redis late, after its lock lapsed, never
replaces the next holder's entry.

As a transfer's queue step (``tests/console/test_transfer_late_enqueue.py``): a young person's words of danger read
while they wait raise their priority (``Dispatcher.raise_priority``), their entry re-ranked by ``store.enqueue``, slot
``{queue}``, which cannot read the conversation's lock, sent before the fenced writes. Instance A reads the message
and stalls with that step on its way (a GC pause, a frozen VM), past its lock's lease; Bob takes the young person on
instance B; then A's step lands. Until 2026-12-08 it replaced whoever held the entry (``ANYONE``): Bob's entry waited
in the queue, urgent, beside a record naming Bob; A's record refused (``LockLost``), a message's step is not undone
(only a console's action is, ``_Fence.undo``), and the next alert check (``Actions.complete_hand_back``) handed Bob's
young person back to the queue in the middle of his conversation. Now the step expects the entry waiting
(``holder=None``: the record, read under the lock, says queued): Bob's is refused (Conflict), nothing changed; the
message, released, is processed again (the provider's retry) as one written to Bob (``Dispatcher._raise_held``).

The stall is at the wire (``tests/cutting_proxy.py``: A's store talks to Redis through it; its queue step waits there
while the lock's key is deleted, its lease lapsed, and Bob takes on B), the real store and gateway otherwise. Redis
standalone: the proxy fronts one server. SQLite cannot have it: its locks have no lease and the step is in the
batch's one transaction."""

from __future__ import annotations

import pytest

from gateway.conversation import Priority, Status
from gateway.errors import Conflict, LockLost, StoreError
from gateway.messages import ChannelName, Inbound
from gateway.store import Store, open_store
from gateway.testing import store_keys
from tests.conftest import Clock
from tests.console.test_handback_crash import instance, redis_store
from tests.console.test_take_crash import waiting_young_person
from tests.console.test_transfer_late_enqueue import bob_keeps_it, lapse
from tests.cutting_proxy import cutting_proxy
from tests.losing_proxy import script_text
from tests.store.conftest import redis_url

__all__ = ["redis_store", "redis_url"]  # fixtures used below

pytestmark = pytest.mark.redis

DANGER = Inbound(ChannelName.MESSENGER, "psid-take", "mid.danger", "je veux mourir")  # suicide: urgent


async def stalled_danger(store: Store, url: str, clock: Clock, conversation_id: str, queue: str) -> None:
    """ "je veux mourir" read on A while the young person waits, its queue step held at the wire while its lock lapses
    and Bob takes on B; then A's step goes on: made (before: Bob's entry replaced) or refused (now). Then the alert
    check, the message's retry on B (read as written to Bob) and the check again: Bob keeps the young person."""
    b_dispatcher, b = instance(store, clock)

    async def meanwhile() -> None:  # A frozen with its queue step on its way
        lapse(url, conversation_id)  # past its lease: the lock lapsed
        await b.take(conversation_id, "bob", 3)

    async with cutting_proxy(url) as proxy:
        a_store = await open_store(proxy.url, keys=store_keys(url))
        try:
            a_dispatcher, _ = instance(a_store, clock)
            proxy.hold_before(script_text("enqueue"), conversation_id.encode(), meanwhile=meanwhile)
            with pytest.raises((Conflict, LockLost, StoreError)):  # its step made (before), or refused (now)
                await a_dispatcher.handle_inbound(DANGER)
        finally:
            await a_store.close()
    assert (proxy.held, proxy.failures) == (1, [])
    await bob_keeps_it(store, clock, conversation_id, queue)
    assert await b_dispatcher.handle_inbound(DANGER)  # released: the provider's retry, read as written to Bob
    held = await store.get_conversation(conversation_id)
    assert held is not None and (held.status, held.listener) == (Status.WITH_LISTENER, "bob")
    assert held.priority is Priority.URGENT and held.flag is not None  # raised on the record, his entry still his
    await bob_keeps_it(store, clock, conversation_id, queue)


async def test_a_stalled_raise_of_priority_while_waiting_leaves_the_next_holder_holding(
    redis_store: Store, redis_url: str, clock: Clock
) -> None:
    store = redis_store
    conversation_id = await waiting_young_person(store, clock)
    waiting = await store.get_conversation(conversation_id)
    [entry] = await store.waiting()
    assert waiting is not None and waiting.queue is not None
    waiting.priority = Priority.NORMAL  # a calm hand-off: the words read while waiting raise it
    await store.save_conversation(waiting)
    await store.enqueue(conversation_id, entry.queue, Priority.NORMAL, entry.at, holder=None)
    await stalled_danger(store, redis_url, clock, conversation_id, entry.queue)


async def test_a_stalled_stronger_flag_while_waiting_leaves_the_next_holder_holding(
    redis_store: Store, redis_url: str, clock: Clock
) -> None:
    """Urgent already (in danger now, said at the walk's first question), no risk flag yet: the words read while
    waiting raise no priority but a stronger flag, written on the entry at the same priority and arrival."""
    store = redis_store
    conversation_id = await waiting_young_person(store, clock)
    waiting = await store.get_conversation(conversation_id)
    [entry] = await store.waiting()
    assert waiting is not None and waiting.priority is Priority.URGENT and waiting.flag is None
    await stalled_danger(store, redis_url, clock, conversation_id, entry.queue)
