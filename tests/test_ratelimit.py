"""Rate limits (``gateway/ratelimit.py``) and their settings: counted per keyed subject, in memory or in Redis."""

from __future__ import annotations

import asyncio
import time

import pytest
import redis
from limits.aio.storage import MemoryStorage

from gateway.errors import ConfigError
from gateway.keyed import KeyedHash
from gateway.metrics import Metrics
from gateway.ratelimit import Charge, Limit, RateLimits, open_limit_storage
from gateway.settings import Settings
from tests.store.conftest import flush_cluster, redis_cluster3_url, redis_url  # noqa: F401  (the session's servers)

SETTINGS = Settings(secret_key="k" * 32, limit_messages_per_conversation="3/minute")


async def test_memory_counts_per_subject_and_counts_refusals() -> None:
    metrics = Metrics()
    limits = RateLimits.from_settings(SETTINGS, open_limit_storage("sqlite:///x.sqlite3").storage, metrics)
    assert [await limits.allow(Limit.MESSAGES, "a") for _ in range(5)] == [True, True, True, False, False]
    assert await limits.allow(Limit.MESSAGES, "b")  # another subject has its own count
    assert metrics.rate_limited.labels("messages_per_conversation")._value.get() == 2
    assert await limits.first_refusal(Limit.MESSAGES, "a") and not await limits.first_refusal(Limit.MESSAGES, "a")


@pytest.mark.redis
async def test_with_redis_every_instance_shares_the_counts_and_keys_name_nobody(redis_url: str) -> None:  # noqa: F811
    client = redis.Redis.from_url(redis_url)
    client.flushdb()
    storages = [open_limit_storage(redis_url) for _ in range(2)]
    one, two = (RateLimits.from_settings(SETTINGS, opened.storage, Metrics()) for opened in storages)
    address = "203.0.113.7"
    assert [await one.allow(Limit.MESSAGES, address), await two.allow(Limit.MESSAGES, address)] == [True, True]
    assert await one.allow(Limit.MESSAGES, address)
    assert not await two.allow(Limit.MESSAGES, address)  # the fourth, on the other instance
    keys = [key.decode() for key in client.keys("*")]
    assert keys and all(key.startswith("hg:limits") and address not in key for key in keys)
    client.close()
    for opened in storages:
        await opened.close()


@pytest.mark.redis
async def test_on_a_cluster_every_instance_shares_the_counts(redis_cluster3_url: str) -> None:  # noqa: F811
    flush_cluster(redis_cluster3_url)
    storages = [open_limit_storage(redis_cluster3_url, cluster=True) for _ in range(2)]
    one, two = (RateLimits.from_settings(SETTINGS, opened.storage, Metrics()) for opened in storages)
    hits = [await limits.allow(Limit.MESSAGES, subject) for subject in ("a", "b", "c") for limits in (one, two)]
    assert hits == [True] * 6
    assert await one.allow(Limit.MESSAGES, "a")  # the third of "a"
    assert not await two.allow(Limit.MESSAGES, "a")  # the fourth, counted across both instances
    with redis.RedisCluster.from_url(redis_cluster3_url) as client:
        assert len(list(client.scan_iter(match="hg:limits*"))) == 3  # one counter a subject, on their nodes
    for opened in storages:
        await opened.close()


def test_the_keyed_hash_depends_on_the_secret_and_the_purpose() -> None:
    assert KeyedHash("a")("client", "x") == KeyedHash("a")("client", "x")
    assert KeyedHash("a")("client", "x") != KeyedHash("b")("client", "x")
    assert KeyedHash("a")("client", "x") != KeyedHash("a")("sender", "x")


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("GATEWAY_LIMIT_MESSAGES_PER_CONVERSATION", "often", "GATEWAY_LIMIT_MESSAGES_PER_CONVERSATION must be a rate"),
        ("GATEWAY_MAX_WAITING_PER_CLIENT", "0", "GATEWAY_MAX_WAITING_PER_CLIENT must be at least 1"),
        ("MESSENGER_MAX_EVENT_AGE", "0", "MESSENGER_MAX_EVENT_AGE must be at least 1"),
        ("GATEWAY_HTTP_HEADER_TIMEOUT", "0", "GATEWAY_HTTP_*_TIMEOUTs positive"),
        ("GATEWAY_SHARED_NETWORKS", "192.0.2.0/24,10.0.0.0/33", "GATEWAY_SHARED_NETWORKS: '10.0.0.0/33' is not a"),
        ("GATEWAY_SHARED_NETWORKS", "the school", "GATEWAY_SHARED_NETWORKS: 'the school' is not a network"),
        ("GATEWAY_CLIENT_IPV6_PREFIX", "129", "GATEWAY_CLIENT_IPV6_PREFIX between 32 and 128"),
        ("GATEWAY_MAX_WAITING_PER_SHARED_NETWORK", "0", "GATEWAY_MAX_WAITING_PER_SHARED_NETWORK must be at least 1"),
        ("GATEWAY_LIMIT_RISKY_CHATS_PER_NETWORK", "often", "GATEWAY_LIMIT_RISKY_CHATS_PER_NETWORK must be a rate"),
    ],
)
def test_bad_limit_settings_name_the_variable(variable: str, value: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("*", r"\*")):
        Settings.from_env({variable: value}, env_file=None)


def test_limit_settings_are_read_from_the_environment() -> None:
    settings = Settings.from_env({"GATEWAY_LIMIT_CHATS_PER_ADDRESS": "5 per 10 minutes"}, env_file=None)
    assert settings.limit_chats_per_address == "5 per 10 minutes"


async def _hit_together(one: RateLimits, two: RateLimits) -> list[bool]:
    """One message's two attempts at once (two sockets of one page, on two instances), then another message."""
    both = await asyncio.gather(*(limits.allow(Limit.RISKY_CHATS, "net", "k1") for limits in (one, two)))
    return [*both, await one.allow(Limit.RISKY_CHATS, "net", "k2")]


ONCE_SETTINGS = SETTINGS.replace(limit_risky_chats_per_network="2/hour")


async def test_one_message_hit_twice_at_once_in_memory_counts_once() -> None:
    limits = RateLimits.from_settings(ONCE_SETTINGS, open_limit_storage("sqlite:///x.sqlite3").storage, Metrics())
    assert await _hit_together(limits, limits) == [True, True, True]
    assert await limits.once_marked(Limit.RISKY_CHATS, "net", "k1") and not await limits.allow(
        Limit.RISKY_CHATS, "net", "k3"
    )  # the bound's two places: k1 once, k2


@pytest.mark.redis
async def test_one_message_hit_twice_at_once_on_redis_counts_once(redis_url: str) -> None:  # noqa: F811
    """Until 2026-12-07 ``RateLimits._hit_once`` read the message's mark, then hit the counter, then wrote the mark:
    two attempts of one message at once both found no mark and both counted (the other message, the second of a
    ``2/hour`` bound, refused: ``[True, True, False]``). Now one script on Redis."""
    storages = [open_limit_storage(redis_url) for _ in range(2)]
    one, two = (RateLimits.from_settings(ONCE_SETTINGS, opened.storage, Metrics()) for opened in storages)
    with redis.Redis.from_url(redis_url) as client:
        for _ in range(20):  # a race: tried a few times, each on fresh counters
            client.flushdb()
            assert await _hit_together(one, two) == [True, True, True]
    for opened in storages:
        await opened.close()


@pytest.mark.redis
async def test_one_message_hit_twice_at_once_on_a_cluster_counts_once(redis_cluster3_url: str) -> None:  # noqa: F811
    storages = [open_limit_storage(redis_cluster3_url, cluster=True) for _ in range(2)]
    one, two = (RateLimits.from_settings(ONCE_SETTINGS, opened.storage, Metrics()) for opened in storages)
    for _ in range(20):
        flush_cluster(redis_cluster3_url)
        assert await _hit_together(one, two) == [True, True, True]
    assert await one.once_marked(Limit.RISKY_CHATS, "net", "k1") and await one.within(Limit.RISKY_CHATS, "net", "k1")
    for opened in storages:
        await opened.close()


BYTES = Limit.IMAGE_BYTES_PER_CONVERSATION
BUDGET_SETTINGS = SETTINGS.replace(webchat_image_bytes_per_conversation=1000)


async def _upload_together(one: RateLimits, two: RateLimits) -> list[bool]:
    """500 bytes of the conversation's 1000 kept, then two images of 600 at once (two instances), each checked and
    charged as ``Uploads.upload`` does: whether each is kept. One after the other, the second finds none left."""

    async def kept(limits: RateLimits, once: str) -> bool:
        return (
            await limits.within(BYTES, "c", once) and await limits.charge(BYTES, "c", 600, once) is not Charge.REFUSED
        )

    await one.charge(BYTES, "c", 500, "u0")
    return sorted(await asyncio.gather(kept(one, "u1"), kept(two, "u2")))


async def test_two_images_at_once_in_memory_do_not_both_pass_the_budget() -> None:
    limits = RateLimits.from_settings(BUDGET_SETTINGS, open_limit_storage("sqlite:///x.sqlite3").storage, Metrics())
    assert await _upload_together(limits, limits) == [False, True]


@pytest.mark.redis
async def test_two_images_at_once_on_redis_do_not_both_pass_the_budget(redis_url: str) -> None:  # noqa: F811
    """Until 2026-12-07 ``RateLimits.charge`` read, then added (and ``within`` read before the cleaning): two images
    at once both found budget left and both were kept (``[True, True]``). Now the charge decides, one script."""
    storages = [open_limit_storage(redis_url) for _ in range(2)]
    one, two = (RateLimits.from_settings(BUDGET_SETTINGS, opened.storage, Metrics()) for opened in storages)
    with redis.Redis.from_url(redis_url) as client:
        for _ in range(20):  # a race: tried a few times, each on fresh counters
            client.flushdb()
            assert await _upload_together(one, two) == [False, True]
    for opened in storages:
        await opened.close()


@pytest.mark.redis
async def test_two_images_at_once_on_a_cluster_do_not_both_pass_the_budget(redis_cluster3_url: str) -> None:  # noqa: F811
    storages = [open_limit_storage(redis_cluster3_url, cluster=True) for _ in range(2)]
    one, two = (RateLimits.from_settings(BUDGET_SETTINGS, opened.storage, Metrics()) for opened in storages)
    for _ in range(20):
        flush_cluster(redis_cluster3_url)
        assert await _upload_together(one, two) == [False, True]
    assert await one.within(BYTES, "c", "u0")  # a try sent again is never refused for its own first charge
    assert await one.charge(BYTES, "c", 600, "u0") is Charge.NOT_CHARGED
    for opened in storages:
        await opened.close()


@pytest.mark.redis
async def test_a_refund_after_the_window_ended_leaves_no_counter_for_good(redis_url: str) -> None:  # noqa: F811
    """An image charged in the last second of its budget's window, and taken back (another budget refused it) once
    that window ended: its mark outlived the counter (the counter's ``TTL`` rounded, at least a second). Until
    2026-12-07 (late) ``RateLimits.refund`` decremented the counter all the same: a new key at -600 with no expiry,
    the budget's window never ending again (the network's images refused for good once it filled). Now it takes
    back only from a counter that is still there."""
    opened = open_limit_storage(redis_url)
    limits = RateLimits.from_settings(BUDGET_SETTINGS, opened.storage, Metrics())
    with redis.Redis.from_url(redis_url) as client:
        client.flushdb()
        assert await limits.charge(BYTES, "c", 100, "u0") is Charge.CHARGED
        [counter] = [key for key in client.keys("*") if b":once:" not in key]
        client.pexpire(counter, 300)  # the window's last moments
        assert await limits.charge(BYTES, "c", 600, "u1") is Charge.CHARGED
        while client.exists(counter):  # the window ends (its mark may outlive it by up to a second)
            await asyncio.sleep(0.02)
        await limits.refund(BYTES, "c", 600, "u1")
        # before: b"-600", its TTL -1 (never expires)
        assert client.get(counter) is None or (int(client.get(counter)) >= 0 and client.ttl(counter) > 0)
    await opened.close()


@pytest.mark.redis
async def test_a_mark_never_outlives_its_counter(redis_url: str) -> None:  # noqa: F811
    """A message counted (``_HIT_ONCE``) and an image charged (``_CHARGE``) in the last 300 ms of their window:
    the mark ends with its counter. Until 2026-12-07 (late) the mark got the counter's ``TTL`` in whole seconds, at
    least 1: a mark's PTTL of 999 ms for a counter's 299 (the mark said "counted" into the next window, whose counter
    never held it: a retry let on uncounted, a refund finding its mark). Now ``PTTL``/``PX``."""
    opened = open_limit_storage(redis_url)
    limits = RateLimits.from_settings(BUDGET_SETTINGS.replace(limit_risky_chats_per_network="5/hour"), opened.storage,
                                      Metrics())  # fmt: skip
    with redis.Redis.from_url(redis_url) as client:
        client.flushdb()
        assert await limits.allow(Limit.RISKY_CHATS, "net", "k0")
        assert await limits.charge(BYTES, "c", 100, "u0") is Charge.CHARGED
        counters = [key for key in client.keys("*") if b":once:" not in key]
        assert len(counters) == 2
        for counter in counters:
            client.pexpire(counter, 300)  # the window's last moments
        assert await limits.allow(Limit.RISKY_CHATS, "net", "k1")
        assert await limits.charge(BYTES, "c", 100, "u1") is Charge.CHARGED
        for counter in counters:
            marks = [key for key in client.keys("*") if b"{" + counter + b"}:once:" in key]
            assert len(marks) == 2  # the first hit's (an hour's), the last moments' one
            counter_left, mark_left = client.pttl(counter), min(client.pttl(mark) for mark in marks)
            assert 0 < mark_left <= counter_left <= 300, (counter, counter_left, mark_left)
    await opened.close()


async def test_in_memory_a_mark_never_outlives_its_counter() -> None:
    """As on Redis: until 2026-12-07 (late) the mark's expiry was its counter's rounded up to whole seconds."""
    storage = open_limit_storage("sqlite:///x.sqlite3").storage
    assert isinstance(storage, MemoryStorage)
    limits = RateLimits.from_settings(BUDGET_SETTINGS.replace(limit_risky_chats_per_network="5/hour"), storage,
                                      Metrics())  # fmt: skip
    assert await limits.allow(Limit.RISKY_CHATS, "net", "k0")
    assert await limits.charge(BYTES, "c", 100, "u0") is Charge.CHARGED
    counters = [key for key in storage.expirations if ":once:" not in key]
    assert len(counters) == 2
    for counter in counters:
        storage.expirations[counter] = time.time() + 0.3  # the window's last moments
    assert await limits.allow(Limit.RISKY_CHATS, "net", "k1")
    assert await limits.charge(BYTES, "c", 100, "u1") is Charge.CHARGED
    for counter in counters:
        ends = min(when for key, when in storage.expirations.items() if counter + "}:once:" in key)
        assert ends <= storage.expirations[counter], ends - storage.expirations[counter]
