"""A commit refused by the conversation lock's fence leaves the indexes of other slots as the next holder left them:
the status sets and the flagged index list more, never less. Until 2026-12-07 the sets a record's save leaves (its
statuses other than its own, the flagged index when it has no flag: ``save_conversation``'s after part, slot
``{index}``, which cannot read the lock) were written in the same pipeline as the fenced record, so a commit held on
its way past the lease, its record refused, still took the conversation out of the status and the flag the next
holder had saved meanwhile: a conversation with a listener, flagged at risk, missing from ``with_listener`` and from
the console's flagged list until its next change. Now they leave once the record was answered written, as an
ending's writes of other slots do.

A real store behind ``tests/delaying_proxy.py`` (the path towards Redis stalled from the moment the commit's
pipeline leaves, ``stall_at``) past the lock's lease and the socket timeout; a second store reaching Redis directly
takes the lock once the lease lapses and saves the conversation with a listener and a flag."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest
import redis

from gateway.conversation import Conversation, RiskFlag, Status
from gateway.messages import ChannelName
from gateway.store import Store, open_store
from gateway.store import redis_keys as K
from gateway.testing import store_keys
from tests.delaying_proxy import DelayingProxy
from tests.store.conftest import redis_url  # noqa: F401  (the session's servers)
from tests.store.fencing_setup import SOCKET_TIMEOUT, commit_held_past_the_lease, proxy  # noqa: F401  (a fixture)

pytestmark = pytest.mark.redis


async def test_a_refused_commit_leaves_no_index_the_next_holder_joined(
    proxy: DelayingProxy,  # noqa: F811
    redis_url: str,  # noqa: F811
) -> None:
    late = await open_store(proxy.url, keys=store_keys(proxy.url), socket_timeout=SOCKET_TIMEOUT)
    other = await open_store(redis_url, keys=store_keys(redis_url), socket_timeout=SOCKET_TIMEOUT)
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        conversation, _ = await other.active_conversation(ChannelName.MESSENGER, "sender-1", datetime.now(UTC))
        cid = conversation.id
        await other.save_conversation(replace(conversation, engine={"step": "start"}))
        flag = RiskFlag("suicide", 0.9, "keywords", ("mourir",))

        async def hand_off(store: Store, found: Conversation) -> None:  # its status changed: the bot's set left
            assert found.status is Status.BOT
            await store.save_conversation(replace(found, status=Status.QUEUED, engine={"step": "a"}))

        async def take_and_flag(store: Store, found: Conversation) -> None:
            moved = replace(found, status=Status.WITH_LISTENER, flag=flag, flagged_at=datetime.now(UTC))
            await store.save_conversation(replace(moved, engine={"step": "b"}))

        await commit_held_past_the_lease(proxy, late, other, cid, hand_off, take_and_flag)
        assert proxy.unheard >= 1, "the late record was not refused: nothing was tested"
        record = await other.get_conversation(cid)
        assert record is not None and record.status is Status.WITH_LISTENER
        assert cid in await other.conversation_ids_by_status(Status.WITH_LISTENER), (
            "the refused commit took the conversation out of the next holder's status"
        )
        assert client.zscore(K.FLAGGED, cid) is not None, "the refused commit took the flagged conversation out"
        assert [c.id for c in await other.flagged_conversations(10)] == [cid]
    finally:
        client.close()
        await late.close()
        await other.close()


async def test_a_refused_commit_of_an_open_record_leaves_the_exact_set_as_the_next_holder_left_it(
    proxy: DelayingProxy,  # noqa: F811
    redis_url: str,  # noqa: F811
) -> None:
    """A web chat's record saved open (queued) by a commit held past the lease and refused by the lock's fence, the
    next holder having ended the conversation meanwhile: the network's exact set of open chats (``K.client_open``)
    does not list it, as ``client_open_add`` joins an id only while the record is the one that save wrote. The other
    set (``K.client``, joined before the record) lists it: the two disagree and the gate reads the records, a young
    person of that network never refused for a chat that ended. Until 2026-12-07 (night) nothing failed with that check
    removed (``tests/test_gate_cap.py`` writes no refused record): the ended id listed in both, the network counted
    full until the mark of the last reading (``K.client_read``, 30 s) lapsed."""
    late = await open_store(proxy.url, keys=store_keys(proxy.url), socket_timeout=SOCKET_TIMEOUT)
    other = await open_store(redis_url, keys=store_keys(redis_url), socket_timeout=SOCKET_TIMEOUT)
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    network = "network-of-the-school"
    try:
        conversation, _ = await other.active_conversation(ChannelName.WEBCHAT, "token-1", datetime.now(UTC))
        cid = conversation.id
        await other.save_conversation(replace(conversation, client=network, engine={"step": "start"}))

        async def hand_off(store: Store, found: Conversation) -> None:  # queued: open, the exact set joined
            assert found.status is Status.BOT and found.client == network
            await store.save_conversation(replace(found, status=Status.QUEUED, engine={"step": "a"}))

        async def end(store: Store, found: Conversation) -> None:  # the exact set left, then the other set
            await store.save_conversation(replace(found, status=Status.CLOSED, closed_at=datetime.now(UTC)))

        await commit_held_past_the_lease(proxy, late, other, cid, hand_off, end)
        assert proxy.unheard >= 1, "the late record was not refused: nothing was tested"
        record = await other.get_conversation(cid)
        assert record is not None and record.status is Status.CLOSED
        assert cid not in client.smembers(K.client_open(network)), "the refused record's id joined the exact set"
        client.set(K.client_read(network), 1, px=30_000)  # the records read a moment ago: the sets trusted if agreeing
        assert not await other.client_at_cap(network, 1), "an ended chat counted against its network's cap"
    finally:
        client.close()
        await late.close()
        await other.close()
