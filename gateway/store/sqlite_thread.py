"""The SQLite store's own thread: the only one touching its connection, one job at a time, in order.

What ``loop.run_in_executor`` on a one-worker ``ThreadPoolExecutor`` did, for less CPU per job (a store call is
one hop to this thread and back; about 13 of them per message): a job is put on a queue with the caller's asyncio
future; the thread runs it and settles the future from the loop (``call_soon_threadsafe``). Timed alone, a hop
costs about 20 µs of CPU where the executor's took 27 (bench/README.md, "Fourth pass"): no
``concurrent.futures.Future`` (a lock and a condition each) and no chaining of two futures.

As with the executor, a job whose caller was cancelled before the thread took it is skipped, and a result whose
caller went away meanwhile is dropped. The thread is a daemon: a store never closed does not keep the process
alive (closing it runs the jobs already queued, then ends the thread).
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")
_Job = tuple[asyncio.AbstractEventLoop, "asyncio.Future[Any]", Callable[..., Any], tuple[Any, ...]]


class StoreThread:
    def __init__(self, name: str) -> None:
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._work, name=name, daemon=True)
        self._thread.start()

    def run(self, call: Callable[..., T], *args: Any) -> asyncio.Future[T]:
        """``call(*args)`` on the thread, after the jobs queued before it; await the result."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._jobs.put((loop, future, call, args))
        return future

    def stop(self) -> None:
        """End the thread once the jobs queued so far are done."""
        self._jobs.put(None)

    def _work(self) -> None:
        while (job := self._jobs.get()) is not None:
            loop, future, call, args = job
            if future.cancelled():  # its caller gave up before it began
                continue
            try:
                result, error = call(*args), None
            except BaseException as exc:  # handed to the caller, as an executor's future would
                result, error = None, exc
            with contextlib.suppress(RuntimeError):  # the caller's loop closed meanwhile: nobody to tell
                loop.call_soon_threadsafe(_settle, future, result, error)


def _settle(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if future.cancelled():
        return
    if error is None:
        future.set_result(result)
    else:
        future.set_exception(error)
