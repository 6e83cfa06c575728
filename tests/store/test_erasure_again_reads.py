"""``gateway erase --again KEY`` (as an operator runs it after restoring a backup) finds the person's conversations
from the store's index of senders: with ``GATEWAY_DATA_KEY`` set, the store indexes each conversation by the keyed
hash of its channel identity (``DataKeys.identity``), the very hash KEY is (``KeyedHash.sender``, the same
``GATEWAY_SECRET_KEY``).

Until 2026-12-07 it read and decrypted every conversation record the store kept to find the one whose identity
hashed to KEY: O(history) for each erasure asked again. Counted by the store itself, with 1,500 others kept: on
Redis ``keyspace_hits`` (keys found by a read), on SQLite the steps of its virtual machine (a progress handler on
the store's own connection, which only a store the test holds gives: the command itself is run on Redis).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

import pytest
import redis

from gateway.conversation import Conversation, Status
from gateway.erasure import EPOCH, FAR
from gateway.keyed import KeyedHash
from gateway.messages import ChannelName
from gateway.settings import Settings
from gateway.store import Store, open_store
from gateway.testing import SECRET_KEY, store_keys
from tests.conftest import Clock
from tests.store.conftest import emptied
from tests.store.test_erasure_again_by_key import cli_env
from tests.store.test_erasure_identity_listed import eraser_on
from tests.test_cli import run

T0 = datetime(2026, 3, 10, 13, 0, tzinfo=UTC)
PHONE = "whatsapp:+33612345678"
OTHERS = 1500


def ended(n: int, channel: ChannelName, sender: str) -> Conversation:
    at = T0 - timedelta(days=n % 60)
    return Conversation(id=f"c{n:05d}", channel=channel, sender=sender, pseudonym=f"Lynx-{n}", created_at=at,
                        updated_at=at, status=Status.CLOSED, closed_at=at)  # fmt: skip


async def among_others(store: Store) -> str:
    """The person's conversation among ``OTHERS`` of other people; KEY, the keyed hash of their identity."""
    others = [ended(n, ChannelName.TELEGRAM, f"9{n:07d}") for n in range(10, 10 + OTHERS)]
    for start in range(0, len(others), 100):
        await asyncio.gather(*(store.save_conversation(c) for c in others[start : start + 100]))
    await store.save_conversation(ended(1, ChannelName.WHATSAPP, PHONE))
    await store.conversations_of(ChannelName.WHATSAPP, PHONE, EPOCH, FAR, 1)  # any index made once before counting
    return KeyedHash(SECRET_KEY).sender("whatsapp", PHONE)


async def reads(store: Store, store_url: str, action: Callable[[], Awaitable[None]]) -> int:
    """What ``action`` read: Redis's ``keyspace_hits``; SQLite's steps (per 100 instructions) on ``store``."""
    if store_url.startswith("sqlite"):
        on, steps = getattr(store, "_run"), [0]  # noqa: B009  # the store's thread, the only one on its connection

        def counted() -> int:
            steps[0] += 1
            return 0

        await on(lambda conn: conn.set_progress_handler(counted, 100))
        try:
            await action()
        finally:
            await on(lambda conn: conn.set_progress_handler(None, 100))
        return steps[0]
    with redis.Redis.from_url(store_url) as client:
        client.config_resetstat()
        await action()
        return int(client.info("stats")["keyspace_hits"])


async def gone_with_the_others_kept(store: Store) -> None:
    assert await store.conversations_of(ChannelName.WHATSAPP, PHONE, EPOCH, FAR, 10) == []
    assert len(await store.list_conversations(EPOCH, FAR)) == OTHERS


async def test_erasing_again_reads_the_persons_records_not_every_record(
    store: Store, store_url: str, clock: Clock, settings: Settings
) -> None:
    key = await among_others(store)
    eraser = eraser_on(store, clock, settings, store_url)  # the keys as the CLI's with GATEWAY_DATA_KEY

    async def again() -> None:
        erased = await eraser.erase_again(key, "cli", "gateway erase --again")
        assert erased.conversations == 1

    read = await reads(store, store_url, again)
    await gone_with_the_others_kept(store)
    assert read < 100, read  # with every record read: SQLite 228 (22,800 steps), Redis 1,522; now 0 and 22


@pytest.fixture(params=["redis", "redis-cluster"])
async def redis_store(request: pytest.FixtureRequest) -> tuple[Store, str]:
    url = emptied(request.getfixturevalue("redis_url" if request.param == "redis" else "redis_cluster_url"))
    return await open_store(url, keys=store_keys(url)), url


@pytest.mark.redis
async def test_the_command_reads_the_persons_records_not_every_record(
    redis_store: tuple[Store, str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    store, store_url = redis_store
    try:
        key = await among_others(store)
        cli_env(monkeypatch, store_url)

        async def again() -> None:
            code, out, err = await asyncio.to_thread(run, capsys, "erase", "--again", key)
            assert code == 0, err
            assert "erased 1 conversation(s)" in out, out

        read = await reads(store, store_url, again)
        await gone_with_the_others_kept(store)
        assert read < 100, read  # before: every record read (1,528); now 22
    finally:
        await store.close()
