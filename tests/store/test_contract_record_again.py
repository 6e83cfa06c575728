"""A send's record made again under the same lease (the outbox's retry of a record whose answer was lost after the
store made it) is answered as made and changes nothing but the line's step; under another claim it is refused, as
before. On SQLite, Redis and Cluster (issue 8: before, the retry was refused and the conversation's next replies
waited for their lease)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from gateway.store import Delivery, OutboxStatus, Store
from gateway.testing import kept_provider_id
from tests.store.test_contract import T0, entry, minutes, outbound

LEASE = T0 + timedelta(seconds=60)


@pytest.mark.parametrize("with_entries", [True, False])  # Redis: the item dropped (its entry shows the send), or kept
async def test_a_send_recorded_again_under_its_lease_is_answered_made_and_the_line_goes_on(
    store: Store, with_entries: bool
) -> None:
    for n in (1, 2):
        if with_entries:
            await store.append_transcript(entry("A", n))
        await store.outbox_put(outbound(f"A-e{n}", "A"))
    assert [i.id for i in await store.outbox_due(T0, 10, run=8, lease_seconds=60)] == ["A-e1", "A-e2"]
    assert await store.outbox_mark_sent("A", "A-e1", "m.1", lease=LEASE, next_lease=LEASE)
    assert await store.outbox_mark_sent("A", "A-e1", "m.1", lease=LEASE, next_lease=LEASE)  # its answer was lost
    assert await store.outbox_due(T0, 10, run=8) == []  # A-e2 still held by the run
    assert await store.outbox_mark_sent("A", "A-e2", "m.2", lease=LEASE)
    assert await store.outbox_mark_sent("A", "A-e2", "m.2", lease=LEASE)  # the last of its line
    await store.outbox_put(outbound("A-e3", "A"))
    assert [i.id for i in await store.outbox_due(T0, 10, run=8)] == ["A-e3"]  # the line went on, at once
    if with_entries:
        shown = [(e.id, e.delivery, e.provider_message_id) for e in await store.transcript("A")]
        assert shown == [(f"A-e{n}", Delivery.SENT, kept_provider_id(store, f"m.{n}")) for n in (1, 2)]
    for n in (1, 2):  # resolved once: a sent item is kept as sent, or dropped (its entry records it)
        item = await store.outbox_get("A", f"A-e{n}")
        assert item is None or item.status == OutboxStatus.SENT


async def test_a_send_recorded_under_another_claim_is_refused(store: Store) -> None:
    await store.append_transcript(entry("A", 1))
    await store.outbox_put(outbound("A-e1", "A"))
    assert [i.id for i in await store.outbox_due(T0, 10, lease_seconds=60)] == ["A-e1"]
    assert [i.id for i in await store.outbox_due(minutes(2), 10, lease_seconds=60)] == ["A-e1"]  # the lease lapsed
    second = minutes(2) + timedelta(seconds=60)
    assert not await store.outbox_mark_sent("A", "A-e1", "m.first", lease=LEASE)  # the first holder's send
    assert await store.outbox_mark_sent("A", "A-e1", "m.second", lease=second)
    assert not await store.outbox_mark_sent("A", "A-e1", "m.first", lease=LEASE)  # still refused once it is sent
    assert [(e.delivery, e.provider_message_id) for e in await store.transcript("A")] == [
        (Delivery.SENT, kept_provider_id(store, "m.second"))
    ]


async def test_a_failed_item_is_never_recorded_sent_again(store: Store) -> None:
    await store.outbox_put(outbound("A-e1", "A"))
    assert [i.id for i in await store.outbox_due(T0, 10, lease_seconds=60)] == ["A-e1"]
    assert await store.outbox_mark_failed("A", "A-e1", "refused", lease=LEASE)
    assert not await store.outbox_mark_sent("A", "A-e1", "m.1", lease=LEASE)
    item = await store.outbox_get("A", "A-e1")
    assert item is not None and item.status == OutboxStatus.FAILED


async def test_a_failure_recorded_again_under_its_lease_is_answered_made_and_the_line_goes_on(store: Store) -> None:
    for n in (1, 2):
        await store.append_transcript(entry("A", n))
        await store.outbox_put(outbound(f"A-e{n}", "A"))
    assert [i.id for i in await store.outbox_due(T0, 10, run=8, lease_seconds=60)] == ["A-e1", "A-e2"]
    assert await store.outbox_mark_failed("A", "A-e1", "refused", lease=LEASE, next_lease=LEASE)
    assert await store.outbox_mark_failed("A", "A-e1", "refused", lease=LEASE, next_lease=LEASE)  # answer lost
    assert not await store.outbox_mark_sent("A", "A-e1", "m.1", lease=LEASE)  # failed: never recorded sent
    assert await store.outbox_mark_sent("A", "A-e2", "m.2", lease=LEASE)
    await store.outbox_put(outbound("A-e3", "A"))
    assert [i.id for i in await store.outbox_due(T0, 10, run=8)] == ["A-e3"]
    shown = [(e.id, e.delivery) for e in await store.transcript("A")]
    assert shown == [("A-e1", Delivery.FAILED), ("A-e2", Delivery.SENT)]


async def test_a_reschedule_made_again_under_its_lease_is_answered_made_and_changes_nothing(store: Store) -> None:
    """The outbox's retry of a reschedule (a reply refused for now) or of a run's giving back whose answer was lost
    after the store made it: True, the item still due at its time; another time or count is refused (issue 8:
    before, the retry was refused and the run waited for its lease)."""
    for n in (1, 2):
        await store.outbox_put(outbound(f"A-e{n}", "A"))
    assert [i.id for i in await store.outbox_due(T0, 10, run=8, lease_seconds=60)] == ["A-e1", "A-e2"]
    retry = T0 + timedelta(seconds=5)
    assert await store.outbox_reschedule("A", "A-e1", retry, 1, "503", lease=LEASE)
    assert await store.outbox_reschedule("A", "A-e1", retry, 1, "503", lease=LEASE)  # its answer was lost
    assert not await store.outbox_reschedule("A", "A-e1", retry, 2, "503", lease=LEASE)  # not this call's
    assert not await store.outbox_reschedule("A", "A-e1", retry + timedelta(seconds=1), 1, "503", lease=LEASE)
    assert await store.outbox_reschedule("A", "A-e2", T0, 0, "", lease=LEASE)  # given back
    assert await store.outbox_reschedule("A", "A-e2", T0, 0, "", lease=LEASE)
    assert await store.outbox_due(T0 + timedelta(seconds=4), 10, run=8) == []  # the line waits for its head
    item = await store.outbox_get("A", "A-e1")
    assert item is not None and item.next_attempt_at == retry and item.attempts == 1
    assert [i.id for i in await store.outbox_due(retry, 10, run=8, lease_seconds=60)] == ["A-e1", "A-e2"]
    later = retry + timedelta(seconds=60)
    assert not await store.outbox_reschedule("A", "A-e1", retry, 1, "503", lease=LEASE)  # claimed again since
    assert await store.outbox_mark_sent("A", "A-e1", "m.1", lease=later)


async def test_a_claim_made_again_with_its_token_hands_out_what_it_claimed(store: Store) -> None:
    """The outbox's retry of a claim whose answer was lost after the store made it (issue 8: before, its items
    waited for the lease nobody knew of): the same items, under the same lease; another claim gets none of them."""
    for item_id, conversation in (("A-e1", "A"), ("A-e2", "A"), ("B-e1", "B")):
        await store.outbox_put(outbound(item_id, conversation))
    first = await store.outbox_due(T0, 10, run=8, lease_seconds=60, claim="token-1")
    again = await store.outbox_due(T0, 10, run=8, lease_seconds=60, claim="token-1")
    assert sorted(i.id for i in first) == ["A-e1", "A-e2", "B-e1"]
    assert [(i.id, i.next_attempt_at) for i in again] == [(i.id, i.next_attempt_at) for i in first]
    assert {i.next_attempt_at for i in again} == {LEASE}
    assert await store.outbox_due(T0 + timedelta(seconds=1), 10, run=8, claim="token-2") == []  # still leased
    assert await store.outbox_mark_sent("A", "A-e1", "m.1", lease=LEASE, next_lease=LEASE)
    assert await store.outbox_due(T0 + timedelta(seconds=1), 10, run=8, claim="token-3") == []  # A-e2 still held


async def test_an_answered_claims_record_is_dropped_by_the_next_claim(store: Store) -> None:
    """The outbox passes its last answered claim's token to its next claim: what the store kept under it (Redis: a
    list alive for the lease, 0.39 KB a handed-off conversation at 1,000 msg/s) is dropped then, so that claim's
    token hands out nothing any more (its items are still leased to their holder)."""
    for item_id, conversation in (("A-e1", "A"), ("B-e1", "B")):
        await store.outbox_put(outbound(item_id, conversation))
    first = await store.outbox_due(T0, 10, run=8, lease_seconds=60, claim="token-1")
    assert sorted(i.id for i in first) == ["A-e1", "B-e1"]
    assert await store.outbox_due(T0, 10, run=8, lease_seconds=60, claim="token-2", answered="token-1") == []
    assert await store.outbox_due(T0, 10, run=8, lease_seconds=60, claim="token-1") == []  # forgotten: held
    assert await store.outbox_mark_sent("A", "A-e1", "m.1", lease=LEASE)
    await store.outbox_put(outbound("A-e2", "A"))
    again = await store.outbox_due(T0 + timedelta(seconds=1), 10, run=8, claim="token-3", answered="token-2")
    assert [i.id for i in again] == ["A-e2"]  # the line goes on; B-e1 still leased


async def test_a_send_without_a_provider_id_recorded_again_under_its_lease_is_answered_made(store: Store) -> None:
    """A provider that accepted a reply without a message id: the record made again (its answer lost) is True, the
    line goes on, the item is never handed out again; under another lease it is refused (before: refused on Redis,
    its entry holding no provider id to compare)."""
    for n in (1, 2):
        await store.append_transcript(entry("A", n))
        await store.outbox_put(outbound(f"A-e{n}", "A"))
    assert [i.id for i in await store.outbox_due(T0, 10, run=8, lease_seconds=60)] == ["A-e1", "A-e2"]
    assert await store.outbox_mark_sent("A", "A-e1", None, lease=LEASE, next_lease=LEASE)
    assert await store.outbox_mark_sent("A", "A-e1", None, lease=LEASE, next_lease=LEASE)  # its answer was lost
    assert not await store.outbox_mark_sent("A", "A-e1", None, lease=LEASE + timedelta(seconds=1))
    await store.outbox_put(outbound("A-e1", "A"))  # a reprocessing puts it again: ignored
    assert await store.outbox_mark_sent("A", "A-e2", None, lease=LEASE)
    assert await store.outbox_due(minutes(10), 10, run=8) == []
    shown = [(e.id, e.delivery, e.provider_message_id) for e in await store.transcript("A")]
    assert shown == [("A-e1", Delivery.SENT, None), ("A-e2", Delivery.SENT, None)]
