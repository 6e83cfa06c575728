"""Whether an instance knows yet who is at a console on every instance (``Presence.complete``): only once it has
followed the announcements without a gap for 2.5 beats; not while its subscription is down (a listener at a console
on another instance would look absent: the automatic hand-back takes nothing on that ground).

A real Redis of the test's own, stopped and started again; the presence's clock is the test's."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from gateway.console.presence import Presence
from gateway.store import open_store
from gateway.testing import store_keys
from tests.e2e.channel_support import eventually
from tests.losing_proxy import losing_proxy
from tests.test_redis_restart import OwnRedis, own_redis

__all__ = ["own_redis"]  # fixture used below

pytestmark = pytest.mark.redis


async def test_complete_only_after_two_and_a_half_beats_of_hearing_and_not_while_deaf(own_redis: OwnRedis) -> None:
    store = await open_store(own_redis.url, keys=store_keys(own_redis.url))
    now = [0.0]
    presence = Presence(beat=10, clock=lambda: now[0])
    listening = asyncio.create_task(presence.listen(store))
    try:
        await eventually(lambda: _true(presence._hearing_since is not None))
        now[0] += 24.9
        assert not presence.complete()
        now[0] += 0.1
        assert presence.complete()
        own_redis.stop()  # the subscription fails: the worker subscribes again by itself, deaf meanwhile
        await eventually(lambda: _true(presence._hearing_since is None), timeout=60)
        assert not listening.done() and not presence.complete()
        own_redis.start()  # subscribed again, by the same worker: a new count
        await eventually(lambda: _true(presence._hearing_since is not None), timeout=60)
        assert not presence.complete()
        now[0] += 25
        assert presence.complete()
    finally:
        listening.cancel()
        with contextlib.suppress(BaseException):
            await listening
        await store.close()
    assert not presence.complete()


async def _true(value: object) -> bool:
    return bool(value)


async def test_not_complete_once_its_path_to_redis_went_silent(own_redis: OwnRedis) -> None:
    """The path goes silent (no close, no reset: ``tests/losing_proxy.py``'s blackhole): the events connection is
    found silent (a PING unanswered) and the subscription fails, so presence no longer claims to hear every instance.
    Before, it waited for ever on the silent connection and went on answering ``complete()``: the automatic
    hand-back (``gateway/alerts.py``) could then take a conversation from a listener present on another instance,
    whose announcements it no longer heard."""
    async with losing_proxy(own_redis.url) as proxy:
        store = await open_store(proxy.url, keys=store_keys(proxy.url), health_check_interval=1.0, socket_timeout=2.0)
        now = [0.0]
        presence = Presence(beat=10, clock=lambda: now[0])
        listening = asyncio.create_task(presence.listen(store))
        try:
            await eventually(lambda: _true(presence._hearing_since is not None))
            now[0] += 25
            assert presence.complete()
            proxy.blackhole()
            await eventually(lambda: _true(presence._hearing_since is None), timeout=30)  # the subscription failed
            assert not listening.done() and not presence.complete()  # subscribing again by itself, deaf meanwhile
        finally:
            listening.cancel()
            with contextlib.suppress(BaseException):
                await listening
            await store.close()
