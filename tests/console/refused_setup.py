"""What the tests of a console action or a check's completion refused by the conversation lock's fence share
(``tests/console/test_handback_refused.py``, ``test_transfer_refused.py``): the store seen through a wrapper that
loses the lock's key as the record is saved (``FailingOver``, a failover to a replica the lock's ``SET`` had not
reached; ``CountBehind``, one that got the lock but not the fenced writes before the record), a plain Redis client
beside it closed after (``seen_through``); an instance's action made through it, which must raise ``LockLost``
(``refused``); and the alert check made through it (``check_refused``). Until 2026-12-07 each test opened and closed
its own client around the same lines."""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, cast

import pytest
import redis

from gateway.console.actions import Actions
from gateway.conversation import Conversation, Status
from gateway.dispatcher import Dispatcher
from gateway.errors import LockLost
from gateway.flowset import FlowSet
from gateway.store import DoneMark, Store
from gateway.store import redis_keys as K
from tests.conftest import Clock
from tests.console.test_audit_refused import FailingOver
from tests.console.test_handback_crash import instance
from tests.console.test_take_crash import next_check

__all__ = ["CountBehind", "FailingOver", "check_refused", "completed_by_the_next_check", "refused", "seen_through"]


class CountBehind:
    """The store, saving on a failover's new primary that got the lock's ``SET`` and its last renewal (the holder's
    token, a lease of 11 s: ``lock_timing`` at a 10 s socket timeout) but not the fenced writes the holder made
    before the record (its count of them behind): the record is refused, the lock still the holder's."""

    def __init__(self, store: Store, client: redis.Redis) -> None:
        self.store, self.client = store, client

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)

    async def save_conversation(self, conversation: Conversation, *, done: DoneMark | None = None) -> None:
        self.client.delete(K.lock_writes(conversation.id))
        self.client.pexpire(K.lock(conversation.id), 11_000)
        await self.store.save_conversation(conversation, done=done)


Wrapper = Callable[[Store, redis.Redis], object]


@contextlib.contextmanager
def seen_through(store: Store, redis_url: str, wrapper: Wrapper = FailingOver) -> Iterator[tuple[Store, redis.Redis]]:
    """``store`` seen through ``wrapper`` (``FailingOver`` unless told), with the plain client it uses, closed after."""
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        yield cast(Store, wrapper(store, client)), client
    finally:
        client.close()


async def refused(
    store: Store,
    redis_url: str,
    clock: Clock,
    act: Callable[[Actions], Awaitable[object]],
    *,
    make: Callable[[Any, Clock], tuple[Dispatcher, Actions]] = instance,
    wrapper: Wrapper = FailingOver,
) -> None:
    """``act`` made by an instance (``make``) on ``store`` seen through ``wrapper``, a minute later: its record refused
    by the lock's fence, it raises ``LockLost``."""
    with seen_through(store, redis_url, wrapper) as (failing, _):
        _, actions = make(failing, clock)
        clock.advance(minutes=1)
        with pytest.raises(LockLost):
            await act(actions)


async def check_refused(store: Store, redis_url: str, clock: Clock, *, flows: FlowSet | None = None) -> None:
    """The alert check on ``store`` seen through ``FailingOver``: each of its completions' records refused."""
    with seen_through(store, redis_url) as (failing, _):
        await next_check(failing, clock, flows=flows)


async def completed_by_the_next_check(store: Store, clock: Clock, conversation_id: str) -> None:
    """The next check (10 s later), not refused: the young person Anne held waits in the queue, nobody holding them."""
    clock.advance(seconds=10)
    await next_check(store, clock)
    conversation = await store.get_conversation(conversation_id)
    assert conversation is not None and (conversation.status, conversation.listener) == (Status.QUEUED, None)
    assert [e.conversation_id for e in await store.waiting()] == [conversation_id]
    assert await store.held_by("anne") == 0
