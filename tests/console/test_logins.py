"""The login brake (``gateway/console/logins.py``): a growing delay, then a lock, announced once."""

from __future__ import annotations

import os
import sys
import threading

import pytest
from limits.aio.storage import MemoryStorage

from gateway.console.auth import hash_password
from gateway.console.logins import HASH_NICENESS, Lock, LoginBrake, PasswordWorkers
from gateway.keyed import KeyedHash


async def test_the_delay_grows_then_the_account_locks_and_is_announced_once() -> None:
    announced: list[tuple[str, Lock]] = []

    async def announce(account: str, lock: Lock) -> None:
        announced.append((account, lock))

    brake = LoginBrake(MemoryStorage(), KeyedHash("k"), free=2, lock=6, lock_minutes=15, announce=announce)
    waits = []
    for n in range(7):
        await brake.failed("anne", f"198.51.100.{n}")  # a new address each time: only the account counts
        waits.append(await brake.wait_seconds("Anne", "192.0.2.1"))  # names are not case-sensitive
    assert waits[:5] == [0, 1, 2, 4, 8]
    assert waits[5] >= 15 * 60 - 1 and waits[6] >= 15 * 60 - 1
    assert announced == [("anne", Lock("account", 15))]
    assert await brake.wait_seconds("bruno", "192.0.2.1") == 0  # another account, another address: free


async def test_one_address_guessing_many_accounts_is_braked() -> None:
    brake = LoginBrake(MemoryStorage(), KeyedHash("k"), free=3, lock=10, lock_minutes=15, announce=_nothing)
    for n in range(3):
        await brake.failed(f"user{n}", "203.0.113.9")
    assert await brake.wait_seconds("someone-else", "203.0.113.9") == 1
    assert await brake.wait_seconds("someone-else", "203.0.113.10") == 0


async def test_a_success_forgets_the_account_failures() -> None:
    brake = LoginBrake(MemoryStorage(), KeyedHash("k"), free=2, lock=10, lock_minutes=15, announce=_nothing)
    await brake.failed("anne", "a")
    await brake.succeeded("anne")
    await brake.failed("anne", "b")
    assert await brake.wait_seconds("anne", "c") == 0  # one failure since the success, not two


async def test_password_checks_run_in_the_workers() -> None:
    workers = PasswordWorkers(1)
    digest = hash_password("correct horse battery")
    assert await workers.verify(digest, "correct horse battery")
    assert not await workers.verify(digest, "wrong")
    workers.close()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="nice values per thread are Linux's")
async def test_password_checks_yield_the_cores_to_the_event_loop() -> None:
    """A hash takes ~1.4 cores (argon2's four lanes): until 2026-12-07 two workers took a 2-core machine from the
    event loop as equals during a login flood (the loop's own work measured 2-6x slower during 64 hashes, against
    1-2x with the workers nicer); now the workers' threads, and the lanes' threads they start, run nicer than the
    loop's."""
    workers = PasswordWorkers(2)
    try:
        assert not await workers.verify(hash_password("correct horse battery"), "wrong")
        hashing = [t.native_id for t in threading.enumerate() if t.name.startswith("gateway-argon2")]
        loop = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
        assert hashing
        for thread in hashing:
            assert thread is not None
            assert os.getpriority(os.PRIO_PROCESS, thread) == min(19, loop + HASH_NICENESS)
    finally:
        workers.close()


async def _nothing(account: str, lock: Lock) -> None:
    return None
