"""Retention and erasure on Redis: every key a conversation's id leads to, found, then deleted.

What a conversation leaves (see :mod:`gateway.store.redis_keys`): its record and its place in the status sets, the
creation index and the flagged index, its active key, its transcript (one list holding the entries) with each
entry's provider id in the day indexes ``hg:p:<day>:<shard>``, its outbox items (``hg:o:{<conv>}<item id>``, pending
ones also listed under ``hg:{outbox}:conv:<conv>``), its timers, its late readings waiting (``hg:{late}:held`` and
``info``), its queue entry (with the waiting member, the holder's set and the take), its processed marks (a purge
deletes them too), the de-duplication claims that name it (``hg:{seen}:c:<inbound key>``: the key holds the
provider's message id; a claim outlives its lease by days after a crash or a lost release), its web chat uploads
(``hg:upload:<conv>/<hash>``), its notices' evidence files, and the receipts kept for its sends' provider ids
(``hg:rk:<digest>``, listed in ``hg:{rk}:kept``: a receipt whose take had not come yet).

Each is found from what names it, never by a SCAN of the keyspace (one per lookup, ~1,000 calls on a Redis holding a
million keys, for every conversation the daily purge takes, until 2026-12-06): a reply's outbox item from its
transcript entry's id (the same), a pending one from its line, the others (one without an entry, a notice's; one kept
resolved, which may outlive the transcript) from ``hg:ol:{<conv>}`` (``redis_lua._LISTED``); the claims from their
index ``hg:{seen}:n:<conv>`` (kept by the claim scripts, ``redis_lua._CLAIMS``); the uploads from ``hg:u:{<conv>}``
(``RedisStore.put_upload``). A store written before those lists has what it held listed once, at its first erasure
or purge (one SCAN each, behind ``hg:items-made``, ``hg:claims-made`` and ``hg:uploads-made``).

The reads come first, then one pipeline deletes (the keys live in many slots: no transaction can hold them all):
the provider ids' index entries first (a notice's send's provider id is kept on its outbox item only: deleted after
the item, a cut in between left the index naming ``notice-<keyed identity>`` for its 30 days, until 2026-12-06), then
the content, the record and its place in the creation index last, so an erasure cut short by a crash still finds the
record (by id, and among the person's conversations) and is done again in full. A message processed for
the conversation in between would leave a key behind, which is why the callers hold the conversation's lock.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis

from gateway.conversation import Status
from gateway.store import TimerKind, provider_ids, redis_providers
from gateway.store import redis_keys as K
from gateway.store.redis_lua import SCRIPTS
from gateway.store.redis_steps import ordered

SCAN_COUNT = 1000


@dataclass(frozen=True, slots=True)
class Record:
    """Where an erased conversation's record is indexed besides its id: the active key, the takes of its queue,
    its web chat client's open conversations, its young person's and its listener's indexes."""

    active_key: str
    queue: str | None
    client: str | None = None
    indexes: tuple[str, ...] = ()  # the young person's and the listener's (``K.person``, ``K.ended``)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _provider_id(value: str) -> str:
    """The provider id in a transcript entry's head: ``"<id>\\n<delivery code><provider id>\\n<data>"``."""
    _, _, rest = value.partition("\n")
    head, newline, _ = rest.partition("\n")
    return head[1:] if newline else ""


def _glob(text: str) -> str:
    """``text`` matched literally by a SCAN pattern."""
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)


async def forget(client: Redis, conversation_id: str, *, erase: bool, record: Record | None = None) -> int:
    """Delete the conversation's content; with ``erase``, its record and every index naming its id too (purge:
    the caller saves the stripped record afterwards; ``record`` says where the record is indexed). The number
    of transcript entries deleted."""
    entries = [_text(v) for v in await client.lrange(K.transcript(conversation_id), 0, -1)]
    providers = [p for v in entries for p in provider_ids(_provider_id(v))]  # each part's of a reply in parts
    found: list[Any] = await client.zrange(K.outbox_line(conversation_id), 0, -1)
    pending = [_text(i) for i in found]
    items = await _items_of(client, conversation_id, [_entry_id(v) for v in entries])
    timers = [json.dumps([conversation_id, kind.value]) for kind in TimerKind]
    listed: list[Any] = await client.zrange(K.key("notices", conversation_id), 0, -1) if erase else []
    noted = await client.hget(K.UNINDEXING, conversation_id) if erase else None  # a cut after the record
    uploads = [K.key("upload", _text(k)) for k in await _uploads_listed(client, conversation_id)]
    if not await client.exists(K.CLAIMS_MADE):
        await _list_claims(client)
    items, held = await _items_found(client, items)
    providers += [p for p in held if p not in providers]
    kept = await _kept_listed(client, providers) if providers else []
    content = [*items, *(K.outbox_item(conversation_id, i) for i in pending), *uploads]
    async with ordered(client) as pipe:
        if providers:  # before the items: a notice's send's provider id is on its item only, read again after a cut
            redis_providers.forget(pipe, providers)
            for digest in map(redis_providers.held_digest, providers):  # receipts kept for its sends, their take
                pipe.delete(K.kept_receipt_of(digest))  # still to come
            if kept:
                pipe.zrem(K.KEPT_RECEIPTS, *kept)
        for name in content:
            pipe.delete(name)
        pipe.delete(K.uploads(conversation_id), K.items_listed(conversation_id))  # after them: a cut before lists them
        pipe.delete(*K.transcript_keys(conversation_id), K.kept_watermark(conversation_id))
        pipe.delete(K.outbox_line(conversation_id))
        if pending:
            pipe.zrem(K.OUTBOX_PENDING, *(K.outbox_pending(conversation_id, i) for i in pending))
        pipe.delete(K.done(conversation_id))  # the processed marks name the person's messages (provider ids)
        # the claims naming it (their index, one slot): a live one is its owner's, waiting for the lock the caller
        # holds: it claims again once it has the lock (the claim is checked under the lock), so deleting it loses
        # nothing; a lapsed one (its owner died, or its release was lost) would name it for ``CLAIM_KEPT``
        pipe.eval(SCRIPTS["claims_forget"], 1, K.claims_of(conversation_id), conversation_id)
        pipe.zrem(K.OUTBOX + "heads", conversation_id)
        pipe.zrem(K.OUTBOX + "urgent", conversation_id)  # a risky turn's line (redis_lua.py, ``_URGENT``)
        pipe.hdel(K.OUTBOX + "urgent_to", conversation_id)
        pipe.zrem(K.key("timers"), *timers)
        pipe.eval(SCRIPTS["late_forget"], 2, K.LATE_HELD, K.LATE_INFO, conversation_id + " ", "prefix")
        pipe.eval(SCRIPTS["remove_from_queue"], 1, K.QUEUE + "entries", K.QUEUE, conversation_id, "1" if erase else "0")
        if erase:
            indexes = [*(record.indexes if record is not None else ()), *([] if noted is None else json.loads(noted))]
            _unindex(pipe, conversation_id, record, [_text(i) for i in listed], list(dict.fromkeys(indexes)))
        await pipe.execute()
    return len(entries)


async def _items_of(client: Redis, conversation_id: str, entry_ids: list[str]) -> list[str]:
    """The keys of the conversation's outbox items: a reply's id is its transcript entry's (a pending one is also in
    its line, read by the caller), and the items no entry or line may lead to are listed (``K.items_listed``: one
    without an entry, one kept resolved, which may outlive the transcript); those of a store written before the list
    listed there first, once (``_list_items``). Names of items long gone are harmless (deleted: nothing)."""
    if not await client.exists(K.ITEMS_MADE):
        await _list_items(client)
    listed = [_text(i) for i in await client.smembers(K.items_listed(conversation_id))]
    return [K.outbox_item(conversation_id, i) for i in dict.fromkeys([*entry_ids, *listed]) if i]


async def _list_items(client: Redis) -> None:
    """The outbox items a store written before 2026-12-06 holds, each listed in its conversation's
    ``K.items_listed`` with its TTL (one SCAN of the keyspace, once: then ``K.ITEMS_MADE`` is set); an item an older
    instance writes after the mark is not listed (upgrade every instance together; else ``DEL hg:items-made``)."""
    prefix = K.PREFIX + "o:{"
    async for found in client.scan_iter(match=_glob(prefix) + "*", count=SCAN_COUNT):
        name = _text(found)
        conversation_id, close, item_id = name.removeprefix(prefix).partition("}")
        if close and item_id:
            await client.eval(SCRIPTS["items_list"], 2, K.items_listed(conversation_id), name, item_id)
    await client.set(K.ITEMS_MADE, 1)


def _entry_id(value: str) -> str:
    """The id in a transcript entry's head: ``"<id>\\n<delivery code><provider id>\\n<data>"``."""
    return value.partition("\n")[0]


async def _uploads_listed(client: Redis, conversation_id: str) -> list[Any]:
    """The keys of the conversation's web chat uploads (``K.uploads``), those of a store written before the list
    listed there first, once (``_list_uploads``)."""
    if not await client.exists(K.UPLOADS_MADE):
        await _list_uploads(client)
    return list(await client.smembers(K.uploads(conversation_id)))


async def _list_uploads(client: Redis) -> None:
    """The uploads a store written before 2026-12-06 holds, each listed in its conversation's ``K.uploads`` (one
    SCAN of the keyspace, once: then ``K.UPLOADS_MADE`` is set). Listed twice at once by two instances, the lists
    hold the same; an upload written by an older instance after the mark is not listed (upgrade every instance
    together; else ``DEL hg:uploads-made``: listed again at the next erasure or purge)."""
    prefix = K.key("upload", "")
    async for name in client.scan_iter(match=_glob(prefix) + "*", count=SCAN_COUNT):
        key = _text(name).removeprefix(prefix)
        conversation_id, slash, _ = key.partition("/")
        if slash:
            await client.sadd(K.uploads(conversation_id), key)
    await client.set(K.UPLOADS_MADE, 1)


async def _kept_listed(client: Redis, providers: list[str]) -> list[str]:
    """The ids of ``providers`` (as the store holds them: an entry's head keeps a digest) listed among the receipts
    kept (``K.KEPT_RECEIPTS``: whole ids): one read of that list, nearly always empty (a receipt that came before its
    send's record, taken by it or lapsed within minutes)."""
    wanted = {redis_providers.held_digest(p) for p in providers}
    listed: list[Any] = await client.zrange(K.KEPT_RECEIPTS, 0, -1)
    return [p for p in map(_text, listed) if redis_providers.held_digest(p) in wanted]


async def _items_found(client: Redis, items: list[str]) -> tuple[list[str], list[str]]:
    """Of these item keys, those that exist (one read of each, in one pipeline: the entries of a long transcript are
    not each deleted on a Cluster, where the deletions go one by one), and the provider ids they hold (a notice's
    item has no transcript entry to hold it)."""
    if not items:
        return [], []
    async with client.pipeline(transaction=False) as pipe:
        for name in items:
            pipe.exists(name)
            pipe.hget(name, "pmid")
        found = await pipe.execute()
    there = [name for name, exists in zip(items, found[::2], strict=True) if exists]
    return there, [p for pmid in found[1::2] if pmid for p in provider_ids(_text(pmid))]


async def _list_claims(client: Redis) -> None:
    """The claims a store written before 2026-12-06 holds, each naming a conversation listed in its ``K.claims_of``
    with the longest TTL a claim has (one SCAN of the keyspace, then an MGET a page, once: then ``K.CLAIMS_MADE``
    is set). One gone meanwhile stays listed, harmless (an erasure deletes only a claim still naming it) until the
    index's TTL; a claim written by an older instance after the mark is not listed (upgrade every instance together;
    else ``DEL hg:claims-made``: listed again at the next erasure or purge)."""
    prefix = K.seen_claim("")
    async for page in _pages(client.scan_iter(match=_glob(prefix) + "*", count=SCAN_COUNT)):
        values = await client.mget(page)
        async with ordered(client) as pipe:
            for name, value in zip(page, values, strict=True):
                named = _text(value).split(":", 3)[2:3] if value is not None and _text(value).startswith("c:") else []
                if named and named[0]:
                    pipe.sadd(K.claims_of(named[0]), name)
                    pipe.expire(K.claims_of(named[0]), K.CLAIM_KEPT_SECONDS)
            await pipe.execute()
    await client.set(K.CLAIMS_MADE, 1)


async def _pages(names: AsyncIterator[Any]) -> AsyncIterator[list[str]]:
    """SCAN's names, ``SCAN_COUNT`` at a time."""
    page: list[str] = []
    async for name in names:
        page.append(_text(name))
        if len(page) == SCAN_COUNT:
            yield page
            page = []
    if page:
        yield page


def _unindex(pipe: Any, conversation_id: str, record: Record | None, notices: list[str], indexes: list[str]) -> None:
    """Every index naming the conversation, its marks and its notices' evidence; its record, then its places in the
    person's and listener's indexes (``indexes``: the record's, and those noted by an erasure cut after it) and the
    creation index, last: an erasure cut before the record still lists it (``conversations_of``,
    ``list_conversations``), so erasing the person again by their identity finds it (before, the record was left,
    sealed with the identity, listed nowhere; until 2026-12-06 the person's index was left before the record, when
    the erasure read every record). Those indexes are noted before the record goes (``K.UNINDEXING``) and the note
    removed after them: an erasure cut in between and made again, the record gone, reads them there. Until
    2026-12-07 such a cut left the person's index naming the erased conversation for good when the erasure made again
    did not read that index (the alert check finishing the conversation listed, ``Eraser._finish``)."""
    for status in Status:
        pipe.srem(K.status(str(status)), conversation_id)
    pipe.zrem(K.FLAGGED, conversation_id)
    pipe.zrem(K.TOLD, conversation_id)
    pipe.zrem(K.READ_LATE, conversation_id)
    if record is not None:
        if record.queue:
            pipe.zrem(K.QUEUE + "takes:" + record.queue, conversation_id)
        pipe.eval(SCRIPTS["delete_if"], 1, record.active_key, conversation_id)
        if record.client is not None:
            pipe.srem(K.client(record.client), conversation_id)
            pipe.srem(K.client_open(record.client), conversation_id)  # before the record, as the set
    for notice in notices:
        pipe.delete(K.key("evidence", notice))
    if indexes:  # before the record: what names them goes with it (the person's identity)
        pipe.hset(K.UNINDEXING, conversation_id, json.dumps(indexes))
    pipe.delete(K.conversation(conversation_id), K.erasing(conversation_id))  # one slot: both or neither
    for index in indexes:  # after the record: an erasure reads the person's index alone, so one cut before it must
        pipe.zrem(index, conversation_id)  # still list it there
    pipe.zrem(K.INDEX + "created", conversation_id)
    if indexes:
        pipe.hdel(K.UNINDEXING, conversation_id)


async def seen_keys(client: Redis) -> list[str]:
    """Processed inbound ids' digests (``ids.seen_digest``): the fields of the processed marks' day hashes (a claim
    in progress is not one)."""
    found: set[str] = set()
    async for name in client.scan_iter(match=_glob(K.SEEN) + "*", count=SCAN_COUNT):
        day, _, shard = _text(name).removeprefix(K.SEEN).partition(":")
        if day.isdigit() and shard.isdigit():  # not a claim, nor the claims naming a conversation
            found.update(_text(k) for k in await client.hkeys(name))
    return sorted(found)
