"""A steady stream of queue events (a busy line: every arrival, take and close is one), shared by the console's and
the supervision board's burst tests (tests/e2e/test_console_queue_burst.py, test_supervision_board_burst.py;
written 2026-12-07, when each had its own copy)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from gateway.events import QueueChanged
from gateway.store import Store


@contextlib.asynccontextmanager
async def queue_events_streaming(store: Store, every: float = 0.05) -> AsyncIterator[None]:
    """A queue event every ``every`` seconds for as long as the test looks (the block), stopped after it."""

    async def stream() -> None:
        while True:
            await store.publish(QueueChanged())
            await asyncio.sleep(every)

    task = asyncio.create_task(stream())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
