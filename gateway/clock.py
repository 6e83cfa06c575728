"""The clock: one callable giving the aware UTC time, injected where the time is read (tests pass a fake one)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

Clock = Callable[[], datetime]


def utcnow() -> datetime:
    return datetime.now(UTC)


SKEW_WARN_SECONDS = 2.0  # a skew above it logged (one WARNING line when it starts, one INFO line when it ends)
SKEW_TRUSTED_SECONDS = 300.0  # a reading further off than this is not followed (a test's clock, a host's set by hand)
ALIGN_SECONDS = 10.0  # how often an instance reads the store's time again


class Aligned:
    """A clock set on the store's (Redis's ``TIME``), so that every instance on one Redis reads the same time.

    Since 2026-12-07: until then each instance read its own host's clock, and the times one instance wrote in Redis
    (a lease's end, a timer's due time, when a page opened) were read by another against its own: a host 30 s ahead
    took over the sends another instance was making (a reply sent twice, ``tests/test_clock_skew.py``), fired timers
    early. Now the time is the store's time when last read (:meth:`align`, every ``ALIGN_SECONDS``), moved on by the
    monotonic clock since: a host's clock stepped (NTP) changes nothing. ``skew`` is how far the host's clock is
    from the store's (seconds, positive: ahead). A skew beyond ``SKEW_TRUSTED_SECONDS`` (a test's clock, or a host
    minutes off) is not followed: the host's clock is used as it is, and the skew told."""

    def __init__(self, local: Clock, monotonic: Callable[[], float]) -> None:
        self.local, self.monotonic = local, monotonic
        self.skew: float | None = None  # None: the store's time not read yet (or a store with none: SQLite)
        self._at: tuple[datetime, float] | None = None  # the store's time when read, and the monotonic clock then

    def __call__(self) -> datetime:
        if self._at is None:
            return self.local()
        then, at = self._at
        return then + timedelta(seconds=self.monotonic() - at)

    def align(self, before: datetime, store_time: datetime, after: datetime, at: float) -> float:
        """The store answered ``store_time`` to a question asked at ``before`` and answered at ``after`` (both the
        host's clock; ``at``: the monotonic clock at the answer). Returns the skew."""
        skew = ((before + (after - before) / 2) - store_time).total_seconds()
        self.skew = skew
        if abs(skew) > SKEW_TRUSTED_SECONDS:
            self._at = None
        else:
            self._at = (store_time + (after - before) / 2, at)
        return skew
