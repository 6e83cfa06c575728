"""The batcher's give-back tasks (``AutoPipeline._give_back_if_idle``) are awaited only by ``close``: a failure of
one (the pool's release raising) is logged by class and place when it ends, never left to the garbage collector's
"Task exception was never retrieved" (since 2026-12-07)."""

from __future__ import annotations

import asyncio
import contextlib
import logging

import pytest

from gateway.store.redis_batch import _said


async def test_a_give_back_that_fails_is_logged_by_class_and_place(caplog: pytest.LogCaptureFixture) -> None:
    async def release() -> None:
        raise RuntimeError("the pool's release broke")

    task = asyncio.get_running_loop().create_task(release())
    with contextlib.suppress(RuntimeError):
        await task
    with caplog.at_level(logging.ERROR, logger="gateway.store.redis_batch"):
        _said(task)
    [record] = caplog.records
    assert "failed with RuntimeError at" in record.getMessage()
    assert "broke" not in record.getMessage()  # the class and place, never the message's text


async def test_a_give_back_that_ends_well_or_is_cancelled_says_nothing(caplog: pytest.LogCaptureFixture) -> None:
    done = asyncio.get_running_loop().create_task(asyncio.sleep(0))
    await done
    stopped = asyncio.get_running_loop().create_task(asyncio.sleep(10))
    stopped.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await stopped
    with caplog.at_level(logging.ERROR, logger="gateway.store.redis_batch"):
        _said(done)
        _said(stopped)
    assert caplog.records == []
