"""What the console's pages meet while the store is away: every route they call answers 503 with the JSON code
``unavailable`` (the app's middleware), which the pages say in their own words (i18n.js ``refused.unavailable``,
tests/e2e/test_console_safety.py shows the wording), with a ``Retry-After`` (gateway/outage_log.py's
``RETRY_AFTER_SECONDS``), as on every other route: a webhook's provider, a browser may follow it.

Its own redis-server (tests/test_redis_restart.py's), since the test stops it.
"""

from __future__ import annotations

import asyncio
import json
import logging

import pytest

from gateway.outage_log import RETRY_AFTER_SECONDS
from gateway.settings import Settings
from gateway.testing import BOT_TOKEN, FakeTelegramAPI, telegram_headers, telegram_update
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
    ("DELETE", "/api/session", None),  # "Se déconnecter" (its own wrapper's 503), last: it removes the cookie
]


async def test_every_console_route_answers_unavailable_while_the_store_is_away(
    make_client: AppFactory, settings: Settings, own_redis: OwnRedis, caplog: pytest.LogCaptureFixture
) -> None:
    """And says it as the store's outage (gateway/outage_log.py), never as a bug: until 2026-12-07 a login's brake
    (the login counters, ``LoginBrake``, on the same Redis) let redis-py's ConnectionError through, logged at ERROR
    as "unexpected ConnectionError while serving POST /api/session" at every attempt (chaos seed 53: 7 lines)."""
    client = await make_client(settings.replace(store=own_redis.url))
    await add_listener(client, "sam", supervisor=True)
    await add_listener(client, "anne")
    await login(client, "sam")

    own_redis.stop()
    caplog.set_level(logging.INFO)
    try:
        for method, path, body in CALLS:
            answer = await client.request(method, path, json=body)
            assert answer.status == 503, (method, path, answer.status)
            assert (await answer.json())["error"] == "unavailable", (method, path)
            assert answer.headers.get("Retry-After") == str(RETRY_AFTER_SECONDS), (method, path)
        unexpected = [r.getMessage() for r in caplog.records if "unexpected" in r.getMessage()]
        assert unexpected == []  # before: "unexpected ConnectionError while serving POST /api/session ..."
    finally:
        own_redis.start()
        async with asyncio.timeout(60):
            await ready(client)


async def test_a_webhook_met_by_the_store_away_is_told_when_to_try_again(
    make_client: AppFactory, settings: Settings, own_redis: OwnRedis, telegram: FakeTelegramAPI
) -> None:
    """A provider's webhook answered 503 ``unavailable`` while the store is away says when to try again, as the
    console's routes do (until 2026-12-06 no ``Retry-After``: each provider guessed)."""
    secret = "telegram-secret-for-the-outage"
    telegram_on = settings.replace(store=own_redis.url, telegram_bot_token=BOT_TOKEN, telegram_webhook_secret=secret,
                                   telegram_api_url=telegram.url)  # fmt: skip
    client = await make_client(telegram_on)
    own_redis.stop()
    try:
        update = json.dumps(telegram_update(900007001, 700007001, "bonjour"))
        answer = await client.post("/webhooks/telegram", data=update, headers=telegram_headers(secret))
        assert answer.status == 503
        assert (await answer.json())["error"] == "unavailable"
        assert answer.headers.get("Retry-After") == str(RETRY_AFTER_SECONDS)
    finally:
        own_redis.start()
        async with asyncio.timeout(60):
            await ready(client)
