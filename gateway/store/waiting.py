"""The store opened at start-up, waited for while it cannot be reached, and given up on when it is misconfigured.

A running instance rides out a Redis restart by itself; at start-up, the store's opening (a PING on Redis) failing
made ``gateway serve`` exit 1, and the instance stayed down unless a process manager started it again: an instance
restarted while Redis restarts too, or a host whose Redis loads its append-only file more slowly than the gateway
starts (found by bench/chaos.py; tests/test_redis_at_start.py). Now the opening is tried again, 0.5 s then doubling
up to 10 s: an unknown scheme or a missing key is a ConfigError, not waited for.

What the operator sees (tests/test_store_waiting.py): one warning at the first failure, naming the reason's class
(the connection refused, timed out, the host name that does not resolve, the password refused…) and the store's
host and port (never the URL: it may hold a password; never the error's own text, for the same reason); the same
line again at once when the reason changes to one not said yet in this wait (two reasons alternating, a refusal
then a timeout at each try, gave a line a try until 2026-12-02: a reason said before waits for the reminder, which
names the latest); otherwise a reminder after 1 minute, then 2, 4… (at most an hour
apart) with the time waited and the tries, never one line per try; one line when it is reached at last.

Redis that cannot be reached (refused, timed out, reset: restarting, loading, a failover) is waited for as long as
it takes. A host name that does not resolve or a password Redis refuses is most often a mistake in
``GATEWAY_STORE`` that no wait will mend, but not always (a container's name resolves only once it is up; a
password rotated on one side first): it is waited for ``give_up_after`` seconds
(``GATEWAY_STORE_START_GIVE_UP_SECONDS``, 300; 0: for ever), then the start-up stops with a ConfigError that says
why, and ``gateway serve`` exits 1 for the process manager, whose restarts and their count show the mistake
(Celery gives up after ``broker_connection_max_retries``, 100 by default; Sidekiq chose to die when Redis fails at
start-up: docs/deployment.md, "Redis").
"""

from __future__ import annotations

import asyncio
import logging
import socket
from dataclasses import dataclass
from typing import Any

from redis.asyncio.sentinel import MasterNotFoundError
from redis.exceptions import AuthenticationError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from gateway.errors import ConfigError, StoreError
from gateway.outage_log import error_class
from gateway.store import Store, open_store
from gateway.store.redis_url import where

log = logging.getLogger("gateway.store")
LONGEST_WAIT = 10.0  # seconds between two tries at most
REMINDER = 60.0  # seconds from the first warning to the first reminder; then doubling
LONGEST_REMINDER = 3600.0
GIVE_UP_AFTER = 300.0


@dataclass(frozen=True)
class Reason:
    """Why the store could not be opened, without any of the error's text: ``mistake`` when it is most likely a
    configuration mistake rather than an outage."""

    text: str
    mistake: bool = False


def reason_of(error: BaseException) -> Reason:
    """The reason found along ``error``'s causes (the store's StoreError wraps redis-py's, which wraps the socket's)."""
    seen: set[int] = set()
    found: BaseException | None = error
    innermost = type(error).__name__
    while found is not None and id(found) not in seen and len(seen) < 50:
        seen.add(id(found))
        if isinstance(found, AuthenticationError) or (
            isinstance(found, ResponseError) and str(found).startswith(("NOAUTH", "WRONGPASS"))
        ):
            return Reason("the password was refused (AuthenticationError)", mistake=True)
        if isinstance(found, socket.gaierror):
            return Reason("the host name does not resolve (gaierror)", mistake=True)
        if isinstance(found, MasterNotFoundError):  # not a mistake: during a failover too, until one is promoted
            return Reason("no Sentinel named a primary that is up (MasterNotFoundError): a failover under way, "
                          "or no Sentinel reached monitors this service name")  # fmt: skip
        if isinstance(found, ConnectionRefusedError):
            return Reason("the connection was refused (ConnectionRefusedError): nothing listens there yet")
        if isinstance(found, TimeoutError | RedisTimeoutError):
            return Reason(f"no answer in time ({type(found).__name__})")
        if isinstance(found, FileNotFoundError):
            return Reason("no such socket (FileNotFoundError)")
        innermost = error_class(found)  # MISCONF, MaxClientsReached by their names (until 2026-12-07 their class)
        found = found.__cause__ or found.__context__
    return Reason(f"{innermost}")


async def open_store_waiting(
    url: str, *, give_up_after: float = GIVE_UP_AFTER, reminder: float = REMINDER,
    delays: tuple[float, float] = (0.5, LONGEST_WAIT), **options: Any,
) -> Store:  # fmt: skip
    """:func:`gateway.store.open_store`, tried again while it raises StoreError (a network store only: a SQLite
    file that does not open is no outage, its error ends the start-up as before); ConfigError once a mistake's
    reason (a name that does not resolve, a password refused) has lasted ``give_up_after`` seconds (0: never).
    ``delays``: the first wait between two tries and the longest; ``reminder``: the first reminder's delay."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    delay, longest = delays
    waiting = _Waiting(where(url), started, reminder, longest)
    while True:
        try:
            store = await open_store(url, **options)
        except StoreError as error:
            if url.startswith("sqlite:"):
                raise
            now = loop.time()
            reason = reason_of(error)
            waiting.failed(reason, now)
            if reason.mistake and give_up_after and now - waiting.mistake_since >= give_up_after:
                raise ConfigError(
                    f"the store at {waiting.where} could not be opened for {now - started:.0f} s: {reason.text}."
                    " Check GATEWAY_STORE (its host name, port and password); GATEWAY_STORE_START_GIVE_UP_SECONDS"
                    " says how long such a reason is waited for at start-up"
                ) from None
            await asyncio.sleep(delay)
            delay = min(longest, delay * 2)
        else:
            waiting.reached(loop.time())
            return store


class _Waiting:
    """The log lines of a wait: at the first failure and when the reason changes, then reminders further apart."""

    def __init__(self, where: str, started: float, reminder: float, longest: float) -> None:
        self.where, self.started, self.first_reminder, self.longest = where, started, reminder, longest
        self.tries = 0
        self.reason: Reason | None = None
        self.said: set[Reason] = set()  # the reasons said at once in this wait
        self.mistake_since = started  # when the current run of mistakes' reasons began
        self.interval, self.next_reminder = reminder, started

    def failed(self, reason: Reason, now: float) -> None:
        self.tries += 1
        if reason != self.reason:
            if not (self.reason is not None and self.reason.mistake and reason.mistake):
                self.mistake_since = now
            self.reason = reason
            if reason not in self.said:
                self.said.add(reason)
                log.warning("store unreachable at start-up: %s: %s; waiting for it, trying again every %g s at most",
                            self.where, reason.text, self.longest)  # fmt: skip
                self.interval, self.next_reminder = self.first_reminder, now + self.first_reminder
                return
        if now >= self.next_reminder:
            log.warning("store still unreachable at start-up after %.0f s (%d tries): %s: %s",
                        now - self.started, self.tries, self.where, reason.text)  # fmt: skip
            self.interval = min(LONGEST_REMINDER, self.interval * 2)
            self.next_reminder = now + self.interval

    def reached(self, now: float) -> None:
        if self.tries:
            log.info(
                "store reached at start-up after %.0f s (%d tries): %s", now - self.started, self.tries, self.where
            )
