"""A web chat page's opening key (docs/webchat-protocol.md): the store remembers, for a while, which conversation
the key's digest opened (``Store.keep_opening``, ``Store.opening``), on SQLite, Redis and Cluster; the digest is
all it is given (a keyed hash, never the key)."""

from __future__ import annotations

import asyncio
import time

from gateway.store import Store


async def test_an_opening_names_its_conversation_until_it_lapses(store: Store) -> None:
    assert await store.opening("d1") is None
    await store.keep_opening("d1", "conv-1")
    await store.keep_opening("d2", "conv-2")
    assert await store.opening("d1") == "conv-1"
    assert await store.opening("d2") == "conv-2"
    await store.keep_opening("d1", "conv-3")  # the key opened another one (the first one ended or was erased)
    assert await store.opening("d1") == "conv-3"
    ttl = 0.05
    await store.keep_opening("d3", "conv-4", ttl_seconds=ttl)
    deadline = time.monotonic() + 30  # waits on the condition (a busy machine's Redis may answer late), not a sleep
    while await store.opening("d3") is not None:
        assert time.monotonic() < deadline, "an opening kept 50 ms still named its conversation after 30 s"
        await asyncio.sleep(ttl / 5)
    assert await store.opening("d1") == "conv-3"  # the default TTL (10 minutes): still there
    await store.keep_opening("d3", "conv-5")  # kept again: there
    assert await store.opening("d3") == "conv-5"
