"""The SQLite store's thread (gateway/store/sqlite_thread.py): jobs in order, errors to their caller, a job whose
caller gave up before it began skipped, the thread ended once the jobs queued before ``stop`` are done."""

from __future__ import annotations

import asyncio
import threading

import pytest

from gateway.store.sqlite_thread import StoreThread


async def test_jobs_run_in_order_on_the_thread_and_errors_reach_their_caller() -> None:
    thread = StoreThread("test-sqlite")
    ran: list[tuple[int, str]] = []

    def job(n: int) -> int:
        ran.append((n, threading.current_thread().name))
        return n * 2

    def failing() -> None:
        raise ValueError("refused")

    try:
        results = await asyncio.gather(*(thread.run(job, n) for n in range(20)))
        assert results == [n * 2 for n in range(20)]
        assert ran == [(n, "test-sqlite") for n in range(20)]
        with pytest.raises(ValueError, match="refused"):
            await thread.run(failing)
        assert await thread.run(job, 21) == 42  # the thread goes on after a failed job
    finally:
        thread.stop()


async def test_a_job_whose_caller_gave_up_before_it_began_is_skipped() -> None:
    thread = StoreThread("test-sqlite")
    release, started = threading.Event(), threading.Event()
    ran: list[str] = []

    def hold() -> None:
        started.set()
        release.wait(10)

    try:
        held = thread.run(hold)
        await asyncio.to_thread(started.wait, 10)  # the thread is busy with ``hold``
        given_up = thread.run(ran.append, "given up")
        given_up.cancel()
        release.set()
        await held
        await thread.run(ran.append, "next")
        assert ran == ["next"]
    finally:
        release.set()
        thread.stop()


async def test_stop_ends_the_thread_after_the_jobs_queued_before_it() -> None:
    thread = StoreThread("test-sqlite-stop")
    (running,) = [t for t in threading.enumerate() if t.name == "test-sqlite-stop"]
    ran: list[int] = []
    last = [thread.run(ran.append, n) for n in range(5)][-1]
    thread.stop()
    await last
    await asyncio.to_thread(running.join, 10)
    assert ran == [0, 1, 2, 3, 4] and not running.is_alive()
