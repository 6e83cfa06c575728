"""A store outage told once, not once per failure: what an operator reads and alerts on while Redis is away.

Every part that meets the store's failure (the HTTP requests answered 503, the inbox, outbox and timers workers,
the web chat's and the console's sockets and event forwarding, the dispatcher's claim renewals, the alert checks,
the ``/metrics`` page's read of the queue, the messages whose caller went away before their processing failed, the
supervisor for a worker a StoreError stopped) reports it here, by its part's name and the exception, instead of
logging a line of its own: a Redis restart during a busy minute gave hundreds to thousands of identical ERROR lines
(bench/chaos.py: 340–2,483 a soak), the one line that mattered buried and no log-based alert possible.
Now, per instance and per outage:

* one ERROR line once the failure has lasted ``settle`` seconds (2 s): no answer since the first failure, or a
  failure still coming after that: ``alert: the store is unreachable: <part> met <class> (for 2 s)`` (``the store
  refuses writes`` when that first failure is a write refused: a full Redis or disk, a replica), naming the
  part that met it first. A blip (a connection Redis closed, one command lost, answered again at once) is one
  WARNING line, ``the store failed briefly: 3 failures in 0.1 s (…); it answers again``, not an alert;
* while it lasts, one WARNING line every ``every`` seconds (30 s; ``create_app``'s ``outage_summary_seconds``):
  ``store unavailable for 30 s: 412 failures (http 380 answered 503, inbox 14, …); waiting: inbox, outbox``;
* one INFO line once it is back: ``alert over: the store answers again after 41 s: 512 failures folded (…)``.
  Back means a part reported the store answered and no failure came for ``settle`` seconds after it (requests
  in flight when it came back, a pooled connection that was cut, may still fail a moment later: one outage, not
  a flapping series of lines).
  A store that answers reads but refuses writes (Redis full under ``noeviction``: ``OutOfMemoryError``; a replica:
  ``ReadOnlyError``; a Redis that cannot persist, its disk full: ``MISCONF``, since 2026-12-07; SQLite's file full,
  its write lock held by another process: ``SQLITE_FULL``, ``SQLITE_BUSY``…:
  :func:`refuses_writes`) answers the workers' polls that find nothing to do: an outage in which such a refusal
  came is back only once a write is answered (``answered(part, wrote=True)``: the alert checks, whose probe is a
  write, the one ``/readyz`` and ``gateway_store_up`` follow). Until 2026-12-05 those answered reads counted, and
  the log said every ~10 s ``the store failed briefly … it answers again`` while every webhook was answered 503.

Every failure is still counted, in ``gateway_store_failures_total{part, error}``. The lines and the label name
the part and the exception's class (the redis-py or socket error a StoreError wraps, else its own), never its
text, a message, a phone number or a platform id. Nothing else changes: what each part does on a failure (503,
retry at the next poll, subscribe again) is theirs; ``/readyz`` names the parts still waiting for the store while an
outage lasts (``store_waiting``, :meth:`StoreOutages.waiting`: shown, readiness unchanged). The start-up's wait for
the store, before there is an app, has its own lines (``gateway/store/waiting.py``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from dataclasses import dataclass

from prometheus_client import Counter
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError

from gateway.errors import LockTimeout, StoreError

log = logging.getLogger(__name__)

EVERY = 30.0  # seconds between two summary lines while the store stays unreachable
SETTLE = 2.0  # seconds without a failure, after the store answered, before it is said to be back
HTTP = "http"  # the part whose failures are requests answered 503
# how long ``/readyz`` shows the last store failure's class (``StoreOutages.last_failure``), outage or not: a burst
# refused at Redis's ``maxclients`` lasts a few seconds, and a look after it still finds it
LAST_FAILURE_SHOWN_SECONDS = 60.0
# The ``Retry-After`` of every 503 ``unavailable`` (the app's middleware, the console's logout), in seconds: the
# outages the gateway meets last a few seconds (a Redis restart; a Sentinel failover, 2 s in
# tests/test_sentinel_failover.py; another instance's claim on a message, renewed while it is processed), and the
# store is said back after SETTLE's 2 s without a failure: a try after 5 s finds most of them over, where sooner
# tries would only add to the failures. A provider or a browser may follow it; Meta, Telegram and Twilio keep their
# own redelivery schedules whatever it says.
RETRY_AFTER_SECONDS = 5
# The classes of a store answering reads but refusing writes (``error_class``): a Redis full under ``noeviction``, a
# replica; SQLite's primary codes (an extended one, ``SQLITE_BUSY_SNAPSHOT``, starts with its primary's name) of
# ``gateway/store/sqlite.py``'s ``_REFUSALS``.
_REDIS_REFUSALS = frozenset({"OutOfMemoryError", "ReadOnlyError", "MISCONF"})
# Redis's error code for a server that cannot persist (a failed snapshot with ``stop-writes-on-bgsave-error yes``,
# the default, or a failed append-only write: its disk full, its directory unwritable): it refuses every write and
# PING. redis-py has no class for it (a plain ResponseError), so it is named by its code (``error_class``).
MISCONF = "MISCONF"
# A Redis at its ``maxclients`` answers a new connection ``ERR max number of clients reached`` and closes it; redis-py
# raises a plain ConnectionError with that text (its ``EXCEPTION_CLASSES``), named so here (``error_class``): the
# instances' pools together exceed the cap (docs/deployment.md says how many each opens), not a network outage.
MAX_CLIENTS = "MaxClientsReached"
_MAX_CLIENTS_TEXT = "max number of clients reached"
_SQLITE_REFUSALS = ("SQLITE_BUSY", "SQLITE_LOCKED", "SQLITE_FULL", "SQLITE_READONLY", "SQLITE_IOERR", "SQLITE_CANTOPEN")


def error_class(error: BaseException) -> str:
    """The class to name: the error a StoreError wraps (``ConnectionError``, ``TimeoutError``…), else its own; a
    SQLite error by SQLite's name for it (``SQLITE_BUSY``, ``SQLITE_FULL``: all are ``OperationalError``); a Redis
    that cannot persist by its code, ``MISCONF`` (until 2026-12-07 ``ResponseError``, redis-py's class for any
    command error: its refusals were told as the store unreachable, and an outage said over at the first read
    answered; only its code is read, never the rest of its text); a Redis at its ``maxclients`` refusing a new
    connection, ``MaxClientsReached`` (until 2026-12-07 ``ConnectionError``, as a network outage)."""
    cause = error.__cause__
    named = cause if isinstance(error, StoreError) and cause is not None else error
    if isinstance(named, ResponseError) and str(named).startswith(MISCONF):
        return MISCONF
    if isinstance(named, RedisConnectionError) and str(named) == _MAX_CLIENTS_TEXT:  # since 2026-12-07
        return MAX_CLIENTS
    return getattr(named, "sqlite_errorname", None) or type(named).__name__


def refuses_writes(kind: str) -> bool:
    """Whether the error's class (``error_class``) says the store refuses writes, reads perhaps still answered."""
    return kind in _REDIS_REFUSALS or kind.startswith(_SQLITE_REFUSALS)


@dataclass
class _Part:
    failures: int = 0  # in the current outage
    failed_at: int = -1  # the order of its last failure and last answer (StoreOutages._tick): not times, which
    answered_at: int = -1  # uvloop's loop keeps to the millisecond, so an answer then a failure could be equal

    @property
    def waiting(self) -> bool:
        return self.failed_at > self.answered_at


class StoreOutages:
    """One instance's store outages, shared by all its parts (held by :class:`gateway.metrics.Metrics`)."""

    def __init__(self, failures: Counter, *, every: float = EVERY, settle: float = SETTLE) -> None:
        self.failures, self.every, self.settle = failures, every, settle
        self._since: float | None = None  # the current outage's first failure; None while the store answers
        self._first = ("", "")  # the part that met it first, and the error's class
        self._said = False  # its ERROR line said (it lasted): else a blip so far
        self._refused = False  # a write refused in it (``refuses_writes``): only a write answered says it back
        self._confirm: asyncio.TimerHandle | None = None
        self._parts: dict[str, _Part] = {}
        self._last_failure = float("-inf")  # a time, for durations
        self._last_kind = ""  # the last failure's class (``last_failure``)
        self._failure_tick = self._answer_tick = -1  # order, for "failing again since the answer?" (_tick)
        self._ticks = 0
        self._summary: asyncio.TimerHandle | None = None
        self._check: asyncio.TimerHandle | None = None

    @property
    def down(self) -> bool:
        return self._since is not None

    def failed(self, part: str, error: BaseException) -> None:
        """``part`` met the store's failure ``error``: counted; said at once when it starts an outage. A lock not
        taken in time (``LockTimeout``) is counted and said on its own line: the store answered, another holder kept
        the lock; an outage alert for it would send on-call after contention as if Redis were away."""
        kind = error_class(error)
        self.failures.labels(part, kind).inc()
        if isinstance(error, LockTimeout):
            log.warning("%s: a conversation's lock not taken in time (held elsewhere); the store answers", part)
            return
        now = self._now()
        state = self._parts.setdefault(part, _Part())
        state.failures += 1
        self._last_failure, self._last_kind = now, kind
        state.failed_at = self._failure_tick = self._tick()
        self._refused = self._refused or refuses_writes(kind)
        log.debug("%s: store unavailable (%s)", part, kind)
        if self._since is None:
            self._since, self._first = now, (part, kind)
            self._confirm = asyncio.get_running_loop().call_later(self.settle, self._confirmed)
        elif not self._said and now - self._since >= self.settle:  # still failing after the settle: it lasts
            self._say_down(now)

    def _confirmed(self) -> None:
        """``settle`` seconds after the first failure: an outage, unless the store answered since the last failure
        (then :meth:`_settled` says whether it was a blip, or the next failure says it lasts)."""
        self._confirm = None
        if self._since is not None and not self._said and self._answer_tick < self._failure_tick:
            self._say_down(self._now())

    def _say_down(self, now: float) -> None:
        assert self._since is not None
        self._said = True
        # a store that answers but refuses writes (full, a replica) is not unreachable: on-call looks at the disk or
        # the memory, not the network (until 2026-12-05 both were "unreachable")
        what = "refuses writes" if refuses_writes(self._first[1]) else "is unreachable"
        log.error("alert: the store %s: %s met %s (for %.0f s); every failure is counted in gateway_store_failures_"
                  "total, a summary every %g s while it lasts", what, *self._first, now - self._since,
                  self.every)  # fmt: skip
        self._summary = asyncio.get_running_loop().call_later(self.every, self._sum_up)

    def answered(self, part: str, *, wrote: bool = False) -> None:
        """``part`` used the store successfully: during an outage, it is back once no failure follows for
        ``settle`` seconds. Cheap when there is no outage (called at every successful poll). ``wrote``: what it
        did was a write; in an outage where a write was refused, only such an answer says the store back (the
        part's own answer still takes it out of :meth:`waiting`)."""
        if self._since is None:
            return
        now = self._now()
        state = self._parts.setdefault(part, _Part())
        state.answered_at = self._tick()
        if self._refused and not wrote:  # reads answered by a store refusing writes: not back
            return
        self._answer_tick = state.answered_at
        if self._check is None:
            self._check = asyncio.get_running_loop().call_later(self._settled_in(now), self._settled)

    async def attempt(self, part: str, work: Awaitable[object]) -> bool:
        """A background worker's pass (``work``), its store's failure told as ``part``'s (:meth:`failed`) instead of
        stopping the worker, its success as an answer (:meth:`answered`): True when it was made, False when the store
        failed it (the worker tries again at its next period). Any other error is a bug and still stops the worker
        (the supervisor logs, counts and restarts it). The purge, the notices, the web chat's places and the
        console's session sweep use it."""
        try:
            await work
        except StoreError as exc:
            self.failed(part, exc)
            return False
        self.answered(part)
        return True

    def waiting(self) -> list[str]:
        """The parts failing in the current outage that the store has not answered since (``/readyz`` names them:
        the event forwarding, which subscribes again by itself, is no supervisor's worker); none once it is over."""
        return sorted(name for name, part in self._parts.items() if part.waiting and name != HTTP)

    def last_failure(self) -> dict[str, object] | None:
        """The last store failure's class and how long ago (seconds), within ``LAST_FAILURE_SHOWN_SECONDS``; else
        None (a lock not taken in time is no store failure). ``/readyz`` shows it, readiness unchanged (since
        2026-12-07): a Redis at its ``maxclients`` refuses the new connections a burst needs (MaxClientsReached,
        ~40 % of a burst answered 503) while the readiness PING rides a connection already open, and ``/readyz``
        said ``store: ok`` and nothing else. Not a reason to stop traffic: the cap is one for every instance, so every
        instance would be taken out of the balancer at once (every request refused there, the 60 % Redis still
        served among them, the web chat's page with its numbers to call), where the 503s are redelivered."""
        ago = self._now() - self._last_failure
        if not self._last_kind or ago > LAST_FAILURE_SHOWN_SECONDS:
            return None
        return {"error": self._last_kind, "seconds_ago": round(ago, 1)}

    def close(self) -> None:
        """The app stops: no line after it."""
        for handle in (self._summary, self._check, self._confirm):
            if handle is not None:
                handle.cancel()
        self._summary = self._check = self._confirm = None

    def _settled_in(self, now: float) -> float:
        return max(0.0, self._last_failure + self.settle - now)

    def _settled(self) -> None:
        self._check = None
        if self._since is None or self._answer_tick < self._failure_tick:  # failing again: the next answer checks
            return
        now = self._now()
        if (wait := self._settled_in(now)) > 0:
            self._check = asyncio.get_running_loop().call_later(wait, self._settled)
            return
        failures = sum(p.failures for p in self._parts.values())
        if self._said:
            log.info("alert over: the store answers again after %.0f s: %d failures folded (%s)", now - self._since,
                     failures, self._counts())  # fmt: skip
        else:
            log.warning("the store failed briefly: %d failures in %.1f s (%s); it answers again", failures,
                        self._last_failure - self._since, self._counts())  # fmt: skip
        self.close()
        self._since, self._parts, self._said, self._refused = None, {}, False, False

    def _sum_up(self) -> None:
        if self._since is None:
            return
        waiting = self.waiting()
        log.warning("store unavailable for %.0f s: %d failures (%s); waiting: %s", self._now() - self._since,
                    sum(p.failures for p in self._parts.values()), self._counts(),
                    ", ".join(waiting) or "none")  # fmt: skip
        self._summary = asyncio.get_running_loop().call_later(self.every, self._sum_up)

    def _counts(self) -> str:
        counts = sorted(self._parts.items(), key=lambda item: -item[1].failures)
        return ", ".join(f"{name} {part.failures}" + (" answered 503" if name == HTTP else "") for name, part in counts)

    def _tick(self) -> int:
        """The next in the order of failures and answers. The loop's time cannot order them: uvloop's (what
        ``gateway serve`` runs) advances once a loop turn, in milliseconds, so a part answered and another failing
        in the same turn had equal times, the failure taken for older, and an outage said over while failing."""
        self._ticks += 1
        return self._ticks

    def _now(self) -> float:
        return asyncio.get_running_loop().time()  # the clock of its timers
