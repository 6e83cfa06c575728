"""The gateway under load against the floor, in one run: ``python bench/load.py`` (part of ``make bench``).

Runs, on this machine and in this order: the floor (``bench/floor.py``: aiohttp, one Redis transaction, one reply
POST per message), then ``gateway serve`` on Redis and on SQLite, each as a real process, fed signed Messenger
webhooks that walk the default flow to the hand-off, with the fake Graph API of ``gateway/testing.py`` taking the
replies. For each it prints acknowledged msg/s, p50/p99 acknowledgement, p50/p99 webhook → reply at the fake, CPU
ms per message (the server's process, and Redis), duplicates and losses at the fake; for the gateway also the store
bytes per handed-off conversation, RSS at 0 and at ``--open`` open conversations, and the hand-off latency at
1,000 and at ``--open``; then the ratios gateway / floor. Last, an open-loop run at ``--rate`` msg/s for
``--duration`` s on each server (closed-loop figures hide latency: a slow answer slows the sender down).

The load generator and the fake provider share one process on uvloop (aiohttp client, ``--connections`` at
once). Prints figures, asserts nothing. See bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import hashlib
import itertools
import json
import os
import platform
import re
import shutil
import signal
import socket
import sqlite3
import statistics
import string
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from zoneinfo import ZoneInfo

from aiohttp import (
    ClientError,
    ClientSession,
    ClientTimeout,
    ClientWebSocketResponse,
    TCPConnector,
    TraceConfig,
    TraceRequestChunkSentParams,
    web,
)

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # runnable from a checkout without installing

from bench.parts import Monitor  # noqa: E402
from bench.parts import parts as bench_parts  # noqa: E402
from gateway.conversation import Status  # noqa: E402
from gateway.flows.engine import Engine  # noqa: E402
from gateway.flows.loader import load_text  # noqa: E402
from gateway.ids import inbound_entry_id  # noqa: E402
from gateway.messages import ChannelName, Inbound  # noqa: E402
from gateway.testing import (  # noqa: E402
    DATA_KEY,
    FakeAPI,
    FakeGraphAPI,
    messenger_body,
    messenger_message,
    signed_messenger,
    stop_gently,
)

SECRET = "bench-app-secret"
CLK_TCK = os.sysconf("SC_CLK_TCK")
HANDOFF_SAMPLES = 30
REPLY_TIMEOUT = 30.0  # a reply not seen by then counts as lost for the walk (it may still come: see the drain)


# ----- what a young person sends -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Step:
    text: str
    payload: str | None
    replies: int  # messages the gateway sends back for it


def bench_flows(text: str) -> str:
    """The repository's flows.yaml, always open (a run at night must still reach the hand-off) and with timers
    far beyond a run (no reminder or reassurance interleaves with the measured replies)."""
    text = re.sub(r"schedule: (listeners|victims)\b", "schedule: always", text)
    for name in ("bot_reminder_minutes", "bot_abandon_minutes", "queue_reassurance_minutes"):
        text = re.sub(rf"{name}: \d+", f"{name}: 1000", text)
    return text


def walks(flow_text: str, count: int = 24) -> list[list[Step]]:
    """Distinct walks of the flow that end in a hand-off, each a list of steps with the replies they get."""
    loaded, problems = load_text(flow_text, "flows.yaml")
    if loaded is None:
        raise SystemExit("bench: flows.yaml does not load: " + "; ".join(map(str, problems[:3])))
    engine = Engine(loaded)
    flow, now = engine.flow, datetime(2026, 3, 10, 14, 0, tzinfo=ZoneInfo(engine.flow.timezone))
    found: list[list[Step]] = []
    for seed in range(count * 20):
        result = engine.start(channel="messenger", now=now)
        steps = [Step("bonjour", None, len(result.replies))]
        for turn in range(30):
            if result.outcome is not None or result.state.finished:
                break
            state = result.state
            if state.offer is not None:
                text, payload = "oui", "yes"
            elif state.step is not None and (choices := flow.steps[state.step].choices):
                choice = choices[(seed // (turn + 1)) % len(choices)]
                text, payload = next(iter(choice.label.values())), choice.value
            elif state.step is not None and flow.steps[state.step].number is not None:
                text, payload = "15", None
            else:
                text, payload = "texte", None
            result = engine.step(state, text, now=now, payload=payload)
            steps.append(Step(text, payload, len(result.replies)))
        if result.outcome is not None and result.outcome.kind == "handoff":
            last = steps[-1]
            steps[-1] = Step(last.text, last.payload, last.replies + 1)  # + "you are in the queue"
            if steps not in found:
                found.append(steps)
        if len(found) >= count:
            break
    if not found:
        raise SystemExit("bench: no walk of flows.yaml reaches a hand-off")
    return found


def floor_walks(walks_: list[list[Step]]) -> list[list[Step]]:
    return [[Step(s.text, s.payload, 1) for s in walk] for walk in walks_]  # the floor answers once each


# ----- the fake provider, with reply times ----------------------------------------------------------------------


@dataclass(slots=True)
class Sender:
    expected: int = 0
    received: int = 0
    waiting_since: float | None = None  # the last message sent and not yet answered
    last_reply_at: float = 0.0  # perf_counter when the fake received the latest reply to this sender
    mids: list[str] = field(default_factory=list)  # the message ids, in the order the generator made the webhooks
    written: list[str] = field(default_factory=list)  # the message ids, in the order their bodies were written
    arrived: asyncio.Event = field(default_factory=asyncio.Event)


async def _body_written(_: ClientSession, context: SimpleNamespace, params: TraceRequestChunkSentParams) -> None:
    """A webhook's body went to its connection: from then on the gateway may read it (before that, the request
    may wait for a free connection of the generator's pool, and requests made later may overtake it)."""
    request = context.trace_request_ctx
    if request is not None and params.chunk and not request.written:
        request.written = True
        request.written_at = time.perf_counter()
        request.state.written.append(request.mid)


def write_order() -> TraceConfig:
    """Notes each webhook's message id in :attr:`Sender.written` when its body is written."""
    trace = TraceConfig()
    trace.on_request_chunk_sent.append(_body_written)
    return trace


def real_mid(seed: str) -> str:
    """A message id of Messenger's length (``m_`` and 86 base64url characters), unique per ``seed``: with
    ``--real-ids`` every inbound mid and every id the fake provider returns (WhatsApp's ``wamid.`` ids and Twilio's
    ``SM`` + 32 hex are 34 to 60 characters: Messenger's are the longest)."""
    return "m_" + base64.urlsafe_b64encode(hashlib.sha512(seed.encode()).digest()).decode().rstrip("=")


class Provider(FakeGraphAPI):
    """The fake Graph API noting, per recipient, the replies and the time from the webhook to the first one."""

    def __init__(self) -> None:
        super().__init__()
        self.real_ids = False  # --real-ids: the message ids it returns have Messenger's length (see real_mid)
        self.numbers = itertools.count()
        self.senders: dict[str, Sender] = {}
        self.texts: dict[str, list[str]] = {}  # per recipient, the texts received (for the audit against the store)
        self.reply_latency: list[float] = []
        self.received_at: dict[str, float] = {}  # the id it gave each reply → when it received it (perf_counter)

    async def _messages(self, request: web.Request) -> web.Response:
        response = await super()._messages(request)
        body = await request.json()
        recipient = body.get("recipient", {}).get("id", "")
        sender = self.senders.get(recipient)
        if sender is not None and "message" in body:
            self.texts.setdefault(recipient, []).append(str(body["message"].get("text", "")))
            sender.received += 1
            sender.last_reply_at = time.perf_counter()
            if sender.waiting_since is not None:
                self.reply_latency.append(time.perf_counter() - sender.waiting_since)
                sender.waiting_since = None
            sender.arrived.set()
        self.requests.clear()  # the bench keeps its own account; the log would only grow
        if self.real_ids and "message" in body and response.status == 200:
            made = real_mid(f"out{next(self.numbers)}")
            response = web.json_response({"recipient_id": recipient, "message_id": made})
        if "message" in body and response.status == 200 and response.text:
            self.received_at[json.loads(response.text)["message_id"]] = time.perf_counter()
        return response

    def sent(self, sender_id: str, step: Step, at: float) -> Sender:
        sender = self.senders.setdefault(sender_id, Sender())
        if sender.waiting_since is not None:  # the previous message still unanswered: at least this late
            self.reply_latency.append(at - sender.waiting_since)
        sender.expected += step.replies
        sender.waiting_since = at
        return sender

    def account(self) -> tuple[int, int]:
        """(replies beyond, replies short of) what each sender's walk expects, over every sender so far. Not the
        same as sent twice / lost: a walk's messages processed in another order (or refused by a client timeout
        yet processed) get other answers. :func:`audit` counts what was really sent twice or lost."""
        extra = sum(max(0, s.received - s.expected) for s in self.senders.values())
        missing = sum(max(0, s.expected - s.received) for s in self.senders.values())
        return extra, missing

    async def drain(self, quiet: float = 5.0, limit: float = 60.0) -> None:
        """Wait until every expected reply came, or none came for ``quiet`` seconds."""
        deadline, last, seen = time.monotonic() + limit, time.monotonic(), -1
        while time.monotonic() < deadline:
            total = sum(s.received for s in self.senders.values())
            if self.account()[1] == 0:
                return
            if total != seen:
                seen, last = total, time.monotonic()
            elif time.monotonic() - last > quiet:
                return
            await asyncio.sleep(0.1)


async def audit(provider: Provider, store_url: str) -> tuple[int, int, int, int]:
    """Against what the gateway recorded: (replies the provider received more often than the transcripts hold
    them, i.e. sent twice; replies the transcripts record as accepted by the provider that it never received,
    i.e. lost; senders whose messages were processed in another order than the generator made them; senders
    whose messages were processed in another order than their bodies were written to the gateway), over every
    sender so far. Replies still pending (an overloaded gateway works through its backlog after the run) are
    neither."""
    from gateway.store import Author, Delivery, open_store
    from gateway.testing import store_keys

    store = await open_store(store_url, keys=store_keys(store_url))  # the gateways run with DATA_KEY
    twice = lost = disordered = disordered_written = 0
    try:
        by_sender: dict[str, list[str]] = {}  # every conversation of a sender (one that ended has a successor)
        for conversation in await store.list_conversations(datetime(2000, 1, 1, tzinfo=UTC), datetime.now(UTC)
                                                           + timedelta(days=1)):  # fmt: skip
            by_sender.setdefault(conversation.sender, []).append(conversation.id)
        for sender_id, sender in provider.senders.items():
            if sender_id not in by_sender:
                continue
            entries = [e for c in by_sender[sender_id] for e in await store.transcript(c)]
            replies = [e for e in entries if e.author in (Author.BOT, Author.LISTENER)]
            recorded = Counter(e.text for e in replies)
            accepted = Counter(e.text for e in replies if e.delivery not in (Delivery.PENDING, Delivery.FAILED))
            received = Counter(provider.texts.get(sender_id, []))
            twice += sum((received - recorded).values())
            lost += sum((accepted - received).values())  # recorded as accepted by the provider, never received
            processed = [e.id for e in entries if e.author == Author.USER]

            def in_order(mids: list[str], processed: list[str] = processed, sender_id: str = sender_id) -> list[str]:
                ids = (inbound_entry_id(Inbound(ChannelName.MESSENGER, sender_id, m)) for m in mids)
                return [i for i in ids if i in processed]

            disordered += processed != in_order(sender.mids)
            disordered_written += processed != in_order(sender.written)
    finally:
        await store.close()
    return twice, lost, disordered, disordered_written


# ----- the servers --------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def cpu_seconds(pid: int) -> float:
    return sum(cpu_split(pid))


def cpu_split(pid: int) -> tuple[float, float]:
    """CPU seconds of a process so far: (user, system, i.e. the kernel on its behalf: syscalls, socket writes)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) / CLK_TCK, int(fields[12]) / CLK_TCK


def preempted(pid: int) -> tuple[int, float]:
    """A process's threads so far (those alive now): how often they were preempted (runnable, another task given
    the core: ``nonvoluntary_ctxt_switches``) and for how long in all, in seconds (``schedstat``'s run delay: the
    time spent runnable, waiting for a core). A sampling profiler counts that time as busy: it is not CPU."""
    times, delay = 0, 0.0
    for task in Path(f"/proc/{pid}/task").iterdir():
        for line in (task / "status").read_text().splitlines():
            if line.startswith("nonvoluntary_ctxt_switches:"):
                times += int(line.split()[1])
        delay += int((task / "schedstat").read_text().split()[1]) / 1e9
    return times, delay


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


REPLICA = False  # --replica: every Redis started with a replica of its own (``Redis``)


class Redis:
    def __init__(self, directory: Path, unix: bool = False) -> None:
        """A Redis server of the run's own; ``unix``: the servers measured (floor and gateway) reach it through its
        unix socket (``url``), the bench's own inspection through its TCP port all the same. With ``--replica``
        (:data:`REPLICA`), a second server replicates it (stopped with it): the gateway's
        ``GATEWAY_REDIS_REPLICA_ACKS``, from the environment, then has a replica to wait for."""
        directory.mkdir(exist_ok=True)
        self.port = free_port()
        binary = shutil.which("redis-server")
        if binary is None:
            raise SystemExit("bench: redis-server is not on PATH (make system-deps)")
        command = [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                   "--dir", str(directory), "--logfile", str(directory / "redis.log")]  # fmt: skip
        if unix:
            command += ["--unixsocket", str(directory / "redis.sock"), "--unixsocketperm", "700"]
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        self.replica: subprocess.Popen[bytes] | None = None
        if REPLICA:
            (directory / "replica").mkdir(exist_ok=True)
            replica = [binary, "--port", str(free_port()), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                       "--dir", str(directory / "replica"), "--logfile", str(directory / "replica" / "redis.log"),
                       "--replicaof", "127.0.0.1", str(self.port)]  # fmt: skip
            self.replica = subprocess.Popen(replica, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        self.url = f"unix://{directory / 'redis.sock'}?db=0" if unix else f"redis://127.0.0.1:{self.port}/0"
        self.proxy: subprocess.Popen[str] | None = None

    def delayed(self, delay_ms: float, jitter_ms: float) -> str:
        """A URL reaching this Redis through ``tests/delaying_proxy.py`` (a process of its own, stopped with it):
        ``delay_ms`` each way plus up to ``jitter_ms``, as Redis across a network (``--redis-delay-ms``)."""
        command = [sys.executable, "-m", "tests.delaying_proxy", f"redis://127.0.0.1:{self.port}/0",
                   str(delay_ms), str(jitter_ms)]  # fmt: skip
        self.proxy = subprocess.Popen(command, cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert self.proxy.stdout is not None
        return self.proxy.stdout.readline().strip()

    def stall(self, ms: float) -> None:
        """Nothing passes the delaying proxy, either way, for ``ms`` from now (``--redis-stall-ms``)."""
        assert self.proxy is not None and self.proxy.stdin is not None
        self.proxy.stdin.write(f"stall {ms}\n")
        self.proxy.stdin.flush()

    def command(self, *args: str) -> str:
        out = subprocess.run(["redis-cli", "-p", str(self.port), *args], capture_output=True, text=True, check=True)
        return out.stdout

    def wait_ready(self, tries: int = 100, pause: float = 0.1) -> None:
        """Until the server answers a PING (a fresh server takes a few tens of ms to listen)."""
        for _ in range(tries):
            with contextlib.suppress(subprocess.CalledProcessError):
                self.command("PING")
                return
            time.sleep(pause)
        raise SystemExit("bench: the run's redis-server does not answer")

    def info(self, section: str, name: str) -> int:
        """One number of Redis's ``INFO <section>``."""
        found = re.search(rf"{name}:(\d+)", self.command("INFO", section))
        if found is None:
            raise SystemExit(f"bench: Redis's INFO {section} has no {name}")
        return int(found.group(1))

    def used_memory(self) -> int:
        return self.info("memory", "used_memory")

    def fixed_memory(self) -> int:
        """What used memory holds that does not grow with the data: the clients' buffers and the scripts' cache."""
        return self.info("memory", "mem_clients_normal") + self.info("memory", "used_memory_scripts_eval")

    def reads(self) -> int:
        """Read events Redis processed on client sockets so far: one per round trip (a pipeline is one)."""
        return self.info("stats", "total_reads_processed")

    def keys(self) -> int:
        return int(self.command("DBSIZE").strip())

    def commands(self) -> Counter[str]:
        """Calls so far by command (``INFO commandstats``; a script's own ``redis.call``s are counted too)."""
        found = re.findall(r"cmdstat_([^:]+):calls=(\d+)", self.command("INFO", "commandstats"))
        return Counter({name: int(calls) for name, calls in found})

    def breakdown(self, conversations: int) -> str:
        """Bytes per conversation by kind of key (the key's name with ids and numbers taken out)."""
        import redis

        client = redis.Redis(port=self.port)
        sizes: Counter[str] = Counter()
        counts: Counter[str] = Counter()
        try:
            names = list(client.scan_iter(count=1000))
            with client.pipeline(transaction=False) as pipe:
                for name in names:
                    pipe.memory_usage(name, samples=0)
                usages = pipe.execute()
        finally:
            client.close()
        for name, usage in zip(names, usages, strict=True):
            # ids in hash tags ({<conversation>}, {<entry>}) go; the tags of the global groups ({outbox}…) stay
            kind = re.sub(r"\{(?=[^}]*\d)[^}]*\}|\{[^}]{12,}\}", "{…}", name.decode(errors="replace"))
            kind = re.sub(r":(?=[^:{}]*\d)[^:{}]+|:[^:{}]{12,}", ":…", kind)
            sizes[kind] += int(usage or 0)
            counts[kind] += 1
        return ", ".join(f"{kind} {size / conversations:,.0f} B ({counts[kind] / conversations:.1f})"
                         for kind, size in sizes.most_common(10))  # fmt: skip

    def stop(self) -> None:
        for process in (self.proxy, self.process, self.replica):
            if process is not None:
                process.terminate()
                process.wait(timeout=10)


class Server:
    """A server process (the floor or ``gateway serve``) on a free port; with ``instances`` > 1, that many identical
    processes, each on its own port with its own log (``log``, ``log.2``…), as behind a load balancer. ``process``
    and ``url`` are the first's."""

    def __init__(self, name: str, command: list[str], env: dict[str, str], log: Path, instances: int = 1) -> None:
        self.name = name
        self.processes: list[subprocess.Popen[bytes]] = []
        self.urls: list[str] = []
        self._logs = []
        for n in range(instances):
            port = free_port()
            while f"http://127.0.0.1:{port}" in self.urls:
                port = free_port()
            self._logs.append((log.with_name(f"{log.name}.{n + 1}") if n else log).open("w"))
            self.processes.append(subprocess.Popen([part.replace("{port}", str(port)) for part in command],
                                                   env={**os.environ, **env}, cwd=ROOT, stdout=self._logs[-1],
                                                   stderr=subprocess.STDOUT))  # fmt: skip
            self.urls.append(f"http://127.0.0.1:{port}")
        self.process, self.url = self.processes[0], self.urls[0]

    def cpu_seconds(self) -> float:
        """CPU seconds of every instance together."""
        return sum(cpu_seconds(process.pid) for process in self.processes)

    async def ready(self, session: ClientSession) -> None:
        deadline = time.monotonic() + 60
        for process, url, log in zip(self.processes, self.urls, self._logs, strict=True):
            while True:
                if process.poll() is not None:
                    raise SystemExit(f"bench: {self.name} exited ({process.returncode}), see {log.name}")
                if time.monotonic() > deadline:
                    raise SystemExit(f"bench: {self.name} did not start")
                try:
                    async with session.get(url + "/healthz") as response:
                        if response.status == 200:
                            break
                except ClientError:
                    pass
                await asyncio.sleep(0.1)

    def problems(self) -> str:
        """The logs' warnings and errors, counted by their first words (the gateway logs no message text)."""
        counts: dict[str, int] = {}
        for log in self._logs:
            for line in Path(log.name).read_text(errors="replace").splitlines():
                if " WARNING " in line or " ERROR " in line:
                    what = re.sub(r"[0-9a-f-]{8,}|\d+", "N", line.split(" ", 3)[-1])[:90]
                    counts[what] = counts.get(what, 0) + 1
        top = sorted(counts.items(), key=lambda pair: -pair[1])[:4]
        return "; ".join(f"{n}x {what}" for what, n in top) or "none"

    async def understanding(self, session: ClientSession) -> dict[str, float]:
        """The embedded model's counters so far (``/metrics``): messages read by the model (or remembered, or a
        button not read), and messages that went on without a reading (a missed second check), by reason; every
        instance's together."""
        counts: dict[str, float] = {}
        for lines in await self._metrics(session):
            for line in lines:
                if line.startswith(
                    (
                        "gateway_understanding_failures_total{",
                        "gateway_understanding_messages_total{",
                        "gateway_understanding_late_total{",
                    )
                ):
                    name, value = line.rsplit(" ", 1)
                    kind = name.removeprefix("gateway_understanding_").replace("_total", "").replace("{", " ")
                    counts[kind.rstrip("}")] = counts.get(kind.rstrip("}"), 0.0) + float(value)
        return counts

    async def _metrics(self, session: ClientSession) -> list[list[str]]:
        """Each instance's ``/metrics`` exposition, as lines."""
        found = []
        for url in self.urls:
            async with session.get(url + "/metrics") as response:
                found.append((await response.text()).splitlines())
        return found

    async def inbox(self, session: ClientSession) -> list[dict[str, float]]:
        """Each instance's ``gateway_inbox_deferred`` counters so far (``/metrics``), by reason (batch, behind,
        busy): the messages it acknowledged once stored in the inbox rather than after processing them."""
        found: list[dict[str, float]] = []
        for lines in await self._metrics(session):
            counts: dict[str, float] = {}
            for line in lines:
                if line.startswith("gateway_inbox_deferred_total{"):
                    name, value = line.rsplit(" ", 1)
                    counts[name.split('reason="', 1)[1].split('"', 1)[0]] = float(value)
            found.append(counts)
        return found

    async def loop(self, session: ClientSession) -> list[dict[str, float]]:
        """Each instance's event loop lateness so far (``gateway/loop_watch.py``): ``gateway_loop_lag_seconds``'s
        cumulative buckets by bound (``count`` under ``inf``) and the holds of 0.5 s or more (``held``)."""
        found: list[dict[str, float]] = []
        for lines in await self._metrics(session):
            counts: dict[str, float] = {}
            for line in lines:
                if line.startswith("gateway_loop_lag_seconds_bucket{"):
                    name, value = line.rsplit(" ", 1)
                    bound = name.split('le="', 1)[1].split('"', 1)[0]
                    counts["inf" if bound == "+Inf" else bound] = float(value)
                elif line.startswith("gateway_loop_held_total "):
                    counts["held"] = float(line.rsplit(" ", 1)[1])
            found.append(counts)
        return found

    def stop(self) -> None:
        for process in self.processes:
            process.send_signal(signal.SIGINT)
        for process, log in zip(self.processes, self._logs, strict=True):
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            log.close()


class Profiler:
    """py-spy sampling a server process into collapsed stacks, from now until :meth:`stop`."""

    def __init__(self, directory: Path, kind: str, pid: int) -> None:
        binary = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
        directory.mkdir(parents=True, exist_ok=True)
        self.out = directory / f"profile-{kind}.txt"
        command = [binary, "record", "--pid", str(pid), "--format", "raw", "--rate", "250", "--nonblocking",
                   "--output", str(self.out)]  # fmt: skip
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def stop(self) -> None:
        stop_gently(self.process)
        print(f"    profile  {self.out}", flush=True)


# ----- the load -------------------------------------------------------------------------------------------------


@dataclass
class Figures:
    name: str
    messages: int = 0
    errors: int = 0
    seconds: float = 0.0
    ack: list[float] = field(default_factory=list)
    cpu_ms: float = 0.0
    redis_cpu_ms: float = 0.0
    redis_reads: float = 0.0  # Redis read events (a command, a pipeline, a MULTI/EXEC) per message: round trips
    duplicates: int = 0  # sent twice (audited against the store; the floor: beyond its walk)
    losses: int = 0  # recorded and never received (the floor: short of its walk)
    disordered: int = 0  # senders whose messages were processed in another order than the generator made them
    disordered_written: int = 0  # … than their bodies were written to the gateway (what the gateway can see)
    mismatched: tuple[int, int] = (0, 0)  # replies beyond / short of what the walks expect
    audited: bool = False  # duplicates, losses and order checked against the store (the gateway)
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return self.messages / self.seconds if self.seconds else 0.0


@dataclass(frozen=True)
class Timeline:
    """One webhook's times (``time.perf_counter``): due (the open loop's schedule), its body written to the gateway
    (before that it waited for one of the generator's connections, as for a provider's), acknowledged."""

    sender: str
    due: float
    written: float | None
    acked: float | None


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


class Load:
    def __init__(self, session: ClientSession, provider: Provider, server: Server, script: list[list[Step]]) -> None:
        self.session, self.provider, self.server, self.script = session, provider, server, script
        self.urls = itertools.cycle(server.urls)  # a load balancer's round robin, per webhook (bench/README.md)
        self.ids = itertools.count()
        self.ack: list[float] = []
        self.errors = 0
        self.error_kinds: dict[str, int] = {}
        self.messages = 0
        self.tag = f"{server.name.rsplit('/', 1)[-1][:2]}{os.getpid() % 1000}"  # senders differ per server
        self.novel = False  # --novel: every typed word message made unique (see parse)
        self.real_ids = False  # --real-ids: inbound mids of Messenger's length (see real_mid)
        self.timeline: dict[str, Timeline] = {}  # message id → when it was due, written, acknowledged

    def text(self, step: Step, number: int) -> str:
        if not self.novel or step.payload is not None or step.text.isdigit():
            return step.text
        word = ""
        while number or not word:  # letters only: a number in "bonjour" could be read as an age
            number, letter = divmod(number, 26)
            word += string.ascii_lowercase[letter]
        return f"{step.text} {word}"

    async def post(self, sender: str, step: Step, scheduled: float | None = None) -> Sender:
        number = next(self.ids)
        mid = real_mid(f"{self.tag}_{number}") if self.real_ids else f"m_{self.tag}_{number}"
        document = messenger_body([messenger_message(sender, self.text(step, number), mid, quick_reply=step.payload)])
        raw, headers = signed_messenger(SECRET, document)
        started = time.perf_counter() if scheduled is None else scheduled
        state = self.provider.sent(sender, step, started)
        state.mids.append(mid)
        request = SimpleNamespace(state=state, mid=mid, written=False, written_at=None)
        try:
            async with self.session.post(
                next(self.urls) + "/webhooks/messenger", data=raw, headers=headers, trace_request_ctx=request
            ) as r:
                await r.read()
                ok, kind = r.status == 200, str(r.status)
        except (ClientError, TimeoutError) as error:
            ok, kind = False, type(error).__name__
        if not ok:
            self.error_kinds[kind] = self.error_kinds.get(kind, 0) + 1
        self.messages += 1
        self.timeline[mid] = Timeline(sender, started, request.written_at, time.perf_counter() if ok else None)
        if ok:
            self.ack.append(time.perf_counter() - started)
        else:
            self.errors += 1
            state.expected -= step.replies  # refused: the sender would be asked to retry, nothing is due
        return state

    async def answered(self, sender: str, step: Step) -> Sender | None:
        """One message and every reply it gets; None when they did not all come within REPLY_TIMEOUT."""
        state = await self.post(sender, step)
        while state.received < state.expected:
            state.arrived.clear()
            try:
                await asyncio.wait_for(state.arrived.wait(), REPLY_TIMEOUT)
            except TimeoutError:
                return None
        return state

    async def walk(self, sender: str, walk: list[Step]) -> float:
        """One conversation to the hand-off, each message after the replies to the previous; the hand-off's ack."""
        handoff = 0.0
        for step in walk:
            before = len(self.ack)
            state = await self.answered(sender, step)
            handoff = self.ack[-1] if len(self.ack) > before else float("nan")
            if state is None:
                return handoff
        return handoff

    async def closed(self, conversations: int, concurrency: int, offset: int) -> None:
        numbers = iter(range(offset, offset + conversations))

        async def walker() -> None:
            for n in numbers:
                await self.walk(f"{self.tag}{n}", self.script[n % len(self.script)])

        await asyncio.gather(*(walker() for _ in range(concurrency)))

    async def opened(self, rate: float, duration: float, gap: float, offset: int) -> None:
        """Open loop: message k at start + k / rate whatever the answers; each conversation every ``gap`` s."""
        slots = max(1, int(rate * gap))
        numbers = itertools.count(offset)
        walkers: list[tuple[str, list[Step], int]] = [("", [], 0)] * slots  # (sender, walk, next step)
        pending: set[asyncio.Task[Sender]] = set()
        start = time.perf_counter()
        for k in range(int(rate * duration)):
            at = start + k / rate
            delay = at - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            sender, walk, index = walkers[k % slots]
            if index >= len(walk):  # a new conversation in this slot
                n = next(numbers)
                sender, walk, index = f"{self.tag}o{n}", self.script[n % len(self.script)], 0
            walkers[k % slots] = (sender, walk, index + 1)
            task = asyncio.create_task(self.post(sender, walk[index], scheduled=at))
            pending.add(task)
            task.add_done_callback(pending.discard)
        if pending:
            await asyncio.wait(pending)


async def waits(load: Load, store_url: str, since: float) -> str:
    """Where the replies to the messages due after ``since`` waited, read from the transcripts: a message's entry
    time is when the gateway began processing it (after the claim and the model, before the lock), the bot's
    entries after it are its replies, the first one's provider id says when the fake received it. Each message
    answered, inline (processing began before its acknowledgement) or through the inbox (after), split into: due →
    written (waiting for one of the generator's connections, as for a provider's), written → acknowledged, written
    → processing, processing → the first reply at the fake (the lock, the writes, the outbox); and how many began
    while replies to their sender's earlier messages were still going out (the outbox sends a conversation's replies
    one after the other), with how long after processing the last of those reached the fake (p50 / p99)."""
    from gateway.store import Author, open_store
    from gateway.testing import named_by_provider, store_keys

    offset = time.time() - time.perf_counter()  # perf_counter → wall clock (the entries' times)
    mine = {mid: t for mid, t in load.timeline.items() if t.due >= since and t.written and t.acked}
    began: dict[str, float] = {}  # a young person's entry id → when its processing began (perf_counter)
    replied: dict[str, float] = {}  # … → when the fake received its first reply
    earlier: dict[str, float] = {}  # … → when the fake received the last reply to its sender's earlier messages
    store = await open_store(store_url, keys=store_keys(store_url))
    received = {
        kept: load.provider.received_at[p] for kept, p in named_by_provider(store, load.provider.received_at).items()
    }
    try:
        senders = {t.sender for t in mine.values()}
        for conversation in await store.list_conversations(datetime.now(UTC) - timedelta(hours=1),
                                                           datetime.now(UTC) + timedelta(days=1)):  # fmt: skip
            if conversation.sender not in senders:
                continue
            current, last = None, 0.0
            for entry in await store.transcript(conversation.id):
                if entry.author == Author.USER:
                    current, began[entry.id], earlier[entry.id] = entry.id, entry.at.timestamp() - offset, last
                elif entry.provider_message_id in received:  # as the store gives it back (Redis: its digest)
                    last = max(last, received[entry.provider_message_id])
                    if current and current not in replied:
                        replied[current] = received[entry.provider_message_id]
    finally:
        await store.close()
    stages: dict[str, list[tuple[float, ...]]] = {"inline": [], "inbox": []}
    behind: dict[str, list[float]] = {"inline": [], "inbox": []}  # processing → the earlier replies all out, if later
    for mid, t in mine.items():
        entry_id = inbound_entry_id(Inbound(ChannelName.MESSENGER, t.sender, mid))
        start, reply = began.get(entry_id), replied.get(entry_id)
        if start is None or reply is None or t.written is None or t.acked is None:
            continue
        path = "inline" if start <= t.acked else "inbox"
        stages[path].append((t.written - t.due, t.acked - t.written, start - t.written, reply - start))
        if earlier.get(entry_id, 0.0) > start:  # its conversation's earlier replies were still going out
            behind[path].append(earlier[entry_id] - start)
    parts = []
    for path, rows in stages.items():
        figures = ", ".join(f"{name} {pct([r[i] for r in rows], 0.5):.0f} / {pct([r[i] for r in rows], 0.99):.0f}"
                            for i, name in enumerate(("due → written", "→ ack", "→ processing", "processing → reply"))
                            )  # fmt: skip
        late = behind[path]
        queued = f", behind earlier replies {len(late):,} ({pct(late, 0.5):.0f} / {pct(late, 0.99):.0f})"
        queued = queued if late else ""
        parts.append(f"{path} {len(rows):,}: {figures}{queued}" if rows else f"{path} 0")
    return "; ".join(parts) + " ms (p50 / p99)"


async def measure(
    name: str,
    server: Server,
    redis: Redis | None,
    run: Callable[[], Awaitable[None]],
    load: Load,
    store_url: str | None = None,
    parts: Path | None = None,
) -> Figures:
    provider = load.provider
    provider.reply_latency.clear()
    load.ack.clear()
    load.error_kinds.clear()
    load.errors = load.messages = 0
    dup0, loss0 = provider.account()
    audit0 = await audit(provider, store_url) if store_url else (0, 0, 0, 0)
    cpu0 = server.cpu_seconds()
    split0, preempted0 = cpu_split(server.process.pid), preempted(server.process.pid)
    rcpu0 = cpu_seconds(redis.process.pid) if redis else 0.0
    reads0 = redis.reads() if redis else 0
    commands0 = redis.commands() if redis else Counter[str]()
    own0 = cpu_seconds(os.getpid())
    monitor = Monitor(redis.port, parts) if parts and redis else None
    started = time.perf_counter()
    await run()
    seconds = time.perf_counter() - started
    await provider.drain()
    if monitor:
        figures_parts = bench_parts(monitor.stop(), load.messages)
    dup, loss = provider.account()
    figures = Figures(name, load.messages, load.errors, seconds, list(load.ack))
    figures.extra["reply"] = f"{pct(provider.reply_latency, 0.5):.1f} / {pct(provider.reply_latency, 0.99):.1f} ms"
    figures.cpu_ms = (server.cpu_seconds() - cpu0) * 1000 / max(1, load.messages)
    if len(server.processes) == 1:
        user, system = (b - a for a, b in zip(split0, cpu_split(server.process.pid), strict=True))
        times, delay = (b - a for a, b in zip(preempted0, preempted(server.process.pid), strict=True))
        figures.extra["cpu"] = (f"user {user * 1000 / max(1, load.messages):.2f} ms, system (the kernel: syscalls)"
                                f" {system * 1000 / max(1, load.messages):.2f} ms per message; preempted"
                                f" {times / max(1, load.messages):.1f} times a message, runnable and waiting for a"
                                f" core {delay * 1000 / max(1, load.messages):.2f} ms a message (not CPU)")  # fmt: skip
    figures.extra["load"] = f"{(cpu_seconds(os.getpid()) - own0) / seconds * 100:.0f} %"
    if redis:
        figures.redis_cpu_ms = (cpu_seconds(redis.process.pid) - rcpu0) * 1000 / max(1, load.messages)
        figures.redis_reads = (redis.reads() - reads0) / max(1, load.messages)
        # the bench's own INFO calls (audit, reads) are a handful against thousands of messages
        calls = redis.commands() - commands0
        figures.extra["commands"] = f"{calls.total() / max(1, load.messages):.1f} per message: " + ", ".join(
            f"{name} {n / max(1, load.messages):.2f}" for name, n in calls.most_common(12)
        )
    if monitor:
        figures.extra["parts"] = "Redis commands and scripts per message by part (MONITOR):\n" + figures_parts
    figures.mismatched = (dup - dup0, loss - loss0)
    if store_url:
        after = await audit(provider, store_url)
        figures.duplicates, figures.losses, figures.disordered, figures.disordered_written = (
            b - a for a, b in zip(audit0, after, strict=True)
        )
        figures.audited = True
    else:
        figures.duplicates, figures.losses = figures.mismatched
    figures.extra["errors"] = ", ".join(f"{n}x {kind}" for kind, n in sorted(load.error_kinds.items()))
    return figures


def inbox_counts(now: list[dict[str, float]], before: list[dict[str, float]]) -> str:
    """The inbox's deferrals (``Server.inbox``) since ``before``, by reason, each instance's joined by " + "."""
    pairs = list(zip(now, before, strict=True))
    reasons = sorted({reason for counts in now for reason in counts})
    each = [
        reason + " " + " + ".join(f"{n.get(reason, 0) - b.get(reason, 0):,.0f}" for n, b in pairs) for reason in reasons
    ]
    return ", ".join(each) or "none"


def loop_counts(now: list[dict[str, float]], before: list[dict[str, float]]) -> str:
    """Each instance's event loop lateness (``Server.loop``) since ``before``: the bucket bounds its p50 and p99 fall
    under (a timer due every 0.25 s: 4 samples a second), and its holds of 0.5 s or more. The loop's lateness is what
    every reply waits for before its turn: its p99 bounds the replies' from below."""

    def under(delta: dict[str, float], q: float) -> str:
        total = delta.get("inf", 0.0)
        for bound in sorted((b for b in delta if b not in ("inf", "held")), key=float):
            if total and delta[bound] >= q * total:
                return f"{float(bound) * 1000:g} ms"
        return "> 10 s" if total else "none"

    each = []
    for n, b in zip(now, before, strict=True):
        delta = {key: value - b.get(key, 0.0) for key, value in n.items()}
        each.append(f"p50 ≤ {under(delta, 0.5)}, p99 ≤ {under(delta, 0.99)}, held ≥ 0.5 s {delta.get('held', 0):.0f}"
                    f" ({delta.get('inf', 0):.0f} samples)")  # fmt: skip
    return " + ".join(each)


def model_counts(now: dict[str, float], before: dict[str, float]) -> str:
    """The embedded model's counters (``Server.understanding``) since ``before``."""
    return ", ".join(f"{kind} {n - before.get(kind, 0):.0f}" for kind, n in sorted(now.items())) or "none"


def show(figures: Figures) -> None:
    ack = f"{pct(figures.ack, 0.5):.1f} / {pct(figures.ack, 0.99):.1f} ms"
    print(f"  {figures.name:<34} {figures.rate:8.0f} msg/s   ack p50/p99 {ack:<18}"
          f" reply p50/p99 {figures.extra['reply']:<20} cpu {figures.cpu_ms:.2f} ms/msg"
          f" (+redis {figures.redis_cpu_ms:.2f}, {figures.redis_reads:.1f} round trips)   errors {figures.errors}"
          f"  dup {figures.duplicates}"
          f"  lost {figures.losses}", flush=True)  # fmt: skip
    if figures.audited and (figures.disordered or any(figures.mismatched)):
        beyond, short = figures.mismatched
        print(f"    order    senders whose messages were processed in another order than the generator made"
              f" them: {figures.disordered}; than their webhooks were written to the gateway:"
              f" {figures.disordered_written}; replies beyond / short of the walks: {beyond} / {short} (answers"
              f" to reordered or timed-out messages, not sends twice or lost)")  # fmt: skip
    print(f"    load     the load generator and fake provider used {figures.extra['load']} of a core")
    for key in ("cpu", "commands", "parts"):
        if key in figures.extra:
            print(f"    {key:<8} {figures.extra[key]}")
    if figures.extra.get("errors"):
        print(f"    errors   {figures.extra['errors']}")


# ----- one server ------------------------------------------------------------------------------------------------


def gateway_env(store: str, flows: Path, provider: FakeAPI, understanding: str = "on") -> dict[str, str]:
    return {
        "GATEWAY_UNDERSTANDING": understanding,  # the embedded model reads every message (off: keywords only)
        "GATEWAY_STORE": store, "GATEWAY_FLOWS": str(flows), "GATEWAY_SECRET_KEY": "bench-secret-key",
        "GATEWAY_DATA_KEY": DATA_KEY,  # a Redis store needs one (every instance opens what the others sealed)
        "MESSENGER_APP_SECRET": SECRET, "MESSENGER_PAGE_ACCESS_TOKEN": "bench-token",
        "MESSENGER_VERIFY_TOKEN": "bench-verify", "MESSENGER_API_URL": provider.url,
        "GATEWAY_LOG_LEVEL": "INFO",
        # Every connection of the load comes from 127.0.0.1, as behind a load balancer: no per-address cap.
        "GATEWAY_MAX_CONNECTIONS_PER_ADDRESS": "100000",
    }  # fmt: skip


async def start_gateway(
    name: str,
    kind: str,
    work: Path,
    db: Path,
    flows: Path,
    provider: Provider,
    understanding: str,
    instances: int = 1,
    unix: bool = False,
    count: Path | None = None,
    delayed: tuple[float, float] | None = None,
) -> tuple[Server, Redis | None, str]:
    """``gateway serve`` as ``gateway/<name>`` on a store of its own (a Redis server started here, in
    ``work/redis-<name>``, or the SQLite file ``db``): the server (not yet ready; ``instances`` processes on the
    one Redis), the Redis, the store's URL (the bench's own, direct). ``delayed`` (ms each way, jitter ms): every
    instance reaches Redis through the delaying proxy (``Redis.delayed``)."""
    redis = Redis(work / f"redis-{name}", unix) if kind == "redis" else None
    store = redis.url if redis else f"sqlite:///{db}"
    if redis:
        await asyncio.sleep(0.5)
    served = redis.delayed(*delayed) if redis and delayed is not None else store
    log = work / f"gateway-{name}.log"
    return gateway_server(name, served, log, flows, provider, understanding, instances, count), redis, store


def gateway_server(
    name: str,
    store: str,
    log: Path,
    flows: Path,
    provider: Provider,
    understanding: str,
    instances: int = 1,
    count: Path | None = None,
    env: dict[str, str] | None = None,
) -> Server:
    """``gateway serve`` as ``gateway/<name>`` on the store at ``store``, its output in ``log`` (not yet ready);
    ``count``: under cProfile, its call counts written to that file when it stops (``bench/counts.py`` reads them);
    ``env``: settings of the bench's own on top of :func:`gateway_env`'s."""
    profiled = [] if count is None else ["-m", "cProfile", "-o", str(count)]
    return Server(f"gateway/{name}", [sys.executable, *profiled, "-m", "gateway.cli", "serve", "--port", "{port}"],
                  {**gateway_env(store, flows, provider, understanding), **(env or {})}, log, instances)  # fmt: skip


async def handoff_latency(load: Load, offset: int) -> str:
    """The hand-off webhook's acknowledgement, one conversation at a time (nothing else running): median."""
    samples = [await load.walk(f"{load.tag}h{offset + n}", load.script[n % len(load.script)])
               for n in range(HANDOFF_SAMPLES)]  # fmt: skip
    return f"{statistics.median(samples) * 1000:.1f} ms"


async def bench_gateway(
    args: argparse.Namespace,
    kind: str,
    work: Path,
    session: ClientSession,
    provider: Provider,
    script: list[list[Step]],
    flows: Path,
) -> tuple[Figures, Figures | None]:
    db = work / "gateway.sqlite3"
    if args.count:
        args.count.mkdir(parents=True, exist_ok=True)
    count = args.count / f"cprofile-{kind}.prof" if args.count else None
    delayed = None if args.redis_delay_ms is None else (args.redis_delay_ms, args.redis_jitter_ms)
    server, redis, store = await start_gateway(kind, kind, work, db, flows, provider, args.understanding,
                                               args.instances, args.unix, count, delayed)  # fmt: skip
    on = f"{kind} ×{args.instances}" if args.instances > 1 else kind
    try:
        await server.ready(session)
        consoles = await Consoles.open(store, server.urls) if args.console else None
        load = Load(session, provider, server, script)
        load.novel, load.real_ids = args.novel, args.real_ids
        await load.walk(f"{load.tag}warm", script[0])
        profiler = Profiler(args.profile, kind, server.process.pid) if args.profile else None
        rss0 = rss_mb(server.process.pid)
        memory0 = (redis.used_memory(), redis.fixed_memory()) if redis else (0, 0)
        keys0 = redis.keys() if redis else 0
        first = min(1000, args.open)
        closed = await measure(f"gateway on {on}, closed loop", server, redis,
                               lambda: load.closed(first, args.connections, 0), load, store,
                               work / "monitor.txt" if args.parts else None)  # fmt: skip
        if profiler:
            profiler.stop()
        if args.bytes:
            show(closed)
            show_bytes(bytes_figures(redis, await store_bytes(redis, db, first), memory0, keys0, first))
            return closed, closed
        at_1000 = await handoff_latency(load, 0)
        rss_walked = rss_mb(server.process.pid)
        walked = first + HANDOFF_SAMPLES + 1
        measured = await store_bytes(redis, db, walked) if args.seed else None  # walked conversations only
        rest = max(0, args.open - first - HANDOFF_SAMPLES)
        if rest and args.seed:
            started = time.perf_counter()
            await seed(store, rest, f"{load.tag}s")
            print(f"    seeded   {rest:,} handed-off conversations by the store API in"
                  f" {time.perf_counter() - started:.0f} s (RSS, {first:,} walked: {rss_walked:.0f} MB)")  # fmt: skip
        elif rest:
            more = await measure("", server, redis, lambda: load.closed(rest, args.connections, first), load, store)
            closed = combine(closed, more)
        at_open = await handoff_latency(load, HANDOFF_SAMPLES)
        handed_off = first + rest + 2 * HANDOFF_SAMPLES + 1
        if measured is None:
            walked, measured = handed_off, await store_bytes(redis, db, handed_off)
        first_of = " (the first instance)" if args.instances > 1 else ""
        closed.extra["rss"] = f"{rss0:.0f} MB at 0, {rss_mb(server.process.pid):.0f} MB at {handed_off:,}{first_of}"
        closed.extra["handoff"] = f"{at_1000} at {first + HANDOFF_SAMPLES + 1:,} open, {at_open} at {handed_off:,}"
        closed.extra.update(bytes_figures(redis, measured, memory0, keys0, walked))
        show(closed)
        for key in ("bytes", "keys", "rss", "handoff"):
            if key in closed.extra:
                print(f"    {key:<8} {closed.extra[key]}")
        model = await server.understanding(session)
        if args.understanding == "on":
            print(f"    model    {model_counts(model, {})}")
        inbox = await server.inbox(session)
        print(f"    inbox    {inbox_counts(inbox, [{} for _ in inbox])} (messages acknowledged once stored)")
        lags = await server.loop(session)
        print(f"    loop     {loop_counts(lags, [{} for _ in lags])} (the event loop's lateness, start to here)")
        opened = None
        if args.duration > 0:
            name = f"gateway on {on}, open loop {args.rate:.0f}/s"
            opened_at = time.perf_counter()
            stalls = [asyncio.get_running_loop().call_later(args.duration * (n + 1) / (len(args.redis_stall_ms) + 1),
                                                            redis.stall, ms)
                      for n, ms in enumerate(args.redis_stall_ms)] if redis and redis.proxy else []  # fmt: skip
            opened = await measure(name, server, redis, lambda: load.opened(args.rate, args.duration, args.gap, 10**6),
                                   load, store)  # fmt: skip
            for stall in stalls:
                stall.cancel()
            show(opened)
            print(f"    inbox    {inbox_counts(await server.inbox(session), inbox)}")
            print(f"    loop     {loop_counts(await server.loop(session), lags)} (the event loop's lateness)")
            print(f"    waits    {await waits(load, store, opened_at)}")
            if args.understanding == "on":
                print(f"    model    {model_counts(await server.understanding(session), model)}")
        if consoles:
            print(f"    consoles {await consoles.close()} frames received by a supervisor's console on each instance")
        print(f"    log      {server.problems()}")
        return closed, opened
    finally:
        server.stop()
        if redis:
            redis.stop()


class Consoles:
    """``--console``: a supervisor's console socket (``/api/events``) open on every instance for the whole run, its
    frames read and counted, as when listeners are at work (each instance is then sent every event)."""

    def __init__(self, session: ClientSession, sockets: list[ClientWebSocketResponse]) -> None:
        self.session, self.sockets = session, sockets
        self.frames = 0
        self.readers = [asyncio.create_task(self._read(ws)) for ws in sockets]

    @classmethod
    async def open(cls, store_url: str, urls: list[str]) -> Consoles:
        from gateway.console.auth import hash_password
        from gateway.console.sessions import SESSION_COOKIE
        from gateway.store import Listener, open_store
        from gateway.testing import store_keys

        store = await open_store(store_url, keys=store_keys(store_url))
        try:
            await store.add_listener(Listener("bench", hash_password("bench-password"), supervisor=True))
        finally:
            await store.close()
        session = ClientSession()
        async with session.post(urls[0] + "/api/session", json={"name": "bench", "password": "bench-password"}) as r:
            cookie = r.cookies[SESSION_COOKIE].value
        sockets = [await session.ws_connect(url + "/api/events", headers={"Cookie": f"{SESSION_COOKIE}={cookie}"})
                   for url in urls]  # fmt: skip
        for ws in sockets:
            await ws.receive_json(timeout=10)  # hello: from here on it is sent every event
        return cls(session, sockets)

    async def _read(self, ws: ClientWebSocketResponse) -> None:
        async for _ in ws:
            self.frames += 1

    async def close(self) -> int:
        for ws in self.sockets:
            await ws.close()
        await asyncio.gather(*self.readers)
        await self.session.close()
        return self.frames


async def store_bytes(redis: Redis | None, db: Path, conversations: int) -> tuple[int, int, str, int]:
    """Redis: (used memory, keys, bytes by kind of key per conversation, the part of used memory that does not grow
    with the data); SQLite: (file bytes, 0, "", 0)."""
    if redis:
        return redis.used_memory(), redis.keys(), redis.breakdown(conversations), redis.fixed_memory()
    with sqlite3.connect(db) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return db.stat().st_size, 0, "", 0


async def seed(store_url: str, count: int, tag: str, concurrency: int = 16) -> None:
    """``count`` more handed-off conversations, written through the store API as the dispatcher writes a walk:
    each a copy of a walked conversation (its record with the engine's state, its transcript, the outbox items of
    its replies marked sent, its queue entry and timers, the last message's processed mark) under a new id and
    sender. Reaches 10,000 open conversations in a minute or two where the closed loop takes most of an hour; the
    gateway process itself handles none of them."""
    from gateway.dispatcher import outbox_item
    from gateway.ids import new_id
    from gateway.store import Author, Delivery, DoneMark, TimerKind, open_store
    from gateway.testing import store_keys

    store = await open_store(store_url, keys=store_keys(store_url))
    try:
        walked = [c for c in await store.conversations_by_status(Status.QUEUED) if c.queue]
        templates = [(c, await store.transcript(c.id)) for c in walked[:48]]
        numbers = iter(range(count))

        async def one(n: int) -> None:
            template, entries = templates[n % len(templates)]
            now = datetime.now(UTC)
            later = now + timedelta(days=1)
            sender = f"{tag}{n}"
            fresh, _ = await store.active_conversation(ChannelName.MESSENGER, sender, now)
            conversation = replace(template, id=fresh.id, sender=sender, pseudonym=fresh.pseudonym, created_at=now,
                                   updated_at=now, queued_at=now, last_inbound_at=now)  # fmt: skip
            assert template.queue is not None
            # the replies pending, as the dispatcher writes them (Redis lists but makes no item for one shown sent)
            outgoing = (Author.BOT, Author.LISTENER)
            copies = [replace(entry, id=new_id(), conversation_id=fresh.id, at=now,
                              delivery=Delivery.PENDING if entry.author in outgoing else entry.delivery)
                      for entry in entries]  # fmt: skip
            replies = [entry for entry in copies if entry.author in outgoing]
            async with store.batch():
                for entry in copies:
                    await store.append_transcript(entry)
                for entry in replies:  # not due before it is marked sent: the gateway's outbox must not send it
                    await store.outbox_put(replace(outbox_item(conversation, entry, now), next_attempt_at=later))
                await store.enqueue(fresh.id, template.queue, template.priority, now)
                await store.set_timer(fresh.id, TimerKind.QUEUE_REASSURE, later)
                await store.set_timer(fresh.id, TimerKind.IDLE_CLOSE, later)
                await store.save_conversation(conversation, done=DoneMark(f"in:seed:{sender}", 8 * 24 * 3600))
            for entry in replies:  # as the outbox worker marks them once the provider took them (reads the item)
                await store.outbox_mark_sent(fresh.id, entry.id, f"m_seed_{entry.id}")

        async def seeder() -> None:
            for n in numbers:
                await one(n)

        await asyncio.gather(*(seeder() for _ in range(concurrency)))
    finally:
        await store.close()


def bytes_figures(
    redis: Redis | None, measured: tuple[int, int, str, int], memory0: tuple[int, int], keys0: int, walked: int
) -> dict[str, str]:
    """The store's bytes per handed-off conversation: Redis's used memory and keys (with the share of each kind of
    key), or the SQLite file's size after a checkpoint."""
    if redis:
        per = (measured[0] - memory0[0]) / walked
        data = per - (measured[3] - memory0[1]) / walked  # the clients' buffers and the scripts' cache left out
        keys = (measured[1] - keys0) / walked
        return {"bytes": f"Redis {per / 1024:.2f} KB ({data / 1024:.2f} KB without the clients' buffers and the"
                         f" scripts' cache) and {keys:.1f} keys per handed-off conversation",
                "keys": measured[2]}  # fmt: skip
    return {"bytes": f"SQLite {measured[0] / walked / 1024:.1f} KB per handed-off conversation"}


def show_bytes(figures: dict[str, str]) -> None:
    for key, value in figures.items():
        print(f"    {key:<8} {value}")


def combine(a: Figures, b: Figures) -> Figures:
    merged = Figures(a.name, a.messages + b.messages, a.errors + b.errors, a.seconds + b.seconds, a.ack + b.ack)
    total = max(1, merged.messages)
    merged.cpu_ms = (a.cpu_ms * a.messages + b.cpu_ms * b.messages) / total
    merged.redis_cpu_ms = (a.redis_cpu_ms * a.messages + b.redis_cpu_ms * b.messages) / total
    merged.redis_reads = (a.redis_reads * a.messages + b.redis_reads * b.messages) / total
    merged.duplicates, merged.losses = a.duplicates + b.duplicates, a.losses + b.losses
    merged.disordered = a.disordered + b.disordered
    merged.disordered_written = a.disordered_written + b.disordered_written
    merged.mismatched = (a.mismatched[0] + b.mismatched[0], a.mismatched[1] + b.mismatched[1])
    merged.audited = a.audited
    merged.extra = {**a.extra}
    return merged


async def bench_floor(
    args: argparse.Namespace, work: Path, session: ClientSession, provider: Provider, script: list[list[Step]]
) -> tuple[Figures, Figures | None]:
    redis = Redis(work / "redis-floor", args.unix)
    await asyncio.sleep(0.5)
    server = Server("floor", [sys.executable, str(ROOT / "bench" / "floor.py"), "{port}", redis.url, provider.url,
                              SECRET], {}, work / "floor.log")  # fmt: skip
    try:
        await server.ready(session)
        load = Load(session, provider, server, floor_walks(script))
        closed = await measure("floor, closed loop", server, redis,
                               lambda: load.closed(args.floor_conversations, args.connections, 0), load)  # fmt: skip
        show(closed)
        opened = None
        if args.duration > 0:
            opened = await measure(f"floor, open loop {args.rate:.0f}/s", server, redis,
                                   lambda: load.opened(args.rate, args.duration, args.gap, 10**6), load)  # fmt: skip
            show(opened)
        return closed, opened
    finally:
        server.stop()
        redis.stop()


def ratios(floor: Figures, gateway: Figures) -> str:
    cpu_floor = floor.cpu_ms + floor.redis_cpu_ms
    cpu_gateway = gateway.cpu_ms + gateway.redis_cpu_ms
    return (
        f"  {gateway.name:<34} msg/s {gateway.rate / floor.rate:.2f}x the floor, ack p99"
        f" {pct(gateway.ack, 0.99) / pct(floor.ack, 0.99):.1f}x, cpu per message {cpu_gateway / cpu_floor:.1f}x"
    )


@contextmanager
def workdir(prefix: str, flows_text: str) -> Iterator[tuple[Path, Path]]:
    """A temporary directory (removed after) holding the bench's flows.yaml: (the directory, the file)."""
    with tempfile.TemporaryDirectory(prefix=prefix) as directory:
        work = Path(directory)
        flows = work / "flows.yaml"
        flows.write_text(flows_text, encoding="utf-8")
        yield work, flows


def machine_line() -> str:
    """The header every load bench prints: the machine, the time and its load (absolute figures depend on them)."""
    return (
        f"machine: {platform.platform()}, {os.cpu_count()} cores, Python {platform.python_version()},"
        f" {datetime.now(UTC):%Y-%m-%d %H:%M} UTC; load average {os.getloadavg()[0]:.1f}"
    )


async def main(args: argparse.Namespace) -> None:
    flows_text = bench_flows((ROOT / "flows.yaml").read_text(encoding="utf-8"))
    script = walks(flows_text)
    per_walk = statistics.mean(len(w) for w in script)
    print(machine_line())
    novel = ", every typed message novel (--novel)" if args.novel else ""
    real = ", message ids of Messenger's length (--real-ids)" if args.real_ids else ""
    instances = f"; {args.instances} gateway instances on one Redis, webhooks round robin" if args.instances > 1 else ""
    unix = "; Redis through its unix socket (--unix), the floor's too" if args.unix else ""
    delayed = (
        ""
        if args.redis_delay_ms is None
        else (
            f"; Redis through a delaying proxy, {args.redis_delay_ms:g} ms each way + up to {args.redis_jitter_ms:g} ms"
            + (f", stalls {args.redis_stall_ms} ms in the open loop" if args.redis_stall_ms else "")
        )
    )
    print(f"understanding (embedded model) {args.understanding}{novel}{real}{instances}{unix}{delayed}")
    print(
        f"walks: {len(script)} to the hand-off, {per_walk:.1f} messages each; {args.connections} connections;"
        f" open loop {args.rate:.0f} msg/s for {args.duration:.0f} s, each conversation every {args.gap} s\n"
    )
    with workdir("gateway-bench-", flows_text) as (work, flows):
        timeout = ClientTimeout(total=60)
        async with (
            Provider() as provider,
            ClientSession(
                connector=TCPConnector(limit=args.connections * 4), timeout=timeout, trace_configs=[write_order()]
            ) as session,
        ):
            provider.real_ids = args.real_ids
            floor = await bench_floor(args, work, session, provider, script) if args.floor and not args.bytes else None
            results: dict[str, tuple[Figures, Figures | None]] = {}
            for kind in args.stores:
                results[kind] = await bench_gateway(args, kind, work, session, provider, script, flows)
        if floor is None:
            return
        print("\nratios (same run):")
        for closed, opened in results.values():
            print(ratios(floor[0], closed))
            if floor[1] is not None and opened is not None:
                print(ratios(floor[1], opened))


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--open", type=int, default=10_000, help="conversations handed off before the last"
                        " hand-off latency and RSS figures (default 10,000)")  # fmt: skip
    parser.add_argument("--floor-conversations", type=int, default=1000)
    parser.add_argument("--connections", type=int, default=32, help="closed loop: conversations at once")
    parser.add_argument("--rate", type=float, default=1000.0, help="open loop: messages per second offered")
    parser.add_argument("--duration", type=float, default=30.0, help="open loop: seconds (0: no open loop)")
    parser.add_argument("--gap", type=float, default=1.0, help="open loop: seconds between one sender's messages")
    parser.add_argument("--understanding", choices=["on", "off"], default="on", help="the gateway's embedded model"
                        " (on, as in production; off: keywords only, to see the message path's own cost)")  # fmt: skip
    parser.add_argument("--bytes", action="store_true", help="the store's bytes per handed-off conversation only:"
                        " --open conversations walked to the hand-off, no floor, no open loop")  # fmt: skip
    parser.add_argument("--seed", action="store_true", help="reach --open by seeding conversations through the store"
                        " API after the first 1,000 walked (copies of walked ones), not walking them all")  # fmt: skip
    parser.add_argument(
        "--parts",
        action="store_true",
        help="Redis's commands and scripts per message by part of"
        " the gateway (inbound, inbox, outbox, events, alert check) in the first closed loop, from"
        " MONITOR (bench/parts.py): counts, its timings slowed",
    )
    parser.add_argument("--no-floor", dest="floor", action="store_false", help="skip the floor (no ratios)")
    parser.add_argument("--profile", type=Path, metavar="DIR", help="sample the gateway with py-spy in"
                        " the first closed loop: DIR/profile-{store}.txt, collapsed stacks")  # fmt: skip
    parser.add_argument(
        "--count",
        type=Path,
        metavar="DIR",
        help="run the gateway under cProfile (much slower:"
        " for its call counts, not its figures): DIR/cprofile-{store}.prof, read by bench/counts.py",
    )
    parser.add_argument("--novel", action="store_true", help="a word of its own added to every typed message"
                        " (not to buttons or numbers): no reading is remembered, the model reads each one (its worst"
                        " case; by default the walks' few typed texts repeat)")  # fmt: skip
    parser.add_argument("--real-ids", action="store_true", help="message ids of a real provider's length: every"
                        " inbound mid and every id the fake provider returns is Messenger-like (m_ and 86"
                        " characters; by default short ids such as m_fake_123)")  # fmt: skip
    parser.add_argument("--stores", nargs="+", default=["redis", "sqlite"], choices=["redis", "sqlite"])
    parser.add_argument("--console", action="store_true", help="a supervisor's console socket open on every"
                        " instance for the whole run (each instance is then sent every event)")  # fmt: skip
    parser.add_argument("--instances", type=int, default=1, help="N identical `gateway serve` processes on one"
                        " Redis, each on its own port, the webhooks sent to them round robin as a load balancer"
                        " does (Redis only: --stores redis); CPU per message is theirs together")  # fmt: skip
    parser.add_argument("--unix", action="store_true", help="the floor and the gateway reach Redis through its unix"
                        " socket (unix://), not TCP on 127.0.0.1")  # fmt: skip
    parser.add_argument("--replica", action="store_true", help="each Redis with a replica (for"
                        " GATEWAY_REDIS_REPLICA_ACKS=1 in the environment: acknowledgements wait for it)")  # fmt: skip
    parser.add_argument("--redis-delay-ms", type=float, help="every gateway instance reaches Redis through a"
                        " delaying proxy (tests/delaying_proxy.py, a process of its own): this many ms each way (a"
                        " round trip twice that), order kept, as Redis across a network")  # fmt: skip
    parser.add_argument("--redis-jitter-ms", type=float, default=0.0, help="with --redis-delay-ms: up to this"
                        " many ms more each way, at random (delays, never reorders)")  # fmt: skip
    parser.add_argument("--redis-stall-ms", type=float, nargs="*", default=[], help="with --redis-delay-ms:"
                        " the proxy passes nothing for this long, at even points of the open loop"
                        " (one a value)")  # fmt: skip
    args = parser.parse_args(argv)
    if args.redis_stall_ms and args.redis_delay_ms is None:
        parser.error("--redis-stall-ms needs --redis-delay-ms (0 for a proxy without delay)")
    global REPLICA
    REPLICA = args.replica
    if args.instances < 1:
        parser.error("--instances must be 1 or more")
    if args.instances > 1 and "sqlite" in args.stores:
        parser.error(f"--instances {args.instances} needs the Redis store (add --stores redis): instances share"
                     " one Redis; a SQLite file belongs to one process")  # fmt: skip
    return args


def run(main: Callable[[argparse.Namespace], Coroutine[Any, Any, None]], arguments: argparse.Namespace) -> None:
    """``main(arguments)`` on uvloop when it is installed (as the gateway runs), else on asyncio's loop."""
    try:
        import uvloop
    except ImportError:
        asyncio.run(main(arguments))
    else:
        uvloop.run(main(arguments))


if __name__ == "__main__":
    run(main, parse())
