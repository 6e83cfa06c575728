"""The conversation lock's fence at Redis (``redis_lua._FENCE``), run alone (``fenced_check``): which writes pass,
which are refused, and the count of fenced writes living as long as the lock. Since 2026-12-07 (later that day) the
head compares the count whole and writes it with its TTL kept once it exists (``KEEPTTL``): these are the cases it
must answer as before (the count absent or another token's, the holder's behind or ahead, the lock another's), and
the count's TTL still the lock's after a renewal (``lock_renew``) and the writes after it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis

from gateway.store import redis_keys as K
from gateway.store.redis_lua import FENCED, SCRIPTS
from tests.store.conftest import emptied

pytestmark = pytest.mark.redis

CID = "c-fence-head"
LOCK, WRITES = K.lock(CID), K.lock_writes(CID)


@pytest.fixture
def client(redis_url: str) -> Iterator[redis.Redis]:
    with redis.Redis.from_url(emptied(redis_url), decode_responses=True) as client:
        yield client


def check(client: redis.Redis, made: int, token: str = "mine") -> object:
    """``fenced_check`` as ``_Fence.fenced`` sends it: its head last (the count's key, the lock's; made, token)."""
    return client.eval(SCRIPTS["fenced_check"], 2, WRITES, LOCK, made, token)


def test_the_holders_writes_pass_in_order_and_the_others_are_refused(client: redis.Redis) -> None:
    client.set(LOCK, "mine", px=60_000)
    assert check(client, 1) == FENCED  # a write after one that never reached this server
    assert client.get(WRITES) is None
    assert check(client, 0) == 1  # the first
    assert client.get(WRITES) == "mine:1"
    assert check(client, 1) == 1
    assert check(client, 1) == FENCED  # one sent twice: behind
    assert check(client, 3) == FENCED  # ahead: the one before it is missing
    assert check(client, 0) == FENCED  # a first one again
    assert check(client, 2) == 1
    assert client.get(WRITES) == "mine:3"
    assert check(client, 3, token="theirs") == FENCED  # the lock is not that token's
    assert client.get(WRITES) == "mine:3"


def test_a_count_left_by_another_token_counts_for_none(client: redis.Redis) -> None:
    client.set(LOCK, "mine", px=60_000)
    client.set(WRITES, "min:4", px=60_000)  # another token's (a prefix of this one's, less its colon)
    assert check(client, 4) == FENCED
    assert check(client, 0) == 1
    assert client.get(WRITES) == "mine:1"
    client.set(WRITES, "mine:x:2", px=60_000)  # another token that begins with this one and its colon
    assert check(client, 0) == FENCED  # read as this token's count, "x:2": as before 2026-12-07


def ttls(client: redis.Redis) -> tuple[int, int]:
    """The lock's PTTL and the count's, read at one instant (one transaction)."""
    lock, writes = client.pipeline(transaction=True).pttl(LOCK).pttl(WRITES).execute()
    return lock, writes


def test_the_count_lives_as_long_as_the_lock_across_renewals(client: redis.Redis) -> None:
    client.set(LOCK, "mine", px=30_000)
    assert check(client, 0) == 1
    lock, writes = ttls(client)
    assert 0 < writes <= lock <= 30_000  # its TTL taken from the lock's
    assert client.eval(SCRIPTS["lock_renew"], 2, LOCK, WRITES, "mine", 60_000) == 1
    for made in range(1, 4):
        assert check(client, made) == 1
    lock, writes = ttls(client)
    assert 30_000 < writes <= lock <= 60_000
    assert lock - writes <= 5  # renewed in one step: the same end, kept by the writes after it
