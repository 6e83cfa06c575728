"""Resealing the Redis store's records with the current data key (``gateway data-key rotate``).

The records are found by ``SCAN`` (never ``KEYS``: instances keep working meanwhile) and each one is replaced
only if it is still the value that was read (a compare-and-set script): a record that an instance rewrote in the
meantime is left as that instance sealed it, and counted (``RESEAL_CHANGED``): an instance still sealing with the
old key may have written it, so the command passes again. Until 2026-12-07 it was skipped silently, said to be
"sealed by whoever wrote it", true only once every instance sealed with the new key. Conversations written
before keyed lookups also get their active key (``hg:active:<unkeyed digest>``) moved to the keyed one.
"""

from __future__ import annotations

import hashlib
from typing import Any

from redis.asyncio import Redis

from gateway.conversation import Conversation
from gateway.crypto import DataKeys
from gateway.store import RESEAL_CHANGED, reseal_listing
from gateway.store.codec import decode_conversation, loads_sealed
from gateway.store.redis_keys import PREFIX, QUEUE, transcript_keys
from gateway.store.redis_lua import SCRIPTS

SCAN_COUNT = 500

# KEYS: the record. ARGV: the value read, the resealed value.
_RESEAL_VALUE = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[2], 'KEEPTTL')
return 1
"""

# KEYS: the record (a hash). ARGV: field, the value read, the resealed value.
_RESEAL_FIELD = """
if redis.call('HGET', KEYS[1], ARGV[1]) ~= ARGV[2] then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
return 1
"""


# Records stored as one value: key pattern, kind.
_VALUES = (("c:{*", "conversation"), ("notice:*", "notice"), ("referral:*", "referral"), ("evidence:*", "evidence"),
           ("upload:*", "upload"))  # fmt: skip
# Records in a hash field: key pattern, field, kind, counted as. The inbound messages the inbox set aside
# (``{inbox}:aside:<id>``) since 2026-12-07; before, left under the old key, never to open once it was gone.
_FIELDS = (("o:{*", "payload", "outbox", "outbox"), ("{inbox}:item:*", "payload", "inbox", "inbox"),
           ("{inbox}:aside:*", "payload", "inbox", "inbox set aside"))  # fmt: skip


async def reseal(client: Redis, keys: DataKeys) -> dict[str, int]:
    """Reseal every record not sealed with the current key; how many were, by kind."""
    sealer = _Resealer(client, keys)
    counts = {kind: 0 for _, kind in _VALUES} | {"entry": 0} | {counted: 0 for *_, counted in _FIELDS}
    for pattern, kind in _VALUES:
        counts[kind] += await sealer.values(pattern, kind)
    counts["entry"] += await sealer.entries()
    counts["text"] = await sealer.hash(PREFIX + "texts", "text")
    for pattern, field, kind, counted in _FIELDS:
        counts[counted] += await sealer.fields(pattern, field, kind)
    counts["erasure listing"] = await sealer.listings()
    counts[RESEAL_CHANGED] = sealer.changed
    return counts


class _Resealer:
    def __init__(self, client: Redis, keys: DataKeys) -> None:
        self._redis, self._keys = client, keys
        self._value = client.register_script(_RESEAL_VALUE)
        self._field = client.register_script(_RESEAL_FIELD)
        self._entry_data = client.register_script(SCRIPTS["set_entry_data"])
        self._delete_if = client.register_script(SCRIPTS["delete_if"])
        self.changed = 0  # compare-and-sets lost: records rewritten between their read and their reseal

    def _replaced(self, done: Any) -> int:
        """A compare-and-set's answer, 1 or 0 (lost: counted in ``changed``)."""
        self.changed += 0 if done else 1
        return 1 if done else 0

    async def values(self, pattern: str, kind: str) -> int:
        count = 0
        async for key in self._redis.scan_iter(match=PREFIX + pattern, count=SCAN_COUNT):
            old = await self._redis.get(key)
            if old is None:
                continue
            new = self._keys.reseal(kind, old)
            if new is not None:
                count += self._replaced(await self._value(keys=[key], args=[old, new]))
            if kind == "conversation":
                await self._move_active(loads_sealed(self._keys, kind, new or old, decode_conversation))
        return count

    async def entries(self) -> int:
        """Transcript entries, each an element of its conversation's list: ``<id>\\n<head>\\n<sealed data>``; only
        the data is sealed, and only the data is compared and replaced (``set_entry_data``: the entry found by its
        id, its head as it now is). Since 2026-12-07; until then the whole entry was compared, and one whose head
        changed meanwhile (a receipt: delivered, read) was skipped, its data left under the old key while the
        command said every record was resealed."""
        count = 0
        async for key in self._redis.scan_iter(match=PREFIX + "t:{*", count=SCAN_COUNT):
            conversation_id = str(key).removeprefix(PREFIX + "t:{").removesuffix("}")
            for old in await self._redis.lrange(key, 0, -1):
                entry_id, _, rest = str(old).partition("\n")
                _, _, data = rest.partition("\n")
                new = self._keys.reseal("entry", data)
                if new is not None:
                    keys = transcript_keys(conversation_id)
                    count += self._replaced(await self._entry_data(keys=keys, args=[entry_id, data, new]))
        return count

    async def fields(self, pattern: str, field: str, kind: str) -> int:
        count = 0
        async for key in self._redis.scan_iter(match=PREFIX + pattern, count=SCAN_COUNT):
            old: Any = await self._redis.hget(key, field)
            if old is None:
                continue
            new = self._keys.reseal(kind, old)
            if new is not None:
                count += self._replaced(await self._field(keys=[key], args=[field, old, new]))
        return count

    async def hash(self, key: str, kind: str) -> int:
        """Every field of one hash (the shared texts of flows.yaml)."""
        count = 0
        found: dict[Any, Any] = await self._redis.hgetall(key)
        for field, old in found.items():
            new = self._keys.reseal(kind, old)
            if new is not None:
                count += self._replaced(await self._field(keys=[key], args=[field, old, new]))
        return count

    async def listings(self) -> int:
        """The erasures listed as begun (``{queue}:erasing``) that keep a person's identity sealed
        (``store.reseal_listing``): since 2026-12-07; before, left under the old key, never to open once it went.
        One changed meanwhile (merged, unlisted) is left as it now is."""
        count = 0
        found: dict[Any, Any] = await self._redis.hgetall(QUEUE + "erasing")
        for field, old in found.items():
            new = reseal_listing(self._keys, old.decode() if isinstance(old, bytes) else old)
            if new is not None:
                count += self._replaced(await self._field(keys=[QUEUE + "erasing"], args=[field, old, new]))
        return count

    async def _move_active(self, conversation: Conversation) -> None:
        if not conversation.active:
            return
        legacy = hashlib.sha256(f"{conversation.channel}\n{conversation.sender}".encode()).hexdigest()
        keyed = self._keys.identity(conversation.channel, conversation.sender)
        old, new = PREFIX + "active:" + legacy, PREFIX + "active:" + keyed  # two slots: the new one first
        if await self._redis.get(old) == conversation.id:
            await self._redis.set(new, conversation.id, nx=True)
            await self._delete_if(keys=[old], args=[conversation.id])
