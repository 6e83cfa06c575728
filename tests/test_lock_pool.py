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


LOCKS = 20  # conversations held at once by one instance (a burst of slow messages)


async def test_many_locks_held_at_once_share_the_renewals_connections(redis_url: str) -> None:  # noqa: F811
    """Every lock of a store renews on the renewals' ``RENEWAL_CONNECTIONS`` (2) connections. Until 2026-12-07 each
    renewal took one of them for its round trip: 20 locks renewed every 0.5 s asked 40 round trips a second of 2
    connections that make 3 (0.6 s each), renewals queued for the pool and came after their lease, and another
    instance took locks still held. Since then the renewals share the connections, pipelined (``AutoPipeline``):
    those sent while both are out leave together. The locks are taken at spread moments: renewals of one turn of
    the loop would leave together anyway, and a batcher that sends each turn's alone left a lock 1 s of its lease
    (a renewal 8 s on its way, queued for the pool). A second store waits for each of them directly."""
    url = emptied(redis_url)
    other = await open_store(url, keys=store_keys(url))
    async with delaying_proxy(url, delay=0.3) as proxy:
        holder = await open_store(proxy.url, keys=store_keys(proxy.url), socket_timeout=5.0)
        names = [f"c-{number}" for number in range(LOCKS)]
        spread = random.Random(11)
        stop, all_held = asyncio.Event(), asyncio.Event()
        held: list[str] = []
        taken_at: dict[str, float] = {}

        async def hold(name: str) -> None:
            await asyncio.sleep(spread.uniform(0.0, 0.5))  # its renewals' phase its own
            async with holder.lock(name, timeout=30):
                held.append(name)
                if len(held) == LOCKS:
                    all_held.set()
                await stop.wait()

        async def take(name: str) -> None:
            async with other.lock(name, timeout=HELD + 60):
                taken_at[name] = time.monotonic()

        holding = [asyncio.create_task(hold(name)) for name in names]
        taking: list[asyncio.Task[None]] = []
        try:
            async with asyncio.timeout(30):
                await all_held.wait()
            taking = [asyncio.create_task(take(name)) for name in names]
            began = time.monotonic()
            left: list[int] = []
            pttl = other._redis.pttl  # type: ignore[attr-defined]
            while time.monotonic() < began + HELD and not taken_at:
                ttls = await asyncio.gather(*(pttl(K.lock(name)) for name in names))
                left.append(min(int(ttl) for ttl in ttls))
                await asyncio.sleep(0.05)
            let_go = time.monotonic()
            assert not taken_at, (
                f"another instance took {len(taken_at)} of {LOCKS} locks still held, the first "
                f"{min(taken_at.values()) - began:.1f} s in"
            )
            # each renewal reaches Redis a round trip or two after its send (about 1 s), not after a queue's wait
            assert min(left) > 3000, f"a renewal came {min(left)} ms before the lease's end"
            stop.set()
            await asyncio.gather(*holding)
            async with asyncio.timeout(30):
                await asyncio.gather(*taking)  # released: the other instance takes each one
            assert len(taken_at) == LOCKS and min(taken_at.values()) >= let_go
        finally:
            stop.set()
            for task in (*holding, *taking):
                task.cancel()
            await asyncio.gather(*holding, *taking, return_exceptions=True)
            await holder.close()
            await other.close()
