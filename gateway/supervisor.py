"""Every background worker runs under one supervisor: none can stop without it being seen and restarted.

A worker is a coroutine function meant to run for the app's lifetime (web chat and console event forwarding,
presence, the typing relay, the outbox, the timers, the flows.yaml watcher, the alert checks; behind Sentinel, each
Redis pool's check of the primary). When one raises,
or returns, the supervisor logs it by exception class and code place (never the exception's message, which may
quote what a young person wrote; a StoreError at INFO, the outage being told once by ``gateway/outage_log.py``,
where it is counted too), counts it in ``gateway_worker_restarts{worker}``, and starts it again after
an exponential backoff (``base_delay`` doubling up to ``max_delay``; back to ``base_delay`` once a run lasted
``stable_seconds``). ``/readyz`` asks :meth:`Supervisor.problems`: a worker waiting to restart is ``down``; one
that restarted ``too_many`` times within ``window_seconds`` is ``restarting too often``, its restarts by a
StoreError not counted: a store outage of a few seconds (a Redis restart, a Sentinel failover) restarts the workers
that use it five times or more, and they were named "restarting too often" for the window's 60 s after the store
was back, ``/readyz`` 503 on every instance for a minute after a 2 s failover (tests/test_sentinel_failover.py).
The store's own check (``store: unreachable``) says the outage while it lasts.
"""

from __future__ import annotations

import asyncio
import logging
import time
import traceback
from collections import deque
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gateway.errors import StoreError
from gateway.metrics import Metrics
from gateway.outage_log import error_class

log = logging.getLogger(__name__)

STOP_RECANCEL_SECONDS = 1.0

Worker = Callable[[], Coroutine[Any, Any, None]]


def where(exc: BaseException) -> str:
    """``module.py:LINE in function`` of each of the innermost frames: enough to find a bug, and no values."""
    frames = traceback.extract_tb(exc.__traceback__)[-3:]
    return " < ".join(f"{Path(f.filename).name}:{f.lineno} in {f.name}" for f in reversed(frames))


@dataclass
class _State:
    running: bool = False
    restarts: deque[float] = field(default_factory=deque)  # monotonic times of recent restarts


class Supervisor:
    def __init__(
        self,
        metrics: Metrics,
        *,
        base_delay: float = 0.1,
        max_delay: float = 30.0,
        stable_seconds: float = 60.0,
        window_seconds: float = 60.0,
        too_many: int = 5,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.metrics, self.clock = metrics, clock
        self.base_delay, self.max_delay, self.stable_seconds = base_delay, max_delay, stable_seconds
        self.window_seconds, self.too_many = window_seconds, too_many
        self._workers: dict[str, Worker] = {}
        self._states: dict[str, _State] = {}
        self._tasks: list[asyncio.Task[None]] = []

    def add(self, name: str, worker: Worker) -> None:
        if name in self._workers:
            raise ValueError(f"worker {name!r} is already supervised")
        self._workers[name] = worker
        self._states[name] = _State()

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._keep(n, w), name=f"gateway-{n}") for n, w in self._workers.items()]

    async def stop(self) -> None:
        """Cancel every worker and wait until each has ended. A cancellation can be lost on the way (Python 3.11's
        ``asyncio.wait_for`` turns a cancel that races its timeout into a TimeoutError, which a polling loop then
        suppresses): a worker still running a moment later is cancelled again, so shutdown never hangs on it."""
        pending = {task for task in self._tasks if not task.done()}
        while pending:
            for task in pending:
                task.cancel()
            _, pending = await asyncio.wait(pending, timeout=STOP_RECANCEL_SECONDS)
            if pending:
                log.warning("workers still running after cancel: %s; cancelling again",
                            ", ".join(sorted(task.get_name() for task in pending)))  # fmt: skip
        self._tasks = []

    def problems(self) -> dict[str, str]:
        """Workers that are not healthy, by name: ``down`` or ``restarting too often``."""
        now, found = self.clock(), {}
        for name, state in self._states.items():
            while state.restarts and now - state.restarts[0] > self.window_seconds:
                state.restarts.popleft()
            if not state.running:
                found[name] = "down"
            elif len(state.restarts) >= self.too_many:
                found[name] = "restarting too often"
        return found

    async def _keep(self, name: str, worker: Worker) -> None:
        state, failures = self._states[name], 0
        while True:
            started, store_failed = self.clock(), False
            state.running = True
            try:
                await worker()
                _raise_if_cancelling()
                log.error("worker %s returned: it should run until the gateway stops; restarting", name)
            except StoreError as exc:  # the store's failure: told once an outage with every part's (outage_log.py)
                _raise_if_cancelling()
                self.metrics.outages.failed(name, exc)
                log.info("worker %s stopped by %s at %s; restarting", name, error_class(exc), where(exc))
                store_failed = True
            except Exception as exc:  # every failure is logged and counted, then the worker restarts
                _raise_if_cancelling()  # stopping: a worker that swallowed its cancellation is not restarted
                log.error("worker %s stopped by %s at %s; restarting", name, type(exc).__name__, where(exc))
            finally:
                state.running = False
            failures = 0 if self.clock() - started >= self.stable_seconds else failures
            delay = min(self.base_delay * 2**failures, self.max_delay)
            failures += 1
            if not store_failed:  # an outage's restarts are the store's problem, which /readyz names by itself
                state.restarts.append(self.clock())
            self.metrics.worker_restarts.labels(name).inc()
            await asyncio.sleep(delay)


def _raise_if_cancelling() -> None:
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError
