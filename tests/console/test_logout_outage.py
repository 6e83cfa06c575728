"""A logout during a Redis restart still logs the browser out: the page goes to the login page whatever the answer
(``logout.js``), so the answer removes the session cookie even when the store could not end the session (503). Before,
the 503 kept the cookie: once Redis was back, whoever opened the console next on that shared desk was the listener who
"logged out", with the young people they hold.

Its own redis-server (tests/test_redis_restart.py's), since the test stops it.
"""

from __future__ import annotations

import asyncio

import pytest

from gateway.settings import Settings
from tests.conftest import AppFactory, add_listener, login
from tests.test_redis_restart import OwnRedis, own_redis, ready

__all__ = ["own_redis"]  # the fixture, imported to be used here

pytestmark = pytest.mark.redis


async def test_a_logout_while_redis_restarts_leaves_the_browser_logged_out(
    make_client: AppFactory, settings: Settings, own_redis: OwnRedis
) -> None:
    client = await make_client(settings.replace(store=own_redis.url))
    await add_listener(client, "anne")
    await login(client, "anne")
    assert (await client.get("/api/me")).status == 200

    own_redis.stop()
    leaving = await client.delete("/api/session")  # "Se déconnecter": logout.js opens the login page on any answer
    assert leaving.status == 503
    own_redis.start()
    async with asyncio.timeout(60):
        await ready(client)

    assert (await client.get("/api/me")).status == 401  # the desk's next user is not anne
    page = await client.get("/console", allow_redirects=False)
    assert (page.status, page.headers.get("Location")) == (302, "/console/login")
