"""SQLite: a reply awaits its read receipt (``transcript.unread_us``, the ``transcript_unread`` partial index) from
its outbox item's put until it is read or fails, whichever path tells it (a receipt by id, a watermark, the
outbox's failure), and still awaits it once sent or delivered. The transcript's updates assign only what changes
(``_delivered``): a column assigned, even its own value, has its index entry rewritten."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gateway.store import Delivery, Store, open_store
from gateway.testing import store_keys
from tests.store.test_contract_read_receipts import at, conversation_of, replied


@pytest.fixture
async def sqlite_store(tmp_path: Path) -> AsyncIterator[Store]:
    url = f"sqlite:///{tmp_path}/store/gateway.sqlite3"
    store = await open_store(url, keys=store_keys(url))
    try:
        yield store
    finally:
        await store.close()


async def awaiting(store: Store, conversation_id: str) -> list[str]:
    """The conversation's entries in the ``transcript_unread`` index, read on the store's own thread."""
    run = getattr(store, "_run")  # noqa: B009  # the only thread that may touch its connection
    rows = await run(lambda conn: conn.execute(
        "SELECT id FROM transcript WHERE conversation_id = ? AND unread_us IS NOT NULL ORDER BY seq", (conversation_id,)
    ).fetchall())  # fmt: skip
    return [row["id"] for row in rows]


async def test_a_reply_awaits_its_read_receipt_until_read_or_failed(sqlite_store: Store) -> None:
    store = sqlite_store
    conversation_id = await conversation_of(store, 4)  # every reply sent and read
    assert await awaiting(store, conversation_id) == []
    by_id, by_watermark, failing, delivered = [await replied(store, conversation_id, n) for n in range(10, 14)]
    assert await awaiting(store, conversation_id) == [by_id, by_watermark, failing, delivered]
    for reply in (by_id, by_watermark, delivered):
        assert await store.outbox_mark_sent(conversation_id, reply, f"mid.{reply}")
    assert await store.set_delivery(conversation_id, delivered, Delivery.DELIVERED)
    assert await awaiting(store, conversation_id) == [by_id, by_watermark, failing, delivered]  # sent, delivered

    assert await store.set_delivery(conversation_id, by_id, Delivery.READ)
    assert await store.outbox_mark_failed(conversation_id, failing, "refused")
    assert await awaiting(store, conversation_id) == [by_watermark, delivered]
    assert await store.mark_until(conversation_id, at(12), Delivery.READ) == [by_watermark]
    assert await awaiting(store, conversation_id) == [delivered]
    assert await store.mark_until(conversation_id, at(99), Delivery.READ) == [delivered]
    assert await awaiting(store, conversation_id) == []
    assert {e.id: e.provider_message_id for e in await store.transcript(conversation_id)}[by_id] == f"mid.{by_id}"
