"""Alert-worthy states, as metrics and log lines an operator can alert on (a supervised worker).

Every ``every`` seconds: is the store answering (``gateway_store_up``; its failure told with every other part's,
once an outage, by ``gateway/outage_log.py``: ``alert: the store is unreachable`` … ``alert over``), how long has
the oldest undelivered message waited in the outbox (``gateway_outbox_oldest_pending_seconds``), and are inbound
messages set aside after failing repeatedly (``gateway_inbox_set_aside``: one ERROR line each time their number
grows)? Crossing into an alert state logs one ERROR/WARNING line, leaving it one INFO line, so a log-based alert
fires once per incident.
Worker restarts are counted and logged by :mod:`gateway.supervisor`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime
from typing import Protocol

from gateway.errors import StoreError
from gateway.metrics import Metrics
from gateway.store import InboxStore, OutboxStore

log = logging.getLogger(__name__)


class WatchRoles(OutboxStore, InboxStore, Protocol):
    """What the alert checks need of the store: that it answers, the oldest undelivered item, the inbox items
    set aside."""

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
        self.outbox_late = False
        self.set_aside = 0

    async def run(self) -> None:
        while True:
            await self.check()
            await asyncio.sleep(self.every)

    async def check(self) -> None:
        try:
            await self.store.ping()
            oldest = await self.store.outbox_oldest_pending()
            set_aside = await self.store.inbox_set_aside_count()
        except StoreError as exc:
            self.metrics.store_up.set(0)
            self.metrics.outages.failed("alerts", exc)
            return
        self.metrics.store_up.set(1)
        self.metrics.outages.answered("alerts")
        self._set_aside(set_aside)
        age = max((self.clock() - oldest).total_seconds(), 0.0) if oldest else 0.0
        self.metrics.outbox_oldest.set(age)
        late = age > self.outbox_alert_seconds
        if late and not self.outbox_late:
            log.warning("alert: a message has waited %.0f s in the outbox (threshold %.0f s: GATEWAY_OUTBOX_ALERT_"
                        "SECONDS)", age, self.outbox_alert_seconds)  # fmt: skip
        elif self.outbox_late and not late:
            log.info("alert over: no message waits in the outbox longer than %.0f s", self.outbox_alert_seconds)
        self.outbox_late = late

    def _set_aside(self, count: int) -> None:
        self.metrics.inbox_set_aside.set(count)
        if count > self.set_aside:
            log.error("alert: %d inbound message(s) set aside after failing repeatedly (kept in the store's inbox;"
                      " see the log lines 'inbox: … set aside')", count)  # fmt: skip
        self.set_aside = count
