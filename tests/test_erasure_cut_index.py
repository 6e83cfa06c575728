"""An erasure cut on Redis after a conversation's record and before its place in the young person's index
(``hg:{index}:person:<keyed identity>``) is finished by the erasure's own resumption (the alert check finishing the
listed erasure): nothing links the person's identity to their conversations once it ran.

The store's erasure deletes the record, then takes it out of the person's and listener's indexes and the creation
index (``redis_retention._unindex``: the record first would leave it listed nowhere, sealed with the identity, for
an erasure by identity to miss). Until 2026-12-07 a cut between the two left the person's index naming the erased
conversation for good when it was the last one erased (the one listed): the alert check found its record gone, wrote
the audit line and unlisted it, and the store's erasure, given no record, had no identity to find the index by.

Real cuts: the real ``gateway erase --channel --identity`` goes through ``tests/cutting_proxy.py``, which resets its
Redis connection before the index's ``ZREM`` (the record's ``DEL`` ran); the server's alert check finishes it.
"""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

import pytest
import redis

from gateway.alerts import Watch
from gateway.cli_privacy import _erase
from gateway.erasure import Eraser
from gateway.errors import StoreError
from gateway.keyed import KeyedHash
from gateway.messages import ChannelName
from gateway.metrics import Metrics
from gateway.settings import Settings
from gateway.store import Store
from gateway.store import redis_keys as K
from gateway.testing import store_keys
from tests.conftest import Clock
from tests.console.test_handback_crash import instance, redis_store
from tests.cutting_proxy import cutting_proxy
from tests.store.conftest import redis_url
from tests.test_erasure_cut import CHAT, nothing_left_of_the_person, person_with_two_conversations

__all__ = ["redis_store", "redis_url"]  # fixtures used below


@pytest.mark.redis
@pytest.mark.parametrize("cut", ["later", "earlier"])
async def test_an_erasure_cut_before_the_persons_index_leaves_nothing_there_once_finished(
    redis_store: Store, redis_url: str, clock: Clock, settings: Settings, cut: str, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    """``gateway erase --channel telegram --identity <chat>`` dies after the ``later`` conversation's record (the
    last one erased, the one listed) or the ``earlier`` one's, before its place in the person's index; the alert
    check finishes it. Before: with ``later``, ``[later]`` stayed in the index for good."""
    earlier, later, marks = await person_with_two_conversations(redis_store, clock, settings)
    person = K.person(store_keys(redis_url).identity(ChannelName.TELEGRAM, CHAT))
    with redis.Redis.from_url(redis_url) as client:
        assert sorted(client.zrange(person, 0, -1)) == sorted([earlier.encode(), later.encode()])
    args = argparse.Namespace(conversation=None, channel="telegram", identity=CHAT, again=None)
    monkeypatch.chdir(tmp_path)  # no stray .env
    monkeypatch.setenv("GATEWAY_FLOWS", settings.flows)
    monkeypatch.setenv("GATEWAY_SECRET_KEY", settings.secret_key.get_secret_value())
    monkeypatch.setenv("GATEWAY_DATA_KEY", settings.data_key.get_secret_value())
    async with cutting_proxy(redis_url) as proxy:
        monkeypatch.setenv("GATEWAY_STORE", proxy.url)
        proxy.cut_before(b"ZREM", person.encode(), (later if cut == "later" else earlier).encode())
        with pytest.raises(StoreError):  # in a thread: the command runs its own event loop, as on the command line
            await asyncio.to_thread(_erase, args)
        assert proxy.cut == 1
    assert await redis_store.get_conversation(later if cut == "later" else earlier) is None  # the record went

    dispatcher, _ = instance(redis_store, clock)  # the server's alert check, wired as the app wires it
    keyed = KeyedHash(settings.secret_key.get_secret_value())
    eraser = Eraser(redis_store, dispatcher, dispatcher.flows, lambda c, s: keyed.sender(c.value, s), clock=clock)
    watch = Watch(redis_store, Metrics(), clock=clock, outbox_alert_seconds=60,
                  complete_erasure=lambda i, key: eraser.finish_confirmed(i, key, timeout=2.0))  # fmt: skip
    await watch.check()
    await watch.check()

    assert await redis_store.erasures_begun() == {}
    await nothing_left_of_the_person(redis_store, settings, marks, earlier, later)
    with redis.Redis.from_url(redis_url) as client:
        assert client.zrange(person, 0, -1) == []  # before, the later cut: [later], for good
        left = [k for k in client.keys(K.INDEX + "*") if client.type(k) == b"hash"]
        assert [(k, v) for k in left for v in client.hvals(k) if person.encode() in v] == []  # no note left either
