"""Key rotation on Redis while the gateway serves (``gateway data-key rotate`` with ``GATEWAY_DATA_KEY``, as
docs/deployment.md says to run it): a receipt recorded on a transcript entry between the rotation's read of the
transcript and its reseal of that entry (a reply delivered or read meanwhile) rewrites the entry's head, never its
data, which the rotation must reseal all the same.

Until 2026-12-07 the rotation compared the whole entry, head included: one changed by a receipt was skipped ("left
for the next run"), uncounted, while the command printed "every record is sealed with data key K2"; once K1 was
destroyed, as it then says to, the entry could never be opened and its conversation's transcript failed
(``DataKeyError``). Here the receipt comes from the real store at that very moment: the rotation's Redis client is
the real one, wrapped to let it in right after the transcript is read (``Interleaving``); the rotation's code is
unchanged.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import redis.asyncio as redis

from gateway.crypto import new_key
from gateway.store import Author, Delivery, TranscriptEntry, open_store
from gateway.store.redis_reseal import reseal
from gateway.testing import DATA_KEY
from tests.store.conftest import emptied
from tests.store.test_reseal import PHONE, T0, TEXT, WA, env_keys


class Interleaving:
    """The real Redis client; ``meanwhile`` runs once, right after the first ``LRANGE`` (a transcript read)."""

    def __init__(self, client: redis.Redis, meanwhile: Callable[[], Awaitable[Any]]) -> None:
        self._client, self._meanwhile = client, meanwhile
        self.ran = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    async def lrange(self, *args: Any) -> Any:
        found = await self._client.lrange(*args)
        if not self.ran:
            self.ran = True
            await self._meanwhile()
        return found


async def test_an_entry_given_a_receipt_during_the_rotation_is_resealed_all_the_same(redis_url: str) -> None:
    url = emptied(redis_url)
    before = await open_store(url, keys=env_keys(url, DATA_KEY))
    try:
        conversation, _ = await before.active_conversation(WA, PHONE, T0)
        await before.append_transcript(TranscriptEntry("e1", conversation.id, T0, Author.USER, TEXT))
        await before.append_transcript(TranscriptEntry("e2", conversation.id, T0, Author.BOT, "Je t'écoute."))
    finally:
        await before.close()

    new = new_key()
    serving = await open_store(url, keys=env_keys(url, new, DATA_KEY))  # an instance, already on K2 (step 3)
    client = redis.Redis.from_url(url, decode_responses=True, encoding_errors="surrogateescape")  # as the store's
    try:
        wrapped = Interleaving(client, lambda: serving.set_delivery(conversation.id, "e2", Delivery.DELIVERED))
        counts = await reseal(wrapped, env_keys(url, new, DATA_KEY))  # type: ignore[arg-type]
    finally:
        await client.aclose()
        await serving.close()
    assert wrapped.ran
    assert counts["entry"] == 2, counts  # before: 1, the one given a receipt left under K1

    after = await open_store(url, keys=env_keys(url, new))  # K1 destroyed
    try:
        entries = await after.transcript(conversation.id)  # before: DataKeyError, sealed with data key <K1>
        assert [(e.id, e.text, e.delivery) for e in entries] == [
            ("e1", TEXT, Delivery.PENDING),
            ("e2", "Je t'écoute.", Delivery.DELIVERED),
        ]
    finally:
        await after.close()
