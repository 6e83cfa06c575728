"""A partner's referral's queue step reaching Redis late, after its lock lapsed, never replaces the next holder's
entry.

As a transfer's queue step (``tests/console/test_transfer_late_enqueue.py``): a partner's referral queues its web chat
conversation (``InboundReferrals._queue`` → ``Dispatcher.enqueue`` → ``store.enqueue``, slot ``{queue}``, which cannot
read the conversation's lock), sent before the fenced writes. Instance A stalls with that step on its way (a GC pause,
a frozen VM) past its locks' leases; the partner, answered nothing, sends the referral again under the same
``Idempotency-Key`` (the same code: the same conversation) and instance B queues it, Bob takes the young person; then
A's step lands. Until 2026-12-08 it replaced whoever held the entry (``ANYONE``): Bob's entry waited in the queue beside
a record naming Bob; A's record refused (``LockLost``), a referral's step is not undone (only a console's action is),
and the next alert check (``Actions.complete_hand_back``) handed Bob's young person back to the queue in the middle of
his conversation. Now the referral expects no holder (``holder=None``: its conversation is with the bot, no entry or a
waiting one): Bob's is refused (Conflict), nothing changed.

Both instances' ``_queue`` with the code the same ``Idempotency-Key`` gives (``receive`` holds one more lock around
it, lapsed the same way). The stall is at the wire (``tests/cutting_proxy.py``: A's store talks to Redis through it;
its queue step waits there while the lock's key is deleted and B acts), the real store and gateway otherwise. Redis
standalone: the proxy fronts one server. SQLite cannot have it: its locks have no lease and the step is in its
transaction."""

from __future__ import annotations

import pytest

from gateway.console.actions import Actions
from gateway.errors import Conflict, LockLost, StoreError
from gateway.keyed import KeyedHash
from gateway.messages import ChannelName
from gateway.notices.inbound import InboundReferrals
from gateway.store import Store, open_store
from gateway.testing import store_keys
from tests.conftest import Clock
from tests.console.test_handback_crash import instance, redis_store
from tests.console.test_transfer_late_enqueue import bob_keeps_it, lapse
from tests.cutting_proxy import cutting_proxy
from tests.losing_proxy import script_text
from tests.store.conftest import redis_url

__all__ = ["redis_store", "redis_url"]  # fixtures used below

pytestmark = pytest.mark.redis

PARTNER, SUMMARY = "116006", "Jeune de 15 ans, d'accord."


async def test_a_stalled_referrals_late_queue_step_leaves_the_next_holder_holding(
    redis_store: Store, redis_url: str, clock: Clock
) -> None:
    store, url, keyed = redis_store, redis_url, KeyedHash("k" * 32)
    code = keyed("partner-referral-code", f"{PARTNER}\nreferral-0001")  # as ``receive`` derives it from the key

    def referrals(on: Store) -> tuple[InboundReferrals, Actions]:
        dispatcher, actions = instance(on, clock)
        keys = {PARTNER: "p" * 30}
        return InboundReferrals(dispatcher, on, dispatcher.flows, keys, "https://chat.example", clock=clock,
                                keyed=keyed), actions  # fmt: skip

    b, b_actions = referrals(store)
    session = keyed("partner-referral-session", code)

    async def meanwhile() -> None:  # A frozen with its queue step on its way
        conversation, _ = await store.active_conversation(ChannelName.WEBCHAT, session, clock())
        lapse(url, conversation.id)  # past its lease: the lock lapsed
        assert await b._queue(PARTNER, SUMMARY, "fr", code)  # the partner's retry, on B
        await b_actions.take(conversation.id, "bob", 3)

    async with cutting_proxy(url) as proxy:
        a_store = await open_store(proxy.url, keys=store_keys(url))
        try:
            a, _ = referrals(a_store)
            proxy.hold_before(script_text("enqueue"), meanwhile=meanwhile)
            with pytest.raises((Conflict, LockLost, StoreError)):  # its step made (before), or refused (now)
                await a._queue(PARTNER, SUMMARY, "fr", code)
        finally:
            await a_store.close()
    assert (proxy.held, proxy.failures) == (1, [])
    conversation, _ = await store.active_conversation(ChannelName.WEBCHAT, session, clock())
    await bob_keeps_it(store, clock, conversation.id, b.flows.engine().flow.fallback.queue)
