"""Releases lost to a Redis restart are made again (gateway/store/redis_release.py): the conversation's lock and the
message's claim are let go as soon as Redis is back, instead of lapsing (the lock's 6 s lease; the claim's lease,
then 8 days of a key naming the message), and the message is then processed once.

The test runs its own redis-server with an append-only file (tests/test_redis_restart.py's ``own_redis``): the
lock survives the restart as it would in production, so only a release made again removes it before its lease
ends. Whether it was released or lapsed is read from Redis's ``expired_keys`` counter, not from a clock.

The retries are visible: each outcome counted (``gateway_store_release_retries{outcome}``), a WARNING line when one
is given up, and ``/readyz`` shows them (``store_releases``) while one is pending longer than the lock's lease or
after releases were given up."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError

from gateway.app import METRICS, STORE
from gateway.dispatcher import Dispatcher
from gateway.errors import StoreError
from gateway.flowset import FlowSet
from gateway.ids import inbound_key
from gateway.messages import ChannelName, Inbound
from gateway.settings import Settings
from gateway.store import Author, Store, open_store
from gateway.store import redis_keys as K
from gateway.store.redis_release import PENDING_SHOWN_SECONDS, Releases
from gateway.testing import store_keys
from tests.conftest import AppFactory
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


async def test_a_release_made_again_is_counted_and_shown_by_readyz_while_it_waits_for_redis(
    make_client: AppFactory, settings: Settings, own_redis: OwnRedis, caplog: pytest.LogCaptureFixture
) -> None:
    client = await make_client(settings.replace(store=own_redis.url))
    store, metrics = client.app[STORE], client.app[METRICS]

    def counted(outcome: str) -> float:
        return metrics.registry.get_sample_value("gateway_store_release_retries_total", {"outcome": outcome}) or 0.0

    async def readyz() -> dict[str, Any]:
        body: dict[str, Any] = await (await client.get("/readyz")).json()
        return body

    assert "store_releases" not in await readyz()
    assert [counted(o) for o in ("retried", "released", "gave_up")] == [0.0, 0.0, 0.0]
    # the lock's release is lost: Redis stops while it is held
    with caplog.at_level(logging.WARNING, logger="gateway.store.redis_release"), pytest.raises(StoreError):
        async with store.lock("c-released-again"):
            await asyncio.to_thread(own_redis.stop)
    assert counted("retried") == 1
    # told to the outage log (once an outage, with the others), not a line of its own each release
    assert not [r for r in caplog.records if r.name == "gateway.store.redis_release"]
    failed = metrics.registry.get_sample_value(
        "gateway_store_failures_total", {"part": "redis_release", "error": "ConnectionError"}
    )
    assert failed == 1

    async def shown() -> bool:  # pending longer than the lock's lease: named by /readyz
        found = (await readyz()).get("store_releases")
        return found is not None and found["pending"] == 1 and found["oldest_pending_seconds"] >= PENDING_SHOWN_SECONDS

    await _until(shown, "/readyz names the release made again", seconds=PENDING_SHOWN_SECONDS + 30)
    assert counted("released") == 0
    await asyncio.to_thread(own_redis.start)

    async def released() -> bool:
        return counted("released") == 1

    await _until(released, "the release made again once Redis answers")
    body = await readyz()
    assert "store_releases" not in body, body
    text = await (await client.get("/metrics")).text()
    assert 'gateway_store_release_retries_total{outcome="retried"} 1.0' in text
    assert 'gateway_store_release_retries_total{outcome="released"} 1.0' in text
    assert 'gateway_store_release_retries_total{outcome="gave_up"} 0.0' in text


async def test_a_release_given_up_is_logged_counted_and_shown(
    own_redis: OwnRedis, caplog: pytest.LogCaptureFixture
) -> None:
    """Redis does not come back within ``retry_seconds`` (a short one here; 30 s in the store): the release is
    left to its lease, said once at WARNING (class only), counted, and shown for ``GAVE_UP_SHOWN_SECONDS``."""
    raw = Redis.from_url(own_redis.url)
    releases, outcomes = Releases(retry_seconds=0.5), list[str]()
    releases.on_outcome = outcomes.append
    try:
        await asyncio.to_thread(own_redis.stop)
        with caplog.at_level(logging.WARNING, logger="gateway.store.redis_release"):
            releases.again("lock", RedisConnectionError("gone"), raw.ping)

            async def gave_up() -> bool:  # said, and its retry no longer pending (told before the task ends)
                return "gave_up" in outcomes and releases.problem()["pending"] == 0

            await _until(gave_up, "the release given up")
        assert outcomes == ["retried", "gave_up"]
        assert releases.problem() == {"pending": 0, "oldest_pending_seconds": 0.0, "given_up_recently": 1}
        lines = [r.getMessage() for r in caplog.records if "given up" in r.getMessage()]
        assert lines == ["redis: a lock's release given up after 0.5 s (ConnectionError): left to its lease"], lines
    finally:
        await releases.close()
        await raw.aclose()


async def test_releases_given_up_are_not_kept_past_their_showing_without_a_readiness_probe() -> None:
    """No ``/readyz`` reading ``problem`` (no probe configured): the releases given up are still forgotten once no
    longer shown; until 2026-12-07 the deque kept one entry per release given up for the process's life."""
    now = [0.0]
    releases = Releases(monotonic=lambda: now[0])
    await releases.close()  # a release failing as the store closes is given up at once

    async def release() -> None:
        raise RedisConnectionError("down")

    for _ in range(50):
        releases.again("lock", RedisConnectionError("down"), release)
        now[0] += 301.0  # past GAVE_UP_SHOWN_SECONDS each time
    assert len(releases._gave_up) == 1
    assert releases.problem() is None  # the last one no longer shown either, 301 s on
