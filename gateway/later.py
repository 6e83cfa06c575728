"""A task started only once its first step is due: a timer until then.

Each message's claim and each delivery's outbox lease are renewed every third of their lease while the work runs,
and nearly all of that work ends long before the first renewal: a task started per message, woken only to be
cancelled, cost more than a timer (``call_later``) that starts it when due (bench/README.md, "Ninth pass"; the
store's lock renewal uses it too, ``gateway/store/redis.py``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any


class Later:
    """``start()``'s coroutine run as a task after ``delay`` seconds, unless :meth:`cancel` came first; cancelled
    after that, the task is cancelled."""

    __slots__ = ("_start", "_task", "_timer")

    def __init__(self, delay: float, start: Callable[[], Coroutine[Any, Any, None]]) -> None:
        self._start = start
        self._task: asyncio.Task[None] | None = None
        self._timer = asyncio.get_running_loop().call_later(delay, self._begin)

    def _begin(self) -> None:
        self._task = asyncio.create_task(self._start())

    def cancel(self) -> None:
        self._timer.cancel()
        if self._task is not None:
            self._task.cancel()
