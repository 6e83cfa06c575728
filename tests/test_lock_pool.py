"""The conversation lock's renewal reaches Redis within its lease while the store's pool is busy.

``lock_timing`` allows for a renewal held on its way up to the socket timeout; until 2026-12-07 a renewal also
waited, behind every other caller, for a connection of the store's blocking pool (up to GATEWAY_REDIS_POOL_TIMEOUT,
10 s): under load (every connection busy) it reached Redis after its 6 s lease, and another instance took the lock
from a holder still at work.

A real store with a pool of 2 connections behind ``tests/delaying_proxy.py`` (0.3 s each way: a 0.6 s round trip, under
the socket timeout, nothing fails), kept busy by readers spread over the event loop's turns (each turn's batch a
connection of its own); a second store waiting for the lock directly. The holder lets go after two leases.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time

import pytest

from gateway.errors import StoreError
from gateway.store import open_store
from gateway.store import redis_keys as K
from gateway.testing import store_keys
from tests.delaying_proxy import delaying_proxy
from tests.store.conftest import emptied, redis_url  # noqa: F401  (the session's redis-server)

pytestmark = pytest.mark.redis

HELD = 13.0  # past two 6 s leases
READERS = 40  # a batch each at a time: up to 40 waiting for 2 connections, 0.6 s each


async def test_a_busy_pool_never_lets_the_lock_lapse_under_its_holder(redis_url: str) -> None:  # noqa: F811
    url = emptied(redis_url)
    other = await open_store(url, keys=store_keys(url))
    async with delaying_proxy(url, delay=0.3) as proxy:
        busy = await open_store(
            proxy.url, keys=store_keys(proxy.url), max_connections=2, pool_timeout=10.0, socket_timeout=5.0
        )
        stop = asyncio.Event()
        spread = random.Random(7)

        async def reader() -> None:
            while not stop.is_set():
                await asyncio.sleep(spread.uniform(0.0, 0.2))  # its own turn of the loop: a batch of its own
                with contextlib.suppress(StoreError):  # waited past the pool's timeout: the next one
                    await busy.get_conversation("c-none")

        readers: list[asyncio.Task[None]] = []
        try:
            async with busy.lock("c-busy", timeout=30):
                readers = [asyncio.create_task(reader()) for _ in range(READERS)]
                taken_at: list[float] = []

                async def taker() -> None:
                    async with other.lock("c-busy", timeout=HELD + 30):
                        taken_at.append(time.monotonic())

                taking = asyncio.create_task(taker())
                began = time.monotonic()
                left: list[int] = []
                while time.monotonic() < began + HELD and not taken_at:
                    left.append(int(await other._redis.pttl(K.lock("c-busy"))))  # type: ignore[attr-defined]
                    await asyncio.sleep(0.05)
                stop.set()  # the readers gone before the release (which waits for the store's pool)
                await asyncio.gather(*readers, return_exceptions=True)
                let_go = time.monotonic()
                assert not taken_at, f"another instance took the lock {taken_at[0] - began:.1f} s in, still held"
                assert min(left) > 500, f"a renewal came {min(left)} ms before the lease's end"  # the margin
            await taking
            assert taken_at and taken_at[0] >= let_go
        finally:
            stop.set()
            await asyncio.gather(*readers, return_exceptions=True)
            await busy.close()
            await other.close()
