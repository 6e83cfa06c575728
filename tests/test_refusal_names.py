"""A Redis refusal is named as the outage log names it (``gateway.outage_log.error_class``) wherever a store failure
is said, not by redis-py's class: a Redis that cannot persist (its disk full) by ``MISCONF``, not ``ResponseError``;
a wrapped failure by what it wraps, not ``StoreError``. Until 2026-12-07 the start-up's wait for the store, the rate
limits' and the gate's counters, and the store's lock releases said ``ResponseError`` or ``StoreError``: nothing
pointed at the disk. A real redis-server of the test's own, made to refuse writes as on a full disk
(``tests/test_store_outage_log.py``'s ``refuse_writes``).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import pytest
import redis
from redis.exceptions import ResponseError

from gateway.gate import Gate
from gateway.metrics import Metrics
from gateway.ratelimit import Limit, LimitStorage, open_limit_storage
from gateway.store import CountingBlockStore, Store, open_store
from gateway.store.redis_release import Releases
from gateway.store.waiting import reason_of
from gateway.testing import store_keys
from tests.test_gate import gate
from tests.test_redis_restart import OwnRedis, own_redis
from tests.test_store_outage_log import refuse_writes, take_writes

__all__ = ["own_redis"]  # the fixture, imported to be used here

pytestmark = pytest.mark.redis


@pytest.fixture
async def refusing(own_redis: OwnRedis) -> AsyncIterator[tuple[Store, LimitStorage, redis.Redis]]:
    """The store and the counters opened on ``own_redis``, which then refuses writes (MISCONF); a client to it."""
    store = await open_store(own_redis.url, keys=store_keys(own_redis.url))
    counters = open_limit_storage(own_redis.url)
    server = redis.Redis(port=own_redis.port)
    await refuse_writes(server, "misconf")
    try:
        yield store, counters, server
    finally:
        await take_writes(server, own_redis)
        await counters.close()
        await store.close()


def said(caplog: pytest.LogCaptureFixture, start: str) -> list[str]:
    return [record.getMessage() for record in caplog.records if record.getMessage().startswith(start)]


async def test_the_start_up_names_a_redis_that_cannot_persist(
    refusing: tuple[Store, LimitStorage, redis.Redis], own_redis: OwnRedis
) -> None:
    with pytest.raises(Exception) as raised:  # StoreError, what open_store_waiting waits on
        await open_store(own_redis.url, keys=store_keys(own_redis.url))
    assert reason_of(raised.value).text == "MISCONF"  # until 2026-12-07 ResponseError


async def test_the_rate_limits_name_a_redis_that_cannot_persist(
    refusing: tuple[Store, LimitStorage, redis.Redis], caplog: pytest.LogCaptureFixture
) -> None:
    store, counters, _ = refusing
    checked = gate(store, counters, Metrics())
    with caplog.at_level(logging.WARNING):
        assert await checked.limits.allow(Limit.MESSAGES, "telegram\n5001")  # allowed: the counters are down
    assert said(caplog, "rate limits: counters unavailable") == [
        "rate limits: counters unavailable (MISCONF): allowing",  # until 2026-12-07 (ResponseError)
    ]


async def test_the_gate_names_a_redis_that_cannot_persist(
    refusing: tuple[Store, LimitStorage, redis.Redis], caplog: pytest.LogCaptureFixture
) -> None:
    store, counters, _ = refusing
    assert isinstance(store, CountingBlockStore)  # the gate counts in the store's script
    checked: Gate = gate(store, counters, Metrics())
    with caplog.at_level(logging.WARNING):  # a limit beside the block's read (a flood's), hit in the store's script
        assert await checked._allow(Limit.FLOOD_READINGS, "telegram\n5001", "m1")  # allowed: the counters are down
    found = said(caplog, "gate: counters unavailable")
    assert found and set(found) == {"gate: counters unavailable (MISCONF): allowing"}, found  # until: (StoreError)


async def test_a_lock_release_names_a_redis_that_cannot_persist(
    refusing: tuple[Store, LimitStorage, redis.Redis], caplog: pytest.LogCaptureFixture
) -> None:
    _, _, server = refusing
    with pytest.raises(ResponseError) as refused:  # the error a release meets, as redis-py raises it
        server.set("a-lock", "owner")
    releases = Releases()
    await releases.close()  # closing: said and left to its lease, no retry task
    with caplog.at_level(logging.WARNING):
        releases.again("lock", refused.value, lambda: server.ping())  # type: ignore[arg-type,return-value]
    assert said(caplog, "redis: releasing a lock failed") == [
        "redis: releasing a lock failed (MISCONF) as the store closes: left to its lease"  # until: (ResponseError)
    ]
