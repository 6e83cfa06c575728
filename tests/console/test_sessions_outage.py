"""The console's session sweep (worker ``console-sessions``: ``ConsoleEvents.sweep`` closes the sockets whose session
ended where no event reached this instance) waits for the store through a Redis restart as the purge, the notices and
the places in line do: a pass the store's outage failed is counted and told once an outage (``gateway/outage_log.py``,
part ``console_sessions``) and made again at the next period, the worker never stopped. Until 2026-12-07 it raised to
the supervisor: restarted and counted in ``gateway_worker_restarts`` at each outage. The real app, its supervisor and a
redis-server of the test's own, stopped and started again.
"""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from gateway.app import METRICS, STORE, SUPERVISOR
from gateway.settings import Settings
from tests.conftest import AppFactory, add_listener, login
from tests.test_purge_outage import counted, until
from tests.test_redis_restart import OwnRedis, own_redis, ready
from tests.test_webchat import receive_until

__all__ = ["own_redis"]  # the fixture used below
pytestmark = pytest.mark.redis

WORKER, PART = "console-sessions", "console_sessions"


async def read_to_close(ws: aiohttp.ClientWebSocketResponse) -> None:
    """Every frame read (the socket's pings answered however long the test waits) until the server closes it."""
    async for _ in ws:
        pass


async def test_a_redis_restart_makes_the_session_sweep_wait_for_the_store_not_restart(
    make_client: AppFactory, settings: Settings, own_redis: OwnRedis
) -> None:
    client = await make_client(settings.replace(store=own_redis.url))
    await add_listener(client, "anne")
    await login(client, "anne")
    metrics = client.app[METRICS]
    ws = await client.ws_connect("/api/events")
    await receive_until(ws, lambda f: f["type"] == "hello")
    reading = asyncio.create_task(read_to_close(ws))
    try:
        own_redis.stop()

        async def met() -> bool:  # it met the outage (a restart fails at once below, not after the deadline)
            return counted(metrics, "failures", part=PART) >= 2 or counted(metrics, "restarts", worker=WORKER) > 0

        await until(met, "sweeps of the console's sessions failed")
        assert counted(metrics, "restarts", worker=WORKER) == 0  # waited for the store: no crash counted
        own_redis.start()
        async with asyncio.timeout(60):
            await ready(client)
        assert not reading.done()  # the session lives: its socket stays open
        # anne's sessions ended with no event reaching this instance (as the CLI on SQLite): only the sweep sees it
        assert await client.app[STORE].end_sessions("anne") == 1
        async with asyncio.timeout(60):
            await reading  # the sweep, working again, closed the socket
        assert counted(metrics, "restarts", worker=WORKER) == 0
        assert WORKER not in client.app[SUPERVISOR].problems()
    finally:
        reading.cancel()
        await ws.close()
