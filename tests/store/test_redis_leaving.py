"""An ending's listing on Redis (``RedisStore.begin_leaving``) cut short: both of its writes or neither, on one node.

An ending (a quick exit, "Terminer", an idle close, the bulk close) is listed as begun in ``hg:{queue}:leaving`` (the
check's list, which completes it) and in the conversation's own slot, ``hg:lv:{<conv>}`` (the copy a message's lock
reads, so that the message completes the ending first and is never answered by the bot around the goodbye). Sent as
two commands, an instance dying between them left the list without the copy: a message in the seconds before the
check was answered by the bot, then the check wrote the goodbye. On one node the two are one script; on a Cluster
(the keys are in different slots) they stay two, the list first: a cut between leaves it listed, never the copy alone.

Real cuts (``tests/cutting_proxy.py``: the connection reset before the first command that names the copy's key, what
a dying instance leaves), the real store, read back by a plain client.
"""

from __future__ import annotations

import pytest
import redis

from gateway.errors import StoreError
from gateway.store import open_store
from gateway.store import redis_keys as K
from gateway.testing import store_keys
from tests.cutting_proxy import cutting_proxy

CONVERSATION = "c-leaving-0123"


@pytest.mark.redis
@pytest.mark.parametrize("url", ["redis_url", "redis_cluster_url"])
async def test_an_endings_listing_cut_before_its_copy_leaves_both_or_the_list(
    request: pytest.FixtureRequest, url: str
) -> None:
    """Cut before the command naming the copy's key: on one node nothing is listed (one script, cut whole: the ending
    never began, its request failed); on a Cluster node the list alone (the check completes it). Never the list without
    its copy on one node (what the two commands left), never the copy without the list anywhere. Then, uncut, both."""
    redis_url: str = request.getfixturevalue(url)
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    client.flushdb()
    try:
        async with cutting_proxy(redis_url) as proxy:
            store = await open_store(proxy.url, keys=store_keys(redis_url))
            try:
                proxy.cut_before(K.leaving(CONVERSATION).encode())
                with pytest.raises(StoreError):
                    await store.begin_leaving(CONVERSATION, "ended")
                assert proxy.cut == 1
                listed = client.hget(K.QUEUE + "leaving", CONVERSATION)
                copy = client.get(K.leaving(CONVERSATION))
                if url == "redis_url":
                    assert (listed, copy) == (None, None)  # one script: cut whole
                else:
                    assert (listed, copy) == ("ended", None)  # two commands, the list first

                await store.begin_leaving(CONVERSATION, "quick_exit")  # a new connection, nothing cut
                assert client.hget(K.QUEUE + "leaving", CONVERSATION) == "quick_exit"
                assert client.get(K.leaving(CONVERSATION)) == "quick_exit"
                assert 0 < client.ttl(K.leaving(CONVERSATION)) <= K.LEAVING_KEPT_SECONDS
                assert await store.ending_begun(CONVERSATION) == "quick_exit"
                assert await store.leavings_begun() == {CONVERSATION: "quick_exit"}
            finally:
                await store.close()
    finally:
        client.close()
