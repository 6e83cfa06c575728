"""The clock: one callable giving the aware UTC time, injected where the time is read (tests pass a fake one)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

Clock = Callable[[], datetime]


def utcnow() -> datetime:
    return datetime.now(UTC)
