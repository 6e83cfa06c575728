"""How long an operation held the event loop, as a ratio (tests/store/test_contract_big_reads.py's pattern).

A ticker task yields to the loop again and again; the longest time it went without a turn, compared to the whole
operation, says whether the operation let the loop turn: one block of synchronous work is most of it, work in parts
a fraction. A ratio, not a duration: a slow machine slows both alike. Times are the loop thread's CPU time
(``time.thread_time``), not the wall clock: on a loaded machine the process may wait for a core for a third of a
second in the middle of a part (seen in a full suite beside other work), which is no hold of the loop's own; a
thread's CPU time does not run while it waits, nor while the loop waits on a socket or another thread. The garbage
collector is off during the measure (a collection of the test process's heap, ~0.1 s, is not what is measured)."""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import Awaitable
from typing import TypeVar

T = TypeVar("T")


async def longest_hold(operation: Awaitable[T]) -> tuple[T, float, float]:
    """``operation``'s result, the longest gap between two turns of the loop while it ran, and how long it took."""
    gaps: list[float] = []
    running = True

    async def ticker() -> None:
        last = time.thread_time()
        while running:
            await asyncio.sleep(0)
            now = time.thread_time()
            gaps.append(now - last)
            last = now

    gc.collect()
    ticking = asyncio.create_task(ticker())
    await asyncio.sleep(0)
    gc.disable()
    try:
        start = time.thread_time()
        result = await operation
        took = time.thread_time() - start
    finally:
        gc.enable()
        running = False
    await ticking
    return result, max(gaps), took
