"""The supervisor: a failing worker is logged (class and place, never its message), counted, restarted with
backoff, and named by ``problems()`` (what /readyz reports) while down or restarting too often."""

from __future__ import annotations

import asyncio
import logging

import pytest

from gateway.errors import StoreError
from gateway.metrics import Metrics
from gateway.supervisor import Supervisor


def restarts(metrics: Metrics, worker: str) -> float:
    value = metrics.registry.get_sample_value("gateway_worker_restarts_total", {"worker": worker})
    return value or 0.0


async def test_a_failing_worker_is_logged_counted_and_restarted(caplog: pytest.LogCaptureFixture) -> None:
    metrics, runs, third = Metrics(), 0, asyncio.Event()
    supervisor = Supervisor(metrics, base_delay=0.01)

    async def fragile() -> None:
        nonlocal runs
        runs += 1
        if runs < 3:
            raise ValueError("Je veux mourir")  # what a young person wrote may end up in an exception message
        third.set()
        await asyncio.Event().wait()

    supervisor.add("fragile", fragile)
    supervisor.start()
    try:
        await asyncio.wait_for(third.wait(), timeout=10)
    finally:
        await supervisor.stop()
    assert restarts(metrics, "fragile") == 2
    lines = [r.getMessage() for r in caplog.records if r.name == "gateway.supervisor"]
    assert len(lines) == 2
    assert all("fragile" in line and "ValueError" in line and "test_supervisor.py" in line for line in lines)
    assert not any("mourir" in record.getMessage() for record in caplog.records)


async def test_a_worker_that_returns_is_restarted_too() -> None:
    metrics, started = Metrics(), asyncio.Queue[None]()
    supervisor = Supervisor(metrics, base_delay=0.01)

    async def quits() -> None:
        await started.put(None)

    supervisor.add("quits", quits)
    supervisor.start()
    try:
        for _ in range(2):
            await asyncio.wait_for(started.get(), timeout=10)
    finally:
        await supervisor.stop()
    assert restarts(metrics, "quits") >= 1


async def test_problems_name_a_worker_down() -> None:
    now = [0.0]
    supervisor = Supervisor(Metrics(), base_delay=1000.0, too_many=3, window_seconds=60, clock=lambda: now[0])
    failed = asyncio.Event()

    async def broken() -> None:
        failed.set()
        raise RuntimeError("boom")

    async def steady() -> None:
        await asyncio.Event().wait()

    supervisor.add("broken", broken)
    supervisor.add("steady", steady)
    supervisor.start()
    try:
        await asyncio.wait_for(failed.wait(), timeout=10)
        while supervisor.problems() != {"broken": "down"}:  # in its backoff: down
            await asyncio.sleep(0)
    finally:
        await supervisor.stop()


async def test_restarting_too_often_is_reported_and_forgotten_after_the_window() -> None:
    now = [0.0]
    supervisor = Supervisor(Metrics(), base_delay=0.001, max_delay=0.001, too_many=3, window_seconds=60,
                            clock=lambda: now[0])  # fmt: skip
    runs = 0
    settled = asyncio.Event()

    async def flaky() -> None:
        nonlocal runs
        runs += 1
        if runs <= 3:
            raise OSError("reset")
        settled.set()
        await asyncio.Event().wait()

    supervisor.add("flaky", flaky)
    supervisor.start()
    try:
        await asyncio.wait_for(settled.wait(), timeout=10)
        assert supervisor.problems() == {"flaky": "restarting too often"}
        now[0] = 61.0
        assert supervisor.problems() == {}
    finally:
        await supervisor.stop()


def test_a_worker_name_is_given_once() -> None:
    supervisor = Supervisor(Metrics())

    async def work() -> None:
        return None

    supervisor.add("one", work)
    with pytest.raises(ValueError, match="one"):
        supervisor.add("one", work)


@pytest.fixture(autouse=True)
def _errors_logged(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR, logger="gateway.supervisor")


async def test_stop_ends_a_worker_that_lost_its_cancellation() -> None:
    """Python 3.11's wait_for can turn a cancel racing its timeout into a TimeoutError that a polling loop then
    suppresses: the worker goes on polling. Stopping cancels it again, so shutdown never hangs on it."""
    metrics, polling, swallowed = Metrics(), asyncio.Event(), 0
    supervisor = Supervisor(metrics, base_delay=0.01)

    async def polls() -> None:
        nonlocal swallowed
        while True:
            polling.set()
            try:
                await asyncio.sleep(0.01)
            except asyncio.CancelledError:
                if swallowed:
                    raise
                swallowed += 1  # the lost cancellation: the loop goes on

    supervisor.add("polls", polls)
    supervisor.start()
    await asyncio.wait_for(polling.wait(), timeout=10)
    await asyncio.wait_for(supervisor.stop(), timeout=30)
    assert swallowed == 1
    assert restarts(metrics, "polls") == 0


async def test_restarts_by_a_store_outage_are_not_restarting_too_often() -> None:
    """A store outage restarts the workers that use it many times in a few seconds: once the store answers they run,
    and /readyz must not call them "restarting too often" for the next minute (a failover's cost was a minute of 503
    on every instance). The outage is shown by /readyz's store check while it lasts."""
    now = [0.0]
    supervisor = Supervisor(Metrics(), base_delay=0.001, max_delay=0.001, too_many=3, window_seconds=60,
                            clock=lambda: now[0])  # fmt: skip
    runs = 0
    settled = asyncio.Event()

    async def on_the_store() -> None:
        nonlocal runs
        runs += 1
        if runs <= 5:
            raise StoreError("redis: ConnectionError")
        settled.set()
        await asyncio.Event().wait()

    supervisor.add("outbox", on_the_store)
    supervisor.start()
    try:
        await asyncio.wait_for(settled.wait(), timeout=10)
        assert supervisor.problems() == {}
    finally:
        await supervisor.stop()
