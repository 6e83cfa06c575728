"""Real Redis processes watched by Sentinel, started by a test: one primary, one replica, Sentinels (``redis-server
--sentinel``), each on a free loopback port in the test's directory, persistence off, stopped at the end; with
``tls``, every one of them on TLS only (a CA and a certificate for 127.0.0.1 made by ``openssl`` for the test).

The Sentinels decide quickly (``down-after-milliseconds`` 1000, quorum 1): a failover takes seconds, not the
30 s of Sentinel's default. They are started only once the replica is in step with the primary, and the test waits
until they know it (a Sentinel learns of the replicas from the primary's INFO, every 10 s after the first: a replica
it did not know yet could not be promoted).

Since 2026-12-07 shared with ``bench/chaos.py --sentinel`` (its ``failover`` fault: :meth:`Sentinels.failover`, and
:meth:`Sentinels.kill_primary` then :meth:`Sentinels.rejoin`), so it imports no pytest: a wait not met raises
:class:`NotReady`, an AssertionError (pytest shows it as a failure, as ``pytest.fail`` did until then).
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import redis

SERVICE = "helpline"
DOWN_AFTER_MS = 1000
FAILOVER_TIMEOUT_MS = 10000
READY_SECONDS = 30.0  # the processes' start on a busy machine


class NotReady(AssertionError):
    """A process or a role not there in time (a test fails on it; the bench stops)."""


def wait_for(condition: Callable[[], bool], what: str, seconds: float = READY_SECONDS) -> None:
    """Until ``condition()`` holds (a test's setup, before the event loop's part: blocking is fine here)."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise NotReady(f"not within {seconds:.0f} s: {what}")
        time.sleep(0.05)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def certificates(directory: Path) -> Path:
    """A CA and a certificate for 127.0.0.1 signed by it, in ``directory`` (ca.crt, server.crt, server.key)."""
    directory.mkdir()

    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=directory, check=True, capture_output=True)

    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.crt", "-days", "1",
        "-subj", "/CN=helpline test CA")  # fmt: skip
    run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=127.0.0.1")
    (directory / "san.ext").write_text("subjectAltName=IP:127.0.0.1\n")
    run("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
        "-out", "server.crt", "-days", "1", "-extfile", "san.ext")  # fmt: skip
    return directory


class Sentinels:
    """The primary, its replica and the Sentinels; :attr:`url` is the gateway's ``redis+sentinel://`` URL."""

    def __init__(self, directory: Path, sentinels: int = 1, tls: bool = False) -> None:
        self.directory = directory
        self.tls = certificates(directory / "tls") if tls else None
        self.processes: list[subprocess.Popen[bytes]] = []
        self.sentinel_processes: list[subprocess.Popen[bytes]] = []
        self.sentinel_ports: list[int] = []
        self.names: dict[int, str] = {}  # each data server's port → its directory's name ("primary", "replica")
        self.failovers = 0  # the roles swapped (``promoted``) since the start
        try:
            self.primary, self.primary_port = self._server("primary")
            self.replica, self.replica_port = self._server("replica", "replicaof 127.0.0.1 " + str(self.primary_port))
            wait_for(self._replica_in_step, "the replica in step with the primary")
            for n in range(sentinels):
                monitor = (f"sentinel monitor {SERVICE} 127.0.0.1 {self.primary_port} 1",
                           f"sentinel down-after-milliseconds {SERVICE} {DOWN_AFTER_MS}",
                           f"sentinel failover-timeout {SERVICE} {FAILOVER_TIMEOUT_MS}")  # fmt: skip
                self.sentinel_ports.append(self._server(f"sentinel{n}", *monitor, sentinel=True)[1])
            wait_for(self._replica_known, "the Sentinels knowing the replica")
        except BaseException:
            self.stop()
            raise

    def _server(self, name: str, *lines: str, sentinel: bool = False) -> tuple[subprocess.Popen[bytes], int]:
        """A redis-server (or Sentinel) from a config file of its own (a Sentinel rewrites its file)."""
        binary = shutil.which("redis-server")
        assert binary is not None, "redis-server is not on PATH (`make system-deps`)"
        directory = self.directory / name
        directory.mkdir()
        port, log = _free_port(), directory / "redis.log"
        if not sentinel:
            self.names[port] = name
        listen = [f"port {port}"]
        if self.tls is not None:
            listen = ["port 0", f"tls-port {port}", f"tls-cert-file {self.tls / 'server.crt'}",
                      f"tls-key-file {self.tls / 'server.key'}", f"tls-ca-cert-file {self.tls / 'ca.crt'}",
                      "tls-auth-clients no", "tls-replication yes"]  # fmt: skip
        # a primary sends its data to a replica at once, not after Redis's default 5 s wait for more replicas to
        # share the transfer (each group's start, and each replica following a new primary, waited that long)
        saving = [] if sentinel else ['save ""', "appendonly no", "repl-diskless-sync-delay 0"]
        config = directory / "redis.conf"
        config.write_text("\n".join([*listen, "bind 127.0.0.1", f"dir {directory}", f"logfile {log}", *saving,
                                     *lines]) + "\n")  # fmt: skip
        return self._run(config, port, sentinel), port

    def _run(self, config: Path, port: int, sentinel: bool = False) -> subprocess.Popen[bytes]:
        binary = shutil.which("redis-server")
        assert binary is not None
        command = [binary, str(config), *(["--sentinel"] if sentinel else [])]
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        (self.sentinel_processes if sentinel else self.processes).append(process)
        wait_for(lambda: process.poll() is None and self._answers(port), f"{config.parent.name} answering PING")
        return process

    def client(self, port: int, **options: Any) -> redis.Redis:
        tls: dict[str, Any] = {"ssl": True, "ssl_ca_certs": str(self.tls / "ca.crt")} if self.tls is not None else {}
        return redis.Redis(host="127.0.0.1", port=port, socket_timeout=2, decode_responses=True, **tls, **options)

    def _answers(self, port: int) -> bool:
        try:
            with self.client(port) as client:
                return bool(client.ping())
        except redis.RedisError:
            return False

    def _info(self, port: int) -> dict[str, str]:
        try:
            with self.client(port) as client:
                return {k: str(v) for k, v in client.info("replication").items()}
        except redis.RedisError:
            return {}

    def _replica_in_step(self) -> bool:
        info = self._info(self.replica_port)
        return (
            info.get("role") == "slave"
            and info.get("master_port") == str(self.primary_port)
            and (info.get("master_link_status") == "up")
        )

    def _replica_known(self) -> bool:
        for port in self.sentinel_ports:
            with self.client(port) as sentinel:
                replicas = sentinel.sentinel_slaves(SERVICE)
            if not any(r["port"] == self.replica_port and not r["is_sdown"] for r in replicas):
                return False
        return True

    @property
    def url(self) -> str:
        hosts = ",".join(f"127.0.0.1:{port}" for port in self.sentinel_ports)
        if self.tls is not None:
            return f"rediss+sentinel://{hosts}/{SERVICE}?db=0&ssl_ca_certs={self.tls / 'ca.crt'}"
        return f"redis+sentinel://{hosts}/{SERVICE}?db=0"

    def primary_named(self, sentinel_index: int = 0) -> int | None:
        """The primary's port the first Sentinel (or the one at ``sentinel_index``) names (None: it cannot be
        asked)."""
        try:
            with self.client(self.sentinel_ports[sentinel_index]) as sentinel:
                address = sentinel.sentinel_get_master_addr_by_name(SERVICE)
        except redis.RedisError:
            return None
        return int(address[1]) if address else None

    def primary_offset(self) -> int:
        """How far the primary's replication stream has gone (its writes so far)."""
        return int(self._info(self.primary_port)["master_repl_offset"])

    def replica_offset(self) -> int:
        return int(self._info(self.replica_port).get("slave_repl_offset", -1))

    def kill_primary(self) -> None:
        """``kill -9``: no shutdown, nothing flushed; its clients' connections reset by the kernel."""
        self.primary.kill()
        self.primary.wait()

    def failover(self) -> None:
        """``SENTINEL FAILOVER`` asked of the first Sentinel that takes it (a planned failover: the primary stays up,
        made a replica by the Sentinels once the replica is promoted); then :meth:`promoted` and :meth:`settled`.
        Blocking (a bench calls it in a thread). Since 2026-12-07."""
        self.ask_failover()
        self.promoted()
        self.settled()

    def ask_failover(self, seconds: float = READY_SECONDS) -> None:
        """``SENTINEL FAILOVER`` asked, not waited for (:meth:`failover`): of each Sentinel in turn until one takes
        it (NOGOODSLAVE until its view of the replica is fresh enough, INPROGRESS)."""

        def asked() -> bool:
            for port in self.sentinel_ports:
                try:
                    with self.client(port) as sentinel:
                        sentinel.execute_command("SENTINEL", "FAILOVER", SERVICE)
                    return True
                except redis.RedisError:
                    continue
            time.sleep(0.2)
            return False

        wait_for(asked, "a Sentinel taking SENTINEL FAILOVER", seconds)

    def promoted(self, seconds: float = 60.0) -> None:
        """Until every Sentinel names the replica as the primary (after :meth:`failover` or :meth:`kill_primary`):
        the roles are swapped (``primary``, ``replica`` and their ports), ``failovers`` counted. Since 2026-12-07."""

        def named() -> bool:
            return all(self.primary_named(n) == self.replica_port for n in range(len(self.sentinel_ports)))

        wait_for(named, "the Sentinels naming the replica as the primary", seconds)
        self.primary, self.replica = self.replica, self.primary
        self.primary_port, self.replica_port = self.replica_port, self.primary_port
        self.failovers += 1

    def rejoin(self) -> None:
        """The old primary, killed, started again on its port and files as a replica of the new one (as its
        process manager would, its configuration saying whom it follows); then :meth:`settled`. Since 2026-12-07."""
        assert self.replica.poll() is not None, "rejoin: the old primary still runs"
        config = self.directory / self.names[self.replica_port] / "redis.conf"
        lines = [line for line in config.read_text().splitlines()
                 if not line.startswith(("replicaof", "slaveof"))]  # fmt: skip
        config.write_text("\n".join([*lines, f"replicaof 127.0.0.1 {self.primary_port}"]) + "\n")
        self.replica = self._run(config, self.replica_port)
        self.settled()

    def settled(self, seconds: float = 60.0) -> None:
        """Until the replica is in step with the primary and every Sentinel knows it (a failover can be asked again:
        a replica a Sentinel does not see is not promoted). Since 2026-12-07."""
        wait_for(self._replica_in_step, "the replica in step with the new primary", seconds)
        wait_for(self._replica_known, "the Sentinels knowing the replica", seconds)

    def stop(self) -> None:
        for process in [*self.sentinel_processes, *self.processes]:  # the Sentinels first: no failover meanwhile
            if process.poll() is None:
                _stop(process)
