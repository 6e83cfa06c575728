"""A rolling deploy: ``hg:{queue}:moving`` in the shape an instance of before 2026-12-03 (branch rel24) left it.

That key listed the transfers under way as a Redis set of conversation ids; since rel24 it is a hash, id → mover.
Before this, an instance of this version meeting the set got ``WRONGTYPE`` from the alert check's ``HGETALL`` every
10 s (the whole check given up and the store reported unreachable: no hand-back, no completion) and from each
transfer's ``HSET`` (the transfer failing after its queue step, unlisted). Now the set is made a hash in one script
(each id's mover unknown), the check completes what it lists, and a transfer lists itself beside it.

A real Redis, the old shape written as the old code wrote it (``SADD``), real cuts (``tests/cutting_proxy.py``).
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import redis.asyncio

from gateway.conversation import Status
from gateway.store import Store
from gateway.store import redis_keys as K
from tests.conftest import Clock
from tests.console.test_handback_crash import cut_while, redis_store
from tests.console.test_take_crash import next_check
from tests.console.test_transfer_crash import on, one_waiting
from tests.store.conftest import redis_url

__all__ = ["redis_store", "redis_url"]  # fixtures used below

MOVING = K.QUEUE + "moving"


async def as_the_old_code_left_it(url: str, *ids: str) -> None:
    """``hg:{queue}:moving`` a set of ``ids`` (``SADD``, as ``begin_move`` wrote it before rel24)."""
    client = redis.asyncio.Redis.from_url(url, decode_responses=True)
    try:
        await client.delete(MOVING)
        await client.sadd(MOVING, *ids)
        assert await client.type(MOVING) == "set"
    finally:
        await client.aclose()


async def key_type(url: str) -> str:
    client = redis.asyncio.Redis.from_url(url, decode_responses=True)
    try:
        return str(await client.type(MOVING))
    finally:
        await client.aclose()


@pytest.mark.redis
async def test_the_check_completes_a_transfer_an_older_instance_listed_in_a_set(
    redis_store: Store, redis_url: str, clock: Clock, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A waiting young person's transfer to ``lawyers`` cut before its record, listed in the old set (with an id
    whose record is gone, as an erasure leaves one): the list reads as those ids with no mover, the key a hash
    from then on; the next check completes the transfer in ``lawyers``, audited without a mover, nothing left
    listed, one log line naming the key's shape and no id. Before: ``WRONGTYPE`` at every check."""
    flows, _, before = await one_waiting(redis_store, clock, tmp_path)
    conversation_id = before.conversation_id
    clock.advance(minutes=1)
    await cut_while(redis_url, clock, conversation_id, "put_conversation",
                    lambda first: first.transfer(conversation_id, "sam", "lawyers", supervisor=True),
                    make=lambda store, clock: on(store, clock, flows))  # fmt: skip
    await as_the_old_code_left_it(redis_url, conversation_id, "erased-meanwhile")
    with caplog.at_level(logging.INFO):
        assert await redis_store.moves_begun() == {conversation_id: None, "erased-meanwhile": None}
    assert await key_type(redis_url) == "hash"
    said = [r.getMessage() for r in caplog.records if "moving" in r.getMessage()]
    assert len(said) == 1 and conversation_id not in said[0] and "erased-meanwhile" not in said[0], said

    await as_the_old_code_left_it(redis_url, conversation_id, "erased-meanwhile")  # the check meets it itself
    clock.advance(seconds=10)  # the lost release made again by token (or lapsed in 6 s)
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        await next_check(redis_store, clock, flows=flows)
    assert not [r for r in caplog.records if "unreachable" in r.getMessage() or "WRONGTYPE" in r.getMessage()]
    conversation = await redis_store.get_conversation(conversation_id)
    assert conversation is not None
    assert (conversation.status, conversation.queue) == (Status.QUEUED, "lawyers")
    lines = [e for e in await redis_store.audit_log() if e.action == "transfer_completed"]
    assert [e.subject for e in lines] == [conversation_id] and " by " not in lines[0].detail, lines
    assert await redis_store.moves_begun() == {}
    assert await key_type(redis_url) in ("hash", "none")  # emptied: Redis drops an empty hash


@pytest.mark.redis
async def test_a_transfer_made_beside_the_old_set_lists_itself_and_keeps_the_old_ids(
    redis_store: Store, redis_url: str, clock: Clock, tmp_path: Path
) -> None:
    """The old set lists a transfer an older instance has under way; a transfer made now (not cut) succeeds, moves
    the young person, and leaves the old id listed with its mover unknown, in the hash. Before: the transfer's
    ``HSET`` met ``WRONGTYPE`` in its queue step's round trip: the transfer failed, its entry already moved."""
    _, actions, before = await one_waiting(redis_store, clock, tmp_path)
    await as_the_old_code_left_it(redis_url, "older-instances")
    clock.advance(minutes=1)
    moved = await actions.transfer(before.conversation_id, "anne", "lawyers")
    assert (moved.status, moved.queue) == (Status.QUEUED, "lawyers")
    assert await key_type(redis_url) == "hash"
    assert await redis_store.moves_begun() == {"older-instances": None}
    await as_the_old_code_left_it(redis_url, "older-instances")
    await redis_store.end_move("older-instances")  # its end, met by this version
    assert await redis_store.moves_begun() == {}
