"""Automatic pipelining (gateway/store/redis_batch.py) against a real Redis: each caller gets its own replies or
its own error, a group stays together, a failed connection fails its batch only, a cancelled caller harms nobody.

The faults stop the test's own redis-server (SIGSTOP) so that a batch is sent and not answered, then kill it or
let it go on; "sent" is read from the kernel: the server's end of the connection holds unread bytes."""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import time
from collections.abc import AsyncIterator, Awaitable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ReadOnlyError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from gateway.errors import StoreError
from gateway.store import open_store
from gateway.store.redis import RedisStore
from gateway.store.redis_batch import AutoPipeline
from gateway.store.redis_pool import open_pool
from gateway.testing import store_keys
from tests.delaying_proxy import delaying_proxy
from tests.losing_proxy import LosingProxy, losing_proxy
from tests.store.conftest import emptied
from tests.test_faults import redis_server
from tests.test_redis_restart import OwnRedis, own_redis

pytestmark = pytest.mark.redis
__all__ = ["own_redis"]  # the fixture, imported to be used here
WAIT = 30  # seconds: a caller left hanging fails the test instead of holding it


@pytest.fixture
def flushed(redis_url: str) -> Iterator[str]:
    client = redis.Redis.from_url(redis_url)
    try:
        client.flushdb()
        yield redis_url
    finally:
        client.close()


@pytest.fixture
async def batcher(flushed: str) -> AsyncIterator[AutoPipeline]:
    client = Redis(connection_pool=open_pool(flushed, max_connections=20, timeout=5, health_check_interval=30,
                                             decode_responses=True))  # fmt: skip
    batched = AutoPipeline(client)
    try:
        yield batched
    finally:
        await batched.close()
        await client.aclose(close_connection_pool=True)


def _reads(url: str) -> int:
    """Read events Redis processed on client sockets: one per round trip, however many commands it carries."""
    with redis.Redis.from_url(url) as client:
        return int(client.info("stats")["total_reads_processed"])


async def _within(awaitable: Awaitable[Any]) -> Any:
    async with asyncio.timeout(WAIT):
        return await awaitable


async def test_each_caller_gets_its_own_reply_in_one_round_trip(batcher: AutoPipeline, flushed: str) -> None:
    client = batcher.client
    await _within(asyncio.gather(*(client.set(f"k{n}", f"v{n}") for n in range(200))))
    before = _reads(flushed)
    got = await _within(asyncio.gather(*(client.get(f"k{n}") for n in range(200))))
    assert got == [f"v{n}" for n in range(200)]
    assert _reads(flushed) - before < 20  # 200 GETs, one pipeline (Redis may read it in a few pieces), one INFO


async def test_a_failing_command_fails_only_its_caller(batcher: AutoPipeline) -> None:
    client = batcher.client
    await client.set("text", "not a number")

    async def group() -> list[Any]:
        async with client.pipeline(transaction=False) as pipe:
            pipe.set("g", "1")
            pipe.incr("text")  # fails
            pipe.set("g", "2")  # runs all the same (not a transaction), as before
            return await pipe.execute()

    results = await _within(
        asyncio.gather(
            client.incr("text"),
            client.incr("n"),
            group(),
            client.get("text"),
            client.evalsha("0" * 40, 0),
            client.incr("n"),
            return_exceptions=True,
        )
    )
    assert isinstance(results[0], ResponseError)
    assert results[1] == 1 and results[5] == 2
    assert isinstance(results[2], ResponseError)
    assert results[3] == "not a number"
    assert isinstance(results[4], ResponseError)
    assert await client.get("g") == "2"


async def test_a_group_stays_together_and_in_order(batcher: AutoPipeline) -> None:
    client = batcher.client

    async def group() -> list[Any]:
        async with client.pipeline(transaction=False) as pipe:
            for _ in range(5):
                pipe.incr("counter")
            return await pipe.execute()

    calls = [group() if n % 10 == 0 else client.incr("counter") for n in range(200)]
    results = await _within(asyncio.gather(*calls))
    for n in range(0, 200, 10):
        first = results[n][0]
        assert results[n] == list(range(first, first + 5))  # nobody else's INCR between them
    assert await client.get("counter") == str(20 * 5 + 180)


async def test_a_script_runs_again_after_the_script_cache_is_flushed(batcher: AutoPipeline) -> None:
    script = batcher.client.register_script("return redis.call('INCR', KEYS[1])")
    assert await script(keys=["s"]) == 1
    await batcher.client.script_flush()
    assert await _within(asyncio.gather(script(keys=["s"]), batcher.client.get("s"))) == [2, "1"]


async def test_a_blocking_command_keeps_its_own_connection(batcher: AutoPipeline) -> None:
    client = batcher.client
    waiting = asyncio.create_task(client.blpop(["empty"], timeout=WAIT))
    await client.set("k", "v")
    assert await _within(client.get("k")) == "v"  # not held up behind the BLPOP
    assert not waiting.done()
    await client.rpush("empty", "x")
    assert tuple(await _within(waiting)) == ("empty", "x")


def _unread_bytes(port: int) -> int:
    """Bytes waiting in the server's end of its connections on ``port`` (the kernel's receive queues)."""
    total = 0
    with open("/proc/net/tcp") as table:
        for line in table.readlines()[1:]:
            fields = line.split()
            if int(fields[1].split(":")[1], 16) == port and fields[3] == "01":  # local port, ESTABLISHED
                total += int(fields[4].split(":")[1], 16)
    return total


async def _until_sent(server: OwnRedis) -> None:
    """Wait until the stopped server has a batch waiting in its receive queue (sent, not read)."""
    async with asyncio.timeout(WAIT):
        while _unread_bytes(server.port) == 0:
            await asyncio.sleep(0.01)


async def test_a_redis_restart_mid_batch_fails_its_callers_with_store_error_then_the_next_batch_works(
    own_redis: OwnRedis,
) -> None:
    store = await RedisStore.open(own_redis.url, store_keys(own_redis.url))
    try:
        assert await store.get_conversation("c") is None
        assert own_redis.process is not None
        os.kill(own_redis.process.pid, signal.SIGSTOP)
        try:
            callers = [asyncio.create_task(store.get_conversation(f"c{n}")) for n in range(50)]
            await _until_sent(own_redis)
        finally:
            os.kill(own_redis.process.pid, signal.SIGKILL)  # a crash (a stopped process dies of SIGKILL too)
            own_redis.process.wait()
        own_redis.start()
        results = await _within(asyncio.gather(*callers, return_exceptions=True))
        assert all(isinstance(result, StoreError) for result in results), results
        assert await _within(asyncio.gather(*(store.get_conversation(f"c{n}") for n in range(50)))) == [None] * 50
    finally:
        await store.close()


async def test_a_caller_cancelled_while_its_batch_is_out_does_not_harm_the_others(own_redis: OwnRedis) -> None:
    client = Redis(connection_pool=open_pool(own_redis.url, max_connections=5, timeout=5, health_check_interval=30,
                                             decode_responses=True))  # fmt: skip
    batcher = AutoPipeline(client)
    try:
        await batcher.client.set("k", "v")
        assert own_redis.process is not None
        os.kill(own_redis.process.pid, signal.SIGSTOP)
        try:
            callers = [asyncio.create_task(batcher.client.get("k")) for _ in range(3)]
            await _until_sent(own_redis)
            callers[1].cancel()
        finally:
            os.kill(own_redis.process.pid, signal.SIGCONT)
        assert await _within(asyncio.gather(callers[0], callers[2])) == ["v", "v"]
        assert callers[1].cancelled()
        assert await _within(batcher.client.get("k")) == "v"  # the connection is still in step
    finally:
        await batcher.close()
        await client.aclose(close_connection_pool=True)


async def test_a_closed_batcher_refuses_and_fails_what_it_held(batcher: AutoPipeline) -> None:
    await batcher.close()
    with pytest.raises(RedisConnectionError):
        await batcher.client.get("k")


async def test_a_kept_connection_that_redis_closed_is_replaced_before_its_next_batch(
    batcher: AutoPipeline, flushed: str
) -> None:
    """The batcher keeps its connections between batches (not given back to the pool): one that Redis closed
    meanwhile (``CLIENT KILL``, as a restart or its idle ``timeout`` does) is found closed when taken, as the pool
    finds it, and the next call goes through on a fresh one, with no error."""
    client = batcher.client
    await _within(client.set("k", "v"))
    with redis.Redis.from_url(flushed) as admin:
        assert admin.client_kill_filter(_type="normal", skipme=True)
    assert await _within(client.get("k")) == "v"
    assert await _within(asyncio.gather(*(client.get("k") for _ in range(50)))) == ["v"] * 50


async def test_a_closed_batcher_gives_the_connections_it_kept_back_to_the_pool(flushed: str) -> None:
    pool = open_pool(flushed, max_connections=20, timeout=5, health_check_interval=30, decode_responses=True)
    client = Redis(connection_pool=pool)
    batched = AutoPipeline(client)
    try:
        in_use: list[int] = []

        async def one_after_the_other() -> None:
            for n in range(20):
                await batched.client.get(f"k{n}")
                in_use.append(len(pool._in_use_connections))  # its next batch not queued yet: kept for it

        await _within(one_after_the_other())
        assert in_use == [1] * 20
        await batched.close()
        assert not pool._in_use_connections
    finally:
        await batched.close()
        await client.aclose(close_connection_pool=True)


async def test_a_close_cancelled_while_giving_kept_connections_back_loses_none_from_the_pool(flushed: str) -> None:
    """The batcher gives the connections it kept back once idle, one at a time, each through the pool's lock; a
    ``close`` cancelled meanwhile (a shutdown given up), with that lock held by another caller, leaves the
    connection being given back to finish going back, and the others kept for the next ``close``: none stays
    counted as in use by a pool that will never see it again. Until 2026-12-07 the one taken from ``_kept`` was
    lost: one connection left in use after the second close."""
    pool = open_pool(flushed, max_connections=20, timeout=5, health_check_interval=30, decode_responses=True)
    client = Redis(connection_pool=pool)
    batched = AutoPipeline(client)
    try:

        async def read(turns: int) -> None:
            for _ in range(turns):
                await asyncio.sleep(0)  # a turn of its own: a batch of its own
            await batched.client.get("k")

        reading = asyncio.gather(*(read(n) for n in range(3)))
        async with asyncio.timeout(WAIT):
            while len(pool._in_use_connections) < 3:  # the batches out, each on a connection of its own
                await asyncio.sleep(0)
        await pool._condition.acquire()  # another caller of the pool holds its lock
        try:
            await _within(reading)
            async with asyncio.timeout(WAIT):
                while not batched._giving_back or len(batched._kept) == 3:  # one taken, its release waiting
                    await asyncio.sleep(0)
            closing = asyncio.create_task(batched.close())
            await asyncio.sleep(0)  # the close awaiting the give-back
            closing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await closing
        finally:
            pool._condition.release()
        await batched.close()
        deadline = time.monotonic() + 5
        while pool._in_use_connections and time.monotonic() < deadline:  # the one on its way back: a turn or two
            await asyncio.sleep(0.01)
        assert len(pool._in_use_connections) == 0
    finally:
        await batched.close()
        await client.aclose(close_connection_pool=True)


POOL = 2  # GATEWAY_REDIS_MAX_CONNECTIONS, small: the batcher alone can keep it all
OVERTAKEN = 20  # calls that began after a waiting one and were answered first: the pool's queue skipped


async def test_a_call_waiting_for_the_pool_is_not_overtaken_by_batches(redis_url: str) -> None:
    """A call that waits in the pool's queue (a command outside the batcher: ``client_limits``' INFO, as a
    ``WAIT``, the pub/sub's; or a batch that found no kept connection) gets a connection once one is given back,
    before the batches that began after it. Until 2026-12-07 the batcher kept its connections (up to
    ``KEPT_CONNECTIONS``, the whole of a pool of 2) and took them again for its next batches past the pool's queue:
    the waiting call got none until the pool's timeout (10 s: StoreError "No connection available"), hundreds of
    later calls answered meanwhile. A real store, a pool of 2, Redis behind a 0.1 s delay each way, readers spread
    over the loop's turns (a batch each, both connections busy)."""
    url = emptied(redis_url)
    async with delaying_proxy(url, delay=0.1) as proxy:
        store = await open_store(proxy.url, keys=store_keys(proxy.url), max_connections=POOL, pool_timeout=10.0)
        stop = asyncio.Event()
        spread = random.Random(11)
        waiting_since: list[float] = []
        overtaken = [0]
        overtaken_enough = asyncio.Event()

        async def reader() -> None:
            while not stop.is_set():
                await asyncio.sleep(spread.uniform(0.0, 0.1))  # its own turn of the loop: a batch of its own
                began = time.monotonic()
                with contextlib.suppress(StoreError):
                    await store.get_conversation("c-none")
                    if waiting_since and began > waiting_since[0]:
                        overtaken[0] += 1
                        if overtaken[0] >= OVERTAKEN:
                            overtaken_enough.set()

        readers = [asyncio.create_task(reader()) for _ in range(20)]
        waiting: list[asyncio.Task[Any]] = []
        try:
            await _within(asyncio.gather(*(store.get_conversation("c-none") for _ in range(20))))
            waiting_since.append(time.monotonic())
            limits = asyncio.create_task(store.client_limits())
            waiting += [limits, asyncio.create_task(overtaken_enough.wait())]
            await _within(asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED))
            assert limits.done(), f"{overtaken[0]} calls begun after it were answered while it waited for the pool"
            assert (await limits).connected is not None
        finally:
            stop.set()
            for task in waiting:
                task.cancel()
            await asyncio.gather(*readers, *waiting, return_exceptions=True)
            await store.close()


async def test_a_call_waiting_for_the_pool_gets_a_connection_the_idle_batcher_kept(redis_url: str) -> None:
    """Batches out at once (POOL of them) then none: the connections the batcher kept go back to the pool, and a
    call outside the batcher gets one. Until 2026-12-07 the idle batcher kept the whole pool: StoreError "No
    connection available" after the pool's timeout."""
    url = emptied(redis_url)
    async with delaying_proxy(url, delay=0.05) as proxy:
        store = await open_store(proxy.url, keys=store_keys(proxy.url), max_connections=POOL, pool_timeout=10.0)
        try:

            async def read(turns: int) -> None:
                for _ in range(turns):
                    await asyncio.sleep(0)  # a turn of its own: a batch of its own
                await store.get_conversation("c-none")

            await _within(asyncio.gather(*(read(n) for n in range(POOL))))
            assert (await _within(store.client_limits())).connected is not None
        finally:
            await store.close()


async def test_batched_replies_are_what_redis_py_gives_each_command(batcher: AutoPipeline, flushed: str) -> None:
    """The batcher reads the replies itself: each goes through the command's response callback (and its options:
    MGET of no key, HGETALL's dict, scores as floats) as redis-py's own client gives it."""
    plain = Redis.from_url(flushed, decode_responses=True)
    try:
        await plain.hset("h", mapping={"a": "1", "b": "2"})
        await plain.zadd("z", {"x": 1.5, "y": 2})
        await plain.set("text", "not a number")

        def commands(client: Redis) -> list[Awaitable[Any]]:
            return [
                client.hgetall("h"), client.zrange("z", 0, -1, withscores=True), client.zscore("z", "x"),
                client.mget([]), client.mget(["h", "nothing"]), client.exists("h", "z", "none"), client.get("none"),
                client.set("k", "v"), client.set("k", "w", nx=True), client.script_exists("0" * 40),
                client.ttl("h"), client.hmget("h", ["a", "c"]), client.ping(),
            ]  # fmt: skip

        assert await _within(asyncio.gather(*commands(batcher.client))) == await asyncio.gather(*commands(plain))
        with pytest.raises(ResponseError) as batched:
            await batcher.client.incr("text")
        with pytest.raises(ResponseError) as alone:
            await plain.incr("text")
        assert type(batched.value) is type(alone.value) and batched.value.args == alone.value.args
    finally:
        await plain.aclose()


async def test_a_batch_not_answered_within_the_socket_timeout_fails_its_callers_and_the_next_works(
    own_redis: OwnRedis,
) -> None:
    """One timeout for the whole batch (the connection's ``socket_timeout``): a stopped server fails the batch's
    callers with TimeoutError, and its connection is dropped (its late replies would belong to this batch)."""
    client = Redis(connection_pool=open_pool(own_redis.url, max_connections=5, timeout=5, health_check_interval=30,
                                             decode_responses=True, socket_timeout=2.0))  # fmt: skip
    batcher = AutoPipeline(client)
    try:
        await batcher.client.set("k", "v")
        assert own_redis.process is not None
        os.kill(own_redis.process.pid, signal.SIGSTOP)
        try:
            callers = [asyncio.create_task(batcher.client.get("k")) for _ in range(20)]
            results = await _within(asyncio.gather(*callers, return_exceptions=True))
        finally:
            os.kill(own_redis.process.pid, signal.SIGCONT)
        assert all(isinstance(result, RedisTimeoutError) for result in results), results
        assert await _within(asyncio.gather(*(batcher.client.get("k") for _ in range(20)))) == ["v"] * 20
    finally:
        await batcher.close()
        await client.aclose(close_connection_pool=True)


async def test_a_write_that_cannot_leave_within_the_socket_timeout_fails_and_the_next_works(
    own_redis: OwnRedis,
) -> None:
    """A write waits for room in the socket's buffer at most ``socket_timeout`` s (in the caller's task, not one
    of its own: gateway/store/redis_pool.py); then TimeoutError, and the connection is dropped (part of the
    command may have left) at once, what it still held discarded: once Redis no longer lists that connection, the
    write has not run. Before 2026-12-03 the connection was closed the polite way, which sends what the socket's
    buffer holds first: once Redis thawed, the rest of the command reached it and it ran after its caller was told
    it failed (and the transport stayed open meanwhile: "unclosed resource <TCPTransport closed=False>")."""
    client = Redis(connection_pool=open_pool(own_redis.url, max_connections=5, timeout=5, health_check_interval=30,
                                             decode_responses=True, socket_timeout=2.0))  # fmt: skip
    watcher = redis.Redis.from_url(own_redis.url)
    try:
        await client.set("k", "v")
        assert own_redis.process is not None
        os.kill(own_redis.process.pid, signal.SIGSTOP)
        try:
            with pytest.raises(RedisTimeoutError, match="writing"):
                await _within(client.set("big", "x" * 64_000_000))  # more than the kernel's buffers take
        finally:
            os.kill(own_redis.process.pid, signal.SIGCONT)
        async with asyncio.timeout(WAIT):  # the dropped connection gone from Redis (a safety net, not a timing)
            while len(await asyncio.to_thread(watcher.client_list)) > 1:
                await asyncio.sleep(0.02)
        assert await _within(client.exists("big")) == 0  # the part sent was dropped with its connection
        assert await _within(client.get("k")) == "v"
    finally:
        watcher.close()
        await client.aclose(close_connection_pool=True)


@dataclass
class Failover:
    """Two Redis servers behind an address of their own (a virtual IP: the proxy), the batcher on that address."""

    first: redis.Redis
    second: redis.Redis
    address: LosingProxy
    second_url: str
    batcher: AutoPipeline

    def demote_first(self) -> None:
        """A failover as keepalived or an operator makes one: the second made the primary, the first its replica
        (``REPLICAOF``, which closes no client connection: Sentinel's own reconfiguration kills them as well)."""
        port = self.second.connection_pool.connection_kwargs["port"]
        self.first.replicaof("127.0.0.1", port)


@pytest.fixture
async def failover(tmp_path: Path) -> AsyncIterator[Failover]:
    (tmp_path / "first").mkdir()
    (tmp_path / "second").mkdir()
    with redis_server(tmp_path / "first") as first_url, redis_server(tmp_path / "second") as second_url:
        async with losing_proxy(first_url) as address:
            client = Redis(connection_pool=open_pool(address.url, max_connections=1, timeout=5,
                                                     health_check_interval=30, decode_responses=True))  # fmt: skip
            batcher = AutoPipeline(client)
            first, second = redis.Redis.from_url(first_url), redis.Redis.from_url(second_url)
            try:
                await batcher.client.set("k", "v")  # the pool's one connection: on the first, kept
                second.set("k", "v")  # as if replicated
                yield Failover(first, second, address, second_url, batcher)
            finally:
                first.close()
                second.close()
                await batcher.close()
                await client.aclose(close_connection_pool=True)


def _rejected(server: redis.Redis, command: str) -> int:
    """How many times a server refused ``command`` before running it (READONLY among the reasons)."""
    found = server.info("commandstats").get(f"cmdstat_{command}")
    return int(found["rejected_calls"]) if found else 0


async def test_a_write_a_demoted_primary_refuses_is_sent_again_on_a_fresh_connection(failover: Failover) -> None:
    """The batcher's connection still on the old primary once it is a replica is answered READONLY: nothing ran.
    The connection is dropped and the refused write sent once more on a fresh one, which the address now leads to
    the new primary; a read of the same batch keeps the answer it got. Before, the caller got the error
    (ReadOnlyError) and the connection went back to the pool: every write that took it failed the same way."""
    failover.demote_first()
    failover.address.point_at(failover.second_url)
    read, written = await _within(asyncio.gather(failover.batcher.client.get("k"),
                                                 failover.batcher.client.set("k", "w")))  # fmt: skip
    assert (read, written) == ("v", True)
    assert failover.second.get("k") == b"w"
    assert _rejected(failover.first, "set") == 1  # refused there once, then sent to the new primary
    assert await _within(failover.batcher.client.set("k", "x")) is True  # the pool's connection: the new one's


async def test_a_write_refused_again_fails_its_caller_and_a_group_that_ran_in_part_is_not_sent_again(
    failover: Failover,
) -> None:
    """The refused write is sent again once only: the fresh connection still reaching a replica (the address not
    moved yet), its caller gets the ReadOnlyError. A group of which a command was answered (a read) is never sent
    again: only a call that nothing of ran is (a replica runs no write, so here that is certain)."""
    failover.demote_first()
    group = failover.batcher.client.pipeline(transaction=False)
    group.get("k")
    group.set("k", "w")
    alone, grouped = await _within(asyncio.gather(failover.batcher.client.set("k", "w"), group.execute(),
                                                  return_exceptions=True))  # fmt: skip
    assert isinstance(alone, ReadOnlyError) and isinstance(grouped, ReadOnlyError)
    assert _rejected(failover.first, "set") == 3  # the lone write twice, the group's once


async def test_a_bounded_batcher_sends_what_queued_while_its_batch_was_out_together(flushed: str) -> None:
    """``batches_out`` (the lock renewals', since 2026-12-07): callers of 30 turns of the loop, one batch out at a
    time behind a 0.4 s round trip, all get their replies, in 2 round trips (the first turn's, then the rest);
    unbounded, each turn's batch is a round trip of its own (60 chunks through the proxy)."""
    async with delaying_proxy(flushed, delay=0.2) as proxy:
        client = Redis(connection_pool=open_pool(proxy.url, max_connections=1, timeout=10, health_check_interval=0,
                                                 decode_responses=True))  # fmt: skip
        batched = AutoPipeline(client, batches_out=1)
        try:
            await client.ping()  # the connection made
            before = proxy.chunks
            calls = []
            for n in range(30):
                calls.append(asyncio.create_task(batched.client.incrby("k", n)))
                await asyncio.sleep(0)  # a turn of the loop each: a batch each, unbounded
            replies = await _within(asyncio.gather(*calls))
            assert sorted(replies)[-1] == sum(range(30)) and len(set(replies)) == 30
            assert proxy.chunks - before <= 8  # 2 round trips: 4 chunks (a write may come in a few pieces)
        finally:
            await batched.close()
            await client.aclose(close_connection_pool=True)
