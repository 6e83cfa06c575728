"""Fixtures for the store contract: every test runs against SQLite and against a real Redis.

The Redis server is started once per session on a free loopback port, in a temporary directory, with
persistence off (``--save '' --appendonly no``), and killed at the end. Without ``redis-server`` on PATH the
Redis half of the suite fails loudly: `make test` installs it, so a silent skip would hide a broken setup.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import redis

from gateway.store import Store, open_store
from gateway.testing import store_keys

REDIS_DB = 1  # one db for the suite, flushed before each test


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _answers_ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as connection:
            connection.sendall(b"PING\r\n")
            return connection.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def _wait_until_ready(process: subprocess.Popen[bytes], port: int, log: Path) -> None:
    deadline = time.monotonic() + 15
    while not _answers_ping(port):
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"redis-server did not start on port {port}:\n{log.read_text()}", pytrace=False)
        time.sleep(0.05)


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.fail(
            "redis-server is not on PATH: the Redis store tests need a real server "
            "(`make system-deps` installs it; or `apt-get install redis-server`)",
            pytrace=False,
        )
    directory = tmp_path_factory.mktemp("redis")
    port, log = _free_port(), directory / "redis.log"
    command = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
               "--dir", str(directory), "--logfile", str(log)]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    try:
        _wait_until_ready(process, port, log)
        yield f"redis://127.0.0.1:{port}/{REDIS_DB}"
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(params=["sqlite", pytest.param("redis", marks=pytest.mark.redis)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The URL of an empty store: a new SQLite file, or the flushed Redis test db."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/store/gateway.sqlite3"
    url: str = request.getfixturevalue("redis_url")
    client = redis.Redis.from_url(url)
    try:
        client.flushdb()
    finally:
        client.close()
    return url


@pytest.fixture
async def store(store_url: str) -> AsyncIterator[Store]:
    opened = await open_store(store_url, keys=store_keys(store_url))
    try:
        yield opened
    finally:
        await opened.close()
