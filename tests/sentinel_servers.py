"""Real Redis processes watched by Sentinel, started by a test: one primary, one replica, Sentinels (``redis-server
--sentinel``), each on a free loopback port in the test's directory, persistence off, killed at the end.

The Sentinels decide quickly (``down-after-milliseconds`` 1000, quorum 1): a failover takes seconds, not the
30 s of Sentinel's default. They are started only once the replica is in step with the primary and the
Sentinels know it (a Sentinel learns of the replicas from the primary's INFO, every 10 s after the first: a replica
it did not know yet could not be promoted).
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import redis

from tests.store.conftest import _free_port, _redis_server, _stop, _wait_until_ready

SERVICE = "helpline"
DOWN_AFTER_MS = 1000
FAILOVER_TIMEOUT_MS = 10000
READY_SECONDS = 30.0  # the processes' start on a busy machine


def wait_for(condition: Callable[[], bool], what: str, seconds: float = READY_SECONDS) -> None:
    """Until ``condition()`` holds (a test's setup, before the event loop's part: blocking is fine here)."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"not within {seconds:.0f} s: {what}", pytrace=False)
        time.sleep(0.05)


def _info(port: int, section: str) -> dict[str, str]:
    try:
        with redis.Redis(port=port, socket_timeout=2, decode_responses=True) as client:
            return {k: str(v) for k, v in client.info(section).items()}
    except redis.RedisError:
        return {}


class Sentinels:
    """The primary, its replica and the Sentinels; :attr:`url` is the gateway's ``redis+sentinel://`` URL."""

    def __init__(self, directory: Path, sentinels: int = 1) -> None:
        self.directory = directory
        self.primary, self.primary_port = _redis_server(self._dir("primary"))
        self.replica, self.replica_port = _redis_server(
            self._dir("replica"), "--replicaof", "127.0.0.1", str(self.primary_port)
        )
        self.sentinels: list[tuple[subprocess.Popen[bytes], int]] = []
        try:
            wait_for(lambda: _info(self.replica_port, "replication").get("master_link_status") == "up",
                     "the replica in step with the primary")  # fmt: skip
            for n in range(sentinels):
                self.sentinels.append(self._sentinel(self._dir(f"sentinel{n}")))
            wait_for(self._replica_known, "the Sentinels knowing the replica")
        except BaseException:
            self.stop()
            raise

    def _dir(self, name: str) -> Path:
        path = self.directory / name
        path.mkdir()
        return path

    def _sentinel(self, directory: Path) -> tuple[subprocess.Popen[bytes], int]:
        binary = shutil.which("redis-server")
        assert binary is not None, "redis-server is not on PATH (`make system-deps`)"
        port, log = _free_port(), directory / "sentinel.log"
        config = directory / "sentinel.conf"  # a Sentinel rewrites its file: one of its own
        config.write_text(
            f"port {port}\nbind 127.0.0.1\ndir {directory}\nlogfile {log}\n"
            f"sentinel monitor {SERVICE} 127.0.0.1 {self.primary_port} 1\n"
            f"sentinel down-after-milliseconds {SERVICE} {DOWN_AFTER_MS}\n"
            f"sentinel failover-timeout {SERVICE} {FAILOVER_TIMEOUT_MS}\n"
        )
        process = subprocess.Popen([binary, str(config), "--sentinel"], stdout=subprocess.DEVNULL,
                                   stderr=subprocess.STDOUT)  # fmt: skip
        _wait_until_ready(process, port, log)
        return process, port

    def _replica_known(self) -> bool:
        for _, port in self.sentinels:
            with redis.Redis(port=port, socket_timeout=2, decode_responses=True) as sentinel:
                replicas = sentinel.sentinel_slaves(SERVICE)
            if not any(r["port"] == self.replica_port and not r["is_sdown"] for r in replicas):
                return False
        return True

    @property
    def url(self) -> str:
        hosts = ",".join(f"127.0.0.1:{port}" for _, port in self.sentinels)
        return f"redis+sentinel://{hosts}/{SERVICE}?db=0"

    def primary_named(self) -> int | None:
        """The primary's port the first Sentinel names (None: it cannot be asked)."""
        try:
            with redis.Redis(port=self.sentinels[0][1], socket_timeout=2, decode_responses=True) as sentinel:
                address = sentinel.sentinel_get_master_addr_by_name(SERVICE)
        except redis.RedisError:
            return None
        return int(address[1]) if address else None

    def primary_offset(self) -> int:
        """How far the primary's replication stream has gone (its writes so far)."""
        return int(_info(self.primary_port, "replication")["master_repl_offset"])

    def kill_primary(self) -> None:
        """``kill -9``: no shutdown, nothing flushed; its clients' connections reset by the kernel."""
        self.primary.kill()
        self.primary.wait()

    def replica_client(self) -> redis.Redis:
        return redis.Redis(port=self.replica_port, decode_responses=True)

    def stop(self) -> None:
        for process, _ in self.sentinels:
            _stop(process)
        for process in (self.replica, self.primary):
            if process.poll() is None:
                _stop(process)
