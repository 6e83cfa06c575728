"""Releases lost to a Redis restart are made again (gateway/store/redis_release.py): the conversation's lock and the
message's claim are let go as soon as Redis is back, instead of lapsing (the lock's 6 s lease; the claim's lease,
then 8 days of a key naming the message), and the message is then processed once.

The test runs its own redis-server with an append-only file (tests/test_redis_restart.py's ``own_redis``): the
lock survives the restart as it would in production, so only a release made again removes it before its lease
ends. Whether it was released or lapsed is read from Redis's ``expired_keys`` counter, not from a clock."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from redis.asyncio import Redis

from gateway.dispatcher import Dispatcher
from gateway.errors import StoreError
from gateway.flowset import FlowSet
from gateway.ids import inbound_key
from gateway.messages import ChannelName, Inbound
from gateway.store import Author, Store, open_store
from gateway.store import redis_keys as K
from gateway.testing import store_keys
from tests.test_redis_restart import OwnRedis, own_redis

__all__ = ["own_redis"]  # the fixture, imported to be used here
pytestmark = pytest.mark.redis
ROOT = Path(__file__).resolve().parents[2]


async def _until(condition: Callable[[], Awaitable[bool]], what: str, seconds: float = 20) -> None:
    try:
        async with asyncio.timeout(seconds):
            while not await condition():
                await asyncio.sleep(0.02)
    except TimeoutError:
        pytest.fail(f"not within {seconds} s: {what}")


async def test_a_release_lost_to_a_redis_restart_is_made_again_and_the_message_processed_once(
    own_redis: OwnRedis,
) -> None:
    store: Store = await open_store(own_redis.url, keys=store_keys(own_redis.url))
    raw = Redis.from_url(own_redis.url, decode_responses=True)
    flows = FlowSet(ROOT / "flows.yaml")
    flows.reload()
    dispatcher = Dispatcher(store, flows)
    try:
        assert await dispatcher.handle_inbound(Inbound(ChannelName.WHATSAPP, "+33600000001", "wamid-1", "bonjour"))
        conversation = await store.find_active_conversation(ChannelName.WHATSAPP, "+33600000001")
        assert conversation is not None
        second = Inbound(ChannelName.WHATSAPP, "+33600000001", "wamid-2", "j'ai besoin de parler")
        claim = K.seen_claim(inbound_key(second))

        with pytest.raises(StoreError):  # the release of this lock is lost: Redis stops while it is held
            async with store.lock(conversation.id):
                processing = asyncio.create_task(dispatcher.handle_inbound(second))
                await _until(lambda: _names(raw, claim, conversation.id), "the message waits for the lock")
                await asyncio.to_thread(own_redis.stop)
        with pytest.raises(StoreError):  # its processing failed (its claim's release lost too)
            await processing
        await asyncio.to_thread(own_redis.start)
        await raw.aclose()
        raw = Redis.from_url(own_redis.url, decode_responses=True)  # the connection before died with the server

        async def released() -> bool:
            return not await raw.exists(K.lock(conversation.id), claim)

        await _until(released, "the lock and the claim released")
        assert (await raw.info("stats"))["expired_keys"] == 0  # released, not lapsed

        assert await dispatcher.handle_inbound(second)  # the provider's redelivery: processed
        assert not await dispatcher.handle_inbound(second)  # and once only
        entries = await store.transcript(conversation.id)
        assert [e.text for e in entries if e.author is Author.USER] == ["bonjour", "j'ai besoin de parler"]
        assert len({e.id for e in entries}) == len(entries)
    finally:
        await raw.aclose()
        await store.close()


async def _names(raw: Redis, claim: str, conversation_id: str) -> bool:
    """The message's claim names the conversation: it rode with the lock's first attempt, which found it held."""
    value = await raw.get(claim)
    return value is not None and f":{conversation_id}:" in value
