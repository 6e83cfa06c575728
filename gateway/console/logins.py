"""Login attempts: argon2 off the event loop, and a brake on guessing passwords.

**Off the loop.** Verifying an argon2 hash takes tens of milliseconds of CPU. :class:`PasswordWorkers` runs it
in a small thread pool (argon2-cffi releases the GIL), at most ``workers`` at once; beyond ``workers × 8``
attempts in flight a login is refused as busy (429) instead of queueing without bound. Webhooks and chats never
wait behind a login flood. The pool's threads run ``HASH_NICENESS`` steps nicer than the process (Linux keeps a nice
value per thread, and argon2's own threads, one per lane, inherit it): a hash takes ~1.4 cores (four lanes), two at
once more than a 2-core machine has, and until 2026-12-07 a login flood took the cores from the event loop as
an equal (a loop's work measured 2–6× slower during 64 hashes, 1–2× with the workers nicer); now the loop goes
first and the hashes take what it leaves.

**Brake.** Wrong passwords are counted per account and per client address (keyed hashes, in the rate-limit
counters: Redis or memory). From the ``free``-th failure on, each one makes that account and that address
wait ``2^(n - free)`` seconds (1, 2, 4… capped at a minute) before the next attempt is even checked: a refused
attempt costs a counter read, no hashing. At ``lock`` failures the account (or address) is locked for
``lock_minutes``, and the lock is announced to the supervisors (an audit entry and an ``alert`` event). A
successful login clears the account's count.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TypeVar

from limits.aio.storage import Storage
from limits.errors import StorageError
from redis.exceptions import RedisError

from gateway.console.auth import DUMMY_HASH, hash_password, valid_name, verify_password
from gateway.errors import StoreError
from gateway.keyed import KeyedHash
from gateway.networks import ClientNetworks
from gateway.store import Listener, ListenerStore
from gateway.store.local import LocalLocks

T = TypeVar("T")
MAX_DELAY_SECONDS = 60
HASH_NICENESS = 10  # the password workers' threads run this much nicer than the process (never above 19)
TURN_SECONDS = 30.0  # a login attempt waits this long at most for its turn (Turns)
FAILURE_MEMORY_SECONDS = 3600  # failures are forgotten an hour after the first of a series


class Busy(Exception):
    """Too many password checks in flight: try again shortly."""


class PasswordWorkers:
    def __init__(self, workers: int) -> None:
        self._executor = ThreadPoolExecutor(
            max_workers=workers, thread_name_prefix="gateway-argon2", initializer=_yield_to_the_loop
        )
        self._in_flight = 0
        self._bound = workers * 8

    async def verify(self, password_hash: str, password: str) -> bool:
        return await self._run(verify_password, password_hash, password)

    async def hash(self, password: str) -> str:
        """A new password's hash (a password change), off the loop like a check."""
        return await self._run(hash_password, password)

    async def _run(self, work: Callable[..., T], *args: str) -> T:
        if self._in_flight >= self._bound:
            raise Busy("too many logins at once")
        self._in_flight += 1
        try:
            return await asyncio.get_running_loop().run_in_executor(self._executor, work, *args)
        finally:
            self._in_flight -= 1

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


def _yield_to_the_loop() -> None:
    """Make the calling thread ``HASH_NICENESS`` steps nicer (Linux: nice values are per thread); elsewhere, or
    where the system refuses, the thread keeps the process's priority."""
    with contextlib.suppress(AttributeError, OSError):
        thread = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, thread, min(19, os.getpriority(os.PRIO_PROCESS, thread) + HASH_NICENESS))


@dataclass(frozen=True)
class Lock:
    """What a failure led to: ``subject`` (``account`` or ``address``) locked for ``minutes``."""

    subject: str
    minutes: int


Announce = Callable[[str, Lock], Awaitable[None]]


class LoginBrake:
    def __init__(
        self, storage: Storage, keyed: KeyedHash, *, free: int, lock: int, lock_minutes: int, announce: Announce,
        networks: ClientNetworks | None = None,
    ) -> None:  # fmt: skip
        self._storage, self._keyed = storage, keyed
        self._networks = networks or ClientNetworks()  # an address counts by its network: an IPv6 /64 is one
        self._free, self._lock, self._lock_minutes = free, lock, lock_minutes
        self._announce = announce

    def _keys(self, account: str, address: str) -> dict[str, str]:
        return {"account": self._keyed("login-account", account.lower()),
                "address": self._keyed("login-address", self._networks.key(address))}  # fmt: skip

    async def wait_seconds(self, account: str, address: str) -> int:
        """Seconds before this account or address may try again; 0 when it may try now."""
        wait = 0.0
        with _counters():
            for key in self._keys(account, address).values():
                if await self._storage.get("login-wait:" + key) > 0:
                    wait = max(wait, await self._storage.get_expiry("login-wait:" + key) - time.time())
        return math.ceil(wait) if wait > 0 else 0

    async def failed(self, account: str, address: str) -> None:
        with _counters():
            await self._failed(account, address)

    async def _failed(self, account: str, address: str) -> None:
        for subject, key in self._keys(account, address).items():
            count = await self._storage.incr("login-fail:" + key, FAILURE_MEMORY_SECONDS)
            if count < self._free:
                continue
            locked = count >= self._lock
            seconds = self._lock_minutes * 60 if locked else min(MAX_DELAY_SECONDS, 2 ** (count - self._free))
            await self._storage.clear("login-wait:" + key)
            await self._storage.incr("login-wait:" + key, seconds)
            if count == self._lock:
                await self._announce(account if subject == "account" else "", Lock(subject, self._lock_minutes))

    async def succeeded(self, account: str) -> None:
        with _counters():
            await self._storage.clear("login-fail:" + self._keys(account, "")["account"])


@contextlib.contextmanager
def _counters() -> Iterator[None]:
    """The counters' storage unreachable (its Redis restarting, away): a StoreError, told and answered 503 as the
    store's outage is (the app's middleware, gateway/outage_log.py: a line per outage). Until 2026-12-07 redis-py's
    ConnectionError went through as it was, logged at ERROR as an unexpected failure at every login attempt. A
    login is refused while the brake cannot be read: never checked without it."""
    try:
        yield
    except (RedisError, StorageError, OSError) as exc:
        raise StoreError(f"login counters unavailable ({exc.__class__.__name__})") from None


class Turns:
    """One login attempt at a time per account and per address (its network), in this instance: the brake reads the
    failures before an attempt and counts one after its hashing, so attempts sent at the same instant all passed
    its check before the first was counted (a red-team review: 16 wrong passwords at once, all 16 hashed and
    answered 401, where the brake allows ``free``). Taken in turn, the attempts after the ``free``-th failure find
    its wait and are refused without hashing. The locks are the store's in-process ones (``LocalLocks``: made on
    demand, dropped when unused); one not had within ``TURN_SECONDS`` is a LockTimeout (the API answers busy)."""

    def __init__(self, networks: ClientNetworks | None = None) -> None:
        self._networks = networks or ClientNetworks()
        self._locks = LocalLocks()

    @contextlib.asynccontextmanager
    async def of(self, account: str, address: str) -> AsyncIterator[None]:
        # one order for every attempt: two attempts never hold one lock each while waiting for the other
        keys = sorted({"account:" + account.lower(), "address:" + self._networks.key(address)})
        async with contextlib.AsyncExitStack() as held:
            for key in keys:
                await held.enter_async_context(self._locks.lock(key, TURN_SECONDS))
            yield


class Logins:
    """The login check the API uses: one attempt at a time per account and address (:class:`Turns`), the brake
    first (no hashing while it holds), then argon2 off the loop."""

    def __init__(self, workers: PasswordWorkers, brake: LoginBrake, turns: Turns | None = None) -> None:
        self.workers, self.brake = workers, brake
        self.turns = turns or Turns()

    async def authenticate(self, store: ListenerStore, name: str, password: str, address: str) -> Listener | None:
        """The listener, or None for a wrong name or password (counted). Busy when too many are in flight."""
        listener = await store.get_listener(name) if valid_name(name) else None
        # An unknown name is verified against a dummy hash, so a login takes as long either way.
        ok = await self.workers.verify(listener.password_hash if listener else DUMMY_HASH, password)
        if listener is None or not ok:
            await self.brake.failed(name, address)
            return None
        await self.brake.succeeded(name)
        return listener
