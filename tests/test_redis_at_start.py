"""``gateway serve`` started while its Redis is briefly unreachable (found by ``bench/chaos.py``).

An instance restarted during a Redis restart (a crash of both, a host reboot where Redis loads its append-only
file more slowly than the gateway starts, or a ``kill -9`` of an instance then a Redis restart, as in the chaos
soak) should wait for the store and become ready once Redis answers, as a running instance recovers from a Redis
restart by itself. Until 2026-12-01 ``serve`` printed ``gateway: redis: ConnectionError: … Connection refused``
and exited 1: unless a process manager started it again, the instance stayed down (with two instances started
together, the service did). Now the store's opening at start-up waits (``gateway/store/waiting.py``: ``serve``'s
first use, ``_warn_if_no_listener``, and ``create_app``'s), logging a warning at each try; this test reaches the
first.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import aiohttp
import pytest
import redis

from gateway.settings import Settings
from tests.conftest import AppFactory
from tests.test_redis_restart import OwnRedis, own_redis
from tests.test_serve import Server

__all__ = ["own_redis"]  # the fixture, imported to be used here

pytestmark = pytest.mark.redis


async def test_an_instance_started_while_redis_is_down_becomes_ready_once_redis_is_up(tmp_path: Path) -> None:
    (tmp_path / "redis").mkdir()
    redis = OwnRedis(tmp_path / "redis")  # its port chosen, the server not started yet
    server = Server(tmp_path)
    server.env["GATEWAY_STORE"] = redis.url
    tried = asyncio.Event()

    async def hang_up(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        tried.set()  # the gateway tried to reach its store: the connection is closed at once, as by a dying Redis
        writer.close()

    not_redis = await asyncio.start_server(hang_up, "127.0.0.1", redis.port)
    server.start()
    try:
        await asyncio.wait_for(tried.wait(), 60)
        not_redis.close()
        await not_redis.wait_closed()
        redis.start()  # on the port the gateway was refused on
        async with aiohttp.ClientSession() as http:
            body = await server.ready(http)  # fails at once if the process exited
        assert body
    finally:
        not_redis.close()
        server.stop()
        redis.stop()


async def test_an_instance_started_on_a_redis_that_may_evict_keys_says_so(
    make_client: AppFactory, settings: Settings, own_redis: OwnRedis, caplog: pytest.LogCaptureFixture
) -> None:
    """``volatile-lru`` (a managed service's usual default) would evict a lock, a processed mark or a new
    conversation's record, each written with a TTL, once Redis is full; ``allkeys-*`` any key. docs/deployment.md
    asks for ``noeviction``: the start-up says it once, by the policy's name (until 2026-12-05 it said nothing);
    the server's default policy is said nothing about."""
    caplog.set_level(logging.WARNING, logger="gateway")
    await make_client(settings.replace(store=own_redis.url))
    assert not [r for r in caplog.records if "maxmemory-policy" in r.getMessage()]
    with redis.Redis(port=own_redis.port) as server:
        server.config_set("maxmemory-policy", "volatile-lru")
    await make_client(settings.replace(store=own_redis.url))
    [said] = [r for r in caplog.records if "maxmemory-policy" in r.getMessage()]
    assert said.levelno == logging.WARNING and "maxmemory-policy volatile-lru" in said.getMessage()
    assert "set maxmemory-policy noeviction" in said.getMessage()
