"""A purge cut between its steps on Redis is finished by the next pass: nothing links the young person's identity to
the purged conversation once it ran.

``RedisStore.purge_conversation`` forgets the content, takes the conversation out of its young person's index
(``K.person``: a keyed digest of their identity, naming their conversations) and saves the stripped record (no
identity, ``purged_at`` set). The pass (``Retention.purge``) finds again only what is still due: a record not stripped
yet. Until 2026-12-07 the stripped record was saved first: a purge cut after that save (a Redis restart, a stall
past the socket timeout: ``bench/chaos.py --seed 63 --redis-delay-ms 1``) left the person's index naming the purged
conversation for good, the next pass no longer finding it due and the stripped record no longer naming the index.

A real store behind ``tests/cutting_proxy.py`` (the index's ``ZREM`` never reaches Redis, its connection reset),
the real purge pass, then the next pass on a store reaching Redis directly.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import redis

from gateway.conversation import Conversation, Status
from gateway.errors import StoreError
from gateway.flowset import FlowSet
from gateway.messages import ChannelName
from gateway.metrics import Metrics
from gateway.retention import Retention
from gateway.store import open_store
from gateway.store import redis_keys as K
from gateway.testing import store_keys
from tests.conftest import ROOT
from tests.cutting_proxy import cutting_proxy
from tests.store.conftest import emptied, redis_url  # noqa: F401  (the session's redis-server)

pytestmark = pytest.mark.redis

NOW = datetime(2030, 3, 4, 10, 0, tzinfo=UTC)


async def test_a_purge_cut_before_the_persons_index_is_finished_by_the_next_pass(redis_url: str) -> None:  # noqa: F811
    emptied(redis_url)
    flows = FlowSet(ROOT / "flows.yaml")
    flows.reload()
    ended = NOW - timedelta(days=40)  # past flows.yaml's retention (30 days after the end)
    conversation = Conversation(id="c-purged", channel=ChannelName.MESSENGER, sender="alice", pseudonym="Lynx-1",
                                created_at=ended - timedelta(minutes=5), updated_at=ended, status=Status.CLOSED,
                                closed_at=ended)  # fmt: skip
    person = K.person(store_keys(redis_url).identity(ChannelName.MESSENGER, "alice"))
    direct = await open_store(redis_url, keys=store_keys(redis_url))
    try:
        await direct.save_conversation(conversation)
        with redis.Redis.from_url(redis_url) as client:
            assert client.zrange(person, 0, -1) == [b"c-purged"]
        async with cutting_proxy(redis_url) as proxy:
            cut = await open_store(proxy.url, keys=store_keys(proxy.url))
            try:
                proxy.cut_before(b"ZREM", person.encode())
                with pytest.raises(StoreError):
                    await Retention(cut, flows, clock=lambda: NOW, metrics=Metrics()).purge(NOW)
            finally:
                await cut.close()
        await Retention(direct, flows, clock=lambda: NOW, metrics=Metrics()).purge(NOW)  # the next pass
        with redis.Redis.from_url(redis_url) as client:
            assert client.zrange(person, 0, -1) == []  # before: [b'c-purged'], for good
        found = await direct.get_conversation("c-purged")
        assert found is not None and found.purged_at is not None and not found.sender
        assert await direct.conversations_of(ChannelName.MESSENGER, "alice", NOW - timedelta(days=60), NOW, 10) == []
    finally:
        await direct.close()
