"""``Wakeups``: the worker's wake at each time given, earliest first, one timer at a time (real loop time)."""

from __future__ import annotations

import asyncio

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
