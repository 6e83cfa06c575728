"""The supervision board's count of young people told the line is closed (``live.told_closed``) at a peak: from the
store's index of them (``store.told_closed_waiting``), not every waiting record. Until 2026-12-07 each board reload
read and decrypted every waiting record for it, on the event loop (``GET /api/supervision`` 81 ms at 2,000 waiting,
328 ms at 5,000, bench/console.py): 140 records here."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest
import redis

from gateway.app import STORE
from gateway.console.stats import BOARD_EARLIEST
from gateway.settings import Settings
from gateway.store import Store
from tests.conftest import AppFactory, Clock, add_listener, login
from tests.console.test_queue_page import WAITING, _waiting
from tests.store.conftest import STORES, on_store, redis_url
from tests.store.test_contract_read_receipts import Statements

__all__ = ["redis_url"]  # a fixture used through ``on_store``

READ_MOST = 2 * BOARD_EARLIEST + 10  # the earliest arrivals' records (the longest wait), the session's, the account's


@pytest.fixture(params=STORES)
def store_settings(request: pytest.FixtureRequest, settings: Settings) -> Settings:
    return on_store(request, settings)


def _gets(url: str) -> int:
    with redis.Redis.from_url(url) as client:
        stats: dict[str, Any] = client.info("commandstats")
    return int(stats.get("cmdstat_get", {}).get("calls", 0))


async def test_the_boards_told_count_reads_no_waiting_record(
    make_client: AppFactory, store_settings: Settings, clock: Clock
) -> None:
    """140 waiting, 3 of them told the line is closed in this wait (one told before it: not counted): the board's
    reload reads at most the earliest arrivals' records (Redis: ``GET`` calls; SQLite: the statements reading a
    record), never the 140."""
    client = await make_client(store_settings)
    store: Store = client.app[STORE]
    for n in range(WAITING):
        await _waiting(store, clock, n)
    for n in (3, 70, WAITING - 1):
        record = await store.get_conversation(f"c{n:04d}")
        assert record is not None
        await store.save_conversation(replace(record, closed_told_at=clock.now))
    earlier = await store.get_conversation("c0005")
    assert earlier is not None and earlier.waiting_since is not None
    await store.save_conversation(replace(earlier, closed_told_at=earlier.waiting_since - timedelta(seconds=1)))
    await add_listener(client, "sam", supervisor=True)
    await login(client, "sam")
    await client.get("/api/supervision")  # Redis: the told index made once (a store that began without it)

    if "redis" in store_settings.store:
        before = _gets(store_settings.store)
        board = await (await client.get("/api/supervision")).json()
        read = _gets(store_settings.store) - before
    else:
        async with Statements(store) as statements:
            board = await (await client.get("/api/supervision")).json()
        read = sum(1 for s in statements if s.startswith("SELECT data FROM conversations WHERE id"))
    assert board["live"]["told_closed"] == 3
    assert board["live"]["waiting"] == WAITING
    assert read <= READ_MOST, read  # until 2026-12-07: every waiting record, 140 and more
