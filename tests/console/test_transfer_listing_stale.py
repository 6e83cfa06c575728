"""A held transfer cut before its queue step stays listed as begun until the next check; a hand-back of the same
conversation cut short within those seconds is audited as the hand-back it is, not as that transfer.

The list of transfers begun (``hg:{queue}:moving``, id → mover) says a transfer began, not where its entry went:
one cut before its queue step moved nothing and is unlisted only by the next check (``Actions.complete_move``).
A hand-back cut after its own queue step meanwhile leaves the state a transfer cut there leaves (a held record,
its entry waiting), which the check completes (``Actions.complete_hand_back``) naming the listed mover. Before,
that audited a transfer nobody made ("from anne to listeners by anne, a transfer cut short"). Now the mover counts
only for an entry that moved: a hand-back's entry is where the record says it waited, at its arrival; a transfer's
is at the transfer's own time.

Real cuts on a real Redis (``tests/cutting_proxy.py``), the real check.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.conversation import Status
from gateway.store import Store
from tests.conftest import Clock
from tests.console.test_handback_crash import cut_while, redis_store
from tests.console.test_take_crash import next_check
from tests.console.test_transfer_crash import on, one_waiting
from tests.store.conftest import redis_url

__all__ = ["redis_store", "redis_url"]  # fixtures used below


@pytest.mark.redis
async def test_a_hand_back_cut_after_a_held_transfer_cut_before_its_queue_step_is_audited_as_a_hand_back(
    redis_store: Store, redis_url: str, clock: Clock, tmp_path: Path
) -> None:
    """Anne's transfer to ``lawyers`` is cut before its queue step (listed, nothing moved); seconds later her
    hand-back is cut after its queue step, before the record. The next check gives the young person back to the
    queue they waited in, at their place, and audits a hand-back by Anne: no ``transfer_completed`` line, no
    transfer named. Before: audited ``transfer_completed`` "from anne to listeners by anne"."""
    flows, actions, before = await one_waiting(redis_store, clock, tmp_path)
    conversation_id = before.conversation_id
    await actions.take(conversation_id, "anne", 3)
    clock.advance(minutes=1)
    await cut_while(redis_url, clock, conversation_id, "enqueue",
                    lambda first: first.transfer(conversation_id, "anne", "lawyers"),
                    make=lambda store, clock: on(store, clock, flows))  # fmt: skip
    assert await redis_store.moves_begun() == {conversation_id: "anne"}  # listed until the next check
    clock.advance(seconds=4)
    await cut_while(redis_url, clock, conversation_id, "put_conversation",
                    lambda first: first.hand_back(conversation_id, "anne"),
                    make=lambda store, clock: on(store, clock, flows))  # fmt: skip
    held = await redis_store.get_conversation(conversation_id)
    assert held is not None and held.status == Status.WITH_LISTENER  # the gap: held, its entry waiting
    assert [e.conversation_id for e in await redis_store.waiting()] == [conversation_id]

    clock.advance(seconds=6)  # the next check
    await next_check(redis_store, clock, flows=flows)
    await next_check(redis_store, clock, flows=flows)
    conversation = await redis_store.get_conversation(conversation_id)
    assert conversation is not None
    assert (conversation.status, conversation.listener, conversation.queue) == (Status.QUEUED, None, "listeners")
    assert await redis_store.waiting() == [before]  # their place, in the queue they waited in
    lines = [(e.action, e.detail) for e in await redis_store.audit_log() if e.subject == conversation_id]
    assert [a for a, _ in lines if a in ("hand_back", "transfer_completed")] == ["hand_back"], lines
    assert not [d for _, d in lines if "lawyers" in d or " by anne" in d], lines
    assert await redis_store.moves_begun() == {}
