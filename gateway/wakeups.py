"""Waking a worker when something it rescheduled falls due, not at its next poll: one timer at a time.

The outbox reschedules a reply its provider refused for now (a 503, a 429's ``retry_after``) at a retry time;
its worker otherwise looks again only at its next poll (a second by default), so a retry went out up to a poll
late, and with a longer poll, that much later. :class:`Wakeups` keeps the times it was given in a heap and one
``call_at`` timer for the earliest: each fires the worker's wake, then arms the next.
"""

from __future__ import annotations

import asyncio
import heapq
from collections.abc import Callable

BOUND = 1_000  # times kept at most: beyond, a new one is left to the worker's poll
EARLY = 0.001  # s: a timer may fire this much before its time (the loop's resolution); its time counts as come
# s: each timer is armed this much after the time asked. uvloop's timers are libuv's, in whole milliseconds of a
# loop time kept in milliseconds: one fires up to a millisecond before the time asked (measured: 28 % of wakes
# 0.5-3 ms away came before the wall clock's moment). The worker then claimed a reply not yet due, found nothing,
# and the retry waited for the next poll (a test's 60 s poll: seen once in a full suite).
LATE = 0.002


class Wakeups:
    """Calls ``wake`` at each time given to :meth:`after`, earliest first, with one timer armed at a time."""

    __slots__ = ("_bound", "_timer", "_times", "_wake")

    def __init__(self, wake: Callable[[], None], bound: int = BOUND) -> None:
        self._wake, self._bound = wake, bound
        self._times: list[float] = []  # loop times, a heap
        self._timer: asyncio.TimerHandle | None = None

    def after(self, delay: float) -> None:
        """Wake in ``delay`` seconds (whatever else was asked)."""
        if len(self._times) >= self._bound:
            return
        loop = asyncio.get_running_loop()
        when = loop.time() + max(delay, 0.0)
        heapq.heappush(self._times, when)
        if self._times[0] == when:  # the earliest now: the timer moves to it
            self._arm(loop)

    def pending(self) -> int:
        return len(self._times)

    def cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer, self._times = None, []

    def _arm(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = loop.call_at(self._times[0] + LATE, self._fire, loop) if self._times else None

    def _fire(self, loop: asyncio.AbstractEventLoop) -> None:
        now = loop.time() + EARLY
        while self._times and self._times[0] <= now:
            heapq.heappop(self._times)
        self._timer = None
        self._wake()
        self._arm(loop)
