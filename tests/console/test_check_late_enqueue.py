"""The alert check's completion of a transfer cut short, its queue step reaching Redis late, after its lock lapsed,
never replaces the next holder's entry.

As a transfer's own queue step (``tests/console/test_transfer_late_enqueue.py``): a transfer cut after its queue step
is completed by the alert check (``Actions.complete_move`` for a waiting conversation's, ``Actions.complete_hand_back``
for a held one's whose message was written), which makes the transfer's writes again under the conversation's lock:
the queue step first (``Dispatcher.enqueue`` → ``store.enqueue``, slot ``{queue}``, which cannot read the lock), sent
before the fenced writes. The check on instance A reads the entry waiting, then stalls with that step on its way (a GC
pause, a frozen VM), past its lock's lease; the check on instance B completes the same transfer and Bob takes the
conversation; then A's step lands. Until 2026-12-08 it replaced whoever held the entry (``ANYONE``): Bob's entry waited
in the queue beside a record naming Bob. A's record was refused (``LockLost``) but a check's step is not undone (only a
console's action is, ``_Fence.undo``), so the next alert check (``Actions.complete_hand_back``) handed Bob's young
person back to the queue in the middle of his conversation. Now the step expects the entry it read under the lock,
waiting (``holder=None``): Bob's is refused (Conflict), nothing changed.

The stall is at the wire (``tests/cutting_proxy.py``: A's store talks to Redis through it; its queue step waits there
while the lock's key is deleted, its lease lapsed, and B acts), the real store and gateway otherwise. Redis standalone:
the proxy fronts one server. SQLite cannot have it: its locks have no lease and the step is in the batch's one
transaction."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from gateway.console.actions import Actions
from gateway.errors import Conflict, LockLost, StoreError
from gateway.store import Store, open_store
from gateway.testing import store_keys
from tests.conftest import Clock
from tests.console.test_handback_crash import cut_while, held_by_anne, instance, redis_store
from tests.console.test_transfer_crash import on, one_waiting
from tests.console.test_transfer_late_enqueue import bob_keeps_it, lapse
from tests.cutting_proxy import cutting_proxy
from tests.losing_proxy import script_text
from tests.store.conftest import redis_url

__all__ = ["redis_store", "redis_url"]  # fixtures used below

pytestmark = pytest.mark.redis


async def late_check(
    url: str,
    conversation_id: str,
    a: Callable[[Store], Actions],
    b: Actions,
    complete: Callable[[Actions], Awaitable[object]],
) -> None:
    """The check on A (``a``: its actions on a store through the proxy) completes with ``complete``, its queue step
    held at the wire while its lock lapses, B's check completes the same transfer and Bob takes it on B; then A's step
    goes on: made (before: Bob's entry replaced, A's record refused) or refused (now)."""

    async def meanwhile() -> None:  # A frozen with its queue step on its way
        lapse(url, conversation_id)  # past its lease: the lock lapsed
        assert await complete(b)  # the next check, on B: the transfer completed
        await b.take(conversation_id, "bob", 3)

    async with cutting_proxy(url) as proxy:
        a_store = await open_store(proxy.url, keys=store_keys(url))
        try:
            proxy.hold_before(script_text("enqueue"), conversation_id.encode(), meanwhile=meanwhile)
            with pytest.raises((Conflict, LockLost, StoreError)):
                await complete(a(a_store))
        finally:
            await a_store.close()
    assert (proxy.held, proxy.failures) == (1, [])


async def test_a_stalled_checks_late_move_completion_leaves_the_next_holder_holding(
    redis_store: Store, redis_url: str, clock: Clock, tmp_path: Path
) -> None:
    store = redis_store
    flows, _, before = await one_waiting(store, clock, tmp_path)
    conversation_id = before.conversation_id
    clock.advance(minutes=1)
    await cut_while(redis_url, clock, conversation_id, "put_conversation",
                    lambda first: first.transfer(conversation_id, "sam", "lawyers", supervisor=True),
                    make=lambda store, clock: on(store, clock, flows))  # fmt: skip
    clock.advance(seconds=10)  # the next check; the lost release was made again by token (or lapses in 6 s)
    _, b = on(store, clock, flows)
    await late_check(redis_url, conversation_id, lambda a_store: on(a_store, clock, flows)[1], b,
                     lambda actions: actions.complete_move(conversation_id, "sam"))  # fmt: skip
    await bob_keeps_it(store, clock, conversation_id, "lawyers")


async def test_a_stalled_checks_late_transfer_completion_leaves_the_next_holder_holding(
    redis_store: Store, redis_url: str, clock: Clock
) -> None:
    store = redis_store
    conversation_id = await held_by_anne(store, clock)
    clock.advance(minutes=1)
    await cut_while(redis_url, clock, conversation_id, "put_conversation",
                    lambda first: first.transfer(conversation_id, "anne", "listeners"))  # fmt: skip
    assert [e.conversation_id for e in await store.waiting()] == [conversation_id]  # the gap: held, and waiting
    clock.advance(seconds=10)  # the next check; the lost release was made again by token (or lapses in 6 s)
    _, b = instance(store, clock)
    await late_check(redis_url, conversation_id, lambda a_store: instance(a_store, clock)[1], b,
                     lambda actions: actions.complete_hand_back(conversation_id, "anne"))  # fmt: skip
    await bob_keeps_it(store, clock, conversation_id, "listeners")
