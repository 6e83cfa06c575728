"""A Redis erasure leaves no key naming the conversation or the young person's identity, whatever the conversation
went through (``gateway/store/redis_retention.py``): a web chat image, a reply failed for good (kept 7 days), a
reply pending, a watermark kept for a reply pending (``hg:tw:``), the gate's notices to them (one failed, one sent:
kept without a transcript entry), a claim whose owner crashed (kept 8 days) and one taken over from it. Each is found
from what lists it (no SCAN of the keyspace since 2026-12-06): the whole Redis is scanned after the erasure,
standalone and Cluster (every script and pipeline slot-safe)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
import redis

from gateway.errors import StoreError
from gateway.keyed import KeyedHash
from gateway.messages import Attachment, ChannelName
from gateway.store import Author, ClaimState, Delivery, DoneMark, OutboxItem, Store, TranscriptEntry, open_store
from gateway.store import redis_keys as K
from gateway.testing import SECRET_KEY, store_keys
from tests.cutting_proxy import cutting_proxy
from tests.losing_proxy import script_text
from tests.store.conftest import emptied, flush_cluster
from tests.store.test_contract_retention import T0

TOKEN = "wc-token-5f1e2d3c4b5a69788796a5b4c3d2e1f0"  # the web chat page's token: the young person's identity
WORDS = "je ne veux plus rentrer chez moi"


@pytest.fixture(params=["redis", "redis-cluster"])
def url(request: pytest.FixtureRequest) -> str:
    if request.param == "redis":
        return emptied(request.getfixturevalue("redis_url"))
    found: str = request.getfixturevalue("redis_cluster_url")
    flush_cluster(found)
    return found


@pytest.fixture
async def store(url: str) -> AsyncIterator[Store]:
    opened = await open_store(url, keys=store_keys(url))
    try:
        yield opened
    finally:
        await opened.close()


def every_key_and_value(url: str) -> list[str]:
    options = {"decode_responses": True, "encoding_errors": "surrogateescape"}
    client: redis.Redis | redis.RedisCluster = redis.Redis.from_url(url, **options)
    if client.info("cluster").get("cluster_enabled"):
        client.close()
        client = redis.RedisCluster.from_url(url, **options)
    try:
        found = []
        for key in client.scan_iter(count=1000):
            kind = client.type(key)
            value = {
                "string": client.get, "list": lambda k: client.lrange(k, 0, -1), "set": client.smembers,
                "zset": lambda k: client.zrange(k, 0, -1), "hash": client.hgetall,
            }.get(kind, lambda k: "")(key)  # fmt: skip
            found.append(f"{key} = {value}")
        return found
    finally:
        client.close()


async def a_webchat_conversation_through_everything(store: Store, notice: str) -> str:
    conversation, _ = await store.active_conversation(ChannelName.WEBCHAT, TOKEN, T0)
    cid = conversation.id
    image = f"{cid}/{'ab' * 16}"
    await store.put_upload(image, "image/png", b"PNG " + WORDS.encode())
    entries = [
        TranscriptEntry("u-" + cid, cid, T0, Author.USER, WORDS,
                        attachments=(Attachment("image", url="/uploads/" + image, content_type="image/png"),)),
        TranscriptEntry("f-" + cid, cid, T0, Author.BOT, "Réponse : " + WORDS),
        TranscriptEntry("p-" + cid, cid, T0, Author.BOT, "Encore là ?"),
    ]  # fmt: skip
    for entry in entries:
        await store.append_transcript(entry)
    payload = {"recipient": TOKEN, "text": WORDS}
    await store.outbox_put(OutboxItem("f-" + cid, cid, payload, T0))
    assert await store.outbox_mark_failed(cid, "f-" + cid, "blocked by the provider")  # kept 7 days
    await store.outbox_put(OutboxItem("p-" + cid, cid, payload, T0))  # still pending
    await store.append_transcript(TranscriptEntry("w-" + cid, cid, T0, Author.BOT, "Tu es là ?"))
    await store.outbox_put(OutboxItem("w-" + cid, cid, payload, T0, awaits_read=True))  # a read watermark's
    assert await store.mark_until(cid, T0 + timedelta(seconds=1), Delivery.READ) == []  # kept for its record
    await store.outbox_put(OutboxItem("n-failed", notice, {"recipient": TOKEN, "text": "limité"}, T0))
    assert await store.outbox_mark_failed(notice, "n-failed", "blocked by the provider")
    await store.outbox_put(OutboxItem("n-sent", notice, {"recipient": TOKEN, "text": "limité"}, T0))
    assert await store.outbox_mark_sent(notice, "n-sent", "SM-notice-1")  # no entry: kept an hour
    long_ago = datetime.now(UTC) - timedelta(hours=1)
    async with store.lock(cid):  # a process that crashed: its claim lapsed, naming the conversation
        assert await store.claim("in:webchat:lapsed", "a-dead-process", 1, now=long_ago) is ClaimState.CLAIMED
        assert await store.claim("in:webchat:taken", "another-dead-one", 1, now=long_ago) is ClaimState.CLAIMED
        assert await store.claim("in:webchat:taken", "a-live-process", 30) is ClaimState.CLAIMED  # taken over
    conversation.engine = {"answers": {"topic": WORDS}, "language": "fr"}
    await store.save_conversation(conversation, done=DoneMark("in:webchat:" + cid, 3600))
    return cid


def as_before_the_lists(url: str) -> None:
    """The store as the version before 2026-12-06 left it: no list of uploads, claims or items, no mark."""
    options = {"decode_responses": True}
    client: redis.Redis | redis.RedisCluster = redis.Redis.from_url(url, **options)
    if client.info("cluster").get("cluster_enabled"):
        client.close()
        client = redis.RedisCluster.from_url(url, **options)
    try:
        for pattern in ("hg:u:{*", "hg:ol:{*", K.claims_of("*")):
            for key in list(client.scan_iter(match=pattern.replace("{", "[{]"), count=1000)):
                client.delete(key)
        client.delete(K.UPLOADS_MADE, K.CLAIMS_MADE, K.ITEMS_MADE)
    finally:
        client.close()


@pytest.mark.redis
@pytest.mark.parametrize("lists", ["listed", "before-the-lists"])
async def test_an_erasure_leaves_no_key_naming_the_conversation_or_the_person(
    store: Store, url: str, lists: str
) -> None:
    notice = "notice-" + KeyedHash(SECRET_KEY).sender("webchat", TOKEN)
    cid = await a_webchat_conversation_through_everything(store, notice)
    other, _ = await store.active_conversation(ChannelName.WEBCHAT, "wc-token-of-another-young-person", T0)
    await store.put_upload(f"{other.id}/{'cd' * 16}", "image/png", b"PNG")
    named = [line for line in every_key_and_value(url) if cid in line or TOKEN in line or notice in line]
    assert len(named) > 8, named  # what it went through is there
    if lists == "before-the-lists":  # listed once, at the first erasure (one SCAN each)
        as_before_the_lists(url)
        assert not [line for line in every_key_and_value(url) if line.startswith(("hg:u:", "hg:ol:", "hg:{seen}:n:"))]

    await store.erase_conversation(cid)
    await store.erase_conversation(notice)

    left = [line for line in every_key_and_value(url) if cid in line or TOKEN in line or notice in line]
    assert left == []
    assert await store.get_upload(f"{other.id}/{'cd' * 16}") is not None


def _cuts(cid: str, notice: str) -> dict[str, tuple[bytes, ...]]:
    """Where the erasure's connection is reset (the commands before it ran): before its first content deletion (the
    failed reply's item), before the claims' deletion, before the uploads' list's, before the notice's items, before
    the provider ids' index (the notice's send's, kept only on its item), before the person's index (after the
    record: made again, the store reads that index's name from ``K.UNINDEXING``)."""
    return {
        "item": (b"DEL", K.outbox_item(cid, "f-" + cid).encode()),
        "claims": (script_text("claims_forget"),),
        "lists": (b"DEL", K.uploads(cid).encode()),
        "notice": (b"DEL", K.outbox_item(notice, "n-failed").encode()),
        "provider-index": (b"HDEL", b"hg:p:"),  # the notice's send's provider id (the conversation's have none)
        "person-index": (b"ZREM", K.person("").encode(), cid.encode()),  # after the record (until 2026-12-07 left)
    }


@pytest.mark.redis
@pytest.mark.parametrize("cut", ["item", "claims", "lists", "notice", "provider-index", "person-index"])
async def test_an_erasure_cut_short_then_made_again_leaves_no_key_naming_them(redis_url: str, cut: str) -> None:
    url = emptied(redis_url)
    store = await open_store(url, keys=store_keys(url))
    try:
        notice = "notice-" + KeyedHash(SECRET_KEY).sender("webchat", TOKEN)
        cid = await a_webchat_conversation_through_everything(store, notice)
        async with cutting_proxy(url) as proxy:
            through = await open_store(proxy.url, keys=store_keys(url))
            try:
                proxy.cut_before(*_cuts(cid, notice)[cut])
                with pytest.raises(StoreError):
                    await through.erase_conversation(cid)
                    await through.erase_conversation(notice)
                assert proxy.cut == 1
            finally:
                await through.close()

        await store.erase_conversation(cid)  # made again, from what the cut left
        await store.erase_conversation(notice)

        assert [line for line in every_key_and_value(url) if cid in line or TOKEN in line or notice in line] == []
    finally:
        await store.close()
