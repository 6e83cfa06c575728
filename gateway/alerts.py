"""Alert-worthy states, as metrics and log lines an operator can alert on (a supervised worker).

Every ``every`` seconds: is the store answering (``gateway_store_up``), and how long has the oldest undelivered
message waited in the outbox (``gateway_outbox_oldest_pending_seconds``)? Crossing into an alert state logs
one ERROR/WARNING line, leaving it one INFO line, so a log-based alert fires once per incident. Worker restarts
are counted and logged by :mod:`gateway.supervisor`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime
from typing import Protocol

from gateway.errors import StoreError
from gateway.metrics import Metrics
from gateway.store import OutboxStore

log = logging.getLogger(__name__)


class WatchRoles(OutboxStore, Protocol):
    """What the alert checks need of the store: that it answers, and the oldest undelivered item."""

    async def ping(self) -> None: ...


class Watch:
    def __init__(
        self,
        store: WatchRoles,
        metrics: Metrics,
        *,
        clock: Callable[[], datetime],
        outbox_alert_seconds: float,
        every: float = 10.0,
    ) -> None:
        self.store, self.metrics, self.clock = store, metrics, clock
        self.outbox_alert_seconds, self.every = outbox_alert_seconds, every
        self.store_up = True
        self.outbox_late = False

    async def run(self) -> None:
        while True:
            await self.check()
            await asyncio.sleep(self.every)

    async def check(self) -> None:
        try:
            await self.store.ping()
            oldest = await self.store.outbox_oldest_pending()
        except StoreError as exc:
            self._store(False, type(exc).__name__)
            return
        self._store(True, "")
        age = max((self.clock() - oldest).total_seconds(), 0.0) if oldest else 0.0
        self.metrics.outbox_oldest.set(age)
        late = age > self.outbox_alert_seconds
        if late and not self.outbox_late:
            log.warning("alert: a message has waited %.0f s in the outbox (threshold %.0f s: GATEWAY_OUTBOX_ALERT_"
                        "SECONDS)", age, self.outbox_alert_seconds)  # fmt: skip
        elif self.outbox_late and not late:
            log.info("alert over: no message waits in the outbox longer than %.0f s", self.outbox_alert_seconds)
        self.outbox_late = late

    def _store(self, up: bool, error: str) -> None:
        self.metrics.store_up.set(1 if up else 0)
        if not up and self.store_up:
            log.error("alert: the store is unreachable (%s)", error)
        elif up and not self.store_up:
            log.info("alert over: the store answers again")
        self.store_up = up
