"""The inline budget (``gateway/inbox.py``, ``inline_budget``) and the store's round trip it follows
(``gateway/clock.py``, ``RoundTrips``), since 2026-12-07; the app across a network: tests/test_inline_round_trip.py."""

from __future__ import annotations

import pytest

from gateway.clock import RoundTrips
from gateway.inbox import INLINE_CEILING, INLINE_ROUND_TRIPS, inline_budget


def test_the_budget_is_the_floor_or_ten_round_trips_capped() -> None:
    assert inline_budget(0.05, None) == 0.05  # not measured (SQLite, a test's monotonic clock): the floor
    assert inline_budget(0.05, 0.0001) == 0.05  # Redis on the same host: the floor, as ever
    assert inline_budget(0.05, 0.040) == pytest.approx(INLINE_ROUND_TRIPS * 0.040)
    assert inline_budget(0.05, 1.0) == INLINE_CEILING  # a path stalled for seconds: never near a provider's timeout
    assert inline_budget(3.0, 1.0) == 3.0  # an operator's floor above the ceiling is kept
    assert inline_budget(0.0, 0.040) == 0.0  # 0: not timed, the count alone


def test_one_stalled_reading_does_not_raise_the_estimate_and_a_lasting_change_is_followed() -> None:
    trips = RoundTrips()
    assert trips.seconds is None
    for _ in range(6):
        trips.add(0.002)
    trips.add(1.5)  # a reading held on a stall of the path
    assert trips.seconds == 0.002  # the budget does not move
    for _ in range(4):
        trips.add(0.040)  # Redis now across zones: the last quick reading still kept
    assert trips.seconds == 0.002
    trips.add(0.045)
    assert trips.seconds == 0.040  # a minute of longer trips (ALIGN_KEPT readings): followed
    trips.add(0.001)  # closer again: followed at once
    assert trips.seconds == 0.001
