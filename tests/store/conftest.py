"""Fixtures for the store contract: every test runs against SQLite, a real Redis and a real Redis Cluster.

Each Redis server is started once per session on a free loopback port, in a temporary directory, with
persistence off (``--save '' --appendonly no``), and killed at the end. A primary sends its data to a replica that
attaches at once (``repl-diskless-sync-delay 0``; Redis's default waits 5 s for more replicas to share the transfer:
each test starting or moving a replica waited that long, 2026-12-07). Without ``redis-server`` on PATH the
Redis part of the suite fails loudly: `make test` installs it, so a silent skip would hide a broken setup.

The Cluster is one node started with ``--cluster-enabled yes`` that owns every slot (``CLUSTER ADDSLOTSRANGE 0
16383``): like any Cluster, it refuses a script, transaction or multi-key command whose keys hash to different
slots (CROSSSLOT), which is what the store's key layout must never do. It has only database 0.
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

from gateway.settings import Settings
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


def _redis_server(directory: Path, *options: str) -> tuple[subprocess.Popen[bytes], int]:
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.fail(
            "redis-server is not on PATH: the Redis store tests need a real server "
            "(`make system-deps` installs it; or `apt-get install redis-server`)",
            pytrace=False,
        )
    port, log = _free_port(), directory / "redis.log"
    command = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
               "--repl-diskless-sync-delay", "0", "--dir", str(directory), "--logfile", str(log),
               *options]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    _wait_until_ready(process, port, log)
    return process, port


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@pytest.fixture(scope="session")
def redis_cluster_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A one-node Redis Cluster owning every slot."""
    directory = tmp_path_factory.mktemp("redis-cluster")
    bus = _free_port()  # the cluster bus port: its default (port + 10000) may be out of range
    process, port = _redis_server(directory, "--cluster-enabled", "yes", "--cluster-port", str(bus),
                                  "--cluster-config-file", str(directory / "nodes.conf"))  # fmt: skip
    try:
        client = redis.Redis(port=port, decode_responses=True)
        try:
            client.execute_command("CLUSTER", "ADDSLOTSRANGE", 0, 16383)
            deadline = time.monotonic() + 15
            while "cluster_state:ok" not in client.execute_command("CLUSTER", "INFO"):
                if time.monotonic() > deadline:
                    pytest.fail("the one-node Redis Cluster did not come up", pytrace=False)
                time.sleep(0.05)
        finally:
            client.close()
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        _stop(process)


@pytest.fixture(scope="session")
def redis_cluster3_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A Redis Cluster of three primaries, the slots split between them: a client that ignores slots gets MOVED."""
    started: list[tuple[subprocess.Popen[bytes], int]] = []
    buses: list[int] = []
    try:
        for n in range(3):
            directory = tmp_path_factory.mktemp(f"redis-cluster3-{n}")
            buses.append(_free_port())
            started.append(_redis_server(directory, "--cluster-enabled", "yes", "--cluster-port", str(buses[-1]),
                                         "--cluster-config-file", str(directory / "nodes.conf")))  # fmt: skip
        clients = [redis.Redis(port=port, decode_responses=True) for _, port in started]
        try:
            for n, client in enumerate(clients):
                client.execute_command("CLUSTER", "ADDSLOTSRANGE", n * 5462, min(16383, n * 5462 + 5461))
            for (_, port), bus in zip(started[1:], buses[1:], strict=True):
                clients[0].execute_command("CLUSTER", "MEET", "127.0.0.1", port, bus)
            deadline = time.monotonic() + 30
            while not all("cluster_state:ok" in c.execute_command("CLUSTER", "INFO") for c in clients):
                if time.monotonic() > deadline:
                    pytest.fail("the three-node Redis Cluster did not come up", pytrace=False)
                time.sleep(0.05)
        finally:
            for client in clients:
                client.close()
        yield f"redis://127.0.0.1:{started[0][1]}/0"
    finally:
        for process, _ in started:
            _stop(process)


def emptied(url: str) -> str:
    """The session's Redis at ``url``, emptied (its test db: each test starts from nothing); the URL again."""
    with redis.Redis.from_url(url) as client:
        client.flushdb()
    return url


STORES = ["sqlite", pytest.param("redis", marks=pytest.mark.redis)]  # a fixture's params: SQLite, the session's Redis


def on_store(request: pytest.FixtureRequest, settings: Settings) -> Settings:
    """For a fixture parametrised by :data:`STORES`: the settings as they are (SQLite, the test's own file), or on
    the session's Redis, emptied."""
    if request.param == "sqlite":
        return settings
    return settings.replace(store=emptied(request.getfixturevalue("redis_url")))


def flush_cluster(url: str) -> None:
    """Empty every node of a Cluster (FLUSHDB reaches one node only)."""
    with redis.RedisCluster.from_url(url) as client:
        client.flushdb(target_nodes=redis.RedisCluster.PRIMARIES)


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    process, port = _redis_server(tmp_path_factory.mktemp("redis"))
    try:
        yield f"redis://127.0.0.1:{port}/{REDIS_DB}"
    finally:
        _stop(process)


@pytest.fixture(
    params=[
        "sqlite",
        pytest.param("redis", marks=pytest.mark.redis),
        pytest.param("redis-cluster", marks=pytest.mark.redis),
    ]
)
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The URL of an empty store: a new SQLite file, or the flushed Redis test db, standalone or Cluster."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/store/gateway.sqlite3"
    return emptied(request.getfixturevalue("redis_url" if request.param == "redis" else "redis_cluster_url"))


@pytest.fixture
async def store(store_url: str) -> AsyncIterator[Store]:
    opened = await open_store(store_url, keys=store_keys(store_url))
    try:
        yield opened
    finally:
        await opened.close()
