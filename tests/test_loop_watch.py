"""The event loop held by a blocking call is seen: counted in ``/metrics`` and told in one WARNING line a minute,
naming no one (gateway/loop_watch.py). Before, an instance whose loop was held answered nothing meanwhile, and
nothing said so."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest

from gateway.loop_watch import LoopWatch
from gateway.metrics import Metrics
from tests.test_metrics import Client, scrape, value


async def test_a_blocking_call_on_the_loop_is_counted_and_logged(
    client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="gateway.loop_watch")
    assert value(await scrape(client), "gateway_loop_lag_seconds_count") >= 0
    time.sleep(1.0)  # the fault: a blocking call holds the loop (the watcher is due every 0.25 s)
    deadline = time.monotonic() + 60
    while value(metrics := await scrape(client), "gateway_loop_held_total") < 1:
        assert time.monotonic() < deadline, "the hold was never counted"
        await asyncio.sleep(0.05)
    assert value(metrics, "gateway_loop_lag_seconds_bucket", le="0.5") < value(
        metrics, "gateway_loop_lag_seconds_count"
    )
    told = [r.getMessage() for r in caplog.records if r.name == "gateway.loop_watch"]
    assert told and "the event loop was held" in told[0], told


def test_holds_are_told_once_a_minute_and_summed_up_in_the_next_line(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="gateway.loop_watch")
    now = [1000.0]
    watch = LoopWatch(Metrics(), monotonic=lambda: now[0])
    watch.woke(0.01)  # an ordinary wake-up: measured, not told
    watch.woke(0.8)
    for late in (0.6, 2.0, 0.7):
        now[0] += 10
        watch.woke(late)
    now[0] += 31  # 61 s after the first line
    watch.woke(0.5)
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 2, lines
    assert lines[0].startswith("the event loop was held 0.80 s (1 hold(s)")
    assert lines[1].startswith("the event loop was held 0.50 s (4 hold(s)") and "the longest 2.00 s" in lines[1]
    exposition = watch.metrics.exposition().decode()
    assert (
        value(exposition, "gateway_loop_held_total") == 5 and value(exposition, "gateway_loop_lag_seconds_count") == 6
    )


async def test_held_for_says_how_long_ago_the_loop_last_ran_during_a_hold_and_just_after_it() -> None:
    """``held_for`` (since 2026-12-07): during a hold (a process frozen, a blocking call) and within ``RECENT`` after
    it, how long ago the loop last ran before it; otherwise 0 (a web chat socket's close seen then may be that old).
    The watcher's clock is the test's: each step moves it, then waits for the wake-up that reads it."""
    now = [100.0]
    watch = LoopWatch(Metrics(), monotonic=lambda: now[0])

    async def woke_at(moment: float) -> None:
        now[0] = moment
        async with asyncio.timeout(30):  # a safety net against a hang, not a timing assumption
            while watch._before != moment:
                await asyncio.sleep(0.01)

    task = asyncio.create_task(watch.run())
    try:
        await woke_at(100.0)
        assert watch.held_for() == 0.0
        now[0] = 105.0  # stopped 5 s, the wake-up not run yet: a hold under way
        assert watch.held_for() == 5.0
        await woke_at(105.0)  # resumed, the late wake-up run: the hold just ended
        assert watch.held_for() == 5.0
        await woke_at(105.5)  # wake-ups on time again (late 0.25 s each)
        await woke_at(106.0)  # a second after its end: still counted
        assert watch.held_for() == 6.0
        await woke_at(106.5)
        assert watch.held_for() == 0.0
    finally:
        task.cancel()
