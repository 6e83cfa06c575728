"""A young person waiting in a queue the line does not list is listed again by the next alert check (Redis, Cluster).

Every reader of the waiting line on Redis reads only the queues ``hg:{queue}:names`` lists, each queue's order
(``hg:{queue}:waiting:<queue>``) for its members (``waiting_ids``, ``waiting_page``: the alert check, the console's
queue and board, the gauges). Either key lost (evicted by a Redis not under ``noeviction``, deleted by hand, written
over by ``gateway store migrate`` with an instance of this version already running) leaves the entry waiting in the
entries' hash, its record queued, and nobody seeing it. The check found the record queued and no entry listed, and
``Actions.back_in_line`` read the entry waiting and did nothing (since 2026-12-08, before the late check's fix: it
re-queued it unchecked): the young person stayed unseen for good. See also ``tests/store/test_redis_queue_names.py``.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, cast

import pytest
import redis

from gateway.alerts import Watch
from gateway.console.actions import Actions
from gateway.conversation import Priority, Status
from gateway.dispatcher import Dispatcher
from gateway.flowset import FlowSet
from gateway.messages import ChannelName
from gateway.metrics import Metrics
from gateway.store import Store, open_store
from gateway.store import redis_keys as K
from gateway.testing import store_keys
from tests.conftest import ROOT, Clock
from tests.store.conftest import redis_cluster_url, redis_url

__all__ = ["redis_cluster_url", "redis_url"]  # fixtures used below


async def waiting(store: Store, clock: Clock, n: int, queue: str) -> str:
    """A young person waiting in ``queue``: their entry, then their record queued there (as the hand-off writes)."""
    conversation, _ = await store.active_conversation(ChannelName.TELEGRAM, f"young-{n}", clock())
    await store.enqueue(conversation.id, queue, Priority.NORMAL, clock())
    await store.save_conversation(replace(conversation, status=Status.QUEUED, queue=queue, queued_at=clock()))
    clock.advance(seconds=1)
    return conversation.id


@pytest.mark.redis
@pytest.mark.parametrize("lost", ["names", "order"])
@pytest.mark.parametrize("url", ["redis_url", "redis_cluster_url"])
async def test_the_check_lists_again_a_young_person_waiting_in_a_queue_the_line_lost(
    request: pytest.FixtureRequest, url: str, lost: str, clock: Clock
) -> None:
    """Léa and Noé wait in ``listeners``, Sam in ``lawyers`` (a queue flows.yaml does not have: an older flow's, still
    listed); the queues' names are lost (``names``), or ``listeners``' order (``order``): the line shows fewer. One
    alert check, wired as the app wires it: the three listed again, each at their place (positions unchanged), one
    audit line per entry or queue listed again, no one re-queued. Before: the check left them unseen, round after
    round."""
    redis_url: str = request.getfixturevalue(url)
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    client.flushdb()
    store = await open_store(redis_url, keys=store_keys(redis_url))
    try:
        ids = [await waiting(store, clock, 1, "listeners"), await waiting(store, clock, 2, "listeners"),
               await waiting(store, clock, 3, "lawyers")]  # fmt: skip
        entries = [await store.queue_entry(i) for i in ids]
        client.delete(K.QUEUE + "names" if lost == "names" else K.QUEUE + "waiting:listeners")
        assert await store.waiting_ids() == (set() if lost == "names" else {ids[2]})
        flows = FlowSet(ROOT / "flows.yaml")
        flows.reload()
        actions = Actions(Dispatcher(store, flows, clock=clock), cast(Any, store), flows, clock=clock)
        watch = Watch(store, Metrics(), clock=clock, outbox_alert_seconds=60, back_in_line=actions.back_in_line)
        await watch.check()
        assert await store.waiting_ids() == set(ids), "a young person waiting is listed in no queue"
        page = await store.waiting_page(10)
        assert ([e.conversation_id for e in page.first], page.total) == ([ids[0], ids[1], ids[2]], 3)
        assert [await store.position(i) for i in ids] == [1, 2, 1]
        assert [await store.queue_entry(i) for i in ids] == entries  # at their place: nothing re-queued
        audited = [a for a in await store.audit_log() if a.action == "queue_listed_again"]
        subjects = {a.subject for a in audited}
        if lost == "names":  # the first of each queue listed again lists its queue: the others are listed with it
            assert len(audited) == 2 and ids[2] in subjects and len(subjects & {ids[0], ids[1]}) == 1
        else:  # each member of the lost order put back
            assert sorted(a.subject for a in audited) == sorted([ids[0], ids[1]])
        await watch.check()  # nothing more to do
        assert len([a for a in await store.audit_log() if a.action == "queue_listed_again"]) == len(audited)
    finally:
        await store.close()
        client.close()
