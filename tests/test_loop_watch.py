"""The event loop held by a blocking call is seen: counted in ``/metrics`` and told in one WARNING line a minute,
naming no one (gateway/loop_watch.py). Before, an instance whose loop was held answered nothing meanwhile, and
nothing said so."""

from __future__ import annotations

import asyncio
import logging
import socket
import time

import pytest

from gateway.loop_watch import LoopWatch, timeout_unheld
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


async def test_a_hold_just_after_another_is_counted_from_the_first() -> None:
    """A process resumed from a freeze catches up (every socket's close, every timer due, every answer at once) and
    its loop is held again for a moment: a socket's close seen then may still be from the freeze, and ``held_for``
    counts from the first hold's start, not the second's (since 2026-12-08: the catch-up's hold, under way or just
    ended, replaced the freeze's, and a close seen in it was dated after the freeze, after the page had come back on
    the other instance: its "gone" timer armed)."""
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
        await woke_at(110.0)  # frozen 10 s, resumed
        now[0] = 110.8  # catching up: the loop held again 0.8 s, the wake-up not run yet
        assert watch.held_for() == pytest.approx(10.8), "a close seen in the catch-up dated after the freeze"
        await woke_at(110.8)  # that hold ended
        assert watch.held_for() == pytest.approx(10.8)
        for moment in (111.05, 111.3, 111.55, 111.8):  # wake-ups on time again
            await woke_at(moment)
        assert watch.held_for() == pytest.approx(11.8)  # a second after the catch-up's end: from the freeze's start
        await woke_at(112.05)
        assert watch.held_for() == 0.0
    finally:
        task.cancel()


async def test_an_answer_that_came_while_the_loop_was_held_past_its_deadline_is_read() -> None:
    """The loop held past a call's deadline (a process stopped, its VM paused), its answer arriving meanwhile: on
    resume the deadline and the answer are due at once. ``asyncio.timeout`` lets the deadline win (the timer's cancel
    runs before the task's wake-up); :func:`timeout_unheld` reads the answer (``tests/test_freeze.py``: a reply the
    provider accepted during a freeze taken for timed out and sent again)."""
    loop = asyncio.get_running_loop()
    ours, theirs = socket.socketpair()
    reader, writer = await asyncio.open_connection(sock=ours)

    def frozen() -> None:
        time.sleep(0.8)  # the process stopped, past the deadline
        theirs.send(b"accepted\n")  # what the provider answered meanwhile, waiting in the socket's buffer

    try:
        loop.call_later(0.05, frozen)
        with pytest.raises(TimeoutError):  # the race as asyncio's own timeout runs it
            async with asyncio.timeout(0.3):
                await reader.readline()
        assert await reader.readline() == b"accepted\n"  # it was there all along
        loop.call_later(0.05, frozen)
        async with timeout_unheld(0.3):
            assert await reader.readline() == b"accepted\n"
        with pytest.raises(TimeoutError):  # a deadline reached on time is a deadline
            async with timeout_unheld(0.2):
                await reader.readline()
    finally:
        writer.close()
        theirs.close()
