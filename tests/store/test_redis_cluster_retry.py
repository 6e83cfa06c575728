"""A Redis Cluster client sends each command once (``redis_pool.open_cluster``): a write whose answer was lost is
not sent again behind the caller's back.

redis-py's Cluster client resends a command up to 10 times after a ConnectionError or a TimeoutError, which is
what a caller gets when the connection drops after Redis ran the command: a write that is not idempotent ran
twice, without a word. Here a one-node Cluster of the test's own owns every slot and announces the address of a
proxy in front of it (``CONFIG SET cluster-announce-port``), so every connection of the Cluster clients, the one
that finds the slots included, goes through the proxy; the proxy lets Redis run one chosen command and cuts the
connection before its answer (``tests/losing_proxy.py``). The counter, read from the node itself afterwards, was
hit once: the caller got the failure (the store's StoreError; the rate limits' error, which they allow on), and
no second hit.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import redis
from limits import RateLimitItemPerMinute
from limits.aio.strategies import FixedWindowRateLimiter

from gateway.clock import utcnow
from gateway.errors import StoreError
from gateway.ratelimit import KEY_PREFIX, open_limit_storage
from gateway.store import Counter, open_store
from gateway.testing import store_keys
from tests.losing_proxy import LosingProxy, losing_proxy, script_text
from tests.store.conftest import _free_port, _redis_server, _stop

pytestmark = pytest.mark.redis


@pytest.fixture
def node(tmp_path: Path) -> Iterator[redis.Redis]:
    """A one-node Redis Cluster owning every slot, of this test's own (its announced port is changed below)."""
    process, port = _redis_server(tmp_path, "--cluster-enabled", "yes", "--cluster-port", str(_free_port()),
                                  "--cluster-config-file", str(tmp_path / "nodes.conf"))  # fmt: skip
    client = redis.Redis(port=port, decode_responses=True)
    try:
        client.execute_command("CLUSTER", "ADDSLOTSRANGE", 0, 16383)
        deadline = time.monotonic() + 15
        while "cluster_state:ok" not in client.execute_command("CLUSTER", "INFO"):
            assert time.monotonic() < deadline, "the one-node Redis Cluster did not come up"
            time.sleep(0.05)
        yield client
    finally:
        client.close()
        _stop(process)


@pytest.fixture
async def proxy(node: redis.Redis) -> AsyncIterator[LosingProxy]:
    """The proxy in front of the node, which the node names as its own address to every Cluster client."""
    port = node.connection_pool.connection_kwargs["port"]
    async with losing_proxy(f"redis://127.0.0.1:{port}/0") as proxied:
        node.config_set("cluster-announce-port", proxied.url.rsplit(":", 1)[1].split("/")[0])
        slots = node.execute_command("CLUSTER", "SLOTS")
        assert str(slots[0][2][1]) in proxied.url, slots  # the slots' node is the proxy
        yield proxied


async def test_a_store_write_whose_answer_is_lost_fails_and_is_not_made_twice(
    node: redis.Redis, proxy: LosingProxy
) -> None:
    store = await open_store(proxy.url, keys=store_keys(proxy.url), cluster=True)
    counter = Counter(f"{KEY_PREFIX}:retry-test", 60)
    try:
        assert (await store.get_block_and_hit("someone", utcnow(), counter))[1] == 1
        proxy.lose(script_text("hit"))  # the next hit runs, its answer is lost
        with pytest.raises(StoreError):
            await store.get_block_and_hit("someone", utcnow(), counter)
        assert proxy.lost == 1
        assert node.get(counter.key) == "2"  # once each: redis-py's retry had hit it a third time
        assert (await store.get_block_and_hit("someone", utcnow(), counter))[1] == 3  # and the client goes on
        proxy.lose(script_text("hit"))  # its last command's answer lost too: closed all the same
        with pytest.raises(StoreError):
            await store.get_block_and_hit("someone", utcnow(), counter)
    finally:
        await store.close()
    await no_connection_left(node)


async def test_a_rate_limit_hit_whose_answer_is_lost_is_not_counted_twice(
    node: redis.Redis, proxy: LosingProxy
) -> None:
    limits = open_limit_storage(proxy.url, cluster=True)
    limiter, item = FixedWindowRateLimiter(limits.storage), RateLimitItemPerMinute(10)
    try:
        assert await limiter.hit(item, "retry-test")  # its script loaded (a NOSCRIPT runs nothing)
        proxy.lose(b"retry-test")  # the next hit runs, its answer is lost
        with pytest.raises(Exception):  # noqa: B017  # limits' own wrapping of redis-py's ConnectionError
            await limiter.hit(item, "retry-test")
        assert proxy.lost == 1
        [key] = node.keys("*retry-test*")
        assert node.get(key) == "2"  # once each: redis-py's retry had hit it a third time
    finally:
        await limits.close()
    await no_connection_left(node)  # its last command failed: redis-py's aclose alone closed nothing


async def no_connection_left(node: redis.Redis) -> None:
    """Every connection a closed client had to the node (through the proxy, which closes its side towards the node
    once the client closed its own) is gone: the node lists only the test's own. Waits for that, 10 s at most (a
    safety net against a hang, not a timing assumption: the proxy closes at once)."""
    async with asyncio.timeout(10):
        while len(node.client_list()) > 1:
            await asyncio.sleep(0.02)
