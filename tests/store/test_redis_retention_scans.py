"""What a purge or an erasure of one conversation costs Redis in SCANs (``gateway/store/redis_retention.py``),
counted by Redis itself (``INFO commandstats``) with thousands of unrelated keys kept: each of the conversation's
keys is found from what lists it, not by a SCAN of the keyspace (one per lookup, ~1,000 calls each on a Redis
holding a million keys, for every conversation the daily purge takes); and nothing of it is left. Data written
before its list existed is still found (listed once, behind a mark)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta

import pytest
import redis

from gateway.retention import stripped
from gateway.store import Author, ClaimState, OutboxItem, Store, TranscriptEntry, open_store
from gateway.store import redis_keys as K
from gateway.testing import store_keys
from tests.store.conftest import emptied
from tests.store.test_contract_retention import PHONE, SECRET, T0, a_conversation, close

UNRELATED = 3000


def _scans(client: redis.Redis) -> int:
    found = client.info("commandstats").get("cmdstat_scan")
    return int(found["calls"]) if found else 0


async def _scans_of(client: redis.Redis, work: Callable[[], Awaitable[object]]) -> int:
    client.config_resetstat()
    await work()
    return _scans(client)


def _one_pass(client: redis.Redis) -> int:
    """The SCAN calls of one pass over the keyspace, as ``forget`` made them (COUNT 1000)."""
    client.config_resetstat()
    for _ in client.scan_iter(match="hg:nothing-here:*", count=1000):
        pass
    return _scans(client)


@pytest.fixture
async def store(redis_url: str) -> AsyncIterator[Store]:
    url = emptied(redis_url)
    opened = await open_store(url, keys=store_keys(url))
    with redis.Redis.from_url(url) as client, client.pipeline(transaction=False) as pipe:
        for n in range(UNRELATED):
            pipe.set(f"hg:unrelated:{n}", "x")
        pipe.execute()
    try:
        yield opened
    finally:
        await opened.close()


@pytest.fixture
def client(redis_url: str) -> redis.Redis:
    return redis.Redis.from_url(redis_url, decode_responses=True)


async def test_an_erasure_finds_the_uploads_from_their_list_not_by_a_scan(store: Store, client: redis.Redis) -> None:
    """Until 2026-12-06 the conversation's web chat uploads were found by a SCAN of the keyspace for
    ``hg:upload:<conv>/*``; now put_upload lists them in ``hg:u:{<conv>}``, which the erasure reads."""
    conversation = await a_conversation(store)
    other = await a_conversation(store, sender="+33699999999", text="un autre jeune")
    passes = _one_pass(client)
    assert passes >= 3  # the keyspace is big enough to tell a scan

    scans = await _scans_of(client, lambda: store.erase_conversation(conversation.id))

    assert scans <= 2 * passes, (scans, passes)  # the outbox items' and the claims' lookups still scan; before: 3
    assert await store.get_upload(f"{conversation.id}/0123abcd") is None
    assert not client.exists(K.uploads(conversation.id))
    assert await store.get_upload(f"{other.id}/0123abcd") is not None


async def test_a_purge_still_finds_an_upload_written_before_the_list(store: Store, client: redis.Redis) -> None:
    """A store written before 2026-12-06: its uploads are listed once (one SCAN, then ``hg:uploads-made``)."""
    conversation = await close(store, await a_conversation(store))
    other = await a_conversation(store, sender="+33699999999", text="un autre jeune")
    client.delete(K.uploads(conversation.id), K.uploads(other.id), K.UPLOADS_MADE)  # as the version before left them

    await store.purge_conversation(stripped(conversation, T0 + timedelta(days=31)))

    assert await store.get_upload(f"{conversation.id}/0123abcd") is None
    assert await store.get_upload(f"{other.id}/0123abcd") is not None
    assert client.smembers(K.uploads(other.id)) == {f"{other.id}/0123abcd"}
    assert client.exists(K.UPLOADS_MADE)
    scans = await _scans_of(client, lambda: store.erase_conversation(other.id))  # listed once: not scanned again
    assert scans <= 2 * _one_pass(client)
    assert await store.get_upload(f"{other.id}/0123abcd") is None


async def _lapsed_claim(store: Store, conversation_id: str, key: str) -> None:
    """A claim naming the conversation whose owner died before processing its message (kept ``CLAIM_KEPT``)."""
    async with store.lock(conversation_id):
        assert await store.claim(key, "a-dead-process", 1) is ClaimState.CLAIMED


async def test_an_erasure_finds_the_claims_naming_it_from_their_index_not_by_a_scan(
    store: Store, client: redis.Redis
) -> None:
    """Until 2026-12-06 the claims naming the conversation were found by a SCAN of the keyspace for every claim,
    then an MGET of them all; now the claim scripts list each claim naming a conversation in ``hg:{seen}:n:<conv>``
    (its TTL the claim's), which the erasure reads; a claim processed or released leaves it (gone once empty)."""
    conversation = await a_conversation(store)
    other = await a_conversation(store, sender="+33699999999", text="un autre jeune")
    await _lapsed_claim(store, conversation.id, "in:whatsapp:lapsed-1")
    await _lapsed_claim(store, other.id, "in:whatsapp:lapsed-2")
    async with store.lock(other.id):  # a message processed: its claim and its place in the index go
        assert await store.claim("in:whatsapp:done-2", "a-live-process", 30) is ClaimState.CLAIMED
        await store.release("in:whatsapp:done-2", "a-live-process")
    assert client.smembers(K.claims_of(other.id)) == {K.seen_claim("in:whatsapp:lapsed-2")}
    assert 0 < client.ttl(K.claims_of(other.id)) <= K.CLAIM_KEPT_SECONDS
    passes = _one_pass(client)

    scans = await _scans_of(client, lambda: store.erase_conversation(conversation.id))

    assert scans <= passes, (scans, passes)  # the outbox items' lookup still scans; before: 2 passes
    assert not client.exists(K.seen_claim("in:whatsapp:lapsed-1"), K.claims_of(conversation.id))
    assert client.exists(K.seen_claim("in:whatsapp:lapsed-2"))


async def test_an_erasure_still_finds_a_claim_written_before_the_index(store: Store, client: redis.Redis) -> None:
    """A store written before 2026-12-06: its claims are listed once (one SCAN, then ``hg:claims-made``)."""
    conversation = await a_conversation(store)
    other = await a_conversation(store, sender="+33699999999", text="un autre jeune")
    await _lapsed_claim(store, conversation.id, "in:whatsapp:lapsed-1")
    await _lapsed_claim(store, other.id, "in:whatsapp:lapsed-2")
    client.delete(K.claims_of(conversation.id), K.claims_of(other.id), K.CLAIMS_MADE)  # as the version before

    await store.erase_conversation(conversation.id)

    assert not client.exists(K.seen_claim("in:whatsapp:lapsed-1"), K.claims_of(conversation.id))
    assert client.smembers(K.claims_of(other.id)) == {K.seen_claim("in:whatsapp:lapsed-2")}
    assert client.exists(K.CLAIMS_MADE)
    await store.erase_conversation(other.id)
    assert not client.exists(K.seen_claim("in:whatsapp:lapsed-2"), K.claims_of(other.id))


async def _failed_reply(store: Store, conversation_id: str, item_id: str) -> None:
    """A reply that failed for good: its item kept 7 days with its payload (the young person's address and words)."""
    entry = TranscriptEntry(item_id, conversation_id, T0, Author.BOT, "Réponse : " + SECRET)
    await store.append_transcript(entry)
    await store.outbox_put(OutboxItem(item_id, conversation_id, {"recipient": PHONE, "text": SECRET}, T0))
    assert await store.outbox_mark_failed(conversation_id, item_id, "blocked by the provider")


async def test_an_erasure_finds_the_outbox_items_without_a_scan(store: Store, client: redis.Redis) -> None:
    """Until 2026-12-06 the conversation's outbox items were found by a SCAN of the keyspace for
    ``hg:o:{<conv>}*``; now a reply's item from its transcript entry's id, a pending one from its line, and the
    others (without an entry: a notice's; kept resolved: failed, or what is left of a sent one) from
    ``hg:ol:{<conv>}``. With the uploads' and the claims' lists, an erasure scans nothing."""
    conversation = await a_conversation(store)
    other = await a_conversation(store, sender="+33699999999", text="un autre jeune")
    await _lapsed_claim(store, conversation.id, "in:whatsapp:lapsed-1")
    await _failed_reply(store, conversation.id, "f-" + conversation.id)
    await _failed_reply(store, other.id, "f-" + other.id)
    notice = "notice-KEYEDHASH42"  # the gate's notice to the sender: an item without a transcript entry
    await store.outbox_put(OutboxItem("n-gate", notice, {"recipient": PHONE, "text": "x"}, T0))
    assert await store.outbox_mark_failed(notice, "n-gate", "blocked by the provider")
    assert client.smembers(K.items_listed(notice)) == {"n-gate"}
    kept = client.pttl(K.outbox_item(notice, "n-gate"))  # 7 days: the list's TTL is the item's (set together)
    # within a second of it: the list's expiry is set just after the item's (by a few ms it may outlive it, which
    # lists more, never less); until 2026-12-07 asserted at most the item's, failing once when 1 ms later
    assert kept - 60_000 < client.pttl(K.items_listed(notice)) <= kept + 1_000
    mine = [K.outbox_item(conversation.id, i + conversation.id) for i in ("f-", "r2-")] + [
        K.outbox_item(notice, "n-gate")
    ]
    assert client.exists(*mine) == 3

    async def erase() -> None:
        assert await store.erase_conversation(conversation.id) == 4
        await store.erase_conversation(notice)

    scans = await _scans_of(client, erase)

    assert scans == 0  # before: one pass over the keyspace each (the items')
    assert client.exists(*mine) == 0
    assert not client.exists(K.items_listed(conversation.id), K.items_listed(notice))
    assert await store.outbox_get(other.id, "f-" + other.id) is not None
    assert await store.outbox_get(other.id, "r2-" + other.id) is not None


async def test_a_purge_finds_a_failed_reply_once_its_transcript_expired(store: Store, client: redis.Redis) -> None:
    """The transcript expires ``closed_days`` (1 at least) after the end, about when the purge comes; a failed
    reply's item is kept 7 days from its failure: it is listed (``hg:ol:``), not found from a transcript gone."""
    conversation = await close(store, await a_conversation(store))
    await _failed_reply(store, conversation.id, "f-" + conversation.id)
    client.delete(*K.transcript_keys(conversation.id))  # expired

    await store.purge_conversation(stripped(conversation, T0 + timedelta(days=31)))

    assert await store.outbox_get(conversation.id, "f-" + conversation.id) is None
    assert not client.exists(K.items_listed(conversation.id))


async def test_an_erasure_still_finds_an_item_written_before_the_list(store: Store, client: redis.Redis) -> None:
    """A store written before 2026-12-06: its outbox items are listed once (one SCAN, then ``hg:items-made``), each
    with its TTL (none for a pending one)."""
    conversation = await a_conversation(store)
    other = await a_conversation(store, sender="+33699999999", text="un autre jeune")
    await _failed_reply(store, conversation.id, "f-" + conversation.id)
    await _failed_reply(store, other.id, "f-" + other.id)
    client.delete(*K.transcript_keys(conversation.id), K.items_listed(conversation.id), K.items_listed(other.id))
    client.delete(K.ITEMS_MADE)  # as the version before left them

    await store.erase_conversation(conversation.id)

    assert not client.exists(K.outbox_item(conversation.id, "f-" + conversation.id))
    assert client.smembers(K.items_listed(other.id)) == {"f-" + other.id, "r2-" + other.id}
    assert client.ttl(K.items_listed(other.id)) == -1  # its pending reply has none
    assert client.exists(K.ITEMS_MADE)
