"""``OutboxStore.outbox_withdraw`` leaves what is listed to be sent to the outbox (SQLite, Redis, Cluster).

Only an item written and listed nowhere (a Redis pipeline cut before its ``outbox_list``, then its conversation
ended: ``tests/console/test_transfer_withdrawn.py``) is withdrawn; one listed, waiting or in a worker's hands, may
already be with a provider and is never marked failed under it."""

from __future__ import annotations

from datetime import timedelta

from gateway.store import Delivery, OutboxStatus, Store
from tests.store.test_contract import T0, entry, outbound


async def test_an_item_listed_to_be_sent_is_never_withdrawn(store: Store) -> None:
    for n in (1, 2):
        await store.append_transcript(entry("c1", n))
        await store.outbox_put(outbound(f"c1-e{n}", "c1"))
    [claimed] = await store.outbox_due(T0, 10)  # the first in a worker's hands, the second waiting behind it
    assert await store.outbox_withdraw("c1", ["c1-e1", "c1-e2", "unknown"], "withdrawn") == []
    assert [e.delivery for e in await store.transcript("c1")] == [Delivery.PENDING, Delivery.PENDING]
    for n in (1, 2):
        item = await store.outbox_get("c1", f"c1-e{n}")
        assert item is not None and item.status is OutboxStatus.PENDING
    assert await store.outbox_mark_sent("c1", claimed.id, "m.1", lease=claimed.next_attempt_at)  # its send recorded
    assert [i.id for i in await store.outbox_due(T0 + timedelta(minutes=1), 10)] == ["c1-e2"]
    assert await store.outbox_withdraw("c1", [], "withdrawn") == []
