"""The instance's clock (``gateway/clock.py``, ``Aligned``) set on Redis's ``TIME`` across a network: a reading whose
answer was held on its way (a stall of the path, 100-500 ms now and then on a managed Redis, up to the socket
timeout) says the store's time only to within its round trip. Until 2026-12-07 every reading was taken at its
midpoint: the clock stepped by half the stall (back when the answer was held, forward when the question was), each
instance its own way, eating the margins of the leases every instance reads against its own clock.

A real store behind ``tests/delaying_proxy.py`` (the stall one way only), the app's own ``_align``; the host's
clock is left alone, so any step of the instance's clock against it is the reading's doing."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from datetime import datetime

import pytest

from gateway.app import _align
from gateway.clock import Aligned, utcnow
from gateway.metrics import Metrics
from gateway.store import open_store
from gateway.testing import store_keys
from tests.delaying_proxy import DelayingProxy, delaying_proxy
from tests.store.conftest import emptied, redis_url  # noqa: F401  (the session's redis-server)

pytestmark = pytest.mark.redis

STALL = 1.0  # seconds the answer (or the question) of one reading is held


@pytest.fixture
async def proxy(redis_url: str) -> AsyncIterator[DelayingProxy]:  # noqa: F811
    async with delaying_proxy(emptied(redis_url), delay=0.001) as proxy:
        yield proxy


def offset(clock: Aligned) -> float:
    """The instance's clock minus the host's, now (seconds)."""
    ours: datetime = clock()
    return (ours - clock.local()).total_seconds()


@pytest.mark.parametrize("answer", [True, False], ids=["answer held", "question held"])
async def test_a_reading_held_on_its_way_does_not_step_the_clock(proxy: DelayingProxy, answer: bool) -> None:
    store = await open_store(proxy.url, keys=store_keys(proxy.url))
    try:
        clock, metrics = Aligned(utcnow, time.monotonic), Metrics()
        await _align(clock, store, metrics)  # a reading of a path without stall: the clock is set
        assert clock.skew is not None
        before = offset(clock)
        proxy.stall(STALL, up=not answer, down=answer)
        await _align(clock, store, metrics)
        step = offset(clock) - before
        assert abs(step) < STALL / 4, f"the clock stepped {step:+.3f} s on a reading held {STALL} s"
    finally:
        await store.close()
