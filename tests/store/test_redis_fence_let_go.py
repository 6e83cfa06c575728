"""A message's commit refused by the lock's count of fenced writes, the lock still its holder's (a failover's new
primary got the lock's ``SET`` and its renewals but not the writes sent before the record: ``RedisStore._Fence``),
takes its processed mark back BEFORE it lets the lock go. Until 2026-12-07 (the same day ``_let_refused_go`` came)
the lock was released first: for the round trip of ``seen_unmark`` the lock was free while the mark, landed beside
the refused record, still said processed; a redelivery arriving then took the lock, read the mark, was answered DONE,
and the message, recorded nowhere, was lost.

A real store behind ``tests/cutting_proxy.py``: the take-back's ``EVALSHA`` held at the wire (``hold_before``, no
sleep) while the provider's redelivery comes on a second store reaching Redis directly. No part of the store is
patched: the count is put behind on the server (``tests/console/test_transfer_refused.py``'s ``CountBehind``)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest
import redis

from gateway.errors import LockLost, LockTimeout
from gateway.messages import ChannelName
from gateway.store import Claim, ClaimState, DoneMark, open_store
from gateway.store import redis_keys as K
from gateway.testing import store_keys
from tests.cutting_proxy import cutting_proxy
from tests.losing_proxy import script_sha
from tests.store.conftest import emptied, redis_url  # noqa: F401  (the session's server)
from tests.store.fencing_setup import entry

pytestmark = pytest.mark.redis


async def test_a_message_refused_with_its_lock_still_its_own_is_never_answered_done_meanwhile(
    redis_url: str,  # noqa: F811
) -> None:
    url = emptied(redis_url)
    client = redis.Redis.from_url(url, decode_responses=True)
    other = await open_store(url, keys=store_keys(url))  # the instance the redelivery reaches
    async with cutting_proxy(url) as proxy:
        store = await open_store(proxy.url, keys=store_keys(proxy.url))
        try:
            conversation, _ = await store.active_conversation(ChannelName.MESSENGER, "sender-1", datetime.now(UTC))
            cid = conversation.id
            redelivered: list[object] = []

            async def redelivery() -> None:  # while the refused commit's mark is being taken back
                redelivered.append(client.get(K.lock(cid)) is not None)
                try:
                    async with other.locked_batch(cid, timeout=0.2, claim=Claim("in:a", "redelivery", 30)) as state:
                        redelivered.append(state)
                except LockTimeout:
                    redelivered.append("waits for the lock")

            proxy.hold_before(script_sha("seen_unmark"), meanwhile=redelivery)
            with pytest.raises(LockLost):
                async with store.locked_batch(cid, claim=Claim("in:a", "owner-a", 30)) as state:
                    assert state is ClaimState.CLAIMED
                    await store.append_transcript(entry(cid, "in-a"))
                    found = await store.get_conversation(cid)  # the entry sent: one fenced write counted
                    assert found is not None
                    client.delete(K.lock_writes(cid))  # the failover: the count behind, the lock the holder's
                    client.pexpire(K.lock(cid), 11_000)
                    await store.save_conversation(replace(found, engine={"step": "a"}), done=DoneMark("in:a", 3600))
            assert proxy.held == 1 and not proxy.failures, (proxy.held, proxy.failures)
            # before: [False, ClaimState.DONE], the lock free while the mark said processed: the message lost
            assert redelivered == [True, "waits for the lock"], redelivered
            assert client.get(K.lock(cid)) is None  # let go once the mark was taken back
            async with other.locked_batch(cid, timeout=1, claim=Claim("in:a", "redelivery", 30)) as state:
                assert state is ClaimState.CLAIMED  # the next delivery processes it, once
        finally:
            client.close()
            await store.close()
            await other.close()
