"""The gateway's Redis connections: none left open at shutdown, and none that Redis dropped fails a message.

Each test runs a redis-server of its own (tests/test_faults.py's), so that ``CLIENT LIST`` shows this test's
connections only. The app is the real one (``create_app``) on the aiohttp test server, with a web chat.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from aiohttp.test_utils import TestClient, TestServer

from gateway.app import create_app
from gateway.settings import Settings
from tests.conftest import Clock
from tests.test_faults import redis_server
from tests.test_webchat import bot_texts, hello, receive_until, say

pytestmark = pytest.mark.redis


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[str]:
    with redis_server(tmp_path) as url:
        yield url


def connections(admin: redis.Redis) -> list[str]:
    """The clients connected to the server but ``admin``, each as "<type> <last command>"."""
    me = admin.client_id()
    return sorted(f"{c.get('flags')} {c.get('cmd')}" for c in admin.client_list() if c["id"] != str(me))


async def until_connections(admin: redis.Redis, expected: int, timeout: float = 20.0) -> list[str]:
    """Wait until the server counts ``expected`` clients but ``admin`` (closing a socket takes a moment)."""
    deadline = time.monotonic() + timeout
    while len(found := connections(admin)) != expected:
        assert time.monotonic() < deadline, f"{len(found)} connections left, {expected} expected: {found}"
        await asyncio.sleep(0.05)
    return found


async def test_every_redis_connection_is_closed_at_shutdown(settings: Settings, own_redis: str, clock: Clock) -> None:
    """The store's pool, its subscription and the rate limits' pool (a blocking pool of ours, which redis-py
    does not close with its client) are all closed by the app's cleanup: a restart in a loop leaks nothing."""
    admin = redis.Redis.from_url(own_redis)
    try:
        assert connections(admin) == []
        app = await create_app(settings.replace(store=own_redis), clock=clock, worker_poll_seconds=0.05)
        client = TestClient(TestServer(app))
        await client.start_server()
        try:
            async with client.ws_connect("/chat/ws") as ws:  # a new chat and a message: both rate-limited
                await hello(ws)
                await say(ws, "m0", "2")
            assert connections(admin)  # the store's and the limits' pools, the subscription
        finally:
            await client.close()  # runs the app's cleanup
        await until_connections(admin, 0)
    finally:
        admin.close()


async def test_a_message_after_redis_dropped_every_connection_goes_through(
    settings: Settings, own_redis: str, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    """Redis closes the gateway's connections (``CLIENT KILL``, as a Redis restart or its idle ``timeout`` does):
    the next message is answered at once, with no error and no warning on the way. The workers use connections
    every 50 ms here, so this is the pool's check when a connection is taken (gateway/store/redis_pool.py), not the
    idle health check: without it the message failed and the web chat was closed with 1013."""
    app = await create_app(settings.replace(store=own_redis), clock=clock, worker_poll_seconds=0.05)
    admin = redis.Redis.from_url(own_redis)
    try:
        async with TestClient(TestServer(app)) as client, client.ws_connect("/chat/ws") as ws:
            await hello(ws)
            await say(ws, "m0", "2")
            caplog.clear()
            caplog.set_level(logging.WARNING)
            killed = admin.client_kill_filter(_type="normal", skipme=True)
            assert killed
            frames = await say(ws, "m1", "1")
            if not bot_texts(frames):
                frames = await receive_until(ws, lambda f: bool(bot_texts([f])))
            assert bot_texts(frames)
            problems = [f"{r.name}: {r.getMessage()}" for r in caplog.records if r.levelno >= logging.WARNING]
            assert problems == []
    finally:
        admin.close()
