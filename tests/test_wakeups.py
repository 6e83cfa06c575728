"""``Wakeups``: the worker's wake at each time given, earliest first, one timer at a time (real loop time)."""

from __future__ import annotations

import asyncio
import random
import time

from gateway.wakeups import Wakeups


async def test_each_time_given_wakes_once_in_order_whatever_the_order_given() -> None:
    loop = asyncio.get_running_loop()
    woken: list[float] = []
    done = asyncio.Event()

    def wake() -> None:
        woken.append(loop.time())
        if len(woken) == 3:
            done.set()

    wakeups = Wakeups(wake)
    start = loop.time()
    for delay in (0.3, 0.1, 0.2):
        wakeups.after(delay)
    async with asyncio.timeout(30):
        await done.wait()
    assert [round(at - start, 1) >= d for at, d in zip(woken, (0.1, 0.2, 0.3), strict=True)] == [True] * 3
    assert wakeups.pending() == 0


async def test_beyond_the_bound_a_time_is_left_to_the_poll_and_cancel_forgets_them() -> None:
    wakeups = Wakeups(lambda: None, bound=2)
    for delay in (10, 20, 30):
        wakeups.after(delay)
    assert wakeups.pending() == 2
    wakeups.cancel()
    assert wakeups.pending() == 0


async def test_a_wake_never_comes_before_the_wall_clocks_moment_it_was_asked_for() -> None:
    """The outbox stores a retry's time by the wall clock and claims it by the wall clock: a wake before that moment
    claims nothing, and the retry waits for the next poll. uvloop's millisecond timers fired early for about a
    quarter of these wakes before ``LATE``; a busy machine only makes them later."""
    rng = random.Random(9)
    early = []
    for _ in range(300):
        woken = asyncio.Event()
        wakeups = Wakeups(woken.set)
        delay = rng.uniform(0.0005, 0.003)
        due = time.time() + delay
        wakeups.after(delay)
        async with asyncio.timeout(30):
            await woken.wait()
        if (now := time.time()) < due:
            early.append(due - now)
    assert early == []
