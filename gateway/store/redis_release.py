"""Releases made again: a conversation lock or a message's claim whose release failed (Redis restarting or out of
reach, the connection closed before the answer came back) is released again in the background until Redis
answers, instead of holding its conversation until the lock's lease lapses (6 s) and its message until the
claim's does (the provider's redeliveries refused meanwhile).

A release checks its holder's token (the lock) or owner (the claim) in Lua, so one made late frees nothing of
somebody else's: it is safe to make again however late, and harmless when the first one ran after all and only
its answer was lost. Each failure is logged by class (the first and the last), never a key or an id; after
``retry_seconds`` the release is given up (a WARNING line) and left to its lease.

Visible, as every background task is: each outcome is reported to ``on_outcome`` (the app counts them in
``gateway_store_release_retries{outcome}``: ``retried`` a release failed and is made again, ``released`` made
again, ``gave_up`` left to its lease), and :meth:`Releases.problem` is what ``/readyz`` shows when releases were
given up lately or one has been pending longer than the lock's lease. A retry is one short task per lost release,
bounded by ``retry_seconds`` and ending by itself, not a worker to restart: its body catches every exception
(a bug is logged by class and place, and counted as given up), and the store cancels what is left when it closes.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable

from redis.exceptions import RedisError

from gateway.outage_log import error_class
from gateway.supervisor import where

log = logging.getLogger(__name__)
RETRY_SECONDS = 30.0  # longer than any lease it could shorten: the lock's 6 s, a claim's 10 s by default
FIRST_PAUSE, LONGEST_PAUSE = 0.05, 0.5
PENDING_SHOWN_SECONDS = 6.0  # a release pending longer than the lock's lease is shown (``problem``)
GAVE_UP_SHOWN_SECONDS = 300.0  # a release given up is shown this long (``problem``); the counter keeps it


class Releases:
    """The releases being made again, one task each, cancelled when the store closes."""

    def __init__(
        self, *, retry_seconds: float = RETRY_SECONDS, monotonic: Callable[[], float] = time.monotonic
    ) -> None:
        self.retry_seconds, self._monotonic = retry_seconds, monotonic
        self.on_outcome: Callable[[str], None] = _ignored  # RELEASE_OUTCOMES, per release (the app counts them)
        # a failed release told to the app's outage log (once an outage, not once a release); None: a line each
        self.on_failure: Callable[[Exception], None] | None = None
        self._tasks: dict[asyncio.Task[None], float] = {}  # each retry → when its release failed (monotonic)
        self._gave_up: deque[float] = deque()  # when releases were given up (monotonic), for ``problem``
        self._closed = False

    def again(self, what: str, error: Exception, release: Callable[[], Awaitable[object]]) -> None:
        """``release`` failed with ``error``: make it again until Redis answers (``what``: "lock", "claim")."""
        if self._closed:  # the store is closing: nothing may outlive it
            log.warning("redis: releasing a %s failed (%s) as the store closes: left to its lease", what,
                        error_class(error))  # fmt: skip
            self.on_outcome("retried")
            self._give_up()
            return
        if self.on_failure is not None:
            self.on_failure(error)
        else:
            log.warning("redis: releasing a %s failed (%s): made again until redis answers", what, error_class(error))
        task = asyncio.get_running_loop().create_task(self._retry(what, release), name=f"redis-release-{what}")
        self._tasks[task] = self._monotonic()
        task.add_done_callback(self._forget)
        self.on_outcome("retried")

    def problem(self) -> dict[str, float] | None:
        """None when releases go well; else what ``/readyz`` shows: the releases being made again, how long the
        oldest has been, and how many were given up in the last ``GAVE_UP_SHOWN_SECONDS``."""
        now = self._monotonic()
        self._trim(now)
        oldest = max((now - since for since in self._tasks.values()), default=0.0)
        if not self._gave_up and oldest < PENDING_SHOWN_SECONDS:
            return None
        return {"pending": len(self._tasks), "oldest_pending_seconds": round(oldest, 1),
                "given_up_recently": len(self._gave_up)}  # fmt: skip

    async def _retry(self, what: str, release: Callable[[], Awaitable[object]]) -> None:
        deadline, pause = time.monotonic() + self.retry_seconds, FIRST_PAUSE
        while True:
            await asyncio.sleep(pause)
            try:
                await release()
            except RedisError as error:
                if time.monotonic() + pause >= deadline:
                    log.warning("redis: a %s's release given up after %g s (%s): left to its lease", what,
                                self.retry_seconds, error_class(error))  # fmt: skip
                    self._give_up()
                    return
            except Exception as exc:  # a bug: said, not silent (the lease still ends it)
                log.error("redis: releasing a %s failed with %s at %s", what, type(exc).__name__, where(exc))
                self._give_up()
                return
            else:
                self.on_outcome("released")
                return
            pause = min(pause * 2, LONGEST_PAUSE)

    def _give_up(self) -> None:
        now = self._monotonic()
        self._trim(now)  # here too: without a readiness probe reading ``problem``, the deque grew for good (until
        self._gave_up.append(now)  # 2026-12-07, one entry per release given up)
        self.on_outcome("gave_up")

    def _trim(self, now: float) -> None:
        while self._gave_up and now - self._gave_up[0] > GAVE_UP_SHOWN_SECONDS:
            self._gave_up.popleft()

    def _forget(self, task: asyncio.Task[None]) -> None:
        self._tasks.pop(task, None)

    async def close(self) -> None:
        self._closed = True
        tasks = [task for task in self._tasks if not task.done()]
        if tasks:
            log.warning("redis: %d release(s) still being made again as the store closes: left to their lease",
                        len(tasks))  # fmt: skip
        for task in tasks:
            task.cancel()
            self._give_up()
        await asyncio.gather(*tasks, return_exceptions=True)


def _ignored(outcome: str) -> None:
    """No one counts the outcomes (the CLI, a test's store): the log lines still say them."""
