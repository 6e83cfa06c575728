"""``HasTime.server_time``: Redis's ``TIME``, on one Redis and on a Cluster client (one node's answer), the time the
instances set their clocks on (gateway/clock.py). SQLite, one process, has none."""

from __future__ import annotations

from datetime import UTC, datetime

from gateway.store import HasTime, Store


async def test_the_store_time_is_redis_time_and_sqlite_has_none(store: Store, store_url: str) -> None:
    if store_url.startswith("sqlite"):
        assert not isinstance(store, HasTime)
        return
    assert isinstance(store, HasTime)
    told = await store.server_time()
    assert told.tzinfo is UTC and abs((datetime.now(UTC) - told).total_seconds()) < 5  # one machine's clock
