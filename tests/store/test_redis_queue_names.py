"""The queues' names on Redis (``hg:{queue}:names``): every reader of the waiting line reads only the queues it lists
(``waiting_ids``, ``waiting_page``, ``waiting``: the alert check, the console's queue and board, the gauges), so an
entry waiting in a queue it does not list is seen by no listener and counted nowhere.

No step of the gateway removes a name (the set only grows: a queue flows.yaml no longer has stays listed while
anyone waits in it, and after), and each script that puts an entry in a queue's order lists the queue in the same
step, in the same slot (``{queue}``): no race between two instances, no Cluster cut between the two. What is left is
the key itself lost: evicted by a Redis whose ``maxmemory-policy`` is not ``noeviction`` (``gateway doctor`` says it,
the gateway runs all the same), deleted by hand, or written over by ``gateway store migrate``'s ``RENAME`` of an
earlier layout's key with an instance of this version already running. These tests delete it as such a loss does,
with a plain client, and check that a young person waiting is listed again.
"""

from __future__ import annotations

import pytest
import redis

from gateway.conversation import Priority
from gateway.store import open_store
from gateway.store import redis_keys as K
from gateway.testing import store_keys
from tests.conftest import Clock
from tests.store.conftest import redis_cluster_url, redis_url

__all__ = ["redis_cluster_url", "redis_url"]  # fixtures used below


@pytest.mark.redis
@pytest.mark.parametrize("url", ["redis_url", "redis_cluster_url"])
async def test_a_hand_back_lists_its_queue_again(request: pytest.FixtureRequest, url: str, clock: Clock) -> None:
    """Anne holds Léa's conversation when the queues' names are lost; she hands it back: Léa waits in ``listeners``
    again, and the line lists her (``waiting_ids``, ``waiting_page``). Before 2026-12-08 the hand-back's script put
    the entry back in the queue's order without listing the queue (only ``enqueue`` did): Léa waited unseen."""
    redis_url: str = request.getfixturevalue(url)
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    client.flushdb()
    store = await open_store(redis_url, keys=store_keys(redis_url))
    try:
        await store.enqueue("c-lea", "listeners", Priority.NORMAL, clock())
        await store.take("c-lea", "anne", clock())
        client.delete(K.QUEUE + "names")  # the key lost (evicted, deleted, written over)
        await store.requeue("c-lea", holder="anne")
        assert await store.position("c-lea") == 1
        assert await store.waiting_ids() == {"c-lea"}, "Léa waits in a queue the line does not list"
        page = await store.waiting_page(10)
        assert ([e.conversation_id for e in page.first], page.total) == (["c-lea"], 1)
    finally:
        await store.close()
        client.close()
