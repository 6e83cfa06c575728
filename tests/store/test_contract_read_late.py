"""The supervision board's "Risques lus après la fin": the ended conversations in which a risk was read late
(``ConversationStore.note_read_late``, ``read_late``, ``forget_read_late``; Redis ``hg:{index}:read-late``, SQLite
the ``read_late`` table), on SQLite, Redis and Cluster: listed the latest first, since a time; a supervisor's "seen"
or an erasure takes one off; bounded (``READ_LATE_HOURS``, ``READ_LATE_KEPT``), ids and times only."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from gateway.conversation import Status
from gateway.store import READ_LATE_HOURS, READ_LATE_KEPT, Store
from tests.store.test_contract_flagged import DANGER, at, flag, opened


async def ended(store: Store, n: int) -> str:
    conversation = await opened(store, n)
    await flag(store, conversation, n)
    await store.save_conversation(replace(conversation, status=Status.CLOSED, closed_at=at(n)))
    return conversation.id


async def ids(store: Store, since_n: int = -(10**6), limit: int = 50) -> list[str]:
    return [c.id for c in await store.read_late(at(since_n), limit)]


async def test_an_ended_conversation_read_late_is_listed_the_latest_first_until_seen(store: Store) -> None:
    first, second, quiet = [await ended(store, n) for n in range(3)]
    assert await ids(store) == []
    await store.note_read_late(first, at(10))
    await store.note_read_late(second, at(11))
    assert await ids(store) == [second, first]
    assert await ids(store, limit=1) == [second]
    assert await ids(store, since_n=11) == [second]
    [shown, _] = await store.read_late(at(0), 50)
    assert shown.status is Status.CLOSED and shown.flag == DANGER  # the record, as a card shows it
    await store.note_read_late(first, at(12))  # read late again: first again, listed once
    assert await ids(store) == [first, second]
    assert await store.forget_read_late(first)
    assert not await store.forget_read_late(first)
    assert await ids(store) == [second]
    assert quiet not in await ids(store)


async def test_an_erased_conversation_leaves_the_list(store: Store) -> None:
    erased, kept = await ended(store, 0), await ended(store, 1)
    await store.note_read_late(erased, at(10))
    await store.note_read_late(kept, at(11))
    await store.erase_conversation(erased)
    assert await ids(store) == [kept]
    assert not await store.forget_read_late(erased)


async def test_the_list_is_bounded_by_age_and_count(store: Store) -> None:
    old = await ended(store, 0)
    await store.note_read_late(old, at(0))
    later = at(0) + timedelta(hours=READ_LATE_HOURS, seconds=1)
    for n in range(READ_LATE_KEPT + 5):
        await store.note_read_late(f"gone-{n:04d}", later + timedelta(seconds=n))  # ids only: no record read
    assert not await store.forget_read_late(old)  # older than READ_LATE_HOURS: dropped at a later join
    assert not await store.forget_read_late("gone-0004")  # past the READ_LATE_KEPT latest
    assert await store.forget_read_late("gone-0005")
