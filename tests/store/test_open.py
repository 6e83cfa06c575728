"""Opening a store from its URL: paths, schemes, and a Redis that does not answer."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import sqlite3
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest

from gateway.errors import ConfigError, StoreError
from gateway.ratelimit import open_limit_storage
from gateway.store import ClaimState, open_store
from gateway.store.sqlite import path_from_url
from gateway.testing import store_keys
from tests.store.conftest import redis_url

__all__ = ["redis_url"]  # the session's redis-server, a fixture


def test_sqlite_paths() -> None:
    assert path_from_url("sqlite:///var/gateway.sqlite3") == Path("var/gateway.sqlite3")
    assert path_from_url("sqlite:////srv/gateway/db.sqlite3") == Path("/srv/gateway/db.sqlite3")
    with pytest.raises(ConfigError, match="needs a file path"):
        path_from_url("sqlite:///")


async def test_a_relative_sqlite_path_is_created_under_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    store = await open_store("sqlite:///var/deep/gateway.sqlite3")
    try:
        await store.ping()
    finally:
        await store.close()
    assert (tmp_path / "var" / "deep" / "gateway.sqlite3").is_file()


async def test_an_unusable_sqlite_path_is_a_store_error(tmp_path: Path) -> None:
    (tmp_path / "taken").write_text("a file where a directory should be")
    with pytest.raises(StoreError, match="cannot open the sqlite store"):
        await open_store(f"sqlite:///{tmp_path}/taken/gateway.sqlite3")


async def test_an_unknown_scheme_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="sqlite:///, redis://, rediss://, unix:// or redis\\+sentinel://"):
        await open_store("postgres://localhost/gateway")


async def test_a_redis_that_does_not_answer_is_a_store_error() -> None:
    with socket.socket() as probe:  # a port nobody listens on once the probe is closed
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(StoreError, match="redis"):
        url = f"redis://127.0.0.1:{port}/0"
        await open_store(url, keys=store_keys(url))


async def test_a_sqlite_file_from_before_parts_sent_opens_and_keeps_its_outbox(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    with contextlib.closing(sqlite3.connect(path)) as old:
        old.executescript(
            "CREATE TABLE outbox (seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE,"
            " conversation_id TEXT NOT NULL, payload TEXT NOT NULL, created_us INTEGER NOT NULL,"
            " next_us INTEGER NOT NULL, attempts INTEGER NOT NULL DEFAULT 0, last_error TEXT,"
            " status TEXT NOT NULL DEFAULT 'pending', provider_message_id TEXT);"
            " INSERT INTO outbox (id, conversation_id, payload, created_us, next_us) VALUES ('a1', 'A', '{}', 0, 0);"
        )
    store = await open_store(f"sqlite:///{path}")
    try:
        [item] = await store.outbox_due(datetime(2030, 1, 1, tzinfo=UTC), 10)
        assert (item.id, item.parts_sent) == ("a1", 0)
        assert await store.outbox_reschedule("A", "a1", datetime(2030, 1, 1, tzinfo=UTC), 1, "HTTP 500", parts_sent=1)
        assert (await store.outbox_due(datetime(2030, 1, 2, tzinfo=UTC), 10))[0].parts_sent == 1
    finally:
        await store.close()


@pytest.mark.redis
async def test_more_callers_than_redis_connections_wait_for_one_instead_of_failing(redis_url: str) -> None:
    store = await open_store(redis_url, keys=store_keys(redis_url), max_connections=2, pool_timeout=10)
    try:
        answers = await asyncio.gather(*(store.claim(f"in:pool:{n}", "owner", 10) for n in range(50)))
    finally:
        await store.close()
    assert answers == [ClaimState.CLAIMED] * 50  # redis-py's default pool raised MaxConnectionsError here


@pytest.mark.redis
async def test_a_redis_lock_held_past_its_lease_stays_held_while_its_holder_lives(redis_url: str) -> None:
    keys = store_keys(redis_url)
    one, two = await open_store(redis_url, keys=keys), await open_store(redis_url, keys=keys)  # two instances
    try:
        async with one.lock("slow"):
            for _ in range(7):  # a slow processing, past the 6 s lease: its holder renews it
                await asyncio.sleep(1)
                with pytest.raises(StoreError, match="timed out"):
                    async with two.lock("slow", timeout=0.05):
                        pass
        async with two.lock("slow", timeout=1):
            pass
    finally:
        await one.close()
        await two.close()


@pytest.mark.redis
async def test_a_redis_through_its_unix_socket_serves_the_store_and_the_rate_limits(tmp_path: Path) -> None:
    """``unix:///path?db=0``: the store (its batched commands, a lock) and the rate limits' counters, on a Redis
    listening on its unix socket only (``--port 0``)."""
    path = tmp_path / "redis.sock"
    command = ["redis-server", "--port", "0", "--unixsocket", str(path), "--unixsocketperm", "700", "--save", "",
               "--appendonly", "no", "--dir", str(tmp_path), "--logfile", str(tmp_path / "redis.log")]  # fmt: skip
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    try:
        async with asyncio.timeout(15):
            while not _answers_ping_at(path):
                assert server.poll() is None, (tmp_path / "redis.log").read_text()
                await asyncio.sleep(0.05)
        url = f"unix://{path}?db=0"
        store = await open_store(url, keys=store_keys(url))
        try:
            claims = await asyncio.gather(*(store.claim(f"in:unix:{n}", "owner", 10) for n in range(20)))
            assert claims == [ClaimState.CLAIMED] * 20
            async with store.lock("c1", timeout=5):
                assert await store.claim("in:unix:0", "other", 10) != ClaimState.CLAIMED
        finally:
            await store.close()
        limits = open_limit_storage(url)
        try:
            assert limits.pool is not None  # the counters are in this Redis, not in memory
            assert await limits.storage.incr("k", 60) == 1
            assert await limits.storage.incr("k", 60) == 2
        finally:
            await limits.close()
    finally:
        server.terminate()
        server.wait(timeout=30)


def _answers_ping_at(path: Path) -> bool:
    try:
        with socket.socket(socket.AF_UNIX) as connection:
            connection.settimeout(0.5)
            connection.connect(str(path))
            connection.sendall(b"PING\r\n")
            return connection.recv(16).startswith(b"+PONG")
    except OSError:
        return False
