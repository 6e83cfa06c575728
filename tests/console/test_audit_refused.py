"""A supervisor's action refused by the conversation lock's fence leaves no audit line of its own (Redis).

A supervisor's transfer, hand-back or close of a conversation another listener holds is audited in the action's batch.
Its record's save is fenced by the lock (``gateway/store/redis.py``, ``_Fence``): the lock's key lost before the
commit reaches Redis (a failover to a replica the lock's ``SET`` had not reached), the record is refused, the action
raises ``LockLost`` and nothing of it is made (what the check completes later, it audits itself). The audit list is
another slot (``{audit}``), which cannot read the lock: until 2026-12-07 the line was held before the record, in the
same pipeline, and landed beside the refused record: the log said Sam transferred (handed back, closed) a conversation
he had not, Anne still holding it. Now the line follows the record, sent once the record was answered written
(the save's second pipeline, ``HeldWrite.cut``)."""

from __future__ import annotations

from typing import Any, cast

import pytest
import redis

from gateway.conversation import Conversation, Status
from gateway.errors import LockLost
from gateway.store import DoneMark, Store
from tests.conftest import Clock
from tests.console.test_handback_crash import held_by_anne, instance, redis_store
from tests.store.conftest import redis_url
from tests.store.fencing_setup import lose_the_lock

__all__ = ["redis_store", "redis_url"]  # fixtures used below

pytestmark = pytest.mark.redis


class FailingOver:
    """The store, whose conversation's lock key is lost (a failover) as the action's record is saved: its batch,
    the audit line in it, is sent after that."""

    def __init__(self, store: Store, client: redis.Redis) -> None:
        self.store, self.client = store, client

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)

    async def save_conversation(self, conversation: Conversation, *, done: DoneMark | None = None) -> None:
        lose_the_lock(self.client, conversation.id)
        await self.store.save_conversation(conversation, done=done)


@pytest.mark.parametrize("action", ["transfer", "hand_back", "close"])
async def test_a_supervisors_action_refused_by_the_fence_writes_no_audit_line(
    redis_store: Store,
    redis_url: str,
    clock: Clock,
    action: str,
) -> None:
    conversation_id = await held_by_anne(redis_store, clock)
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        _, actions = instance(cast(Store, FailingOver(redis_store, client)), clock)
        clock.advance(minutes=1)
        with pytest.raises(LockLost):
            if action == "transfer":
                await actions.transfer(conversation_id, "sam", "listeners", supervisor=True)
            elif action == "hand_back":
                await actions.hand_back(conversation_id, "sam", supervisor=True)
            else:
                await actions.close(conversation_id, "sam", "cyberbullying", supervisor=True)
    finally:
        client.close()
    held = await redis_store.get_conversation(conversation_id)
    assert held is not None and (held.status, held.listener) == (Status.WITH_LISTENER, "anne")  # refused: Anne's
    lines = [(e.actor, e.action) for e in await redis_store.audit_log() if e.subject == conversation_id]
    assert ("sam", action) not in lines, f"an audit line for a {action} the store refused: {lines}"
