"""``webchat._first_ended`` (the subscription's two tasks, events and resync passes): a task that fails while it is
stopped (cancelled, it raises something else: a store call's error on its way out) has its failure retrieved and
said by class, never left to asyncio's "Task exception was never retrieved" with its message and traceback."""

from __future__ import annotations

import asyncio
import gc
import logging
from typing import Any

import pytest

from gateway.errors import StoreError
from gateway.webchat import _first_ended


async def fails() -> None:
    raise StoreError("the subscription lost")


async def fails_when_stopped() -> None:
    try:
        await asyncio.Event().wait()
    except asyncio.CancelledError:
        raise ValueError("ZZWORDS of a young person") from None


async def unretrieved_after(run: Any) -> list[dict[str, Any]]:
    """The contexts asyncio's exception handler was called with once ``run()`` returned and its tasks were freed."""
    loop = asyncio.get_running_loop()
    told: list[dict[str, Any]] = []
    previous = loop.get_exception_handler()
    loop.set_exception_handler(lambda _loop, context: told.append(context))
    try:
        await run()
        gc.collect()
    finally:
        loop.set_exception_handler(previous)
    return told


async def test_a_task_failing_as_it_is_stopped_after_the_first_ended_is_retrieved(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def run() -> None:
        with pytest.raises(StoreError):  # the first one's failure, raised as before
            await _first_ended(asyncio.create_task(fails()), asyncio.create_task(fails_when_stopped()))

    with caplog.at_level(logging.WARNING, logger="gateway.webchat"):
        told = await unretrieved_after(run)
    assert told == []  # before: [{'message': 'Task exception was never retrieved', 'exception': ValueError(...)}]
    assert "ValueError" in caplog.text and "ZZWORDS" not in caplog.text, caplog.text


async def test_a_task_failing_as_it_is_stopped_when_the_wait_is_cancelled_is_retrieved(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def run() -> None:
        started = asyncio.Event()

        async def stopped_last() -> None:
            started.set()
            await fails_when_stopped()

        waiting = asyncio.create_task(
            _first_ended(asyncio.create_task(stopped_last()), asyncio.create_task(fails_when_stopped()))
        )
        await started.wait()
        waiting.cancel()
        try:
            await waiting
        except asyncio.CancelledError:
            pass  # cancelled as before
        else:
            raise AssertionError("not cancelled")
        del waiting

    with caplog.at_level(logging.WARNING, logger="gateway.webchat"):
        told = await unretrieved_after(run)
    assert told == []
    assert caplog.text.count("ValueError") == 2 and "ZZWORDS" not in caplog.text, caplog.text
