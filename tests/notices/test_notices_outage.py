"""The notices worker (reminders, removals told, evidence deleted: ``Notices.run``) waits for the store through a
Redis restart as the outbox, the timers and the purge do: a sweep the store's outage failed is counted and told once
an outage (``gateway/outage_log.py``, part ``notices``) and tried at the next poll, the worker never stopped. Until
2026-12-06 it raised to the supervisor: restarted, counted in ``gateway_worker_restarts`` (10 in one chaos soak with
5 Redis restarts, ``bench/README.md``), ``down`` in ``/readyz`` during each backoff. The real dispatcher, store,
supervisor and a redis-server of the test's own, stopped and started again.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

from gateway.dispatcher import Dispatcher
from gateway.flows.engine import Engine
from gateway.flowset import FlowSet
from gateway.metrics import Metrics
from gateway.notices.service import Notices
from gateway.store import open_store
from gateway.supervisor import Supervisor
from gateway.testing import store_keys
from tests.conftest import ROOT, Clock
from tests.flows.conftest import MINI_FLOW
from tests.test_purge_outage import counted, until
from tests.test_redis_restart import OwnRedis, own_redis

__all__ = ["own_redis"]  # the fixture used below
pytestmark = pytest.mark.redis


async def test_a_redis_restart_makes_the_notices_worker_wait_for_the_store_not_restart(
    own_redis: OwnRedis, clock: Clock
) -> None:
    store = await open_store(own_redis.url, keys=store_keys(own_redis.url))
    flows = FlowSet(ROOT / "flows.yaml")
    flows.reload()
    assert flows.engine().flow.notices is not None  # the sweep reads the store
    metrics = Metrics()
    notices = Notices(Dispatcher(store, flows, clock=clock), store, flows, {}, None, clock=clock, poll_seconds=0.2,
                      metrics=metrics)  # fmt: skip
    supervisor = Supervisor(metrics)
    supervisor.add("notices", notices.run)
    supervisor.start()
    try:
        own_redis.stop()

        async def failed() -> bool:
            return counted(metrics, "failures", part="notices") >= 2

        await until(failed, "sweeps of the notices failed")
        own_redis.start()

        async def swept_or_restarted() -> bool:  # a restart fails at once below, not after the deadline
            restarted = counted(metrics, "restarts", worker="notices") > 0
            return restarted or "notices" not in metrics.outages.waiting()

        await until(swept_or_restarted, "a sweep answered once Redis is back")
        assert counted(metrics, "restarts", worker="notices") == 0  # waited for the store: no crash counted
        assert "notices" not in supervisor.problems()
    finally:
        await supervisor.stop()
        await store.close()
        metrics.outages.close()


@dataclass
class ReadFlows(FlowSet):
    """The flows, counting the reads of the current one: every pass of the notices worker reads it (the test's sign
    that a pass was made, when the pass itself does nothing to see)."""

    reads: int = 0

    def engine(self) -> Engine:
        self.reads += 1
        return super().engine()


async def test_a_sweep_without_a_notices_section_does_not_say_the_store_answered(
    own_redis: OwnRedis, clock: Clock, tmp_path: Path
) -> None:
    """During an outage, a flows.yaml reloaded without its ``notices:`` section still has the worker read the list
    of notices (the evidence's retention goes on, ``tests/notices/test_notices_retention.py``): the read fails and
    the part stays in ``/readyz``'s ``store_waiting`` (``StoreOutages.waiting``). Until 2026-12-07 such a pass
    (``Notices.sweep`` returning at once) reported an answer: ``notices`` dropped from the list although the store
    was not asked."""
    path = tmp_path / "flows.yaml"
    shutil.copy(ROOT / "flows.yaml", path)
    store = await open_store(own_redis.url, keys=store_keys(own_redis.url))
    flows = ReadFlows(path)
    flows.reload()
    metrics = Metrics()
    notices = Notices(Dispatcher(store, flows, clock=clock), store, flows, {}, None, clock=clock, poll_seconds=0.2,
                      metrics=metrics)  # fmt: skip
    supervisor = Supervisor(metrics)
    supervisor.add("notices", notices.run)
    supervisor.start()
    try:
        own_redis.stop()

        async def failed() -> bool:
            return counted(metrics, "failures", part="notices") >= 1 and "notices" in metrics.outages.waiting()

        await until(failed, "a sweep of the notices failed")
        path.write_text(MINI_FLOW, encoding="utf-8")  # no notices: section
        assert flows.reload().ok and flows.engine().flow.notices is None
        reads = flows.reads

        async def passed() -> bool:  # the pass that read the new flow has ended once the next one reads it
            return flows.reads >= reads + 2

        await until(passed, "a pass of the worker with the flow without notices")
        assert "notices" in metrics.outages.waiting()
    finally:
        await supervisor.stop()
        await store.close()
        metrics.outages.close()
