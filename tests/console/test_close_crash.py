"""A close cut short leaves the conversation closed and the young person told goodbye once, or not closed and told
nothing, in the queue or with its listener as before (issue 8: nothing lost, nothing twice).

On Redis the queue is another slot than the record, so a close is steps, and an instance can die between any two
(``tests/cutting_proxy.py`` resets its connection before one of its pipeline's commands: the prefix it leaves).
Before, the goodbye was written first, then the queue entry removed, then the record: a waiting conversation's close
cut after its goodbye was put back in line by the next check (told goodbye, then waiting); a held one's left the
young person told goodbye, still held by a listener who, closing again, told it twice (and, cut after the queue
step, could not hand it back: no entry). Now a waiting conversation leaves the queue first, and the next check
completes its close when its goodbye (whose id derives from the close and its category) was written, else puts it
back in line; a held one's goodbye and record come first and its taken entry leaves after the record, and a close
made again writes the same goodbye, which the store ignores.
"""

from __future__ import annotations

from datetime import datetime

import pytest

from gateway.conversation import Status
from gateway.store import Author, Store
from tests.conftest import Clock
from tests.console.test_handback_crash import cut_while, instance, redis_store
from tests.console.test_take_crash import next_check, waiting_young_person
from tests.store.conftest import redis_cluster_url, redis_url, store, store_url

__all__ = ["redis_cluster_url", "redis_store", "redis_url", "store", "store_url"]  # fixtures used below

ENDED = "La conversation est terminée"  # flows.yaml's ended, in French


async def told_goodbye(store: Store, conversation_id: str, now: datetime) -> int:
    """How many times the young person was told goodbye: the transcript's entries, each with one outbox item listed
    to be sent (``outbox_due`` hands out every listed item once)."""
    ended = {e.id for e in await store.transcript(conversation_id) if e.author is Author.BOT and ENDED in e.text}
    listed = [item.id for item in await store.outbox_due(now, 10, run=100) if item.id in ended]
    assert sorted(listed) == sorted(ended), "a goodbye written and not listed to be sent (or listed twice)"
    return len(ended)


async def cut_close(store: Store, url: str, clock: Clock, conversation_id: str, cut: str) -> None:
    """Anne closes the conversation through a connection reset before the first command of script ``cut`` that
    names it: the instance dying there."""
    await cut_while(
        url, clock, conversation_id, cut, lambda first: first.close(conversation_id, "anne", "cyberbullying")
    )
    clock.advance(seconds=10)  # the next check; the lost release was made again by token (or lapses in 6 s)


@pytest.mark.redis
@pytest.mark.parametrize("cut", ["put_entry_item", "outbox_list", "put_conversation"])
async def test_a_waiting_conversations_close_cut_is_completed_or_back_in_line_told_once(
    redis_store: Store, redis_url: str, clock: Clock, cut: str
) -> None:
    """Anne closes a waiting conversation (a duplicate, say): cut before the goodbye, it is back in line, told
    nothing; cut after it (before it is listed to be sent, or before the record), the check completes the close with
    its category, the goodbye told once."""
    conversation_id = await waiting_young_person(redis_store, clock)
    await cut_close(redis_store, redis_url, clock, conversation_id, cut)
    await next_check(redis_store, clock)
    await next_check(redis_store, clock)  # nothing more
    conversation = await redis_store.get_conversation(conversation_id)
    assert conversation is not None
    audited = [e for e in await redis_store.audit_log() if e.action in ("back_in_line", "close_completed")]
    assert len(audited) == 1, audited
    if cut == "put_entry_item":
        assert (conversation.status, audited[0].action) == (Status.QUEUED, "back_in_line")
        assert [e.conversation_id for e in await redis_store.waiting()] == [conversation_id]
        assert await told_goodbye(redis_store, conversation_id, clock()) == 0
        return
    assert (conversation.status, conversation.outcome) == (Status.CLOSED, "cyberbullying"), conversation
    assert audited[0].action == "close_completed" and await redis_store.waiting() == []
    assert await redis_store.queue_entry(conversation_id) is None
    assert await told_goodbye(redis_store, conversation_id, clock()) == 1


@pytest.mark.redis
@pytest.mark.parametrize("cut", ["put_entry_item", "outbox_list", "put_conversation", "remove_from_queue"])
async def test_a_held_conversations_close_cut_stays_hers_or_closed_told_once(
    redis_store: Store, redis_url: str, clock: Clock, cut: str
) -> None:
    """Anne closes the conversation she holds: cut before the goodbye, it is still hers, its entry taken (she may
    hand it back), and closing it again tells goodbye once; cut after the goodbye and before the record (before its
    listing, or before the record itself), the next check completes the close with its category, told once
    (audited ``close_completed``; before, the young person was told goodbye while Anne still held the conversation,
    until she closed it again); cut after the record, before its entry leaves the queue, it is closed, told once, and
    the entry left does not take a place of her capacity (``held_by`` drops it)."""
    conversation_id = await waiting_young_person(redis_store, clock)
    _, actions = instance(redis_store, clock)
    await actions.take(conversation_id, "anne", 3)
    await cut_close(redis_store, redis_url, clock, conversation_id, cut)
    await next_check(redis_store, clock)
    await next_check(redis_store, clock)  # nothing more
    conversation = await redis_store.get_conversation(conversation_id)
    assert conversation is not None
    completed = [e for e in await redis_store.audit_log() if e.action == "close_completed"]
    if cut == "put_entry_item":  # not told goodbye: still hers, as before the close
        assert (conversation.status, conversation.listener) == (Status.WITH_LISTENER, "anne"), conversation
        entry = await redis_store.queue_entry(conversation_id)
        assert entry is not None and entry.taken_by == "anne", entry  # still hers: her capacity, a hand-back
        assert not [e for e in await redis_store.transcript(conversation_id) if ENDED in e.text]
        await actions.close(conversation_id, "anne", "cyberbullying")  # her console: closing again
    conversation = await redis_store.get_conversation(conversation_id)
    assert conversation is not None and (conversation.status, conversation.outcome) == (Status.CLOSED, "cyberbullying")
    assert conversation.listener == "anne"
    assert await redis_store.held_by("anne") == 0 and await redis_store.queue_entry(conversation_id) is None
    assert await told_goodbye(redis_store, conversation_id, clock()) == 1
    assert len(completed) == (1 if cut in ("outbox_list", "put_conversation") else 0), completed
    assert await redis_store.closes_begun() == {}  # listed no more: the next checks read nothing of it
    if completed:
        assert completed[0].subject == conversation_id and "cyberbullying" in completed[0].detail


@pytest.mark.redis
async def test_a_held_close_cut_and_closed_again_before_the_check_is_told_once(
    redis_store: Store, redis_url: str, clock: Clock
) -> None:
    """Anne's close cut after the goodbye, before the record; she closes again before the check comes: the goodbye
    written again with its id (ignored), closed, told once; the check then finds nothing to do."""
    conversation_id = await waiting_young_person(redis_store, clock)
    _, actions = instance(redis_store, clock)
    await actions.take(conversation_id, "anne", 3)
    await cut_close(redis_store, redis_url, clock, conversation_id, "put_conversation")
    await actions.close(conversation_id, "anne", "cyberbullying")
    await next_check(redis_store, clock)
    conversation = await redis_store.get_conversation(conversation_id)
    assert conversation is not None and (conversation.status, conversation.outcome) == (Status.CLOSED, "cyberbullying")
    assert await told_goodbye(redis_store, conversation_id, clock()) == 1
    assert not [e for e in await redis_store.audit_log() if e.action == "close_completed"]


async def test_the_check_finds_no_close_to_complete_in_conversations_held_as_usual(store: Store, clock: Clock) -> None:
    """Held conversations whose listener answered, took notes and closed nothing: no close listed as begun, nothing
    closed; one closed whole leaves none listed either (SQLite, Redis, Cluster)."""
    conversation_id = await waiting_young_person(store, clock)
    _, actions = instance(store, clock)
    await actions.take(conversation_id, "anne", 3)
    await actions.reply(conversation_id, "anne", "Bonjour, je suis là.")
    await actions.note(conversation_id, "anne", "À suivre")
    await next_check(store, clock)
    conversation = await store.get_conversation(conversation_id)
    assert conversation is not None and (conversation.status, conversation.listener) == (Status.WITH_LISTENER, "anne")
    assert await store.closes_begun() == {} and await actions.complete_close(conversation.id, "anne") is False
    await actions.close(conversation_id, "anne", "cyberbullying")
    assert await store.closes_begun() == {}


@pytest.mark.redis
@pytest.mark.parametrize("cut", ["outbox_list", "put_conversation"])
async def test_a_supervisors_close_completed_by_the_check_names_the_supervisor(
    redis_store: Store, redis_url: str, clock: Clock, cut: str
) -> None:
    """Sam, a supervisor, closes the conversation Anne holds; the close is cut after its goodbye, before the record.
    The check completes it as Sam made it: the record names Sam (as a close not cut does), and the audit line of the
    completion says Sam closed it. Before, the completion knew only the record, which still named Anne: closed by
    Anne, said the record and the audit log, a close she never made."""
    conversation_id = await waiting_young_person(redis_store, clock)
    _, actions = instance(redis_store, clock)
    await actions.take(conversation_id, "anne", 3)
    await cut_while(redis_url, clock, conversation_id, cut,
                    lambda first: first.close(conversation_id, "sam", "cyberbullying", supervisor=True))  # fmt: skip
    clock.advance(seconds=10)  # the next check; the lost release was made again by token (or lapses in 6 s)
    await next_check(redis_store, clock)
    conversation = await redis_store.get_conversation(conversation_id)
    assert conversation is not None and (conversation.status, conversation.outcome) == (Status.CLOSED, "cyberbullying")
    assert conversation.listener == "sam"
    [completed] = [e for e in await redis_store.audit_log() if e.action == "close_completed"]
    assert "by sam" in completed.detail and "anne" not in completed.detail, completed.detail
    assert await told_goodbye(redis_store, conversation_id, clock()) == 1
    assert await redis_store.held_by("anne") == 0 and await redis_store.closes_begun() == {}
