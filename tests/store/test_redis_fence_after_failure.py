"""A send that failed under a conversation's lock leaves nothing of its own to the next send under that lock.

``RedisStore._send_part`` notes, per pipeline, whether a fenced script was queued (``_Fence.used``) and where each
fenced processed mark sits in it (``_Fence.marks``), to take back a mark written beside a refused record. Until
2026-12-07 both were taken and cleared only after ``pipe.execute()`` answered: a pipeline that failed on its way (a
connection reset, a stall past the socket timeout) left its marks' places behind, and the next send under the same
lock that was refused read its answers at those places: an IndexError (not a StoreError: LockLost never raised), or
another command's answer taken for a mark written and a mark it never wrote "taken back".

A real store behind ``tests/cutting_proxy.py`` (an ending's second pipeline cut before the address is freed, its
processed mark queued after it), then, under the same lock, the lock's key lost and a write refused.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest
import redis

from gateway.conversation import Status
from gateway.errors import LockLost, StoreError
from gateway.messages import ChannelName
from gateway.store import Author, DoneMark, TranscriptEntry, open_store
from gateway.store import redis_keys as K
from gateway.testing import store_keys
from tests.cutting_proxy import cutting_proxy
from tests.losing_proxy import script_text
from tests.store.conftest import emptied, redis_url  # noqa: F401  (the session's redis-server)

pytestmark = pytest.mark.redis


async def test_a_refused_send_after_a_failed_one_under_the_same_lock_raises_lock_lost(
    redis_url: str,  # noqa: F811
) -> None:
    url = emptied(redis_url)
    client = redis.Redis.from_url(url, decode_responses=True)
    async with cutting_proxy(url) as proxy:
        store = await open_store(proxy.url, keys=store_keys(proxy.url))
        try:
            conversation, _ = await store.active_conversation(ChannelName.MESSENGER, "sender-1", datetime.now(UTC))
            cid = conversation.id
            async with store.lock(cid):
                found = await store.get_conversation(cid)
                assert found is not None
                proxy.cut_before(script_text("delete_if"))  # the ending's second pipeline, its mark queued after
                with pytest.raises(StoreError):
                    await store.save_conversation(replace(found, status=Status.CLOSED), done=DoneMark("in:a", 3600))
                assert proxy.cut == 1
                client.delete(K.lock(cid))  # the failover: the lock gone, its lease not over
                entry = TranscriptEntry("note-1", cid, datetime.now(UTC), Author.SYSTEM, "note")
                with pytest.raises(LockLost):  # before: IndexError (the failed pipeline's mark's place)
                    await store.append_transcript(entry)
            assert await store.transcript(cid) == []
        finally:
            await store.close()
            client.close()
