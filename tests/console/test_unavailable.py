"""What the console's pages meet while the store is away: every route they call answers 503 with the JSON code
``unavailable`` (the app's middleware), which the pages say in their own words (i18n.js ``refused.unavailable``,
tests/e2e/test_console_safety.py shows the wording). No Retry-After: the pages say "try again in a moment".

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

CALLS = [
    ("POST", "/api/session", {"name": "sam", "password": "whatever-it-is"}),  # the login page
    ("POST", "/api/me/password", {"current": "a", "new": "b"}),  # the password dialog
    ("POST", "/api/listeners/anne/logout", {}),  # supervision's safety actions
    ("DELETE", "/api/blocks/" + "b" * 32, None),
    ("POST", "/api/floods/close", {"ids": ["x"]}),
    ("POST", "/api/conversations/x/notices", {}),  # the casework dialogs
    ("GET", "/api/supervision", None),
]


async def test_every_console_route_answers_unavailable_while_the_store_is_away(
    make_client: AppFactory, settings: Settings, own_redis: OwnRedis
) -> None:
    client = await make_client(settings.replace(store=own_redis.url))
    await add_listener(client, "sam", supervisor=True)
    await add_listener(client, "anne")
    await login(client, "sam")

    own_redis.stop()
    try:
        for method, path, body in CALLS:
            answer = await client.request(method, path, json=body)
            assert answer.status == 503, (method, path, answer.status)
            assert (await answer.json())["error"] == "unavailable", (method, path)
    finally:
        own_redis.start()
        async with asyncio.timeout(60):
            await ready(client)
