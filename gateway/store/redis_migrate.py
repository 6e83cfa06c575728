"""``gateway store migrate``: rewrite the keys of an earlier layout under their names and shapes now.

Run it once on the standalone Redis, with every instance of the old version stopped, before starting the new
version (then, if wanted, move the data to a Cluster: every key is slot-safe from then on). Keys are found by
``SCAN``; running it twice changes nothing (a name of the layout now matches no rule). Two layouts before this one:

* before Cluster hash tags (``hg:conv:<id>``, ``hg:outbox:heads``…): each key renamed (``RENAME`` keeps its TTL);
  the per-conversation timer indexes (``hg:timers:<id>``, their members are in ``hg:timers``) and the locks of
  stopped instances are deleted;
* a key per transcript line and per provider id (``hg:transcript:{<id>}`` listing ids, ``hg:e:{<entry id>}`` or
  ``hg:entry:{<entry id>}`` each, ``hg:provider:<provider id>``, ``hg:outbox:item:{<item id>}``): a conversation's
  entries go into its transcript list itself (``hg:t:{<id>}``, its TTL kept), in one transaction per conversation;
  each provider id into the index of the day it was written (``hg:p:<day>:<shard>``); each outbox item into its
  conversation's slot (``hg:o:{<conversation id>}<item id>``); each de-duplication mark ``hg:seen:<inbound key>``
  into the hash of the day it expires on (``hg:{seen}:<day>:<shard>``), a claim in progress renamed
  (``hg:{seen}:c:<inbound key>``); the record, the processed marks and the lock get their short names (``hg:c:``,
  ``hg:d:``, a lock is deleted). Entry keys no transcript lists are deleted.

The outbox's pending set (``hg:{outbox}:pending``, from 2026-11-30): each pending item its conversation's line
lists, added once.

And the processed marks written by the layout before this one, whose fields were the whole inbound keys (a
provider's id is 60–90 characters: a field over 64 bytes turns the hash into Redis's large encoding): each field
becomes the key's digest (``ids.seen_digest``, 16 characters) in the same day's hash of the digest's shard; each
member of a conversation's processed marks (``hg:d:{<id>}``, a sorted set) its digest, same score.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import cast

from redis.asyncio import Redis
from redis.exceptions import ResponseError

from gateway.ids import seen_digest
from gateway.store import redis_keys as K
from gateway.store import redis_providers
from gateway.store.redis_keys import PREFIX

SCAN_COUNT = 1000
DAY = 86_400
Count = Callable[..., None]  # count(kind, n=1)

# (old name, new name or None to delete, kind), tried in order: the first that matches applies.
_RULES: tuple[tuple[re.Pattern[str], str | None, str], ...] = tuple(
    (re.compile("^" + re.escape(PREFIX) + old + "$"), None if new is None else PREFIX + new, kind)
    for old, new, kind in (
        (r"conv:([^{].*)", r"c:{\1}", "conversation"),
        (r"conv:(\{.+)", r"c:\1", "conversation"),
        (r"done:(\{.+)", r"d:\1", "processed marks"),
        (r"transcript:([^{].*)", r"transcript:{\1}", "transcript"),
        (r"e:([^{].*)", r"e:{\1}", "entry"),
        (r"entry:([^{].*)", r"entry:{\1}", "entry"),
        (r"outbox:item:([^{].*)", r"outbox:item:{\1}", "outbox"),
        (r"outbox:(conv:.+|heads|seq)", r"{outbox}:\1", "outbox"),
        (r"inbox:(.+)", r"{inbox}:\1", "inbox"),
        (r"queue:(.+)", r"{queue}:\1", "queue"),
        (r"(takes|held):(.+)", r"{queue}:\1:\2", "queue"),
        (r"status:(.+)", r"{index}:status:\1", "index"),
        (r"created", r"{index}:created", "index"),
        (r"timers:(.+)", None, "timers"),
        (r"lock:(.+)", None, "lock"),
    )
)


def new_name(old: str) -> tuple[str | None, str] | None:
    """The new name of a key of the layout before (None: deleted) and its kind; None when it keeps its name."""
    for pattern, new, kind in _RULES:
        if pattern.match(old):
            return (None if new is None else pattern.sub(new, old)), kind
    return None


async def migrate(client: Redis) -> dict[str, int]:
    """Rename, reshape (or delete) every key of the layouts before; how many, by kind."""
    counts: dict[str, int] = {}

    def count(kind: str, n: int = 1) -> None:
        if n:
            counts[kind] = counts.get(kind, 0) + n

    await _rename(client, count)
    await _transcripts(client, count)
    await _outbox_items(client, count)
    await _provider_ids(client, count, await _entry_conversations(client))
    await _seen(client, count)
    await _seen_fields(client, count)
    await _done_members(client, count)
    await _outbox_pending(client, count)
    for pattern in ("e:{*", "entry:{*"):  # entries no transcript listed: nothing could read them
        async for name in client.scan_iter(match=PREFIX + pattern, count=SCAN_COUNT):
            count("entry (listed nowhere)", await client.delete(name))
    for made in (K.UPLOADS_MADE, K.CLAIMS_MADE, K.ITEMS_MADE):  # what it renamed is listed at the next erasure
        await client.delete(made)
    return counts


async def _rename(client: Redis, count: Count) -> None:
    async for old in client.scan_iter(match=PREFIX + "*", count=SCAN_COUNT):
        found = new_name(old)
        if found is None:
            continue
        new, kind = found
        if new is None:
            await client.delete(old)
        else:
            try:
                await client.rename(old, new)
            except ResponseError:  # SCAN may return a key twice: renamed already
                continue
        count(kind)


async def _transcripts(client: Redis, count: Count) -> None:
    """Each ``hg:transcript:{<id>}`` (entry ids) becomes ``hg:t:{<id>}`` holding the entries, in one transaction."""
    async for name in client.scan_iter(match=PREFIX + "transcript:{*", count=SCAN_COUNT):
        conversation_id = name.removeprefix(PREFIX + "transcript:{").removesuffix("}")
        ids = _texts(await client.lrange(name, 0, -1))
        elements = [element for entry_id in ids if (element := await _entry(client, entry_id)) is not None]
        ttl = await client.pttl(name)
        new = K.transcript(conversation_id)
        async with client.pipeline(transaction=True) as pipe:  # standalone Redis: one transaction
            pipe.delete(new)
            if elements:
                pipe.rpush(new, *elements)
                if ttl > 0:
                    pipe.pexpire(new, ttl)
            for entry_id in ids:
                pipe.delete(PREFIX + "e:{" + entry_id + "}", PREFIX + "entry:{" + entry_id + "}")
            pipe.delete(name)
            await pipe.execute()
        count("transcript")
        count("entry", len(elements))


async def _entry(client: Redis, entry_id: str) -> str | None:
    """An entry as an element of its transcript: ``<id>\\n<delivery code><provider id>\\n<sealed data>``."""
    compact = _optional(await client.get(PREFIX + "e:{" + entry_id + "}"))  # "<code><provider id>\n<data>"
    if compact is not None:
        return f"{entry_id}\n{compact}"
    raw = await client.hgetall(PREFIX + "entry:{" + entry_id + "}")  # fields data, delivery, pmid
    found = {_text(k): _text(v) for k, v in raw.items()}
    if not found or "data" not in found:
        return None
    return f"{entry_id}\n{found.get('delivery', 'pending')[:1]}{found.get('pmid', '')}\n{found['data']}"


async def _outbox_items(client: Redis, count: Count) -> None:
    async for name in client.scan_iter(match=PREFIX + "outbox:item:{*", count=SCAN_COUNT):
        item_id = name.removeprefix(PREFIX + "outbox:item:{").removesuffix("}")
        conversation_id = _optional(await client.hget(name, "conv"))
        if conversation_id is None:
            await client.delete(name)
        else:
            await client.rename(name, K.outbox_item(conversation_id, item_id))
        count("outbox")


async def _outbox_pending(client: Redis, count: Count) -> None:
    """Every item its conversation's line lists, pending, in ``hg:{outbox}:pending`` (the set the alert reads,
    kept by the lines' steps since 2026-11-30), scored by its creation; one listed already is left as it is."""
    async for name in client.scan_iter(match=K.outbox_line("*"), count=SCAN_COUNT):
        conversation_id = name.removeprefix(K.outbox_line(""))
        listed = cast(list[str], await client.zrange(name, 0, -1))
        for item_id in listed:
            status, created = await client.hmget(K.outbox_item(conversation_id, item_id), ["status", "created_us"])
            if status == "pending" and created is not None:
                added = await client.zadd(K.OUTBOX_PENDING, {K.outbox_pending(conversation_id, item_id): int(created)},
                                          nx=True)  # fmt: skip
                count("outbox pending", added)


async def _entry_conversations(client: Redis) -> dict[str, str]:
    """Entry id → conversation id, from every transcript (only entries with a provider id are looked up)."""
    found: dict[str, str] = {}
    async for name in client.scan_iter(match=K.transcript("*"), count=SCAN_COUNT):
        conversation_id = name.removeprefix(K.transcript("")[:-1]).removesuffix("}")
        for element in _texts(await client.lrange(name, 0, -1)):
            entry_id, _, rest = element.partition("\n")
            if rest[1:2] != "\n":  # it has a provider id
                found[entry_id] = conversation_id
    return found


async def _provider_ids(client: Redis, count: Count, conversations: dict[str, str]) -> None:
    """Each ``hg:provider:<id>`` (an entry id, kept 30 days) into the index of the day it was written."""
    now = int(datetime.now(UTC).timestamp())
    async for name in client.scan_iter(match=PREFIX + "provider:*", count=SCAN_COUNT):
        entry_id, ttl = _optional(await client.get(name)), await client.ttl(name)
        conversation_id = None if entry_id is None else conversations.get(entry_id)
        async with client.pipeline(transaction=True) as pipe:
            if conversation_id is not None:  # else its entry is gone: it names nothing
                day = (now + max(ttl, 0)) // DAY - redis_providers.PROVIDER_DAYS
                redis_providers.add(pipe, name.removeprefix(PREFIX + "provider:"), conversation_id, day)
            pipe.delete(name)
            await pipe.execute()
        count("provider id")


def _text(value: bytes | str) -> str:
    """redis-py types replies as bytes or str; the migration's client decodes them (``surrogateescape``)."""
    return value.decode("utf-8", "surrogateescape") if isinstance(value, bytes) else value


def _optional(value: bytes | str | None) -> str | None:
    return None if value is None else _text(value)


def _texts(values: list[bytes | str]) -> list[str]:
    return [_text(value) for value in values]


async def _seen(client: Redis, count: Count) -> None:
    """Each ``hg:seen:<inbound key>``: a processed mark ("1") into the hash of the day it expires on; a claim
    ("c:…") renamed (``hg:{seen}:c:<inbound key>``, same TTL)."""
    now = int(datetime.now(UTC).timestamp())
    async for name in client.scan_iter(match=PREFIX + "seen:*", count=SCAN_COUNT):
        key, value, ttl = name.removeprefix(PREFIX + "seen:"), _optional(await client.get(name)), await client.ttl(name)
        async with client.pipeline(transaction=True) as pipe:
            if value is not None and value.startswith("c:"):
                pipe.rename(name, K.seen_claim(key))
            elif value is not None:
                day, digest = (now + max(ttl, 0)) // DAY, seen_digest(key)
                marks = K.seen_marks(day, K.seen_shard(digest))
                pipe.hset(marks, digest, "1")
                pipe.expireat(marks, (day + 1) * DAY)
                pipe.delete(name)
            await pipe.execute()
        count("de-duplication mark")


async def _seen_fields(client: Redis, count: Count) -> None:
    """Each processed mark whose field is the whole inbound key (``in:…``, the layout before): its digest
    (``ids.seen_digest``) into the hash of the same day, in the digest's shard. One slot ({seen}): one transaction
    per day's hash."""
    async for name in client.scan_iter(match=_SEEN_DAY_GLOB, count=SCAN_COUNT):
        day = _seen_day(name)
        if day is None:
            continue
        keys = [k for k in _texts(await client.hkeys(name)) if k.startswith("in:")]
        if not keys:
            continue
        async with client.pipeline(transaction=True) as pipe:
            for key in keys:
                digest = seen_digest(key)
                marks = K.seen_marks(day, K.seen_shard(digest))
                pipe.hset(marks, digest, "1")
                pipe.expireat(marks, (day + 1) * DAY)
            pipe.hdel(name, *keys)
            await pipe.execute()
        count("processed mark (whole key)", len(keys))


async def _done_members(client: Redis, count: Count) -> None:
    """Each conversation's processed marks (``hg:d:{<id>}``) holding whole inbound keys: their digests instead,
    same scores, in one transaction per conversation (its TTL kept: the key is changed, not replaced)."""
    async for name in client.scan_iter(match=K.done("*"), count=SCAN_COUNT):
        found = cast(list[tuple[bytes | str, float]], await client.zrange(name, 0, -1, withscores=True))
        keys = [(m, score) for m, score in ((_text(m), score) for m, score in found) if m.startswith("in:")]
        if not keys:
            continue
        async with client.pipeline(transaction=True) as pipe:
            pipe.zadd(name, {seen_digest(m): score for m, score in keys})
            pipe.zrem(name, *(m for m, _ in keys))
            await pipe.execute()
        count("processed mark (whole key)", len(keys))


_SEEN_DAY_GLOB = K.SEEN + "*"  # braces are literal in a SCAN pattern


def _seen_day(name: str) -> int | None:
    """The day of a processed marks' hash ``hg:{seen}:<day>:<shard>``; None for a claim."""
    day, _, shard = name.removeprefix(K.SEEN).partition(":")
    return int(day) if day.isdigit() and shard.isdigit() else None
