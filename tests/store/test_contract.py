"""The store contract: every test runs unchanged against SQLite and Redis (see ``conftest.store``).

Time is injected (``T0``, ``now=``), never waited for; the only sleeps give a broken lock a chance to show
itself and cannot make a correct store fail.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import redis
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from gateway.conversation import Conversation, Priority, RiskFlag, Status
from gateway.errors import Conflict, ConversationEnded, EndedMeanwhile, StoreError
from gateway.events import DeliveryChanged, Event, NoticesChanged, QueueChanged
from gateway.messages import Attachment, ChannelName, Choice
from gateway.store import (
    ANYONE,
    AuditEntry,
    Author,
    Block,
    Claim,
    ClaimState,
    ConsoleSession,
    Delivery,
    DoneMark,
    InboxItem,
    Listener,
    OutboxItem,
    OutboxStatus,
    Store,
    Subscription,
    SystemText,
    Timer,
    TimerKind,
    TranscriptEntry,
    open_store,
)
from gateway.store import redis_keys as K
from gateway.testing import kept_provider_id, store_keys

T0 = datetime(2030, 3, 4, 10, 0, tzinfo=UTC)
TG = ChannelName.TELEGRAM
PROPERTY = settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def minutes(n: float) -> datetime:
    return T0 + timedelta(minutes=n)


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


async def next_event(subscription: Subscription) -> Event:
    async with asyncio.timeout(5):  # a safety net against a hang, not a timing assumption
        return await anext(subscription)


# Conversations


async def test_first_message_creates_a_conversation_the_next_ones_reuse_it(store: Store) -> None:
    first, created = await store.active_conversation(TG, "chat-1", T0)
    again, created_again = await store.active_conversation(TG, "chat-1", minutes(1))
    assert created and not created_again
    assert again == first
    assert first.status is Status.BOT and first.sender == "chat-1" and first.created_at == T0
    assert first.pseudonym.split("-")[1].isdigit()


@pytest.mark.parametrize("final", [Status.CLOSED, Status.REFERRED, Status.ABANDONED])
async def test_a_finished_conversation_is_not_reused(store: Store, final: Status) -> None:
    first, _ = await store.active_conversation(TG, "chat-1", T0)
    await store.save_conversation(replace(first, status=final, closed_at=minutes(5)))
    second, created = await store.active_conversation(TG, "chat-1", minutes(6))
    assert created and second.id != first.id
    assert (await store.get_conversation(first.id)) == replace(first, status=final, closed_at=minutes(5))


async def test_each_channel_and_sender_has_its_own_conversation(store: Store) -> None:
    a, _ = await store.active_conversation(TG, "42", T0)
    b, _ = await store.active_conversation(ChannelName.WHATSAPP, "42", T0)
    c, _ = await store.active_conversation(TG, "43", T0)
    assert len({a.id, b.id, c.id}) == 3


async def test_find_active_conversation_never_creates_one(store: Store) -> None:
    assert await store.find_active_conversation(TG, "chat-1") is None
    assert await store.conversations_by_status(Status.BOT) == []  # nothing was created
    first, _ = await store.active_conversation(TG, "chat-1", T0)
    await store.active_conversation(ChannelName.MESSENGER, "chat-1", T0)
    assert await store.find_active_conversation(TG, "chat-1") == first
    assert await store.find_active_conversation(TG, "chat-2") is None
    await store.save_conversation(replace(first, status=Status.QUEUED))
    assert await store.find_active_conversation(TG, "chat-1") == replace(first, status=Status.QUEUED)
    await store.save_conversation(replace(first, status=Status.CLOSED, closed_at=minutes(5)))
    assert await store.find_active_conversation(TG, "chat-1") is None
    second, _ = await store.active_conversation(TG, "chat-1", minutes(6))
    assert await store.find_active_conversation(TG, "chat-1") == second != first


async def test_concurrent_first_messages_make_one_conversation(store: Store) -> None:
    results = await asyncio.gather(*(store.active_conversation(TG, "burst", T0) for _ in range(8)))
    assert len({conversation.id for conversation, _ in results}) == 1
    assert sum(created for _, created in results) == 1


async def test_a_saved_conversation_reads_back_whole(store: Store) -> None:
    conversation, _ = await store.active_conversation(ChannelName.MESSENGER, "psid-9", T0)
    changed = replace(
        conversation,
        status=Status.QUEUED,
        engine={"step": "topic", "fields": {"age": 14, "topic": "école"}, "language": "fr", "attempts": 2},
        flow_version="2030-03-01",
        queue="general",
        priority=Priority.URGENT,
        summary=[("Âge", "14"), ("Sujet", "harcèlement")],
        route="listener",
        listener="anne",
        outcome="orientation",
        updated_at=minutes(3),
        last_inbound_at=minutes(2),
        queued_at=minutes(3),
        taken_at=minutes(4),
        flag=RiskFlag("suicide", 0.91, "model"),
    )
    await store.save_conversation(changed)
    assert await store.get_conversation(conversation.id) == changed
    assert await store.get_conversation("no-such-id") is None


async def test_a_second_active_conversation_for_one_sender_conflicts(store: Store) -> None:
    first, _ = await store.active_conversation(TG, "chat-1", T0)
    other = Conversation.start(TG, "chat-1", minutes(1))
    with pytest.raises(Conflict) as caught:
        await store.save_conversation(other)
    assert "chat-1" not in str(caught.value)
    assert (await store.active_conversation(TG, "chat-1", minutes(2)))[0].id == first.id


async def test_conversations_by_status(store: Store) -> None:
    a, _ = await store.active_conversation(TG, "a", T0)
    b, _ = await store.active_conversation(TG, "b", minutes(1))
    c, _ = await store.active_conversation(TG, "c", minutes(2))
    await store.save_conversation(replace(b, status=Status.QUEUED))
    await store.save_conversation(replace(b, status=Status.WITH_LISTENER))
    assert [x.id for x in await store.conversations_by_status(Status.BOT)] == [a.id, c.id]
    assert [x.id for x in await store.conversations_by_status(Status.WITH_LISTENER)] == [b.id]
    assert await store.conversations_by_status(Status.QUEUED) == []


async def test_list_conversations_in_a_half_open_period(store: Store) -> None:
    ids = [(await store.active_conversation(TG, f"s{i}", minutes(10 * i)))[0].id for i in range(4)]
    found = await store.list_conversations(minutes(10), minutes(30))
    assert [c.id for c in found] == ids[1:3]


# Transcripts


def entry(conversation_id: str, n: int, **changes: Any) -> TranscriptEntry:
    return replace(TranscriptEntry(f"{conversation_id}-e{n}", conversation_id, minutes(n), Author.BOT,
                                   f"message {n}"), **changes)  # fmt: skip


async def test_transcript_keeps_entries_in_order_with_choices_and_attachments(store: Store) -> None:
    picture = Attachment("image", url="https://example.test/a.jpg", content_type="image/jpeg")
    rich = entry("c1", 2, author=Author.USER, choices=(Choice("yes", "Oui"),), attachments=(picture,),
                 flag=RiskFlag("abuse_home", 1.0, "keywords", ("me frappe",)))  # fmt: skip
    said = SystemText("left.blocked", (("channel", "telegram"),))
    system = entry("c1", 0, author=Author.SYSTEM, system=said)
    written = [entry("c1", 1), rich, entry("c1", 3, author=Author.NOTE), system, entry("c1", 4, author=Author.SYSTEM)]
    for item in written:
        await store.append_transcript(item)
    await store.append_transcript(entry("c2", 1))
    assert await store.transcript("c1") == written
    assert await store.transcript("nobody") == []


async def test_appending_an_entry_twice_keeps_one(store: Store) -> None:
    await store.append_transcript(entry("c1", 1))
    await store.append_transcript(entry("c1", 1, text="changed"))
    assert [e.text for e in await store.transcript("c1")] == ["message 1"]


async def test_delivery_status_and_provider_receipts(store: Store) -> None:
    await store.append_transcript(entry("c1", 1))
    await store.append_transcript(entry("c1", 2))
    assert await store.set_delivery("c1", "c1-e1", Delivery.SENT, "wamid.1")
    assert await store.set_delivery("c1", "c1-e1", Delivery.READ)
    found = await store.find_by_provider_id("wamid.1")
    assert found is not None and found.id == "c1-e1"
    assert found.delivery is Delivery.READ and found.provider_message_id == kept_provider_id(store, "wamid.1")
    assert [e.delivery for e in await store.transcript("c1")] == [Delivery.READ, Delivery.PENDING]
    assert not await store.set_delivery("c1", "missing", Delivery.FAILED)
    assert await store.find_by_provider_id("wamid.unknown") is None


async def test_a_receipt_advances_a_delivery_never_back(store: Store) -> None:
    """``advance_delivery``: a receipt's status taken only when further (sent < delivered < read) or a failure; the
    read and the write one step of the store (tests/test_receipt_race.py: two instances at once)."""
    await store.append_transcript(entry("c1", 1))
    assert await store.set_delivery("c1", "c1-e1", Delivery.SENT, "wamid.1")
    assert await store.advance_delivery("c1", "c1-e1", Delivery.READ)
    assert not await store.advance_delivery("c1", "c1-e1", Delivery.DELIVERED)
    assert not await store.advance_delivery("c1", "c1-e1", Delivery.SENT)
    assert not await store.advance_delivery("c1", "c1-e1", Delivery.READ)
    found = await store.find_by_provider_id("wamid.1")
    assert found is not None and found.delivery is Delivery.READ
    assert found.provider_message_id == kept_provider_id(store, "wamid.1")
    assert await store.advance_delivery("c1", "c1-e1", Delivery.FAILED)  # a failure is always told
    assert not await store.advance_delivery("c1", "c1-e1", Delivery.READ)
    assert [e.delivery for e in await store.transcript("c1")] == [Delivery.FAILED]
    assert not await store.advance_delivery("c1", "missing", Delivery.READ)


async def test_a_flag_read_late_is_kept_on_its_entry_the_same_twice_never_over_a_stronger_one(store: Store) -> None:
    late, stronger = RiskFlag("suicide", 0.71, "model"), RiskFlag("imminent", 0.93, "model")
    picture = Attachment("image", url="https://example.test/a.jpg", content_type="image/jpeg")
    words = entry("c1", 1, author=Author.USER, delivery=Delivery.DELIVERED, provider_message_id="wamid.9")
    pictured = entry("c1", 2, author=Author.USER, choices=(Choice("yes", "Oui"),), attachments=(picture,))
    keywords = entry("c1", 3, author=Author.USER, flag=RiskFlag("abuse_home", 1.0, "keywords", ("me frappe",)))
    bot, note = entry("c1", 4), entry("c1", 5, author=Author.NOTE)
    for item in (words, pictured, keywords, bot, note):
        await store.append_transcript(item)
    await store.append_transcript(entry("c2", 1, author=Author.USER))
    for item in (words, words, pictured, keywords):  # the first twice: a late reading applied again
        assert await store.flag_entry("c1", item.id, late)
    for conversation_id, entry_id in (("c1", bot.id), ("c1", note.id), ("c1", "missing"), ("c2", words.id)):
        assert not await store.flag_entry(conversation_id, entry_id, late)  # not a young person's, or not there
    kept = replace(words, provider_message_id=kept_provider_id(store, "wamid.9"))  # as the store gives it back
    flagged = [replace(kept, flag=late), replace(pictured, flag=late), keywords, bot, note]
    assert await store.transcript("c1") == flagged  # the keywords' 1.0 stays: never a weaker flag over it
    assert await store.set_delivery("c1", words.id, Delivery.READ)  # its head still answers receipts
    assert await store.find_by_provider_id("wamid.9") == replace(kept, flag=late, delivery=Delivery.READ)
    assert await store.flag_entry("c1", words.id, stronger) and await store.flag_entry("c1", words.id, late)
    assert [e.flag for e in await store.transcript("c1")][:2] == [stronger, late]
    assert [e.flag for e in await store.transcript("c2")] == [None]
    assert not await store.flag_entry("gone", "gone-e1", late) and await store.transcript("gone") == []


# Processed inbound ids


async def test_a_claim_is_busy_for_others_then_done_once_saved(store: Store) -> None:
    assert await store.claim("in:telegram:1001", "a", 10) is ClaimState.CLAIMED
    assert await store.claim("in:telegram:1001", "b", 10) is ClaimState.BUSY
    assert await store.claim("in:telegram:1001", "a", 10) is ClaimState.CLAIMED  # the owner renews
    assert await store.claim("in:telegram:1002", "b", 10) is ClaimState.CLAIMED
    conversation = Conversation.start(ChannelName.TELEGRAM, "1", datetime.now(UTC))
    await store.save_conversation(conversation, done=DoneMark("in:telegram:1001", 3600))
    assert await store.claim("in:telegram:1001", "a", 10) is ClaimState.DONE  # even for its last owner
    assert await store.claim("in:telegram:1001", "c", 10) is ClaimState.DONE
    await store.release("in:telegram:1001", "a")  # a release after the save changes nothing
    assert await store.claim("in:telegram:1001", "c", 10) is ClaimState.DONE


async def test_a_released_claim_lets_the_key_through_again(store: Store) -> None:
    assert await store.claim("in:telegram:7", "a", 10) is ClaimState.CLAIMED
    await store.release("in:telegram:7", "b")  # not its owner: nothing happens
    assert await store.claim("in:telegram:7", "b", 10) is ClaimState.BUSY
    await store.release("in:telegram:7", "a")
    assert await store.claim("in:telegram:7", "b", 10) is ClaimState.CLAIMED
    await store.release("never-seen", "a")  # releasing an unknown key is harmless


async def test_the_claim_of_a_dead_owner_lapses(store: Store) -> None:
    # Claimed an hour ago for ten seconds and never renewed: lapsed on any clock, without waiting.
    long_ago = datetime.now(UTC) - timedelta(hours=1)
    assert await store.claim("messenger:m1", "dead", 10, now=long_ago) is ClaimState.CLAIMED
    assert await store.claim("messenger:m1", "alive", 10) is ClaimState.CLAIMED
    assert await store.claim("messenger:m1", "dead", 10) is ClaimState.BUSY


async def test_a_live_claim_is_taken_over_only_when_asked_and_a_saved_one_stays_done(store: Store) -> None:
    """``take_over`` (a caller under the lock every claim of the key is made under, ``Actions._claim_reply``): another
    owner's claim within its lease becomes the caller's, which that owner can no longer renew; one saved stays DONE.
    Since 2026-12-07."""
    conversation = Conversation.start(ChannelName.TELEGRAM, "8", datetime.now(UTC))
    await store.save_conversation(conversation)
    async with store.lock(conversation.id):
        assert await store.claim("reply:k1", "dead", 10) is ClaimState.CLAIMED
        assert await store.claim("reply:k1", "retry", 10) is ClaimState.BUSY  # not asked: its lease runs
        assert await store.claim("reply:k1", "retry", 10, take_over=True) is ClaimState.CLAIMED
        assert await store.claim("reply:k1", "dead", 10) is ClaimState.BUSY  # the dead owner's is gone
        assert await store.claim("reply:k2", "sent", 10) is ClaimState.CLAIMED
        await store.save_conversation(conversation, done=DoneMark("reply:k2", 3600))
        assert await store.claim("reply:k2", "retry", 10, take_over=True) is ClaimState.DONE
    await store.release("reply:k1", "dead")  # the dead owner's release frees nothing of the retry's
    assert await store.claim("reply:k1", "other", 10) is ClaimState.BUSY


async def test_a_claim_is_atomic(store: Store) -> None:
    answers = await asyncio.gather(*(store.claim("whatsapp:SM1", f"o{n}", 10) for n in range(10)))
    assert answers.count(ClaimState.CLAIMED) == 1 and answers.count(ClaimState.BUSY) == 9


# The inbox


def inboxed(item_id: str, sender: str, at: datetime = T0) -> InboxItem:
    return InboxItem(item_id, sender, {"text": f"message {item_id}"}, at)


async def test_the_inbox_hands_out_each_senders_messages_in_turn(store: Store) -> None:
    await store.inbox_put([inboxed("a1", "A"), inboxed("a2", "A"), inboxed("b1", "B"), inboxed("a1", "A")])
    assert await store.inbox_waiting("A") and not await store.inbox_waiting("C")
    first = await store.inbox_due(T0, 10)
    assert sorted(i.id for i in first) == ["a1", "b1"]
    assert first[0].payload == {"text": f"message {first[0].id}"}
    assert await store.inbox_due(T0, 10) == []  # claimed: the next ones wait for them
    assert await store.inbox_done("a1") and not await store.inbox_done("a1")
    assert [i.id for i in await store.inbox_due(T0, 10)] == ["a2"]
    assert await store.inbox_done("a2") and await store.inbox_done("b1")
    assert not await store.inbox_waiting("A")
    assert await store.inbox_due(T0, 10) == []


async def test_an_inbox_lease_lapses_and_a_retry_waits(store: Store) -> None:
    await store.inbox_put([inboxed("a1", "A"), inboxed("a2", "A")])
    assert [i.id for i in await store.inbox_due(T0, 10, lease_seconds=30)] == ["a1"]  # its worker dies
    assert await store.inbox_due(T0 + timedelta(seconds=29), 10) == []
    again = await store.inbox_due(T0 + timedelta(seconds=31), 10)
    assert [i.id for i in again] == ["a1"]
    assert await store.inbox_retry("a1", T0 + timedelta(minutes=5), 1)
    assert await store.inbox_due(T0 + timedelta(minutes=4), 10) == []  # a2 waits behind a1
    retried = await store.inbox_due(T0 + timedelta(minutes=5), 10)
    assert [(i.id, i.attempts) for i in retried] == [("a1", 1)]


async def test_a_risky_inbox_item_goes_before_the_backlog_with_its_senders_earlier_items_in_order(
    store: Store,
) -> None:
    """An item due before it was received (``Inbox.accept``: its words read a risk) is handed out before the
    ordinary senders' items, and its sender's earlier items waiting go with it, still first (until 2026-12-05 they
    all waited behind the whole backlog, oldest first)."""
    later = T0 + timedelta(seconds=1)
    await store.inbox_put([inboxed(f"o{n}", f"O{n}") for n in range(5)] + [inboxed("a1", "A", later)])
    await store.inbox_put([InboxItem("a2", "A", {"text": "risky"}, later, T0 - timedelta(days=1))])
    await store.inbox_put([InboxItem("b1", "B", {"text": "risky"}, later, T0 - timedelta(days=1))])
    first = await store.inbox_due(later, 2)
    assert sorted(i.id for i in first) == ["a1", "b1"]  # A's earlier message first, then its risky one
    assert {i.id[0] for i in await store.inbox_due(later, 2)} == {"o"}  # then the backlog
    assert await store.inbox_done("a1")
    assert [i.id for i in await store.inbox_due(later, 1)] == ["a2"]


async def test_a_risky_inbox_item_leaves_its_senders_leased_or_retried_items_as_they_are(store: Store) -> None:
    later = T0 + timedelta(seconds=1)
    await store.inbox_put([inboxed("a1", "A"), inboxed("a2", "A"), inboxed("o1", "O")])
    [a1, _] = sorted(await store.inbox_due(T0, 10, lease_seconds=30), key=lambda i: i.id)
    await store.inbox_put([InboxItem("a3", "A", {"text": "risky"}, later, T0 - timedelta(days=1))])
    assert await store.inbox_due(later, 10) == []  # a1 still leased: nothing of A's before it
    assert await store.inbox_retry("a1", T0 + timedelta(minutes=1), 1, lease=a1.next_attempt_at)  # its lease held
    assert await store.inbox_due(later, 10) == []  # and its backoff too


async def test_an_inbox_retry_under_a_lapsed_lease_changes_nothing(store: Store) -> None:
    """A retry recorded late (its worker could not reach the store meanwhile) names the lease it held: once that
    lease lapsed and the item went to another worker, it shortens nothing of theirs."""
    await store.inbox_put([inboxed("a1", "A")])
    [mine] = await store.inbox_due(T0, 10, lease_seconds=30)
    [theirs] = await store.inbox_due(T0 + timedelta(seconds=31), 10, lease_seconds=30)  # mine lapsed
    assert mine.next_attempt_at is not None and theirs.next_attempt_at is not None
    assert not await store.inbox_retry("a1", T0 + timedelta(seconds=32), 1, lease=mine.next_attempt_at)
    assert await store.inbox_due(T0 + timedelta(seconds=40), 10) == []  # still theirs
    assert await store.inbox_retry("a1", T0 + timedelta(seconds=32), 1, lease=theirs.next_attempt_at)
    assert [(i.id, i.attempts) for i in await store.inbox_due(T0 + timedelta(seconds=40), 10)] == [("a1", 1)]
    assert not await store.inbox_retry("gone", T0, 1, lease=T0)


async def test_an_inbox_item_set_aside_is_kept_and_lets_the_next_ones_through(store: Store) -> None:
    await store.inbox_put([inboxed("a1", "A"), inboxed("a2", "A")])
    [failing] = await store.inbox_due(T0, 10)
    assert await store.inbox_set_aside_count() == 0
    assert await store.inbox_set_aside(failing.id, T0) and not await store.inbox_set_aside(failing.id, T0)
    assert await store.inbox_set_aside_count() == 1  # kept, never dropped
    assert [i.id for i in await store.inbox_due(T0, 10)] == ["a2"]  # the sender's next message goes on
    assert await store.inbox_done("a2") and not await store.inbox_waiting("A")
    assert await store.inbox_set_aside_count() == 1


async def test_a_large_batch_goes_into_the_inbox_in_one_step(store: Store) -> None:
    await store.inbox_put([inboxed(f"m{n}", f"S{n % 50}") for n in range(2000)])
    heads = await store.inbox_due(T0, 100)
    assert sorted(i.id for i in heads) == sorted(f"m{n}" for n in range(50))


# The waiting queue


async def test_queue_orders_by_priority_then_arrival(store: Store) -> None:
    await store.enqueue("n1", "general", Priority.NORMAL, minutes(0))
    await store.enqueue("h1", "general", Priority.HIGH, minutes(2))
    await store.enqueue("u1", "general", Priority.URGENT, minutes(5))
    await store.enqueue("n2", "general", Priority.NORMAL, minutes(1))
    await store.enqueue("h2", "general", Priority.HIGH, minutes(1))
    assert [e.conversation_id for e in await store.waiting("general")] == ["u1", "h2", "h1", "n1", "n2"]
    assert [await store.position(c) for c in ("u1", "h2", "h1", "n1", "n2")] == [1, 2, 3, 4, 5]


async def test_queues_are_separate(store: Store) -> None:
    await store.enqueue("a", "general", Priority.NORMAL, minutes(0))
    await store.enqueue("b", "lgbt", Priority.NORMAL, minutes(1))
    await store.enqueue("c", "lgbt", Priority.URGENT, minutes(2))
    assert [e.conversation_id for e in await store.waiting()] == ["c", "a", "b"]
    assert [e.conversation_id for e in await store.waiting("lgbt")] == ["c", "b"]
    assert await store.waiting("empty") == []
    assert (await store.position("a"), await store.position("b")) == (1, 2)
    entry = (await store.waiting("general"))[0]
    assert (entry.queue, entry.priority, entry.at, entry.taken_by) == ("general", Priority.NORMAL, T0, None)


async def test_a_raised_priority_is_read_with_the_flag_it_was_raised_for(store: Store) -> None:
    """One write holds the entry's priority and its flag (the queue's card shows the two together): read back in
    one ``waiting``, kept by a take and a hand back; the flag's words (a message's) are never kept on the entry."""
    await store.enqueue("c1", "general", Priority.NORMAL, T0)
    assert [(e.priority, e.flag) for e in await store.waiting()] == [(Priority.NORMAL, None)]
    flag = RiskFlag("suicide", 0.91, "keywords", ("pont",))
    await store.enqueue("c1", "general", Priority.URGENT, T0, flag=flag)
    kept = replace(flag, words=())
    assert [(e.priority, e.flag, e.at) for e in await store.waiting()] == [(Priority.URGENT, kept, T0)]
    assert (await store.take("c1", "anne", minutes(1))).flag == kept
    assert (await store.requeue("c1")).flag == kept
    assert [(e.priority, e.flag) for e in await store.waiting()] == [(Priority.URGENT, kept)]


async def test_two_listeners_race_for_one_conversation(store: Store) -> None:
    await store.enqueue("c1", "general", Priority.HIGH, T0)
    results = await asyncio.gather(store.take("c1", "anne", T0), store.take("c1", "bruno", T0), return_exceptions=True)
    winners = [r for r in results if not isinstance(r, BaseException)]
    assert len(winners) == 1 and winners[0].taken_by in ("anne", "bruno")
    assert sum(isinstance(r, Conflict) for r in results) == 1
    assert await store.waiting() == [] and await store.position("c1") is None


async def test_take_needs_a_waiting_conversation(store: Store) -> None:
    with pytest.raises(Conflict):
        await store.take("never-queued", "anne", T0)
    await store.enqueue("c1", "general", Priority.NORMAL, T0)
    assert (await store.take("c1", "anne", T0)).taken_by == "anne"
    with pytest.raises(Conflict):
        await store.take("c1", "anne", T0)


async def test_queue_entry_is_read_waiting_or_taken(store: Store) -> None:
    assert await store.queue_entry("never-queued") is None
    await store.enqueue("c1", "general", Priority.HIGH, T0)
    waiting = await store.queue_entry("c1")
    assert waiting is not None and (waiting.queue, waiting.priority, waiting.at, waiting.taken_by) == (
        "general", Priority.HIGH, T0, None)  # fmt: skip
    await store.take("c1", "anne", minutes(5))
    taken = await store.queue_entry("c1")
    assert taken is not None and (taken.taken_by, taken.at) == ("anne", T0)
    await store.remove_from_queue("c1")
    assert await store.queue_entry("c1") is None


async def test_takes_are_counted_per_queue_and_when(store: Store) -> None:
    for n, queue in enumerate(["general", "general", "lgbt", "general"]):
        await store.enqueue(f"c{n}", queue, Priority.NORMAL, T0)
    await store.take("c0", "anne", minutes(0))
    await store.take("c1", "anne", minutes(30))
    await store.take("c2", "bruno", minutes(40))
    assert await store.takes_since("general", minutes(0)) == 2
    assert await store.takes_since("general", minutes(1)) == 1
    assert await store.takes_since("lgbt", minutes(0)) == 1 and await store.takes_since("empty", T0) == 0
    await store.requeue("c0")
    await store.take("c0", "bruno", minutes(50))  # taken again: counted once, at its last take
    assert await store.takes_since("general", minutes(0)) == 2
    assert await store.takes_since("general", minutes(45)) == 1


async def test_held_by_follows_take_hand_back_transfer_and_close(store: Store) -> None:
    for name in ("a", "b", "c"):
        await store.enqueue(name, "general", Priority.NORMAL, T0)
    assert await store.held_by("anne") == 0
    await store.take("a", "anne", T0)
    await store.take("b", "anne", T0)
    await store.take("c", "bruno", T0)
    assert (await store.held_by("anne"), await store.held_by("bruno")) == (2, 1)
    await store.requeue("a")  # handed back
    await store.enqueue("b", "lgbt", Priority.NORMAL, T0)  # transferred
    await store.remove_from_queue("c")  # closed
    assert (await store.held_by("anne"), await store.held_by("bruno")) == (0, 0)
    await store.take("b", "bruno", T0)
    with pytest.raises(Conflict):
        await store.take("b", "anne", T0)
    assert (await store.held_by("anne"), await store.held_by("bruno")) == (0, 1)


async def test_requeue_keeps_the_original_arrival(store: Store) -> None:
    await store.enqueue("early", "general", Priority.NORMAL, minutes(0))
    await store.enqueue("late", "general", Priority.NORMAL, minutes(10))
    await store.take("early", "anne", T0)
    assert await store.position("late") == 1
    handed_back = await store.requeue("early")
    assert handed_back.at == minutes(0) and handed_back.taken_by is None
    assert [e.conversation_id for e in await store.waiting("general")] == ["early", "late"]
    with pytest.raises(Conflict):
        await store.requeue("never-queued")


async def test_requeue_from_a_holder_leaves_another_listeners_entry_taken(store: Store) -> None:
    """``holder`` (since 2026-12-08): a hand-back's step names the listener it hands back from; an entry another holds
    is refused, unchanged (a Redis step landing after its lock lapsed un-took the next holder's before), in a batch
    too (SQLite's hand-back); a waiting one, or the holder's own, goes back to waiting."""
    await store.enqueue("a", "general", Priority.NORMAL, minutes(0))
    await store.take("a", "bob", T0)
    with pytest.raises(Conflict):
        await store.requeue("a", holder="anne")
    with pytest.raises(Conflict):
        async with store.batch():
            await store.requeue("a", holder="anne")
    entry = await store.queue_entry("a")
    assert entry is not None and entry.taken_by == "bob" and await store.held_by("bob") == 1
    assert (await store.requeue("a", holder="bob")).taken_by is None
    assert (await store.requeue("a", holder="anne")).taken_by is None  # waiting already: nothing to refuse
    assert [e.conversation_id for e in await store.waiting("general")] == ["a"] and await store.held_by("bob") == 0


async def test_requeue_unchecked_is_anyone_and_none_is_refused(store: Store) -> None:
    """Since 2026-12-08 ``requeue``'s unchecked ``holder`` is ``ANYONE`` (its default), as ``enqueue``'s: whoever
    holds the entry, it goes back to waiting. None (what meant unchecked here until then, and "nobody may hold it" for
    ``enqueue``) and an empty name are refused (ValueError), in a batch too, the entry unchanged."""
    await store.enqueue("a", "general", Priority.NORMAL, minutes(0))
    await store.take("a", "bob", T0)
    for wrong in (None, ""):
        with pytest.raises(ValueError):
            await store.requeue("a", holder=wrong)  # type: ignore[arg-type]  # what the type refuses
        with pytest.raises(ValueError):
            async with store.batch():
                await store.requeue("a", holder=wrong)  # type: ignore[arg-type]
    entry = await store.queue_entry("a")
    assert entry is not None and entry.taken_by == "bob" and await store.held_by("bob") == 1
    assert (await store.requeue("a", holder=ANYONE)).taken_by is None
    assert [e.conversation_id for e in await store.waiting("general")] == ["a"] and await store.held_by("bob") == 0


async def test_enqueue_from_a_holder_leaves_another_listeners_entry_taken(store: Store) -> None:
    """``holder`` (since 2026-12-08): a transfer's or a check's queue step names the holder it expects; an entry
    another listener holds is neither replaced nor un-taken, Conflict, nothing changed (none expected: refused too), in
    a batch too; the expected holder's, a waiting one's (None, or any holder named) and a new one go through; ANYONE
    replaces whoever holds it, as before."""
    await store.enqueue("a", "general", Priority.NORMAL, minutes(0))
    await store.take("a", "bob", T0)
    for holder in ("anne", None):
        with pytest.raises(Conflict):
            await store.enqueue("a", "lgbt", Priority.URGENT, minutes(0), holder=holder)
        with pytest.raises(Conflict):
            async with store.batch():
                await store.enqueue("a", "lgbt", Priority.URGENT, minutes(0), holder=holder)
    entry = await store.queue_entry("a")
    assert entry is not None and (entry.queue, entry.priority, entry.taken_by) == ("general", Priority.NORMAL, "bob")
    assert await store.held_by("bob") == 1 and await store.waiting() == []
    await store.enqueue("a", "lgbt", Priority.URGENT, minutes(0), holder="bob")  # the holder's own: moved, waiting
    assert [(e.conversation_id, e.queue, e.priority) for e in await store.waiting()] == [("a", "lgbt", Priority.URGENT)]
    assert await store.held_by("bob") == 0
    await store.enqueue("a", "general", Priority.HIGH, minutes(0), holder=None)  # waiting, none expected
    await store.enqueue("a", "general", Priority.HIGH, minutes(0), holder="anne")  # waiting: nothing to refuse
    await store.enqueue("b", "general", Priority.NORMAL, minutes(1), holder=None)  # no entry yet
    assert [(e.conversation_id, e.priority) for e in await store.waiting("general")] == [
        ("a", Priority.HIGH), ("b", Priority.NORMAL)
    ]  # fmt: skip
    await store.take("a", "carl", T0)
    await store.enqueue("a", "general", Priority.URGENT, minutes(0), holder=ANYONE)  # unchecked: replaced, waiting
    entry = await store.queue_entry("a")
    assert entry is not None and (entry.priority, entry.taken_by) == (Priority.URGENT, None)
    assert await store.held_by("carl") == 0


async def test_remove_from_queue_waiting_or_taken(store: Store) -> None:
    await store.enqueue("a", "general", Priority.NORMAL, minutes(0))
    await store.enqueue("b", "general", Priority.NORMAL, minutes(1))
    await store.take("b", "anne", T0)
    assert await store.remove_from_queue("a") and await store.remove_from_queue("b")
    assert not await store.remove_from_queue("a")
    assert await store.waiting() == []
    with pytest.raises(Conflict):
        await store.requeue("b")


async def test_ids_by_status_and_waiting_ids_follow_takes_hand_backs_and_removals(store: Store) -> None:
    """The ids the alert checks compare (``gateway/alerts.py``: a record queued with no entry waiting), read from
    the indexes alone: the queued conversations' ids, the ids with an entry waiting in any queue, the held ones with
    the listener their entry is taken by (``holders``)."""
    a, _ = await store.active_conversation(TG, unique("a"), T0)
    b, _ = await store.active_conversation(TG, unique("b"), minutes(1))
    assert await store.conversation_ids_by_status(Status.QUEUED) == set() and await store.waiting_ids() == set()
    for conversation, queue in ((a, "general"), (b, "lgbt")):
        await store.enqueue(conversation.id, queue, Priority.NORMAL, conversation.created_at)
        await store.save_conversation(replace(conversation, status=Status.QUEUED, queue=queue))
    assert await store.conversation_ids_by_status(Status.QUEUED) == {a.id, b.id}
    assert await store.conversation_ids_by_status(Status.BOT) == set()
    assert await store.waiting_ids() == {a.id, b.id}
    await store.take(b.id, "anne", minutes(2))
    assert await store.waiting_ids() == {a.id}  # taken: no entry waiting, whatever the record says yet
    assert await store.holders() == {}  # taken, the record still queued (a take under way): not held yet
    await store.save_conversation(replace(b, status=Status.WITH_LISTENER, queue="lgbt", listener="anne"))
    assert await store.conversation_ids_by_status(Status.QUEUED) == {a.id}
    assert await store.conversation_ids_by_status(Status.WITH_LISTENER) == {b.id}
    assert await store.holders() == {b.id: "anne"}  # its holder from its entry, no record read
    await store.requeue(b.id)
    assert await store.waiting_ids() == {a.id, b.id}
    assert await store.holders() == {b.id: None}  # a hand-back cut after its queue step: the record held, no taker
    await store.remove_from_queue(a.id)
    assert await store.waiting_ids() == {b.id}


async def test_enqueue_again_replaces_the_entry(store: Store) -> None:
    await store.enqueue("a", "general", Priority.NORMAL, minutes(0))
    await store.enqueue("b", "general", Priority.NORMAL, minutes(1))
    await store.enqueue("b", "general", Priority.URGENT, minutes(1))
    await store.enqueue("a", "lgbt", Priority.NORMAL, minutes(0))
    assert [(e.conversation_id, e.priority) for e in await store.waiting("general")] == [("b", Priority.URGENT)]
    assert [e.conversation_id for e in await store.waiting("lgbt")] == ["a"]


@PROPERTY
@given(arrivals=st.lists(st.tuples(st.sampled_from(list(Priority)), st.integers(0, 3)), min_size=1, max_size=8))
async def test_queue_order_property(store: Store, arrivals: list[tuple[Priority, int]]) -> None:
    queue = unique("q")
    ids = [f"{queue}-{n}" for n in range(len(arrivals))]
    for conversation_id, (priority, minute) in zip(ids, arrivals, strict=True):
        await store.enqueue(conversation_id, queue, priority, minutes(minute))
    expected = sorted(range(len(ids)), key=lambda n: (arrivals[n][0].rank, arrivals[n][1], n))
    assert [e.conversation_id for e in await store.waiting(queue)] == [ids[n] for n in expected]
    assert [await store.position(ids[n]) for n in expected] == list(range(1, len(ids) + 1))


_SECONDS = st.one_of(st.sampled_from([0, 1, 3599, 3600, 3601, 7200]), st.integers(0, 3 * 3600))


@PROPERTY
@given(
    arrivals=st.lists(st.tuples(st.sampled_from(list(Priority)), _SECONDS), min_size=1, max_size=12),
    changes=st.lists(st.tuples(st.integers(0, 11), st.sampled_from(["take", "requeue", "remove", "urgent"]))),
)
@example(arrivals=[(Priority.NORMAL, 0), (Priority.NORMAL, 1), (Priority.NORMAL, 3600)], changes=[(0, "urgent")])
@example(arrivals=[(Priority.HIGH, 0), (Priority.HIGH, 5), (Priority.HIGH, 5)], changes=[(1, "take"), (0, "remove")])
async def test_positions_follow_takes_hand_backs_removals_and_raises(
    store: Store, arrivals: list[tuple[Priority, int]], changes: list[tuple[int, str]]
) -> None:
    """Positions stay the ranks in the queue's order while entries arriving over hours (and within one second)
    are taken, handed back, removed and raised in place: SQLite keeps counts per hour and second for them."""
    queue = unique("q")
    ids = [f"{queue}-{n}" for n in range(len(arrivals))]
    for conversation_id, (priority, second) in zip(ids, arrivals, strict=True):
        await store.enqueue(conversation_id, queue, priority, T0 + timedelta(seconds=second))
    for n, change in changes:
        conversation_id = ids[n % len(ids)]
        waiting = {e.conversation_id: e for e in await store.waiting(queue)}
        if change == "take" and conversation_id in waiting:
            await store.take(conversation_id, "anne", T0)
        elif change == "requeue" and conversation_id not in waiting:
            with contextlib.suppress(Conflict):  # removed already
                await store.requeue(conversation_id)
        elif change == "remove":
            await store.remove_from_queue(conversation_id)
        elif change == "urgent" and conversation_id in waiting:
            await store.enqueue(conversation_id, queue, Priority.URGENT, waiting[conversation_id].at)
    order = [e.conversation_id for e in await store.waiting(queue)]
    assert [await store.position(c) for c in order] == list(range(1, len(order) + 1))


# Listener accounts


async def test_listener_accounts(store: Store) -> None:
    anne = Listener("anne", "$argon2id$v=19$x", supervisor=True, capacity=3, created_at=T0)
    await store.add_listener(anne)
    await store.add_listener(Listener("bruno", "$argon2id$v=19$y"))
    with pytest.raises(Conflict):
        await store.add_listener(Listener("anne", "other"))
    assert await store.get_listener("anne") == anne
    assert [account.name for account in await store.list_listeners()] == ["anne", "bruno"]
    assert await store.update_listener(replace(anne, capacity=1, supervisor=False))
    assert await store.get_listener("anne") == replace(anne, capacity=1, supervisor=False)
    assert not await store.update_listener(Listener("carla", "h"))
    assert await store.remove_listener("bruno") and not await store.remove_listener("bruno")
    assert await store.get_listener("bruno") is None and await store.get_listener("carla") is None


async def test_an_account_written_with_its_audit_line(store: Store) -> None:
    """``update_listener(audit=...)``: the line written with the account, and only if there was one."""
    anne = Listener("anne", "$argon2id$v=19$x", capacity=3, created_at=T0)
    await store.add_listener(anne)
    line = AuditEntry(T0, "cli", "password_changed", "anne")
    assert await store.update_listener(replace(anne, password_hash="$argon2id$v=19$z"), audit=line)
    assert not await store.update_listener(Listener("carla", "h"), audit=replace(line, subject="carla"))
    assert await store.get_listener("anne") == replace(anne, password_hash="$argon2id$v=19$z")
    assert await store.audit_log() == [line]


async def test_console_sessions_end_one_by_one_everywhere_and_by_expiry(store: Store) -> None:
    until = minutes(60)
    for key, name in [("k1", "anne"), ("k2", "anne"), ("k3", "bruno")]:
        await store.put_session(ConsoleSession(key, name, until), T0)
    assert await store.get_session("k1", T0) == ConsoleSession("k1", "anne", until)
    assert await store.get_session("k1", minutes(60)) is None  # expired
    assert await store.get_session("nope", T0) is None
    assert await store.end_session("k1") and not await store.end_session("k1")
    assert await store.get_session("k1", T0) is None and await store.get_session("k2", T0) is not None
    await store.put_session(ConsoleSession("k4", "anne", until), T0)
    assert await store.end_sessions("anne") == 2
    assert await store.get_session("k2", T0) is None and await store.get_session("k4", T0) is None
    assert await store.end_sessions("anne") == 0
    assert await store.get_session("k3", T0) == ConsoleSession("k3", "bruno", until)


# The outbox


def outbound(item_id: str, conversation_id: str, at: datetime = T0, **changes: Any) -> OutboxItem:
    return replace(OutboxItem(item_id, conversation_id, {"text": f"hello {item_id}", "n": [1, 2]}, at), **changes)


async def test_outbox_hands_out_one_item_per_conversation_in_order(store: Store) -> None:
    for item in (outbound("a1", "A"), outbound("a2", "A"), outbound("b1", "B"), outbound("a3", "A")):
        await store.outbox_put(item)
    first = await store.outbox_due(T0, 10)
    assert sorted(i.id for i in first) == ["a1", "b1"]
    assert first[0].payload == {"text": f"hello {first[0].id}", "n": [1, 2]}
    assert await store.outbox_due(T0, 10) == []  # claimed, and the next ones wait for them
    assert await store.outbox_mark_sent("A", "a1", "wamid.a1")
    assert [i.id for i in await store.outbox_due(T0, 10)] == ["a2"]
    assert await store.outbox_mark_sent("A", "a2", None) and await store.outbox_mark_sent("B", "b1", "m.b1")
    assert [i.id for i in await store.outbox_due(T0, 10)] == ["a3"]


async def test_outbox_hands_out_a_conversations_due_run_in_order_and_nothing_behind_it(store: Store) -> None:
    for item in (outbound("a1", "A"), outbound("a2", "A"), outbound("b1", "B"),
                 outbound("a3", "A", next_attempt_at=minutes(5)), outbound("a4", "A")):  # fmt: skip
        await store.outbox_put(item)
    due = await store.outbox_due(T0, 10, run=8, lease_seconds=600)
    assert [i.id for i in due if i.conversation_id == "A"] == ["a1", "a2"]  # up to the first not due, in order
    assert sorted(i.id for i in due) == ["a1", "a2", "b1"]
    ids = [i.id for i in due]
    assert ids.index("a2") == ids.index("a1") + 1  # a conversation's run in one piece
    assert {i.next_attempt_at for i in due} == {T0 + timedelta(seconds=600)}  # one lease, the fencing token
    assert await store.outbox_due(T0, 10, run=8) == []  # held, and a3 (not due) holds a4 behind it
    lease = T0 + timedelta(seconds=600)
    assert await store.outbox_mark_sent("A", "a1", "m.a1", lease=lease, next_lease=lease)
    assert await store.outbox_due(T0, 10, run=8) == []  # a2 is still held by the run
    assert await store.outbox_mark_sent("A", "a2", "m.a2", lease=lease)
    assert await store.outbox_due(minutes(4), 10, run=8) == []  # a3 not due yet, a4 behind it
    assert [i.id for i in await store.outbox_due(minutes(5), 10, run=8)] == ["a3", "a4"]


async def test_a_run_given_back_after_a_failure_follows_the_retried_item_in_order(store: Store) -> None:
    for n in range(1, 5):
        await store.outbox_put(outbound(f"a{n}", "A"))
    lease = T0 + timedelta(seconds=60)
    assert [i.id for i in await store.outbox_due(T0, 10, run=8, lease_seconds=60)] == ["a1", "a2", "a3", "a4"]
    assert await store.outbox_mark_sent("A", "a1", "m.a1", lease=lease, next_lease=lease)
    assert await store.outbox_reschedule("A", "a2", minutes(1), 1, "503", lease=lease)  # failed for now
    for n in (3, 4):  # the rest of the run given back, due once they head their line again
        assert await store.outbox_reschedule("A", f"a{n}", T0, 0, "", lease=lease)
    assert await store.outbox_due(T0, 10, run=8) == []  # a2 first, at its time
    assert [i.id for i in await store.outbox_due(minutes(1), 10, run=8)] == ["a2", "a3", "a4"]


async def test_a_run_skips_what_was_resolved_and_is_listed_again(store: Store) -> None:
    await store.append_transcript(entry("c1", 1))
    await store.outbox_put(outbound("c1-e1", "c1"))
    assert [i.id for i in await store.outbox_due(T0, 10, run=8)] == ["c1-e1"]
    assert await store.outbox_mark_sent("c1", "c1-e1", "m.1")
    await store.outbox_put(outbound("c1-e1", "c1"))  # a message reprocessed after a crash puts its replies again
    await store.outbox_put(outbound("c1-e2", "c1"))
    assert [i.id for i in await store.outbox_due(minutes(1), 10, run=8)] == ["c1-e2"]


async def test_a_batchs_replies_and_other_entries_keep_their_order(store: Store) -> None:
    """A message's writes held in one batch (``Dispatcher.emit``): replies (entry, then item), an entry without an
    item between them, an item without an entry: the transcript and the outbox keep the order they were put in."""
    async with store.batch():
        await store.append_transcript(entry("c1", 1))
        await store.outbox_put(outbound("c1-e1", "c1"))
        await store.append_transcript(entry("c1", 2, author=Author.SYSTEM))  # no reply to send
        await store.append_transcript(entry("c1", 3))
        await store.outbox_put(outbound("c1-e3", "c1"))
        await store.outbox_put(outbound("lone", "c1"))  # an item without an entry (a notice, say)
        await store.append_transcript(entry("c1", 4))
        await store.outbox_put(outbound("c1-e4", "c1"))
    assert [e.id for e in await store.transcript("c1")] == ["c1-e1", "c1-e2", "c1-e3", "c1-e4"]
    assert [i.id for i in await store.outbox_due(T0, 10, run=8)] == ["c1-e1", "c1-e3", "lone", "c1-e4"]


async def test_a_risky_turns_reply_goes_before_the_backlog_with_its_conversations_earlier_replies_in_order(
    store: Store,
) -> None:
    """An item due before it was written (``Dispatcher.emit``: a turn in which a risk was read) is handed out before
    the ordinary conversations' items, and its conversation's earlier items waiting go with it, first, in order (until
    2026-12-05 they all waited behind the whole backlog, oldest first); in a batch (one message's replies) too."""
    later, ahead = T0 + timedelta(seconds=1), T0 - timedelta(days=1)
    for n in range(5):
        await store.outbox_put(outbound(f"o{n}", f"O{n}"))
    await store.outbox_put(outbound("z1", "Z"))
    await store.outbox_put(outbound("z2", "Z", later, next_attempt_at=ahead))
    async with store.batch():
        await store.append_transcript(entry("B", 1))
        await store.outbox_put(outbound("B-e1", "B", later, next_attempt_at=ahead))
    first = await store.outbox_due(later, 2, run=8)
    assert [i.id for i in first if i.conversation_id == "Z"] == ["z1", "z2"]  # Z's earlier reply first, in one run
    assert sorted(i.id for i in first) == ["B-e1", "z1", "z2"]
    assert {i.conversation_id for i in await store.outbox_due(later, 2, run=8)} <= {f"O{n}" for n in range(5)}


async def test_a_risky_turns_reply_leaves_its_conversations_leased_or_retried_items_as_they_are(store: Store) -> None:
    later = T0 + timedelta(seconds=1)
    await store.outbox_put(outbound("a1", "A"))
    await store.outbox_put(outbound("o1", "O"))
    [a1, _] = sorted(await store.outbox_due(T0, 10, lease_seconds=30), key=lambda i: i.id)
    await store.outbox_put(outbound("a2", "A", later, next_attempt_at=T0 - timedelta(days=1)))
    assert await store.outbox_due(later, 10) == []  # a1 still leased: nothing of A's before it
    assert await store.outbox_reschedule("A", "a1", minutes(1), 1, "503", lease=a1.next_attempt_at)
    assert await store.outbox_due(later, 10) == []  # and its backoff too
    due = await store.outbox_due(minutes(1), 10, run=8)
    assert [i.id for i in due if i.conversation_id == "A"] == ["a1", "a2"]  # then in order, once each


async def test_the_outbox_result_shows_on_the_transcript_entry_in_the_same_step(store: Store) -> None:
    for n in (1, 2):
        await store.append_transcript(entry("c1", n))
        await store.outbox_put(outbound(f"c1-e{n}", "c1"))
    await store.outbox_due(T0, 10)
    assert await store.outbox_mark_sent("c1", "c1-e1", "m.sent")
    assert not await store.outbox_mark_sent("c1", "c1-e1", "m.again")  # recorded once: never sent again
    assert await store.outbox_mark_failed("c1", "c1-e2", "refused")
    sent, failed = await store.transcript("c1")
    assert (sent.delivery, sent.provider_message_id) == (Delivery.SENT, kept_provider_id(store, "m.sent"))
    assert failed.delivery is Delivery.FAILED
    found = await store.find_by_provider_id("m.sent")
    assert found is not None and found.id == "c1-e1"


async def test_an_outbox_item_sent_is_never_put_again(store: Store) -> None:
    await store.append_transcript(entry("c1", 1))
    await store.outbox_put(outbound("c1-e1", "c1"))
    await store.outbox_put(outbound("lone", "c2"))  # no transcript entry (a notice to a refused sender, say)
    assert sorted(i.id for i in await store.outbox_due(T0, 10)) == ["c1-e1", "lone"]
    assert await store.outbox_mark_sent("c1", "c1-e1", "m.1") and await store.outbox_mark_sent("c2", "lone", "m.2")
    await store.outbox_put(outbound("c1-e1", "c1"))  # a message reprocessed after a crash puts its replies again
    await store.outbox_put(outbound("lone", "c2"))
    assert await store.outbox_due(minutes(1), 10) == []


async def test_outbox_respects_next_attempt_and_limit(store: Store) -> None:
    await store.outbox_put(outbound("later", "A", next_attempt_at=minutes(5)))
    for n in range(3):
        await store.outbox_put(outbound(f"x{n}", f"X{n}", at=minutes(n)))
    assert [i.id for i in await store.outbox_due(minutes(4), 2, lease_seconds=600)] == ["x0", "x1"]
    assert [i.id for i in await store.outbox_due(minutes(4), 10, lease_seconds=600)] == ["x2"]
    assert [i.id for i in await store.outbox_due(minutes(5), 10)] == ["later"]


async def test_outbox_reschedule_holds_back_the_conversation(store: Store) -> None:
    await store.outbox_put(outbound("a1", "A"))
    await store.outbox_put(outbound("a2", "A"))
    [claimed] = await store.outbox_due(T0, 10)
    assert claimed.next_attempt_at == T0 + timedelta(seconds=60)  # the lease
    assert await store.outbox_reschedule("A", "a1", minutes(3), 1, "HTTP 503")
    assert await store.outbox_due(minutes(2), 10) == []
    [retried] = await store.outbox_due(minutes(3), 10)
    assert (retried.id, retried.attempts, retried.last_error) == ("a1", 1, "HTTP 503")


async def test_outbox_reschedule_records_how_far_a_split_message_got(store: Store) -> None:
    await store.outbox_put(outbound("a1", "A"))
    [claimed] = await store.outbox_due(T0, 10)
    assert claimed.parts_sent == 0
    assert await store.outbox_reschedule("A", "a1", minutes(1), 1, "HTTP 500", parts_sent=2)
    [retried] = await store.outbox_due(minutes(1), 10)
    assert (retried.attempts, retried.parts_sent) == (1, 2)
    assert await store.outbox_reschedule("A", "a1", minutes(2), 2, "network error")  # no progress told: kept
    assert await store.outbox_reschedule("A", "a1", minutes(2), 3, "HTTP 500", parts_sent=1)  # never goes back
    [again] = await store.outbox_due(minutes(2), 10)
    assert (again.attempts, again.parts_sent) == (3, 2)
    await store.outbox_mark_sent("A", "a1", "m.last")
    sent = await store.outbox_get("A", "a1")
    assert sent is not None and (sent.status, sent.parts_sent) == (OutboxStatus.SENT, 2)


async def test_outbox_lease_expires_for_a_dead_worker(store: Store) -> None:
    await store.outbox_put(outbound("a1", "A"))
    assert [i.id for i in await store.outbox_due(T0, 10, lease_seconds=30)] == ["a1"]
    assert await store.outbox_due(T0 + timedelta(seconds=29), 10) == []
    assert [i.id for i in await store.outbox_due(T0 + timedelta(seconds=30), 10)] == ["a1"]


async def test_outbox_lease_is_renewed_and_fences_a_holder_that_lost_it(store: Store) -> None:
    await store.outbox_put(outbound("a1", "A"))
    [held] = await store.outbox_due(T0, 10, lease_seconds=30)
    assert held.next_attempt_at is not None
    renewed = T0 + timedelta(seconds=40)
    assert await store.outbox_renew("A", "a1", held.next_attempt_at, renewed)  # a send still in flight
    assert await store.outbox_due(T0 + timedelta(seconds=35), 10) == []  # the renewed lease runs
    [taken] = await store.outbox_due(renewed, 10, lease_seconds=30)  # lapsed: another worker claims it
    assert taken.next_attempt_at == renewed + timedelta(seconds=30)
    # The first holder's lease is gone: it can neither extend nor record what the new holder sends.
    assert not await store.outbox_renew("A", "a1", renewed, minutes(5))
    assert not await store.outbox_reschedule("A", "a1", minutes(5), 1, "HTTP 503", lease=renewed)
    assert not await store.outbox_mark_failed("A", "a1", "refused", lease=renewed)
    assert not await store.outbox_mark_sent("A", "a1", "m.first", lease=renewed)
    assert await store.outbox_mark_sent("A", "a1", "m.second", lease=taken.next_attempt_at)
    sent = await store.outbox_get("A", "a1")
    assert sent is not None and (sent.status, sent.provider_message_id) == (OutboxStatus.SENT, "m.second")
    assert not await store.outbox_renew("A", "a1", taken.next_attempt_at, minutes(6))  # resolved: nothing to renew


async def test_outbox_failure_moves_on_and_is_recorded(store: Store) -> None:
    await store.outbox_put(outbound("a1", "A"))
    await store.outbox_put(outbound("a2", "A"))
    await store.outbox_due(T0, 10)
    assert await store.outbox_mark_failed("A", "a1", "window closed")
    assert not await store.outbox_mark_failed("A", "a1", "again")
    assert not await store.outbox_mark_sent("A", "a1", "late")
    failed = await store.outbox_get("A", "a1")
    assert failed is not None and (failed.status, failed.last_error) == (OutboxStatus.FAILED, "window closed")
    assert [i.id for i in await store.outbox_due(T0, 10)] == ["a2"]
    await store.outbox_mark_sent("A", "a2", "m2")
    sent = await store.outbox_get("A", "a2")
    assert sent is not None and (sent.status, sent.provider_message_id) == (OutboxStatus.SENT, "m2")
    assert await store.outbox_get("A", "nothing") is None
    assert not await store.outbox_reschedule("A", "nothing", T0, 1, "x")


async def test_an_item_this_version_cannot_read_is_set_aside_and_kept(store: Store) -> None:
    """A payload from a newer version round-trips untouched; once set aside (failed), the next item flows."""
    newer = {"version": 99, "channel": "carrier-pigeon", "parts": [{"kind": "hologram"}]}
    await store.outbox_put(OutboxItem("new1", "A", newer, T0))
    await store.outbox_put(outbound("a2", "A"))
    [claimed] = await store.outbox_due(T0, 10)
    assert (claimed.id, claimed.payload) == ("new1", newer)
    assert await store.outbox_mark_failed("A", "new1", "set aside: unreadable by this version (KeyError)")
    [next_item] = await store.outbox_due(T0, 10)
    assert next_item.id == "a2"
    kept = await store.outbox_get("A", "new1")
    assert kept is not None and (kept.status, kept.payload) == (OutboxStatus.FAILED, newer)


async def test_outbox_oldest_pending(store: Store) -> None:
    assert await store.outbox_oldest_pending() is None
    await store.outbox_put(outbound("b1", "B", at=minutes(2)))
    await store.outbox_put(outbound("a1", "A", at=minutes(1)))
    await store.outbox_put(outbound("a2", "A", at=minutes(3)))
    assert await store.outbox_oldest_pending() == minutes(1)
    await store.outbox_due(minutes(3), 10)
    await store.outbox_mark_sent("A", "a1", None)
    assert await store.outbox_oldest_pending() == minutes(2)
    await store.outbox_mark_failed("B", "b1", "refused")
    assert await store.outbox_oldest_pending() == minutes(3)
    await store.outbox_due(minutes(3), 10)
    await store.outbox_mark_sent("A", "a2", None)
    assert await store.outbox_oldest_pending() is None
    await store.outbox_put(outbound("a2", "A", at=minutes(3)))  # a retried processing puts a sent reply again
    assert await store.outbox_oldest_pending() is None


async def test_outbox_put_twice_keeps_one(store: Store) -> None:
    await store.outbox_put(outbound("a1", "A"))
    await store.outbox_put(outbound("a1", "A"))
    assert [i.id for i in await store.outbox_due(T0, 10)] == ["a1"]
    await store.outbox_mark_sent("A", "a1", None)
    assert await store.outbox_due(T0, 10) == []


async def test_everything_survives_a_restart(store: Store, store_url: str) -> None:
    await store.outbox_put(outbound("a1", "A"))
    await store.outbox_put(outbound("a2", "A"))
    conversation, _ = await store.active_conversation(TG, "chat-1", T0)
    await store.enqueue(conversation.id, "general", Priority.HIGH, T0)
    await store.set_timer(conversation.id, TimerKind.BOT_REMINDER, minutes(5))
    await store.close()
    reopened = await open_store(store_url, keys=store_keys(store_url))
    try:
        assert [i.id for i in await reopened.outbox_due(T0, 10)] == ["a1"]
        assert (await reopened.active_conversation(TG, "chat-1", minutes(1)))[0] == conversation
        assert await reopened.position(conversation.id) == 1
        assert await reopened.due_timers(minutes(5)) == [Timer(conversation.id, TimerKind.BOT_REMINDER, minutes(5))]
    finally:
        await reopened.close()


@PROPERTY
@given(owners=st.lists(st.integers(0, 3), min_size=1, max_size=12), limit=st.integers(1, 4))
async def test_outbox_delivers_each_conversation_in_put_order(store: Store, owners: list[int], limit: int) -> None:
    run = unique("run")
    for n, owner in enumerate(owners):
        await store.outbox_put(outbound(f"{run}-{n}", f"{run}-conv{owner}"))
    delivered: dict[str, list[str]] = {}
    while batch := await store.outbox_due(T0, limit):
        assert len({item.conversation_id for item in batch}) == len(batch)
        for item in batch:
            delivered.setdefault(item.conversation_id, []).append(item.id)
            await store.outbox_mark_sent(item.conversation_id, item.id, None)
    expected: dict[str, list[str]] = {}
    for n, owner in enumerate(owners):
        expected.setdefault(f"{run}-conv{owner}", []).append(f"{run}-{n}")
    assert delivered == expected


# Timers


async def test_timers_fire_replace_and_cancel(store: Store) -> None:
    await store.set_timer("c1", TimerKind.BOT_REMINDER, minutes(5))
    await store.set_timer("c1", TimerKind.BOT_ABANDON, minutes(30))
    await store.set_timer("c2", TimerKind.BOT_REMINDER, minutes(1))
    assert await store.due_timers(minutes(0)) == []
    assert await store.due_timers(minutes(5)) == [Timer("c2", TimerKind.BOT_REMINDER, minutes(1)),
                                                  Timer("c1", TimerKind.BOT_REMINDER, minutes(5))]  # fmt: skip
    assert await store.due_timers(minutes(60), limit=1) == [Timer("c2", TimerKind.BOT_REMINDER, minutes(1))]
    await store.set_timer("c1", TimerKind.BOT_REMINDER, minutes(10))  # re-armed
    await store.cancel_timers("c2", TimerKind.BOT_REMINDER)
    assert await store.due_timers(minutes(9)) == []
    await store.cancel_timers("c1")
    assert await store.due_timers(minutes(60)) == []


async def test_timer_done_removes_only_what_was_read(store: Store) -> None:
    await store.set_timer("c1", TimerKind.BOT_REMINDER, minutes(5))
    [timer] = await store.due_timers(minutes(5))
    await store.set_timer("c1", TimerKind.BOT_REMINDER, minutes(15))  # re-armed meanwhile
    assert not await store.timer_done(timer)
    [rearmed] = await store.due_timers(minutes(15))
    assert await store.timer_done(rearmed) and not await store.timer_done(rearmed)
    assert await store.due_timers(minutes(60)) == []


async def test_a_timer_postponed_once_by_its_handler_stays_armed_until_done(store: Store) -> None:
    await store.set_timer("c1", TimerKind.BOT_REMINDER, minutes(5))
    [timer] = await store.due_timers(minutes(5))
    retry = Timer("c1", TimerKind.BOT_REMINDER, minutes(6))
    assert await store.timer_postpone(timer, retry.due_at)
    assert not await store.timer_postpone(timer, minutes(7))  # one handler: the others see it moved
    assert await store.due_timers(minutes(5)) == []
    assert await store.due_timers(minutes(6)) == [retry]  # its handling failed or died: retried then
    assert await store.timer_done(retry) and await store.due_timers(minutes(60)) == []
    await store.set_timer("c1", TimerKind.BOT_REMINDER, minutes(10))
    [again] = await store.due_timers(minutes(10))
    assert await store.timer_postpone(again, minutes(11))
    await store.set_timer("c1", TimerKind.BOT_REMINDER, minutes(30))  # the handler re-armed it
    assert not await store.timer_done(Timer("c1", TimerKind.BOT_REMINDER, minutes(11)))
    assert await store.due_timers(minutes(30)) == [Timer("c1", TimerKind.BOT_REMINDER, minutes(30))]


async def test_a_timer_of_a_kind_this_version_does_not_know_is_left_for_one_that_does(store: Store) -> None:
    await store.set_timer("c1", "armed_by_a_newer_version", minutes(1))  # type: ignore[arg-type]
    await store.set_timer("c1", TimerKind.IDLE_CLOSE, minutes(2))
    assert await store.due_timers(minutes(5)) == [Timer("c1", TimerKind.IDLE_CLOSE, minutes(2))]
    [timer] = await store.due_timers(minutes(5))
    assert isinstance(timer.kind, TimerKind)


# Events


async def test_events_reach_every_subscriber_after_it_subscribed(store: Store) -> None:
    await store.publish(DeliveryChanged("c", "before", Delivery.SENT))
    async with await store.subscribe() as one, await store.subscribe() as two:
        for n in range(3):  # one conversation's events keep their order (across conversations, a Redis Cluster of
            await store.publish(DeliveryChanged("c", f"e{n}", Delivery.SENT))  # several nodes may interleave them)
        for subscription in (one, two):
            expected = [DeliveryChanged("c", f"e{n}", Delivery.SENT) for n in range(3)]
            assert [await next_event(subscription) for _ in range(3)] == expected


async def test_closing_a_subscription_ends_it_and_leaves_no_task(store: Store) -> None:
    tasks_before = len(asyncio.all_tasks())
    subscription = await store.subscribe()
    reader = asyncio.create_task(anext(subscription))
    await asyncio.sleep(0.01)  # let the reader block
    await subscription.aclose()
    with pytest.raises(StopAsyncIteration):
        await asyncio.wait_for(reader, 5)
    with pytest.raises(StopAsyncIteration):
        await anext(subscription)
    await store.publish(QueueChanged())  # nobody listens: no error
    assert len(asyncio.all_tasks()) == tasks_before


# Per-conversation lock


async def test_lock_serialises_one_conversation(store: Store) -> None:
    log: list[str] = []
    held, release = asyncio.Event(), asyncio.Event()

    async def first() -> None:
        async with store.lock("c1"):
            log.append("first in")
            held.set()
            await release.wait()
            log.append("first out")

    async def second() -> None:
        await held.wait()
        async with store.lock("c1"):
            log.append("second in")

    tasks = [asyncio.create_task(first()), asyncio.create_task(second())]
    await held.wait()
    await asyncio.sleep(0.05)  # room for a broken lock to let "second" in
    release.set()
    await asyncio.gather(*tasks)
    assert log == ["first in", "first out", "second in"]


async def test_lock_makes_read_modify_write_safe(store: Store) -> None:
    counter = {"value": 0}

    async def increment() -> None:
        async with store.lock("c1"):
            value = counter["value"]
            await asyncio.sleep(0)
            counter["value"] = value + 1

    await asyncio.gather(*(increment() for _ in range(10)))
    assert counter["value"] == 10


async def test_lock_times_out_and_other_conversations_are_free(store: Store) -> None:
    async with store.lock("c1"):
        with pytest.raises(StoreError, match="timed out"):
            async with store.lock("c1", timeout=0.1):
                pass
        async with store.lock("c2", timeout=1):
            pass
    async with store.lock("c1", timeout=1):  # released on the way out, even after an error
        pass


async def test_lock_is_released_when_the_body_fails(store: Store) -> None:
    with pytest.raises(RuntimeError):
        async with store.lock("c1"):
            raise RuntimeError("engine bug")
    async with store.lock("c1", timeout=1):
        pass


# Blocks and the audit log


async def test_blocks_expire_are_listed_newest_first_and_lift(store: Store) -> None:
    day = Block("k-day", TG, minutes(24 * 60), "insults", "anne", T0, "Loutre-2291")
    forever = Block("k-forever", ChannelName.WEBCHAT, None, "spam", "sam", minutes(1))
    await store.put_block(day)
    await store.put_block(forever)
    assert await store.get_block("k-day", minutes(60)) == day
    assert await store.get_block("k-day", minutes(24 * 60)) is None  # expiry honoured
    assert await store.get_block("k-unknown", T0) is None
    assert await store.list_blocks(minutes(2)) == [forever, day]
    assert await store.list_blocks(minutes(24 * 60 + 1)) == [forever]
    longer = replace(day, until=None, reason="threats")
    await store.put_block(longer)  # replaces
    assert await store.get_block("k-day", minutes(10**6)) == longer
    assert await store.remove_block("k-day") is True
    assert await store.remove_block("k-day") is False
    assert await store.get_block("k-day", T0) is None


async def test_audit_log_newest_first_and_limited(store: Store) -> None:
    entries = [AuditEntry(minutes(n), "anne", "block", f"k{n}", "24h: insults") for n in range(5)]
    for entry in entries:
        await store.audit(entry)
    assert await store.audit_log() == entries[::-1]
    assert await store.audit_log(limit=2) == [entries[4], entries[3]]


# Health


async def test_ping_and_close_twice(store: Store) -> None:
    await store.ping()
    await store.close()
    await store.close()
    with pytest.raises(StoreError):
        await store.ping()


async def test_the_eviction_policy_is_named_when_redis_may_drop_keys(store: Store, store_url: str) -> None:
    """None on SQLite and on a Redis that refuses writes once full (``noeviction``, the server's default); else
    the policy, read from ``INFO memory`` (on a Cluster, from every node: a client's answer per node)."""
    assert await store.eviction_policy() is None
    if store_url.startswith("sqlite"):
        return
    server = redis.Redis.from_url(store_url)
    try:
        server.config_set("maxmemory-policy", "allkeys-lfu")
        assert await store.eviction_policy() == "allkeys-lfu"
    finally:
        server.config_set("maxmemory-policy", "noeviction")
        server.close()


# Batches: a message's writes sent together


async def test_a_batch_writes_everything_at_its_end_and_reads_see_what_came_before(store: Store) -> None:
    conversation, _ = await store.active_conversation(TG, "batch-1", T0)
    async with await store.subscribe() as subscription:
        async with store.batch():
            await store.append_transcript(entry(conversation.id, 1))
            await store.outbox_put(outbound("b1", conversation.id))
            await store.set_timer(conversation.id, TimerKind.BOT_REMINDER, minutes(10))
            await store.publish(NoticesChanged(conversation.id))
            assert [e.id for e in await store.transcript(conversation.id)] == [f"{conversation.id}-e1"]  # a read
            await store.enqueue(conversation.id, "general", Priority.NORMAL, T0)
            assert await store.position(conversation.id) == 1
            await store.save_conversation(replace(conversation, status=Status.QUEUED))
            await store.cancel_timers(conversation.id)
        assert await next_event(subscription) == NoticesChanged(conversation.id)
    saved = await store.get_conversation(conversation.id)
    assert saved is not None and saved.status is Status.QUEUED
    assert [i.id for i in await store.outbox_due(T0, 10)] == ["b1"]
    assert await store.due_timers(minutes(20)) == []


async def test_a_batch_that_raises_writes_nothing(store: Store) -> None:
    conversation, _ = await store.active_conversation(TG, "batch-2", T0)
    with pytest.raises(RuntimeError):
        async with store.batch():
            await store.append_transcript(entry(conversation.id, 1))
            await store.outbox_put(outbound("b2", conversation.id))
            await store.save_conversation(replace(conversation, status=Status.QUEUED))
            raise RuntimeError("the engine failed")
    assert await store.transcript(conversation.id) == []
    assert await store.outbox_due(T0, 10) == []
    assert (await store.get_conversation(conversation.id)) == conversation


async def test_when_listeners_were_last_present_keeps_the_latest_time(store: Store) -> None:
    """Instances record when listeners were at a console (``gateway/alerts.py`` counts an absence from it): each
    name keeps the latest time recorded, whichever instance wrote it and in whatever order."""
    assert await store.last_present(["anne"]) == {}
    await store.mark_present({"anne": minutes(10), "bruno": minutes(3)})
    await store.mark_present({"anne": minutes(4)})  # an older time, written late: kept out
    await store.mark_present({})
    assert await store.last_present(["anne", "bruno", "chloé"]) == {"anne": minutes(10), "bruno": minutes(3)}
    await store.mark_present({"bruno": minutes(12)})
    assert await store.last_present(["bruno"]) == {"bruno": minutes(12)}
    assert await store.last_present([]) == {}


async def test_an_audit_line_is_held_in_a_batch_and_dropped_with_it(store: Store) -> None:
    """A hand-back's audit line goes with its writes (``Actions.hand_back_absent``): with them or not at all."""
    conversation, _ = await store.active_conversation(TG, "batch-9", T0)
    line = AuditEntry(T0, "gateway", "hand_back", conversation.id, "from anne")
    with pytest.raises(RuntimeError):
        async with store.batch():
            await store.audit(line)
            await store.save_conversation(replace(conversation, status=Status.QUEUED))
            raise RuntimeError("the instance died")
    assert await store.audit_log() == []
    async with store.batch():
        await store.save_conversation(replace(conversation, status=Status.QUEUED))
        await store.audit(line)
    assert await store.audit_log() == [line]


async def test_an_audit_line_asked_once_under_a_key_is_written_once(store: Store) -> None:
    """``audit_once`` (a partner's ``referral_received`` line, its retries completing a request cut before it,
    since 2026-12-07): the first call writes the line, the same key again (after it, or two at once) writes nothing;
    another key its own line."""
    line = AuditEntry(T0, "partner:116006", "referral_received", "Lapin-1", "")
    assert await store.audit_once(line, "referral-received:in-1", 3600)
    again = await asyncio.gather(*(store.audit_once(line, "referral-received:in-1", 3600) for _ in range(2)))
    assert again == [False, False]
    assert await store.audit_once(replace(line, subject="Lapin-2"), "referral-received:in-2", 3600)
    assert [e.subject for e in await store.audit_log()] == ["Lapin-2", "Lapin-1"]


async def test_an_audit_line_refused_by_the_store_leaves_its_key_for_the_retry(store: Store, store_url: str) -> None:
    """A line whose write fails (here the audit log's key of another type: ``WRONGTYPE``; on a Cluster also a
    connection cut between the key's slot and the log's) raises, and leaves its key unset: the retry writes the line.
    Until 2026-12-08 the key was set first (in the script, and on a Cluster in its own call): the write failed after
    it and every retry answered "already written", the partner's ``referral_received`` line lost for good. SQLite
    holds both in one transaction."""
    line = AuditEntry(T0, "partner:116006", "referral_received", "Lapin-1", "")
    if store_url.startswith("sqlite"):
        assert await store.audit_once(line, "referral-received:in-1", 3600)
        return
    server = redis.Redis.from_url(store_url)
    try:
        server.set(K.key("audit"), "not a list")
        with pytest.raises(StoreError):
            await store.audit_once(line, "referral-received:in-1", 3600)
        server.delete(K.key("audit"))
    finally:
        server.close()
    assert await store.audit_once(line, "referral-received:in-1", 3600)
    assert [e.subject for e in await store.audit_log()] == ["Lapin-1"]


async def test_sqlite_requeue_in_a_batch_is_dropped_with_it(store: Store, store_url: str) -> None:
    """SQLite holds a hand-back's queue step in its batch (one transaction with the record); Redis makes it at once
    (another slot: a cut after it is completed by the alert checks, ``Actions.complete_hand_back``)."""
    await store.enqueue("rq", "general", Priority.NORMAL, T0)
    await store.take("rq", "anne", T0)
    with pytest.raises(RuntimeError):
        async with store.batch():
            entry = await store.requeue("rq")
            assert entry.taken_by is None and entry.conversation_id == "rq"
            raise RuntimeError("the instance died")
    assert [e.conversation_id for e in await store.waiting()] == ([] if store_url.startswith("sqlite") else ["rq"])
    with pytest.raises(Conflict):
        async with store.batch():
            await store.requeue("none")


async def test_a_locked_batch_makes_its_writes_before_the_lock_is_free(store: Store) -> None:
    conversation, _ = await store.active_conversation(TG, "batch-4", T0)
    saved_when_free: list[Status] = []
    locked = asyncio.Event()

    async def next_holder() -> None:  # a task made outside the batch
        await locked.wait()
        async with store.lock(conversation.id, timeout=5):
            found = await store.get_conversation(conversation.id)
            assert found is not None
            saved_when_free.append(found.status)

    waiter = asyncio.create_task(next_holder())
    async with store.locked_batch(conversation.id):
        locked.set()
        await asyncio.sleep(0)  # the next holder is waiting for the lock now
        await store.append_transcript(entry(conversation.id, 1))
        await store.save_conversation(replace(conversation, status=Status.QUEUED))
    await waiter
    assert saved_when_free == [Status.QUEUED]  # the next holder saw the writes
    assert [e.id for e in await store.transcript(conversation.id)] == [f"{conversation.id}-e1"]


async def test_a_task_created_inside_a_batch_writes_on_its_own(store: Store) -> None:
    """A task inherits the context it was created in, the batch's held writes included: its writes, made after the
    batch was sent, must be made all the same (they joined the sent batch and were never made)."""
    conversation, _ = await store.active_conversation(TG, "batch-6", T0)
    batch_sent = asyncio.Event()

    async def later() -> None:
        await batch_sent.wait()
        await store.append_transcript(entry(conversation.id, 2))
        await store.save_conversation(replace(conversation, status=Status.QUEUED))

    async with store.batch():
        task = asyncio.create_task(later())
        await store.append_transcript(entry(conversation.id, 1))
    batch_sent.set()
    await task
    assert [e.id for e in await store.transcript(conversation.id)] == [f"{conversation.id}-e1", f"{conversation.id}-e2"]
    found = await store.get_conversation(conversation.id)
    assert found is not None and found.status is Status.QUEUED


async def test_a_locked_batch_renews_the_claim_it_is_given(store: Store) -> None:
    """The message path's claim, checked again once the lock is held (Redis: in the round trip that takes it)."""
    conversation, _ = await store.active_conversation(TG, "batch-7", T0)
    assert await store.claim("in:telegram:77", "me", 10) is ClaimState.CLAIMED
    async with store.locked_batch(conversation.id, claim=Claim("in:telegram:77", "me", 10)) as state:
        assert state is ClaimState.CLAIMED
        await store.save_conversation(conversation, done=DoneMark("in:telegram:77", 3600))
    async with store.locked_batch(conversation.id, claim=Claim("in:telegram:77", "me", 10)) as state:
        assert state is ClaimState.DONE
    assert await store.claim("in:telegram:78", "other", 10) is ClaimState.CLAIMED
    async with store.locked_batch(conversation.id, claim=Claim("in:telegram:78", "me", 10)) as state:
        assert state is ClaimState.BUSY
    async with store.locked_batch(conversation.id) as state:
        assert state is ClaimState.CLAIMED


async def test_locked_active_opens_then_finds_the_senders_conversation_and_a_new_one_after_its_end(
    store: Store,
) -> None:
    """The message path's lookup and lock in one (``locked_active``): the conversation as read under the lock."""
    async with store.locked_active(TG, "batch-8", T0, claim=Claim("in:telegram:80", "me", 10)) as (first, state):
        assert state is ClaimState.CLAIMED and first.active
        await store.save_conversation(replace(first, status=Status.QUEUED))
    async with store.locked_active(TG, "batch-8", T0) as (again, state):
        assert (again.id, again.status, state) == (first.id, Status.QUEUED, ClaimState.CLAIMED)
        await store.save_conversation(replace(again, status=Status.CLOSED))
    async with store.locked_active(TG, "batch-8", T0) as (after, _):
        assert after.id != first.id and after.status is Status.BOT
    assert await store.find_active_conversation(TG, "batch-8") == after


async def test_locked_active_for_a_conversation_erased_meanwhile_opens_nothing(store: Store) -> None:
    """``only`` (a web chat message's conversation): erased while the message waited, ConversationEnded and nothing
    opened (until 2026-12-07 a new conversation was); ended, not erased, none other open: EndedMeanwhile, nothing
    opened either (the web chat opens the next one within its new-chat limits; until 2026-12-07 it opened here)."""
    erased, _ = await store.active_conversation(TG, "only-1", T0)
    await store.erase_conversation(erased.id)
    with pytest.raises(ConversationEnded):
        async with store.locked_active(TG, "only-1", T0, claim=Claim("in:telegram:81", "me", 10), only=erased.id):
            raise AssertionError("not entered")
    assert await store.find_active_conversation(TG, "only-1") is None
    ended, _ = await store.active_conversation(TG, "only-2", T0)
    await store.save_conversation(replace(ended, status=Status.CLOSED))
    with pytest.raises(EndedMeanwhile):
        async with store.locked_active(TG, "only-2", T0, claim=Claim("in:telegram:82", "me", 10), only=ended.id):
            raise AssertionError("not entered")
    assert await store.find_active_conversation(TG, "only-2") is None
    async with store.locked_active(TG, "only-2", T0) as (after, _):  # without it: the next one opens
        assert after.id != ended.id and after.active


async def test_locked_active_for_an_erased_conversation_goes_into_no_newer_one(store: Store) -> None:
    """``only`` erased, and the sender already in a newer conversation (another tab began one after the erasure):
    ConversationEnded, nothing of the message in the newer one (until 2026-12-07 it went into it: words written before
    the erasure stored again under the young person's next conversation). Ended, not erased: into the newer one."""
    erased, _ = await store.active_conversation(TG, "only-3", T0)
    await store.erase_conversation(erased.id)
    newer, _ = await store.active_conversation(TG, "only-3", T0)
    with pytest.raises(ConversationEnded):
        async with store.locked_active(TG, "only-3", T0, claim=Claim("in:telegram:83", "me", 10), only=erased.id):
            raise AssertionError("not entered")
    assert await store.find_active_conversation(TG, "only-3") == newer
    ended, _ = await store.active_conversation(TG, "only-4", T0)
    await store.save_conversation(replace(ended, status=Status.CLOSED))
    following, _ = await store.active_conversation(TG, "only-4", T0)
    async with store.locked_active(TG, "only-4", T0, only=ended.id) as (after, _):
        assert after.id == following.id


async def test_locked_active_for_a_conversation_marked_erased_opens_nothing_while_its_record_is_left(
    store: Store,
) -> None:
    """``only`` whose erasure was cut before its record (``erased``: its mark, ``KeyedHash.erased_conversation``, kept;
    the sender's address no longer naming it): ConversationEnded as for an erasure done, the mark decides, nothing
    opened nor written in a newer one. Before 2026-12-07 only the record was read: the message opened a new conversation
    (or went into the newer one). Not marked: ended, not erased (EndedMeanwhile, nothing opened)."""
    for sender, newer in (("only-5", False), ("only-6", True)):
        cut, _ = await store.active_conversation(TG, sender, T0)
        await store.keep_erased("mark-" + cut.id, T0, 60)
        await store.save_conversation(replace(cut, status=Status.CLOSED))  # its address gone, its record left
        following = (await store.active_conversation(TG, sender, T0))[0] if newer else None
        with pytest.raises(ConversationEnded):
            async with store.locked_active(TG, sender, T0, claim=Claim(f"in:telegram:{sender}", "me", 10),
                                           only=cut.id, erased=lambda mark="mark-" + cut.id: mark):  # fmt: skip
                raise AssertionError("not entered")
        assert await store.find_active_conversation(TG, sender) == following
    ended, _ = await store.active_conversation(TG, "only-7", T0)
    await store.save_conversation(replace(ended, status=Status.CLOSED))
    with pytest.raises(EndedMeanwhile):
        async with store.locked_active(TG, "only-7", T0, only=ended.id, erased=lambda: "mark-" + ended.id):
            raise AssertionError("not entered")
    assert await store.find_active_conversation(TG, "only-7") is None


async def test_a_locked_batch_that_raises_writes_nothing_and_frees_the_lock(store: Store) -> None:
    conversation, _ = await store.active_conversation(TG, "batch-5", T0)
    with pytest.raises(RuntimeError):
        async with store.locked_batch(conversation.id):
            await store.append_transcript(entry(conversation.id, 1))
            await store.save_conversation(replace(conversation, status=Status.QUEUED))
            raise RuntimeError("the engine failed")
    assert await store.transcript(conversation.id) == []
    assert (await store.get_conversation(conversation.id)) == conversation
    async with store.lock(conversation.id, timeout=1):  # released on the way out
        pass


async def test_a_held_save_that_conflicts_raises_at_the_end_of_the_batch(store: Store) -> None:
    await store.active_conversation(TG, "batch-3", T0)
    with pytest.raises(Conflict):
        async with store.batch():
            await store.save_conversation(Conversation.start(TG, "batch-3", minutes(1)))


async def test_batches_of_concurrent_tasks_stay_apart(store: Store) -> None:
    release = asyncio.Event()

    async def held() -> None:
        async with store.batch():
            await store.append_transcript(entry("held", 1))
            await release.wait()

    task = asyncio.create_task(held())
    await asyncio.sleep(0)  # let it hold its write
    await store.append_transcript(entry("free", 1))  # another task: written at once, not held
    assert [e.id for e in await store.transcript("free")] == ["free-e1"]
    assert await store.transcript("held") == []
    release.set()
    await task
    assert [e.id for e in await store.transcript("held")] == ["held-e1"]


async def test_uploads_keep_their_bytes_and_type(store: Store) -> None:
    image = bytes(range(256)) * 4  # every byte value, none lost to text encodings
    await store.put_upload("c1/u1", "image/png", image)
    assert await store.get_upload("c1/u1") == ("image/png", image)
    await store.put_upload("c1/u1", "image/jpeg", b"\xff\xd8")
    assert await store.get_upload("c1/u1") == ("image/jpeg", b"\xff\xd8")
    assert await store.get_upload("c1/nothing") is None


async def test_a_risky_turns_reply_rescheduled_stays_ahead_of_the_backlog_once_due_and_not_before(
    store: Store,
) -> None:
    """A risky turn's replies are urgent for their whole life, not only at their first due time: rescheduled (its
    channel paused, a retry, a run given back) to T, they wait until T, then go before every ordinary item due by
    then, its conversation's earlier reply first, in order, once each (until 2026-12-05 the urgency was lost at the
    first reschedule: the line then waited behind every ordinary reply due before T, and behind those due at T
    too whose conversation sorted first)."""
    later, ahead, paused = T0 + timedelta(seconds=1), T0 - timedelta(days=1), minutes(1)
    await store.outbox_put(outbound("z1", "Z"))  # an ordinary reply, then the risky turn's two
    await store.outbox_put(outbound("z2", "Z", later, next_attempt_at=ahead))
    await store.outbox_put(outbound("z3", "Z", later, next_attempt_at=ahead))
    z1, z2, z3 = await store.outbox_due(later, 10, run=8, lease_seconds=30)
    assert await store.outbox_reschedule("Z", "z1", paused, 0, "paused", lease=z1.next_attempt_at)  # its channel
    for rest in (z2, z3):  # the run's next items given back, due once they head the line again
        assert await store.outbox_reschedule("Z", rest.id, later, 0, "", lease=rest.next_attempt_at)
    for n in range(3):  # the backlog: due before the pause's end, or at it (paused as well)
        await store.outbox_put(outbound(f"b{n}", f"B{n}", minutes(0.5)))
        await store.outbox_put(outbound(f"p{n}", f"P{n}"))
        [p] = await store.outbox_due(later, 1, lease_seconds=30)
        assert await store.outbox_reschedule(p.conversation_id, p.id, paused, 0, "paused", lease=p.next_attempt_at)
    assert await store.outbox_due(minutes(0.4), 10) == []  # never before its time
    first = await store.outbox_due(minutes(2), 1, run=8)
    assert [i.id for i in first] == ["z1", "z2", "z3"]
    assert {i.conversation_id for i in await store.outbox_due(minutes(2), 10, run=8)} == {
        *(f"B{n}" for n in range(3)),
        *(f"P{n}" for n in range(3)),
    }  # then the backlog, Z's items not again


async def test_a_risky_inbox_item_retried_stays_ahead_of_the_backlog_once_due_and_not_before(store: Store) -> None:
    """A risky message is urgent for its whole life: retried (a store failure, a bug) to T, it waits until T, then
    goes before every ordinary item due by then, its sender's earlier message first (until 2026-12-05 its urgency
    was lost at the first retry: it waited behind every ordinary item due before T)."""
    later, ahead, retry = T0 + timedelta(seconds=1), T0 - timedelta(days=1), minutes(1)
    await store.inbox_put([inboxed("z1", "Z")])
    await store.inbox_put([InboxItem("z2", "Z", {"text": "risky"}, later, ahead)])
    [z1] = await store.inbox_due(later, 10, lease_seconds=30)
    assert z1.id == "z1"
    assert await store.inbox_retry("z1", retry, 1, lease=z1.next_attempt_at)
    await store.inbox_put([inboxed(f"b{n}", f"B{n}", minutes(0.5)) for n in range(3)])
    assert await store.inbox_due(minutes(0.4), 10) == []  # never before its time
    assert [i.id for i in await store.inbox_due(minutes(2), 1, lease_seconds=30)] == ["z1"]
    assert await store.inbox_done("z1")
    [z2] = await store.inbox_due(minutes(2), 1, lease_seconds=30)
    assert z2.id == "z2"
    assert await store.inbox_retry("z2", minutes(3), 1, lease=z2.next_attempt_at)  # the risky one itself retried
    await store.inbox_put([inboxed(f"c{n}", f"C{n}", minutes(2.5)) for n in range(3)])
    assert [i.id for i in await store.inbox_due(minutes(4), 1)] == ["z2"]
    assert {i.id for i in await store.inbox_due(minutes(4), 10)} == {*(f"b{n}" for n in range(3)),
                                                                      *(f"c{n}" for n in range(3))}  # fmt: skip
