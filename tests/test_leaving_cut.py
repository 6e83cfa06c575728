"""A young person's leaving cut short on Redis after its queue step is completed as that leaving, never put back in
line (issue 8: nothing sent after a quick exit; nothing stuck).

A waiting young person's quick exit (the beacon of a page hidden because someone may be looking at the screen) and
"Terminer" write one step at a time under the conversation's lock: the note for the listeners ("left …"), the queue
step (the waiting entry leaves, alone: another slot than the record), then the record, abandoned. An instance dying
between the queue step and the record left a record that says queued with no entry waiting, which the next alert
check took for a take cut short and put back in line (``Actions.back_in_line``): a listener could then take the
conversation and write to the page after a quick exit, or after the young person ended it. The leaving's note now has
an id derived from the conversation and the leaving (``leaving.begun``): the check finds it and completes the leaving
instead, abandoned, marked as left that way, nothing written to the young person.

Real cuts, no part of the gateway changed: a Redis connection reset before the record's write (``put_conversation``,
``tests/cutting_proxy.py``), the prefix a dying instance leaves; then the real check, and a listener's real take.
"""

from __future__ import annotations

import pytest

from gateway import leaving
from gateway.console.actions import ActionRefused, Actions
from gateway.conversation import Status
from gateway.messages import ChannelName, Inbound
from gateway.store import Author, Store
from tests.conftest import Clock
from tests.console.test_handback_crash import cut_while, instance, redis_store
from tests.console.test_take_crash import next_check
from tests.store.conftest import redis_url
from tests.test_webchat import WALK_TO_QUEUE

__all__ = ["redis_store", "redis_url"]  # fixtures used below

TOKEN = "page-token-0123456789abcdef"  # a web chat page's token: its sender


async def waiting_on_the_web_chat(store: Store, clock: Clock) -> str:
    """A young person on the web chat walked to the queue: their conversation's id."""
    dispatcher, _ = instance(store, clock)
    for number, text in enumerate(WALK_TO_QUEUE):
        assert await dispatcher.handle_inbound(Inbound(ChannelName.WEBCHAT, TOKEN, f"m{number}", text))
    [entry] = await store.waiting()
    return entry.conversation_id


@pytest.mark.redis
@pytest.mark.parametrize("how", ["quick_exit", "ended"])
async def test_a_leaving_cut_after_its_queue_step_is_completed_never_put_back_in_line(
    redis_store: Store, redis_url: str, clock: Clock, how: str
) -> None:
    """The young person leaves (quick exit, or "Terminer") while waiting; the instance dies after the waiting entry
    left and before the record was written. After the next check: abandoned, marked as left that way, in no queue,
    nobody may take them, and nothing more is written to them (only the listeners' note). A second check changes
    nothing. Before, the check put them back in line and Anne's take told the page a listener joined."""
    conversation_id = await waiting_on_the_web_chat(redis_store, clock)
    clock.advance(minutes=1)

    async def leave(first: Actions) -> None:
        dispatcher = first.dispatcher  # the cut instance's, on its cut store
        if how == "quick_exit":
            await leaving.quick_exit(dispatcher, first.store, conversation_id, clock())
        else:
            await leaving.ended(dispatcher, first.store, conversation_id, clock())

    since = len(await redis_store.transcript(conversation_id))
    await cut_while(redis_url, clock, conversation_id, "put_conversation", leave)
    cut = await redis_store.get_conversation(conversation_id)
    assert cut is not None and cut.status is Status.QUEUED and cut.left_how is None  # the record not written
    assert await redis_store.waiting() == []  # the queue step made: the gap

    clock.advance(seconds=10)  # the next check; the lost release made again by token (or lapsed in 6 s)
    await next_check(redis_store, clock)
    await next_check(redis_store, clock)  # nothing more

    after = await redis_store.get_conversation(conversation_id)
    assert after is not None and (after.status, after.left_how) == (Status.ABANDONED, how), after
    assert await redis_store.waiting() == []
    _, actions = instance(redis_store, clock)
    with pytest.raises(ActionRefused):
        await actions.take(conversation_id, "anne", 3)
    written = (await redis_store.transcript(conversation_id))[since:]
    to_the_page = [e for e in written if e.author is not Author.SYSTEM]
    assert len(to_the_page) == (0 if how == "quick_exit" else 1), to_the_page  # "Terminer": its goodbye, once
    assert [e.system.code for e in written if e.system] == [f"left.{how}"]  # told the listeners once
