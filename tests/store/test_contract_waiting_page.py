"""The waiting queue read a page at a time (``QueueStore.waiting_page``) on SQLite, Redis and a Redis Cluster: the
first entries in the queue's order, how many wait and how many of them urgent, the earliest arrivals and the latest
one, the same as :meth:`waiting` says of them, whatever the queues, priorities, takes, hand-backs and removals.
Since 2026-12-07: until then the console's queue and the supervision board read every waiting entry at each reload
(``tests/console/test_queue_page.py`` counts the entries read)."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from gateway.conversation import Priority
from gateway.store import QueueEntry, Store

T0 = datetime(2030, 3, 4, 10, 0, tzinfo=UTC)
PRIORITIES = (Priority.NORMAL, Priority.HIGH, Priority.NORMAL, Priority.URGENT, Priority.NORMAL)


def _ids(entries: tuple[QueueEntry, ...] | list[QueueEntry]) -> list[str]:
    return [e.conversation_id for e in entries]


async def _same_as_waiting(store: Store, limit: int) -> None:
    every = await store.waiting()
    page = await store.waiting_page(limit)
    assert _ids(page.first) == _ids(every[:limit])
    assert page.first == tuple(every[:limit])  # the entries themselves: priority, arrival, flag
    assert page.total == len(every)
    assert page.urgent == sum(1 for e in every if e.priority == Priority.URGENT)
    by_arrival = sorted(every, key=lambda e: e.at)
    assert _ids(page.earliest) == _ids(by_arrival[:limit])
    assert page.newest == (by_arrival[-1] if every else None)
    counted = Counter((e.queue, e.priority) for e in every)  # /metrics's gauges (since 2026-12-07)
    assert sorted(page.counts) == sorted((queue, priority, n) for (queue, priority), n in counted.items())


async def test_a_page_of_the_queue_says_what_the_whole_queue_says(store: Store) -> None:
    await _same_as_waiting(store, 3)
    assert await store.waiting_page(3) == type(await store.waiting_page(3))((), 0, 0, (), None)
    for n in range(25):  # two queues, every priority, arrivals a minute apart (the latest: an urgent one)
        queue = "general" if n % 3 else "night"
        await store.enqueue(f"c{n:02d}", queue, PRIORITIES[n % len(PRIORITIES)], T0 + timedelta(minutes=n))
    await store.enqueue("c99", "general", Priority.URGENT, T0 + timedelta(minutes=30))
    for limit in (1, 3, 10, 40):
        await _same_as_waiting(store, limit)
    page = await store.waiting_page(3)
    assert _ids(page.first) == ["c03", "c08", "c13"] and page.total == 26 and page.urgent == 6
    assert _ids(page.earliest) == ["c00", "c01", "c02"] and page.newest is not None
    assert page.newest.conversation_id == "c99"

    await store.take("c03", "anne", T0)  # taken: no longer waiting, nor counted
    await store.take("c00", "anne", T0)
    await store.remove_from_queue("c99")
    for limit in (1, 3, 40):
        await _same_as_waiting(store, limit)
    page = await store.waiting_page(3)
    assert _ids(page.first) == ["c08", "c13", "c18"] and page.total == 23 and page.urgent == 4
    assert _ids(page.earliest) == ["c01", "c02", "c04"] and page.newest is not None
    assert page.newest.conversation_id == "c24"

    await store.requeue("c03")  # handed back: in line again at its arrival, urgent as it was
    await store.enqueue("c01", "general", Priority.URGENT, T0 + timedelta(minutes=1))  # raised: the same arrival
    for limit in (1, 3, 40):
        await _same_as_waiting(store, limit)
    page = await store.waiting_page(2)
    assert _ids(page.first) == ["c01", "c03"] and page.urgent == 6


async def test_a_page_of_no_entry_is_refused(store: Store) -> None:
    """Redis's ``ZRANGE 0 -1`` reads every member: a limit below 1 is a caller's bug, refused alike on every store."""
    await store.enqueue("c1", "general", Priority.NORMAL, T0)
    with pytest.raises(ValueError):
        await store.waiting_page(0)
