"""The store's Redis connections pack commands with hiredis (gateway/store/redis_pool.py): the same bytes as
redis-py's own packer for any command, the same DataError for a value Redis cannot take, and a str holding bytes
that are not UTF-8 (a reply decoded with ``surrogateescape``, as the store reads sealed records) written back as
those bytes, through a real Redis."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from redis.asyncio import Redis
from redis.asyncio.connection import Connection
from redis.exceptions import DataError

from gateway.store.redis_pool import CheckedConnection, open_pool

OPTIONS: dict[str, Any] = {"decode_responses": True, "encoding_errors": "surrogateescape"}  # the store's
values = st.one_of(
    st.text(), st.binary(), st.integers(), st.floats(allow_nan=False),
    st.binary().map(lambda raw: raw.decode("utf-8", "surrogateescape")),
)  # fmt: skip
names = st.sampled_from(["GET", "EVAL", "SCRIPT LOAD", b"CLIENT SETNAME", "HSET"])
# Made once: a redis-py connection's constructor reads the installed package's metadata from the disk
# (``importlib.metadata.version``, ~1 ms idle): made anew per example (up to six each), a loaded machine's disk
# pushed one example past Hypothesis's deadline (200 ms) and the test failed as flaky. Packing reads only the
# connection's encoder, so one of each packs every example.
CHECKED = CheckedConnection(**OPTIONS)
PYTHON = Connection(**OPTIONS)


def _python(*args: Any) -> bytes:
    return b"".join(bytes(chunk) for chunk in PYTHON.pack_command(*args))


@given(names, st.lists(values, max_size=6))
def test_one_command_packs_as_redis_py_does(name: str | bytes, args: list[Any]) -> None:
    assert b"".join(CHECKED.pack_command(name, *args)) == _python(name, *args)


@given(st.lists(st.tuples(names, st.lists(values, max_size=4)), min_size=1, max_size=5))
def test_a_pipeline_packs_as_redis_py_does(commands: list[tuple[str | bytes, list[Any]]]) -> None:
    stack = [(name, *args) for name, args in commands]
    packed = b"".join(CHECKED.pack_commands(stack))
    assert packed == b"".join(_python(*command) for command in stack)


@pytest.mark.parametrize("bad", [None, True, [1], {"a": 1}])
def test_a_value_redis_cannot_take_is_a_data_error(bad: object) -> None:
    with pytest.raises(DataError):
        CheckedConnection(**OPTIONS).pack_command("SET", "key", bad)


def test_another_encoding_keeps_redis_pys_packer() -> None:
    packed = b"".join(CheckedConnection(encoding="latin-1").pack_command("SET", "key", "é"))
    assert packed == b"".join(bytes(c) for c in Connection(encoding="latin-1").pack_command("SET", "key", "é"))


@pytest.fixture
async def client(redis_url: str) -> AsyncIterator[Redis]:
    redis = Redis(connection_pool=open_pool(redis_url, max_connections=2, timeout=5, health_check_interval=30,
                                            **OPTIONS))  # fmt: skip
    yield redis
    await redis.aclose()


@pytest.mark.redis
async def test_bytes_that_are_not_utf8_go_back_as_they_came(client: Redis, redis_url: str) -> None:
    raw = b"\xff\xfe sealed \x00\x80"
    await client.set("hg:test:pool", raw)
    read = await client.get("hg:test:pool")
    assert isinstance(read, str)
    await client.set("hg:test:pool:again", read)  # the str read, written back
    plain = Redis.from_url(redis_url)  # bytes as Redis holds them
    try:
        assert await plain.get("hg:test:pool:again") == raw
    finally:
        await plain.delete("hg:test:pool", "hg:test:pool:again")
        await plain.aclose()
