"""Retention and erasure on Redis: every key a conversation's id leads to, found and deleted in one transaction.

What a conversation leaves (see the layout in :mod:`gateway.store.redis`): its record and its place in the
status sets and the creation index, its active key, its transcript list and entries (``hg:e:<id>``, older
``hg:entry:<id>`` hashes) with the provider-id index of each, its outbox items (pending ones listed under
``hg:outbox:conv:<conv>``, resolved ones only as ``hg:outbox:item:<id>`` with their ``conv`` field), its timers,
its queue entry (with the waiting member, the holder's set and the take), its web chat uploads
(``hg:upload:<conv>/<hash>``) and its notices' evidence files.

The reads come first, then one MULTI/EXEC deletes; a message processed for the conversation in between would
leave a key behind, which is why the callers hold the conversation's lock.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis

from gateway.conversation import Status
from gateway.store import TimerKind

PREFIX = "hg:"
SCAN_COUNT = 1000


@dataclass(frozen=True, slots=True)
class Record:
    """Where an erased conversation's record is indexed besides its id: the active key and the takes of its queue."""

    active_key: str
    queue: str | None


def _key(*parts: str) -> str:
    return PREFIX + ":".join(parts)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _provider_id(value: str) -> str:
    """The provider id heading a compact entry: ``"<delivery code><provider id>\\n<JSON>"``."""
    return value[1 : value.find("\n")] if "\n" in value else ""


async def forget(client: Redis, conversation_id: str, *, erase: bool, record: Record | None = None) -> int:
    """Delete the conversation's content; with ``erase``, its record and every index naming its id too (purge:
    the caller saves the stripped record afterwards; ``record`` says where the record is indexed). The number
    of transcript entries deleted."""
    entry_ids = [_text(i) for i in await client.lrange(_key("transcript", conversation_id), 0, -1)]
    values = await client.mget([_key("e", i) for i in entry_ids]) if entry_ids else []
    old_ids = [i for i, v in zip(entry_ids, values, strict=True) if v is None]
    providers = [p for v in values if v is not None and (p := _provider_id(_text(v)))]
    for entry_id in old_ids:
        if pmid := await client.hget(_key("entry", entry_id), "pmid"):
            providers.append(_text(pmid))
    found: list[Any] = await client.zrange(_key("outbox", "conv", conversation_id), 0, -1)
    pending = [_text(i) for i in found]
    resolved = await _resolved_items(client, conversation_id)
    timers = [*{_text(m) for m in await client.smembers(_key("timers", conversation_id))},  # the layout before
              *(json.dumps([conversation_id, kind.value]) for kind in TimerKind)]  # fmt: skip
    raw_entry = await client.hget(_key("queue", "entries"), conversation_id)
    queue_entry = json.loads(raw_entry) if raw_entry else None
    listed: list[Any] = await client.zrange(_key("notices", conversation_id), 0, -1) if erase else []
    notices = [_text(i) for i in listed]
    uploads = [_text(k) async for k in client.scan_iter(match=_key("upload", conversation_id + "/*"), count=SCAN_COUNT)]
    doomed = [
        *(_key("e", i) for i in entry_ids), *(_key("entry", i) for i in old_ids),
        *(_key("provider", p) for p in providers), _key("transcript", conversation_id),
        *(_key("outbox", "item", i) for i in {*pending, *resolved, *entry_ids}),
        _key("outbox", "conv", conversation_id), _key("timers", conversation_id), *uploads,
    ]  # fmt: skip
    async with client.pipeline(transaction=True) as pipe:
        pipe.delete(*doomed)
        pipe.zrem(_key("outbox", "heads"), conversation_id)
        if timers:
            pipe.zrem(_key("timers"), *timers)
        if queue_entry is not None:
            _unqueue(pipe, conversation_id, queue_entry, erase=erase)
        if erase:
            _unindex(pipe, conversation_id, record, notices)
        await pipe.execute()
    return len(entry_ids)


async def _resolved_items(client: Redis, conversation_id: str) -> list[str]:
    """Outbox items of the conversation kept after sending or failing (they expire; an erasure finds them)."""
    found = []
    async for key in client.scan_iter(match=_key("outbox", "item", "*"), count=SCAN_COUNT):
        if await client.hget(key, "conv") == conversation_id:
            found.append(_text(key).removeprefix(_key("outbox", "item", "")))
    return found


def _unqueue(pipe: Any, conversation_id: str, entry: dict[str, Any], *, erase: bool) -> None:
    pipe.zrem(_key("queue", "waiting", entry["queue"]), entry["member"])
    if entry.get("taken_by"):
        pipe.srem(_key("held", entry["taken_by"]), conversation_id)
    if erase:
        pipe.zrem(_key("takes", entry["queue"]), conversation_id)
    pipe.hdel(_key("queue", "entries"), conversation_id)


def _unindex(pipe: Any, conversation_id: str, record: Record | None, notices: list[str]) -> None:
    pipe.delete(_key("conv", conversation_id))
    for status in Status:
        pipe.srem(_key("status", str(status)), conversation_id)
    pipe.zrem(_key("created"), conversation_id)
    if record is not None:
        if record.queue:
            pipe.zrem(_key("takes", record.queue), conversation_id)
        pipe.eval("if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end", 1,
                  record.active_key, conversation_id)  # fmt: skip
    if notices:
        pipe.delete(*(_key("evidence", n) for n in notices))


_EXPIRE_TRANSCRIPT = """
for _, id in ipairs(redis.call('LRANGE', KEYS[1], 0, -1)) do
  redis.call('EXPIRE', ARGV[1] .. 'e:' .. id, ARGV[2])
end
redis.call('EXPIRE', KEYS[1], ARGV[2])
return 1
"""


def expire_transcript(pipe: Any, conversation_id: str, ttl_seconds: int) -> None:
    """Queue the TTLs of a conversation's transcript list and entries on a pipeline (a held write)."""
    pipe.eval(_EXPIRE_TRANSCRIPT, 1, _key("transcript", conversation_id), PREFIX, ttl_seconds)


async def seen_keys(client: Redis) -> list[str]:
    """Processed inbound ids (value "1"; a claim in progress is "c:<owner>")."""
    keys = [_text(k) async for k in client.scan_iter(match=_key("seen", "*"), count=SCAN_COUNT)]
    values = await client.mget(keys) if keys else []
    return [k.removeprefix(_key("seen", "")) for k, v in zip(keys, values, strict=True) if v == "1"]
