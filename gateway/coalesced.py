"""One read shared by the callers that came while the one before it ran: :class:`Coalesced`.

At a peak every console reloads its queue at each arrival, take or close (``console.js``'s ``scheduleQueue``), and
each reload read the whole waiting queue and every held conversation: twenty consoles, twenty identical reads a
change, several changes a second (measured by the console-at-a-peak review: 65 ms of the event loop a read at 500
waiting). With :class:`Coalesced` the callers that come while a read runs share the next one, begun once that read
is over: at most two reads run per burst of reloads, and no caller gets an answer read before it called (a console
reloading because of a change always sees it).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class Coalesced(Generic[T]):
    """``read`` shared: :meth:`get` answers what a read begun after the call returned (or raised)."""

    def __init__(self, read: Callable[[], Awaitable[T]]) -> None:
        self._read = read
        self._next: asyncio.Future[T] | None = None  # the read the callers join: not begun yet
        self._one = asyncio.Lock()  # one read at a time
        self._running: set[asyncio.Task[None]] = set()  # the loop holds tasks weakly

    async def get(self) -> T:
        if self._next is None:
            self._next = asyncio.get_running_loop().create_future()
            self._next.add_done_callback(_retrieved)
            task = asyncio.create_task(self._run(self._next))
            self._running.add(task)
            task.add_done_callback(self._running.discard)
        return await asyncio.shield(self._next)  # a caller gone (a page closed) does not stop the others' read

    async def _run(self, future: asyncio.Future[T]) -> None:
        async with self._one:
            if self._next is future:  # from now on, callers join the next read: this one may precede them
                self._next = None
            try:
                future.set_result(await self._read())
            except Exception as exc:  # the callers' to handle, each as if it had read alone
                future.set_exception(exc)
            except BaseException:  # cancelled (the app stopping): its callers are not left waiting
                future.cancel()
                raise


def _retrieved(future: asyncio.Future[T]) -> None:
    """A read's error is its callers'; with none left (all gone), it is not an unretrieved exception."""
    if not future.cancelled():
        future.exception()
