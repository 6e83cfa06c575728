"""How long the event loop was held: one supervised task wakes every ``every`` seconds and measures how late it woke.

Everything of an instance runs on one event loop: a call that blocks it (a file read, a big JSON, a CPU-heavy
computation, a saturated process) answers no webhook, no web chat and no console meanwhile, and until 2026-12-06
nothing said so: the instance looked healthy, only slow. Now every wake-up's lateness is in
``gateway_loop_lag_seconds`` (a histogram: alert on its p99 or on ``gateway_loop_held_total``), and a hold of at least
``held`` seconds is counted and logged as a WARNING, at most one line a minute (the holds since the last line summed
up in the next one). The line names no person and no message: only durations.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable

from gateway.metrics import Metrics

log = logging.getLogger(__name__)

EVERY = 0.25  # seconds between wake-ups: four timers a second, nothing measurable on the message path
HELD = 0.5  # seconds: a hold this long is logged (a reply's p99 is tens of milliseconds)
LOG_EVERY = 60.0  # seconds: at most one line this often
RECENT = 1.0  # seconds: a hold that ended this recently still counts for :meth:`LoopWatch.held_for`
CATCH_UP = 5.0  # seconds after a hold: one more within RECENT of it is its catch-up, counted from its start
# seconds: what :func:`timeout_unheld` gives a call whose deadline the loop reached late (held), to read what came
GRACE = 1.0


@contextlib.asynccontextmanager
async def timeout_unheld(seconds: float | None) -> AsyncIterator[None]:
    """``asyncio.timeout(seconds)``, except when the loop reaches the deadline late (by ``HELD`` or more: the process
    was stopped, its VM paused or migrated, a swap storm, the loop blocked): the call is then given ``GRACE`` seconds
    more (again while the loop is still held), so that an answer that came meanwhile, waiting in the socket's buffer,
    is read before the deadline is taken for passed. An answer and a deadline both due on resume are otherwise a
    race the deadline wins (asyncio runs the timer's cancel before the task's wake-up). Since 2026-12-08 for the
    providers' sends (Messenger, WhatsApp): until then a send the provider accepted while the instance was frozen
    past its timeout was taken for timed out and sent again (``tests/test_freeze.py``, the greeting twice). Since
    2026-12-08 too for the Redis batcher's replies (``gateway/store/redis_batch.py``): a batch Redis had run was taken
    for failed at resume (a send's record, given up: the send made again). ``None``: no deadline."""
    if seconds is None:
        yield
        return
    loop = asyncio.get_running_loop()
    async with asyncio.timeout(None) as timeout:
        handle: asyncio.TimerHandle | None = None

        def due(when: float) -> None:
            nonlocal handle
            now = loop.time()
            if now - when >= HELD:  # the loop was held as it came due: what came meanwhile is read first
                handle = loop.call_at(now + GRACE, due, now + GRACE)
            else:
                timeout.reschedule(now)

        deadline = loop.time() + seconds
        handle = loop.call_at(deadline, due, deadline)
        try:
            yield
        finally:
            handle.cancel()


class LoopWatch:
    def __init__(
        self, metrics: Metrics, *, every: float = EVERY, held: float = HELD, log_every: float = LOG_EVERY,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:  # fmt: skip
        self.metrics, self.every, self.held, self.log_every, self.monotonic = metrics, every, held, log_every, monotonic
        self._logged_at: float | None = None
        self._unlogged, self._unlogged_longest = 0, 0.0
        self._before: float | None = None  # when the wake-up under way was asked for: the loop ran then
        self._hold: tuple[float, float] | None = None  # the latest hold: when the loop last ran before it, its end
        self._resumed = 0.0  # the end of the latest hold that followed none (the holds just after it: its catch-up)

    async def run(self) -> None:
        while True:
            before = self._before = self.monotonic()
            await asyncio.sleep(self.every)
            now = self.monotonic()
            if (late := now - before - self.every) >= self.held:
                if (since := self._since(before)) == before:  # a hold of its own: a catch-up's would follow it
                    self._resumed = now
                self._hold = (since, now)
            self.woke(late)

    def held_for(self) -> float:
        """How long ago the loop last ran before a hold still on (this wake-up late by ``held`` or more) or one that
        ended within ``RECENT`` seconds, else 0: what happened outside the process meanwhile (a socket closed, a page
        gone to another instance) may have happened that long ago, while the process was stopped (SIGSTOP, a VM
        paused or migrated, a swap storm) or its loop blocked. Since 2026-12-07: a web chat socket whose close an
        instance frozen saw only on resume took the close for that late, after the page had come back on the other
        instance, and armed its "gone" timer (``tests/test_freeze.py``)."""
        now = self.monotonic()
        if self._before is not None and now - self._before - self.every >= self.held:
            return now - self._since(self._before)
        if self._hold is not None and now - self._hold[1] <= RECENT:
            return now - self._hold[0]
        return 0.0

    def _since(self, before: float) -> float:
        """When a hold whose loop last ran at ``before`` began: the start of the hold before it when that one ended
        within ``RECENT`` (a process resumed from a freeze, held again while it catches up: one hold), for ``CATCH_UP``
        seconds after the first of them ended at most (a loop held over and over is not one hold for ever). Since
        2026-12-08: the catch-up's hold replaced the freeze's, and a socket's close seen in it was dated after the
        freeze (``tests/test_loop_watch.py::test_a_hold_just_after_another_is_counted_from_the_first``)."""
        if self._hold is not None and before - self._hold[1] <= RECENT and before - self._resumed <= CATCH_UP:
            return self._hold[0]
        return before

    def woke(self, late: float) -> None:
        """One wake-up ``late`` seconds after it was due."""
        late = max(late, 0.0)
        self.metrics.loop_lag.observe(late)
        if late < self.held:
            return
        self.metrics.loop_held.inc()
        self._unlogged += 1
        self._unlogged_longest = max(self._unlogged_longest, late)
        now = self.monotonic()
        if self._logged_at is not None and now - self._logged_at < self.log_every:
            return
        log.warning("the event loop was held %.2f s (%d hold(s) of %.1f s or more since the last such line, the"
                    " longest %.2f s): nothing was answered meanwhile; gateway_loop_held_total counts them",
                    late, self._unlogged, self.held, self._unlogged_longest)  # fmt: skip
        self._logged_at, self._unlogged, self._unlogged_longest = now, 0, 0.0
