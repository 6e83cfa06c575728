"""Releases made again: a conversation lock or a message's claim whose release failed (Redis restarting or out of
reach, the connection closed before the answer came back) is released again in the background until Redis
answers, instead of holding its conversation until the lock's lease lapses (6 s) and its message until the
claim's does (the provider's redeliveries refused meanwhile).

A release checks its holder's token (the lock) or owner (the claim) in Lua, so one made late frees nothing of
somebody else's: it is safe to make again however late, and harmless when the first one ran after all and only
its answer was lost. Each failure is logged by class (the first and the last), never a key or an id; after
``RETRY_SECONDS`` the release is left to its lease.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from redis.exceptions import RedisError

from gateway.supervisor import where

log = logging.getLogger(__name__)
RETRY_SECONDS = 30.0  # longer than any lease it could shorten: the lock's 6 s, a claim's 10 s by default
FIRST_PAUSE, LONGEST_PAUSE = 0.05, 0.5


class Releases:
    """The releases being made again, one task each, cancelled when the store closes."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[None]] = set()

    def again(self, what: str, error: Exception, release: Callable[[], Awaitable[object]]) -> None:
        """``release`` failed with ``error``: make it again until Redis answers (``what``: "lock", "claim")."""
        log.warning("redis: releasing a %s failed (%s): made again until redis answers", what, type(error).__name__)
        task = asyncio.get_running_loop().create_task(self._retry(what, release))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _retry(self, what: str, release: Callable[[], Awaitable[object]]) -> None:
        loop = asyncio.get_running_loop()
        deadline, pause = loop.time() + RETRY_SECONDS, FIRST_PAUSE
        while True:
            await asyncio.sleep(pause)
            try:
                await release()
                return
            except RedisError as error:
                if loop.time() + pause >= deadline:
                    log.warning("redis: a %s's release given up (%s): left to its lease", what, type(error).__name__)
                    return
            except Exception as exc:  # a bug: said, not silent (the lease still ends it)
                log.error("redis: releasing a %s failed with %s at %s", what, type(exc).__name__, where(exc))
                return
            pause = min(pause * 2, LONGEST_PAUSE)

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
