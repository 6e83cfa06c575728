"""A conversation's lock across a network: its holder renews the lease while it holds it, and a renewal may wait on
its way to Redis as long as any call may (``GATEWAY_REDIS_SOCKET_TIMEOUT``, 5 s: longer, it fails). The lease must
outlast that wait after the renewal is sent, or another instance takes the lock while its holder still works and
both write the conversation (since 2026-12-07 the record's writes are fenced by the lock: the late one's refused,
``tests/store/test_redis_fencing.py``). Until 2026-12-07 the lease (6 s) was
renewed every 2 s: a renewal held 4.5 s on its way arrived after the lease's end.

A real store behind ``tests/delaying_proxy.py`` (the path towards Redis stalled from the moment the renewal leaves,
``stall_at``: no sleep of the test's), a second store reaching Redis directly, waiting for the lock."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta

import pytest
import redis

from gateway.store import open_store
from gateway.store import redis_keys as K
from gateway.store.redis_lua import SCRIPTS
from gateway.testing import store_keys
from tests.delaying_proxy import DelayingProxy
from tests.store.conftest import emptied, redis_url  # noqa: F401  (the session's redis-server)
from tests.store.fencing_setup import SOCKET_TIMEOUT, proxy  # noqa: F401  (``proxy``: a fixture)

pytestmark = pytest.mark.redis

STALL = SOCKET_TIMEOUT - 0.5  # a renewal held this long still gets its answer within the socket timeout


async def test_a_renewal_held_on_its_way_within_the_socket_timeout_keeps_the_lock(
    proxy: DelayingProxy,  # noqa: F811
    redis_url: str,  # noqa: F811
) -> None:
    holder = await open_store(proxy.url, keys=store_keys(proxy.url), socket_timeout=SOCKET_TIMEOUT)
    other = await open_store(emptied(redis_url), keys=store_keys(redis_url), socket_timeout=SOCKET_TIMEOUT)
    taken = asyncio.Event()

    async def take() -> None:
        async with other.lock("c1", timeout=60):
            taken.set()

    try:
        async with holder.lock("c1"):
            began = proxy.stall_at(K.lock("c1").encode(), seconds=STALL, down=False)  # its first renewal's
            waiting = asyncio.create_task(take())
            await began.wait()
            await holder.server_time()  # sent after the renewal, answered once the stall is over
            await holder.server_time()  # and after the renewal's answer (the batch after it)
            assert not taken.is_set(), "another instance took the lock while its holder still held it"
        await asyncio.wait_for(taken.wait(), 30)  # released: the other one takes it
        await waiting
    finally:
        await holder.close()
        await other.close()


async def test_a_held_answer_then_a_held_renewal_never_let_the_lock_lapse(
    proxy: DelayingProxy,  # noqa: F811
    redis_url: str,  # noqa: F811
) -> None:
    """One renewal's answer held ``STALL`` s on its way back (it reached Redis at once: the lease to t + 6 s), then
    the next renewal held ``STALL`` s on its way up: each within the socket timeout. Until 2026-12-07 a renewal was
    sent a period after the previous one's ANSWER (t + 5 s), and reached Redis at t + 9.5 s: another instance took
    the lock at t + 6 s from its holder still at work. The holder keeps it until Redis's clock is past both."""
    with redis.Redis.from_url(redis_url) as client:  # the renewal's script known to Redis, as after any renewal (an
        client.script_load(SCRIPTS["lock_renew"])  # emptied cache: the next test)
    holder = await open_store(proxy.url, keys=store_keys(proxy.url), socket_timeout=SOCKET_TIMEOUT)
    other = await open_store(emptied(redis_url), keys=store_keys(redis_url), socket_timeout=SOCKET_TIMEOUT)
    taken = asyncio.Event()
    key = K.lock("c1").encode()
    taken_at: list[float] = []

    async def take() -> None:
        async with other.lock("c1", timeout=60):
            taken_at.append(time.monotonic())
            taken.set()

    try:
        async with asyncio.timeout(60), holder.lock("c1"):
            held_back = proxy.stall_at(key, seconds=STALL, up=False)  # a renewal's answer held on its way back
            waiting = asyncio.create_task(take())
            await held_back.wait()
            began, since = await other.server_time(), time.monotonic()  # Redis's clock when that renewal ran
            held_up = proxy.stall_at(key, seconds=STALL, down=False)  # the next renewal held on its way up
            await held_up.wait()
            # renewals go on, each seen leaving, until Redis's clock is past the lapse before (t + 6 s) and that
            # late renewal's arrival (t + 9.5 s) with a lease's room; or another instance took the lock
            while not taken.is_set() and await other.server_time() < began + timedelta(seconds=10):
                passed = proxy.stall_at(key, seconds=0)
                seen, taking = asyncio.create_task(passed.wait()), asyncio.create_task(taken.wait())
                await asyncio.wait((seen, taking), return_when=asyncio.FIRST_COMPLETED)
                seen.cancel()
                taking.cancel()
            proxy.disarm()
            assert not taken_at, f"another instance took the lock {taken_at[0] - since:.1f} s in, still held"
        await asyncio.wait_for(taken.wait(), 30)  # released: the other one takes it
        await waiting
    finally:
        await holder.close()
        await other.close()


async def test_the_first_renewal_after_the_script_cache_was_emptied_takes_one_round_trip(
    proxy: DelayingProxy,  # noqa: F811
    redis_url: str,  # noqa: F811
) -> None:
    """Redis's script cache emptied (a restart, a failover to a replica: scripts are not replicated), the first
    renewal's answer held ``STALL`` s on its way back, then what the holder sends next held ``STALL`` s on its way
    up. Until 2026-12-07 a renewal was an EVALSHA: refused (NOSCRIPT, its answer held), then a SCRIPT LOAD held on
    its way and the EVALSHA again, three round trips each within the socket timeout, past the lease: another
    instance took the lock from its holder at work. Since then an EVAL with the script's text, as in pipelines."""
    with redis.Redis.from_url(redis_url) as client:
        client.script_flush()
    holder = await open_store(proxy.url, keys=store_keys(proxy.url), socket_timeout=SOCKET_TIMEOUT)
    other = await open_store(emptied(redis_url), keys=store_keys(redis_url), socket_timeout=SOCKET_TIMEOUT)
    taken = asyncio.Event()
    taken_at: list[float] = []

    async def take() -> None:
        async with other.lock("c1", timeout=60):
            taken_at.append(time.monotonic())
            taken.set()

    try:
        async with asyncio.timeout(60), holder.lock("c1"):
            held_back = proxy.stall_at(K.lock("c1").encode(), seconds=STALL, up=False)  # the renewal's answer
            waiting = asyncio.create_task(take())
            await held_back.wait()
            began, since = await other.server_time(), time.monotonic()  # Redis's clock when that renewal ran
            proxy.stall_at(b"LOAD", seconds=STALL, down=False)  # a SCRIPT LOAD, if one follows, held on its way up
            while not taken.is_set() and await other.server_time() < began + timedelta(seconds=10):
                await asyncio.sleep(0.1)  # the condition is Redis's clock; the lease lapsing sets ``taken`` sooner
            proxy.disarm()
            assert not taken_at, f"another instance took the lock {taken_at[0] - since:.1f} s in, still held"
        await asyncio.wait_for(taken.wait(), 30)  # released: the other one takes it
        await waiting
    finally:
        await holder.close()
        await other.close()
