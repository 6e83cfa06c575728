"""The clock: one callable giving the aware UTC time, injected where the time is read (tests pass a fake one)."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

Clock = Callable[[], datetime]


def utcnow() -> datetime:
    return datetime.now(UTC)


SKEW_WARN_SECONDS = 2.0  # a skew above it logged (one WARNING line when it starts, one INFO line when it ends)
SKEW_TRUSTED_SECONDS = 300.0  # a reading further off than this is not followed (a test's clock, a host's set by hand)
ALIGN_SECONDS = 10.0  # how often an instance reads the store's time again
ALIGN_KEPT = 6  # the round trips of the last readings, whose shortest says what a reading's round trip should be
ALIGN_SLACK_SECONDS = 0.005  # a reading this much slower than the shortest (or twice it) is not taken at its midpoint


class Aligned:
    """A clock set on the store's (Redis's ``TIME``), so that every instance on one Redis reads the same time.

    Since 2026-12-07: until then each instance read its own host's clock, and the times one instance wrote in Redis
    (a lease's end, a timer's due time, when a page opened) were read by another against its own: a host 30 s ahead
    took over the sends another instance was making (a reply sent twice, ``tests/test_clock_skew.py``), fired timers
    early. Now the time is the store's time when last read (:meth:`align`, every ``ALIGN_SECONDS``), moved on by the
    monotonic clock since: a host's clock stepped (NTP) changes nothing. ``skew`` is how far the host's clock is
    from the store's (seconds, positive: ahead). A skew beyond ``SKEW_TRUSTED_SECONDS`` (a test's clock, or a host
    minutes off) is not followed: the host's clock is used as it is, and the skew told.

    A reading says the store's time only to within its round trip: when its answer came, the store's time was
    between the time it answered and that plus the round trip. One as quick as the usual ones (the shortest of the
    last ``ALIGN_KEPT``, twice it or ``ALIGN_SLACK_SECONDS`` more at most) is taken at its midpoint, as ever; a slow
    one (its question or its answer held on a network's stall, a loaded loop) moves the clock only as far as it must
    to fall in that span, usually not at all. Until 2026-12-07 every reading was taken at its midpoint: a reading
    held 1 s stepped the clock by 0.5 s, back or forward, each instance its own way (up to half the socket timeout,
    2.5 s), eating the margins of the leases each instance reads against its own clock
    (``tests/test_clock_network.py``). Round trips that stay long (Redis moved further away) become the usual ones
    within ``ALIGN_KEPT`` readings."""

    def __init__(self, local: Clock, monotonic: Callable[[], float]) -> None:
        self.local, self.monotonic = local, monotonic
        self.skew: float | None = None  # None: the store's time not read yet (or a store with none: SQLite)
        self._at: tuple[datetime, float] | None = None  # the store's time when read, and the monotonic clock then
        self._trips: list[float] = []  # the round trips of the last ``ALIGN_KEPT`` readings (seconds)

    def __call__(self) -> datetime:
        if self._at is None:
            return self.local()
        then, at = self._at
        return then + timedelta(seconds=self.monotonic() - at)

    def align(self, before: datetime, store_time: datetime, after: datetime, at: float) -> float:
        """The store answered ``store_time`` to a question asked at ``before`` and answered at ``after`` (both the
        host's clock; ``at``: the monotonic clock at the answer). Returns the skew."""
        trip = max(after - before, timedelta(0))
        seconds = trip.total_seconds()
        usual = min(self._trips, default=seconds)
        self._trips = [*self._trips, seconds][-ALIGN_KEPT:]
        estimate = store_time + trip / 2
        if abs((after - estimate).total_seconds()) > SKEW_TRUSTED_SECONDS:
            self._at = None
            self.skew = (after - estimate).total_seconds()
            return self.skew
        if self._at is not None and seconds > max(2 * usual, usual + ALIGN_SLACK_SECONDS):  # a slow reading
            then, was = self._at
            current = then + timedelta(seconds=at - was)
            estimate = min(max(current, store_time), store_time + trip)
        self._at = (estimate, at)
        self.skew = (after - estimate).total_seconds()
        return self.skew


class RoundTrips:
    """The store's round trip, as the readings of its time (:class:`Aligned`, every ``ALIGN_SECONDS``) measured it
    on the monotonic clock: the shortest of the last ``ALIGN_KEPT`` (a minute at the defaults), None before the
    first. Since 2026-12-07, for the inline budget (``gateway/inbox.py``, ``inline_budget``), the gauge
    ``gateway_store_round_trip_seconds`` and ``gateway doctor``.

    The shortest, not the median: a reading's round trip is the network's plus whatever held it here (the event
    loop's lag, a wait for a pooled connection), both longest exactly under overload, when the inline budget must
    not grow; a stall on the path (100 ms to seconds, now and then) raises no estimate at all. Round trips that
    stay long (Redis moved further away) are the estimate within ``ALIGN_KEPT`` readings; shorter ones at once."""

    def __init__(self) -> None:
        self._trips: deque[float] = deque(maxlen=ALIGN_KEPT)

    def add(self, seconds: float) -> None:
        self._trips.append(max(seconds, 0.0))

    @property
    def seconds(self) -> float | None:
        return min(self._trips, default=None)
