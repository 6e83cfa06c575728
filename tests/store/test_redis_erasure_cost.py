"""What one erasure costs Redis (``gateway/erasure.py``, ``gateway/store/redis_retention.py``), counted by Redis
itself (``INFO commandstats``) with thousands of other people's keys kept: the lookups of the person's keys are
targeted, not a SCAN of the keyspace or an HKEYS of every processed mark kept; and nothing of the person is left."""

from __future__ import annotations

import base64
import hashlib
from datetime import UTC, datetime

import redis

from gateway.dispatcher import Dispatcher
from gateway.erasure import Eraser
from gateway.flowset import FlowSet
from gateway.ids import inbound_key, seen_digest
from gateway.keyed import KeyedHash
from gateway.messages import ChannelName, Inbound
from gateway.store import open_store
from gateway.store import redis_keys as K
from gateway.testing import store_keys
from tests.store.conftest import emptied
from tests.store.test_erasure_person import ROOT
from tests.test_webchat import WALK_TO_QUEUE

CHAT, OTHERS = "70707070", 5000
# the web chat: a provider channel's marks are kept by the erasure (``erasure.DELIVERED_AGAIN``), the web chat's go
CHANNEL = ChannelName.WEBCHAT


def _message(number: int, text: str) -> Inbound:
    return Inbound(CHANNEL, CHAT, f"upd-{CHAT}-{number}", text)


def _calls(client: redis.Redis, *names: str) -> int:
    stats = client.info("commandstats")
    return sum(int(stats[f"cmdstat_{name}"]["calls"]) for name in names if f"cmdstat_{name}" in stats)


async def test_an_erasure_deletes_the_persons_marks_by_name_not_reading_every_mark(redis_url: str) -> None:
    """Until 2026-12-06 an erasure read every processed mark kept (a SCAN of the keyspace for the day hashes, then
    one HKEYS each: every message of the last days) to find the person's: now their names are computed from the
    transcript's entries (``ids.seen_digests_of_entry``) and deleted. A mark the conversation's own list no longer
    holds (``hg:d:``, gone before the day hash it is in) still goes."""
    url = emptied(redis_url)
    store = await open_store(url, keys=store_keys(url))
    client = redis.Redis.from_url(url)
    try:
        flows = FlowSet(ROOT / "flows.yaml")
        flows.reload()
        now = datetime.now(UTC).replace(hour=12, minute=0, second=0, microsecond=0)  # the line open (09:00-23:00 Paris)
        keyed = KeyedHash("test-secret-key-0123456789")
        dispatcher = Dispatcher(store, flows, clock=lambda: now)
        eraser = Eraser(store, dispatcher, flows, lambda c, s: keyed.sender(c.value, s), clock=lambda: now)
        for number, text in enumerate(WALK_TO_QUEUE):
            await dispatcher.handle_inbound(_message(number, text))
        conversation = await store.find_active_conversation(CHANNEL, CHAT)
        assert conversation is not None
        mine = {seen_digest(inbound_key(_message(n, ""))) for n in range(len(WALK_TO_QUEUE))}
        assert mine <= set(await store.seen_keys())
        client.delete(K.done(conversation.id))  # its list expired before the day hashes holding the marks
        today = int(now.timestamp()) // 86_400
        with client.pipeline(transaction=False) as pipe:  # other people's marks, over the days they are kept
            for n in range(OTHERS):
                digest = base64.urlsafe_b64encode(hashlib.sha256(f"in:telegram:other-{n}".encode()).digest()[:12])
                pipe.hset(K.seen_marks(today + n % 9, K.seen_shard(digest.decode())), digest.decode(), 1)
                pipe.set(f"hg:unrelated:{n}", "x")
            pipe.execute()
        others = set(await store.seen_keys()) - mine

        client.config_resetstat()
        erased = await eraser.erase_person(CHANNEL, CHAT, "sam", "test")
        hkeys = _calls(client, "hkeys")

        assert erased.conversations == 1
        assert hkeys <= 2, hkeys  # the late readings waiting (``late_forget``), a conversation; before: 1,139
        left = set(await store.seen_keys())
        assert not mine & left and left == others
    finally:
        client.close()
        await store.close()
