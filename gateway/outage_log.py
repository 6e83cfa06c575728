"""A store outage told once, not once per failure: what an operator reads and alerts on while Redis is away.

Every part that meets the store's failure (the HTTP requests answered 503, the inbox, outbox and timers workers,
the web chat's and the console's sockets and event forwarding, the dispatcher's claim renewals, the alert checks)
reports it here, by its part's name and the exception, instead of logging a line of its own: a Redis restart
during a busy minute gave hundreds to thousands of identical ERROR lines (bench/chaos.py: 340–2,483 a soak), the
one line that mattered buried and no log-based alert possible. Now, per instance and per outage:

* one ERROR line when the first failure comes: ``alert: the store is unreachable: <part> met <class>``;
* while it lasts, one WARNING line every ``every`` seconds (30 s; ``create_app``'s ``outage_summary_seconds``):
  ``store unavailable for 30 s: 412 failures (http 380 answered 503, inbox 14, …); waiting: inbox, outbox``;
* one INFO line once it is back: ``alert over: the store answers again after 41 s: 512 failures folded (…)``.
  Back means a part reported the store answered and no failure came for ``settle`` seconds after it (requests
  in flight when it came back, a pooled connection that was cut, may still fail a moment later: one outage, not
  a flapping series of lines).

Every failure is still counted, in ``gateway_store_failures_total{part, error}``. The lines and the label name
the part and the exception's class (the redis-py or socket error a StoreError wraps, else its own), never its
text, a message, a phone number or a platform id. Nothing else changes: what each part does on a failure (503,
retry at the next poll, subscribe again) and ``/readyz`` are theirs. The start-up's wait for the store, before
there is an app, has its own lines (``gateway/store/waiting.py``).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from prometheus_client import Counter

from gateway.errors import StoreError

log = logging.getLogger(__name__)

EVERY = 30.0  # seconds between two summary lines while the store stays unreachable
SETTLE = 2.0  # seconds without a failure, after the store answered, before it is said to be back
HTTP = "http"  # the part whose failures are requests answered 503


def error_class(error: BaseException) -> str:
    """The class to name: the error a StoreError wraps (``ConnectionError``, ``TimeoutError``…), else its own."""
    cause = error.__cause__
    return type(cause if isinstance(error, StoreError) and cause is not None else error).__name__


@dataclass
class _Part:
    failures: int = 0  # in the current outage
    failed_at: float = float("-inf")
    answered_at: float = float("-inf")

    @property
    def waiting(self) -> bool:
        return self.failed_at > self.answered_at


class StoreOutages:
    """One instance's store outages, shared by all its parts (held by :class:`gateway.metrics.Metrics`)."""

    def __init__(self, failures: Counter, *, every: float = EVERY, settle: float = SETTLE) -> None:
        self.failures, self.every, self.settle = failures, every, settle
        self._since: float | None = None  # the current outage's first failure; None while the store answers
        self._parts: dict[str, _Part] = {}
        self._last_failure = self._last_answer = float("-inf")
        self._summary: asyncio.TimerHandle | None = None
        self._check: asyncio.TimerHandle | None = None

    @property
    def down(self) -> bool:
        return self._since is not None

    def failed(self, part: str, error: BaseException) -> None:
        """``part`` met the store's failure ``error``: counted; said at once when it starts an outage."""
        kind = error_class(error)
        self.failures.labels(part, kind).inc()
        now = self._now()
        state = self._parts.setdefault(part, _Part())
        state.failures += 1
        state.failed_at = self._last_failure = now
        log.debug("%s: store unavailable (%s)", part, kind)
        if self._since is None:
            self._since = now
            log.error("alert: the store is unreachable: %s met %s; every failure is counted in gateway_store_"
                      "failures_total, a summary every %g s while it lasts", part, kind, self.every)  # fmt: skip
            self._summary = asyncio.get_running_loop().call_later(self.every, self._sum_up)

    def answered(self, part: str) -> None:
        """``part`` used the store successfully: during an outage, it is back once no failure follows for
        ``settle`` seconds. Cheap when there is no outage (called at every successful poll)."""
        if self._since is None:
            return
        now = self._now()
        self._parts.setdefault(part, _Part()).answered_at = self._last_answer = now
        if self._check is None:
            self._check = asyncio.get_running_loop().call_later(self._settled_in(now), self._settled)

    def close(self) -> None:
        """The app stops: no line after it."""
        for handle in (self._summary, self._check):
            if handle is not None:
                handle.cancel()
        self._summary = self._check = None

    def _settled_in(self, now: float) -> float:
        return max(0.0, self._last_failure + self.settle - now)

    def _settled(self) -> None:
        self._check = None
        if self._since is None or self._last_answer < self._last_failure:  # failing again: the next answer checks
            return
        now = self._now()
        if (wait := self._settled_in(now)) > 0:
            self._check = asyncio.get_running_loop().call_later(wait, self._settled)
            return
        log.info("alert over: the store answers again after %.0f s: %d failures folded (%s)", now - self._since,
                 sum(p.failures for p in self._parts.values()), self._counts())  # fmt: skip
        self.close()
        self._since, self._parts = None, {}

    def _sum_up(self) -> None:
        if self._since is None:
            return
        waiting = sorted(name for name, part in self._parts.items() if part.waiting and name != HTTP)
        log.warning("store unavailable for %.0f s: %d failures (%s); waiting: %s", self._now() - self._since,
                    sum(p.failures for p in self._parts.values()), self._counts(),
                    ", ".join(waiting) or "none")  # fmt: skip
        self._summary = asyncio.get_running_loop().call_later(self.every, self._sum_up)

    def _counts(self) -> str:
        counts = sorted(self._parts.items(), key=lambda item: -item[1].failures)
        return ", ".join(f"{name} {part.failures}" + (" answered 503" if name == HTTP else "") for name, part in counts)

    def _now(self) -> float:
        return asyncio.get_running_loop().time()  # the clock of its timers
