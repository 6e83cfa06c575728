"""Late readings waiting (``LateStore``) in the store contract: SQLite, Redis and a Redis Cluster, the same tests.

A record is held by the process that queued it while it renews its hold; once the hold lapses (that process died,
or never kept it in memory) exactly one claimer gets it; it is forgotten once applied. Time is injected.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from gateway.messages import ChannelName
from gateway.store import PendingLate, Store

T0 = datetime(2030, 3, 4, 10, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


async def test_a_late_reading_held_by_its_process_is_claimed_by_none_until_its_hold_lapses(store: Store) -> None:
    pending = PendingLate("c1", "u1", windows=True, queued_at=T0)
    await store.late_put(pending, "alive", at(30))
    assert await store.late_waiting() == 1
    assert await store.late_claim("other", at(29), at(59), 10) == []  # its holder renews it meanwhile
    assert await store.late_hold("alive", [("c1", "u1")], at(60)) == {("c1", "u1")}
    assert await store.late_claim("other", at(59), at(89), 10) == []
    [claimed] = await store.late_claim("other", at(60), at(90), 10)  # the holder died: its hold lapsed
    assert claimed == PendingLate("c1", "u1", windows=True, queued_at=T0, claims=1)
    assert await store.late_hold("alive", [("c1", "u1")], at(120)) == set()  # taken over: not the dead one's now
    assert await store.late_claim("third", at(89), at(119), 10) == []
    assert await store.late_hold("other", [("c1", "u1")], at(150)) == {("c1", "u1")}  # renewed while reading
    assert await store.late_claim("third", at(149), at(179), 10) == []
    await store.late_done("c1", "u1")
    assert await store.late_waiting() == 0
    assert await store.late_claim("third", at(10_000), at(10_030), 10) == []
    assert await store.late_hold("other", [("c1", "u1")], at(200)) == set()


async def test_a_late_reading_put_again_is_left_as_it_was(store: Store) -> None:
    await store.late_put(PendingLate("c1", "u1", windows=False, queued_at=T0), "first", at(30))
    await store.late_put(PendingLate("c1", "u1", windows=True, queued_at=at(5)), "second", at(300))  # a redelivery
    assert await store.late_hold("second", [("c1", "u1")], at(400)) == set()
    assert await store.late_claim("x", at(30), at(60), 10) == [PendingLate("c1", "u1", False, T0, claims=1)]


async def test_late_readings_are_claimed_longest_lapsed_first_up_to_the_limit_and_counted(store: Store) -> None:
    for n in range(3):
        await store.late_put(PendingLate(f"c{n}", f"u{n}", windows=False, queued_at=at(n)), "dead", at(10 - n))
    first = await store.late_claim("a", at(100), at(130), 2)
    assert [(p.conversation_id, p.claims) for p in first] == [("c2", 1), ("c1", 1)]
    assert [p.conversation_id for p in await store.late_claim("b", at(100), at(130), 2)] == ["c0"]
    again = await store.late_claim("b", at(130), at(160), 5)  # "a" died too: claimed again, counted again
    assert sorted((p.conversation_id, p.claims) for p in again) == [("c0", 2), ("c1", 2), ("c2", 2)]


async def test_of_several_claimers_at_once_one_gets_each_late_reading(store: Store) -> None:
    for n in range(20):
        await store.late_put(PendingLate("c", f"u{n}", windows=False, queued_at=T0), "dead", T0)
    found = await asyncio.gather(*(store.late_claim(f"w{n}", at(1), at(31), 20) for n in range(5)))
    entries = [p.entry_id for claimed in found for p in claimed]
    assert sorted(entries) == sorted(f"u{n}" for n in range(20))  # each once


async def test_late_readings_are_held_inside_a_batch_and_dropped_with_it(store: Store) -> None:
    async with store.batch():
        await store.late_put(PendingLate("c1", "u1", windows=False, queued_at=T0), "me", at(30))
    assert await store.late_waiting() == 1
    try:
        async with store.batch():
            await store.late_put(PendingLate("c2", "u2", windows=False, queued_at=T0), "me", at(30))
            raise RuntimeError("the message's processing failed")
    except RuntimeError:
        pass
    assert await store.late_waiting() == 1


async def test_erasing_a_conversation_forgets_its_late_readings_only(store: Store) -> None:
    conversation, _ = await store.active_conversation(ChannelName.TELEGRAM, "42", T0)
    for entry in ("u1", "u2"):
        await store.late_put(PendingLate(conversation.id, entry, windows=False, queued_at=T0), "me", at(30))
    await store.late_put(PendingLate("other", "u3", windows=False, queued_at=T0), "me", at(30))
    await store.erase_conversation(conversation.id)
    assert await store.late_waiting() == 1
    assert [p.conversation_id for p in await store.late_claim("x", at(30), at(60), 10)] == ["other"]
