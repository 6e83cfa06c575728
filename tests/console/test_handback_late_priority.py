"""A hand-back's priority step (a risk read while held: the entry re-enqueued first in line) reaching Redis late,
after its lock lapsed, never replaces the next holder's entry.

As the hand-back's own queue step (``tests/console/test_handback_late_requeue.py``): on Redis ``Actions._requeue``
makes ``store.requeue`` at once, then, when words of danger read while the conversation was held raised its record's
priority above its entry's (``Dispatcher._raise_held``), ``store.enqueue`` at that priority, held in the batch and sent
in its pipeline before the fenced writes (slot ``{queue}``, which cannot read the lock). Anne's instance A stalls
with that pipeline on its way (a GC pause, a frozen VM), past its lock's lease; Anne's retry (the same console key) on
instance B hands back, Bob takes the conversation; then A's pipeline goes on: its queue step lands and A dies before
its record (the connection cut there: no refusal read, no undo). Until 2026-12-08 that step named no holder
(``ANYONE``): it replaced Bob's entry by a waiting one beside a record naming Bob, and the next alert check
(``Actions.complete_hand_back``) handed Bob's young person back to the queue in the middle of their conversation. Now
it names the holder it hands back from, as ``requeue`` does: Bob's entry is refused (Conflict), nothing changed.

The stall and the death are at the wire (``tests/cutting_proxy.py``: A's store talks to Redis through it; its
enqueue waits there while B acts, then the connection is reset before A's record), the real store and gateway
otherwise. Redis standalone only: the proxy fronts one server, not a Cluster's nodes. SQLite cannot have it: its
locks have no lease and the step is in the batch's one transaction."""

from __future__ import annotations

import pytest

from gateway.conversation import Priority, Status
from gateway.errors import Conflict, LockLost, StoreError
from gateway.store import Store, open_store
from gateway.testing import store_keys
from tests.conftest import Clock
from tests.console.test_handback_crash import held_by_anne, instance, redis_store
from tests.console.test_transfer_late_enqueue import bob_keeps_it, lapse
from tests.cutting_proxy import cutting_proxy
from tests.losing_proxy import script_text
from tests.store.conftest import redis_url

__all__ = ["redis_store", "redis_url"]  # fixtures used below

pytestmark = pytest.mark.redis

KEY = "hb-9a41"  # the console's id of Anne's hand-back, the same when her browser sends it again


async def test_a_stalled_hand_backs_late_priority_step_leaves_the_next_holder_holding(
    redis_store: Store, redis_url: str, clock: Clock
) -> None:
    store, url = redis_store, redis_url
    conversation_id = await held_by_anne(store, clock)
    # a risk read while held raised the record above its entry (``_raise_held``): the record urgent, the entry normal
    held = await store.queue_entry(conversation_id)
    record = await store.get_conversation(conversation_id)
    assert held is not None and record is not None and record.priority is Priority.URGENT
    await store.enqueue(conversation_id, held.queue, Priority.NORMAL, held.at, holder="anne")
    await store.take(conversation_id, "anne", clock())
    _, b = instance(store, clock)

    async def meanwhile() -> None:  # A frozen with its pipeline on its way
        lapse(url, conversation_id)  # past its lease: the lock lapsed
        await b.hand_back(conversation_id, "anne", key=KEY)  # Anne's retry, on B: the claim taken over
        await b.take(conversation_id, "bob", 3)

    async with cutting_proxy(url) as proxy:
        a_store = await open_store(proxy.url, keys=store_keys(url))
        try:
            _, a = instance(a_store, clock)
            proxy.hold_before(script_text("enqueue"), conversation_id.encode(), meanwhile=meanwhile)
            proxy.cut_before(script_text("put_conversation"), conversation_id.encode())  # A dies before its record
            with pytest.raises((StoreError, Conflict, LockLost)):
                await a.hand_back(conversation_id, "anne", key=KEY)
        finally:
            await a_store.close()
    assert (proxy.held, proxy.cut, proxy.failures) == (1, 1, [])
    entry = await store.queue_entry(conversation_id)
    assert entry is not None and entry.priority is Priority.URGENT
    await bob_keeps_it(store, clock, conversation_id, held.queue)
    conversation = await store.get_conversation(conversation_id)
    assert conversation is not None and conversation.status is Status.WITH_LISTENER
