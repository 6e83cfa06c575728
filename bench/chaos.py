"""A chaos soak: faults together, under a steady load, then an audit. ``python bench/chaos.py --seed 1``.

Two ``gateway serve`` processes on one redis-server of the run's own (append-only file, ``appendfsync everysec``
as docs/deployment.md recommends), serving the repository's flows.yaml made always open; the replies reach a fake
Graph API in this process (``bench/load.py``'s ``Provider``) under ``/<instance>-<generation>/``, so who sent
what is known. Conversations walk the flow at about ``--rate`` messages a second, each webhook signed as Meta
signs it, sent round robin to the instances that are up and **redelivered** one second after any answer that is
not a 2xx (as Meta does; a small share of acknowledged ones is redelivered too: an acknowledgement lost on the way).

Every ``--every`` seconds (on average, from ``--seed``) one fault, chosen at random: ``kill -9`` of one instance,
started again a few seconds later; a Redis restart (``SHUTDOWN NOSAVE``, down a few seconds, started again on
its files); the fake provider answering 503 for a few seconds; the fake provider hanging for a few seconds (below
the gateway's 15 s send timeout: no send is ambiguous).

After ``--duration`` seconds and a drain, the audit against the store and the fake: every webhook acknowledged at
least once recorded exactly once in its transcript; replies received twice by the fake (within the documented
bound, a send in flight at a crash or a Redis outage, or beyond it); replies recorded as accepted by the provider
and never received; conversations stuck (no engine state, messages left in the inbox, replies still pending);
HTTP 500s; ``/readyz`` of both instances; the supervisor's worker restarts by worker (``/metrics``). Prints
figures, asserts nothing (bench/README.md, "Chaos soak").
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from aiohttp import ClientError, ClientSession, ClientTimeout, web

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # runnable from a checkout without installing

from bench.load import (  # noqa: E402
    SECRET,
    Provider,
    Step,
    bench_flows,
    free_port,
    gateway_env,
    machine_line,
    run,
    walks,
)
from gateway.ids import inbound_entry_id  # noqa: E402
from gateway.inbox import sender_key  # noqa: E402
from gateway.keyed import KeyedHash  # noqa: E402
from gateway.messages import ChannelName, Inbound  # noqa: E402
from gateway.testing import messenger_body, messenger_message, signed_messenger, store_keys  # noqa: E402

REDELIVER_AFTER = 1.0
# s before a kill or a Redis outage (and after the outage: the pool reconnecting) in which a send accepted by the
# provider may not be recorded as sent yet: sent again after its lease, within the documented bound
IN_FLIGHT_MARGIN = 2.0


@dataclass
class Accepted:
    recipient: str
    text: str
    sender: str  # the instance and its generation, from the path
    at: float  # monotonic


class ChaosProvider(Provider):
    """``bench/load.py``'s fake Graph API, noting which instance each accepted reply came from, and when."""

    def __init__(self) -> None:
        super().__init__()
        self.log: list[Accepted] = []

    async def _messages(self, request: web.Request) -> web.Response:
        response = await super()._messages(request)
        body = await request.json()
        if "message" in body and response.status == 200:
            by = request.path.strip("/").split("/", 1)[0]
            self.log.append(
                Accepted(body["recipient"]["id"], str(body["message"].get("text", "")), by, time.monotonic())
            )
        return response


class AofRedis:
    """A redis-server with its append-only file (``appendfsync everysec``), restartable on its port and files."""

    def __init__(self, directory: Path) -> None:
        directory.mkdir(exist_ok=True)
        self.port, self.directory = free_port(), directory
        binary = shutil.which("redis-server")
        if binary is None:
            raise SystemExit("chaos: redis-server is not on PATH (make system-deps)")
        self.command = [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "yes",
                        "--appendfsync", "everysec", "--maxmemory-policy", "noeviction", "--dir", str(directory),
                        "--logfile", str(directory / "redis.log")]  # fmt: skip
        self.process: subprocess.Popen[bytes] | None = None
        self.url = f"redis://127.0.0.1:{self.port}/0"

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["redis-cli", "-p", str(self.port), *args], capture_output=True, text=True)

    async def start(self) -> None:
        self.process = subprocess.Popen(self.command, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        for _ in range(300):
            if self.cli("PING").stdout.strip() == "PONG":
                return
            await asyncio.sleep(0.1)
        raise SystemExit("chaos: redis-server did not start")

    async def shutdown(self) -> None:
        """``SHUTDOWN NOSAVE``: no RDB written; the append-only file is flushed, as on a crash of Redis alone."""
        await asyncio.to_thread(self.cli, "SHUTDOWN", "NOSAVE")
        if self.process is not None:
            await asyncio.to_thread(self.process.wait)
        self.process = None

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=60)


class Instance:
    """One ``gateway serve`` on its own port, killed and started again; each start a new generation, its replies
    under ``/<name>-<generation>/`` at the fake."""

    def __init__(self, name: str, env: dict[str, str], work: Path, provider_url: str) -> None:
        self.name, self.env, self.work, self.provider_url = name, env, work, provider_url
        self.port, self.generation = free_port(), 0
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None
        self.restarts: Counter[str] = Counter()  # worker restarts read from /metrics before each kill
        self.exits: list[str] = []  # the processes that ended on their own (started again, as systemd does): how

    @property
    def up(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self) -> None:
        self.generation += 1
        env = {**os.environ, **self.env, "MESSENGER_API_URL": f"{self.provider_url}/{self.name}-{self.generation}"}
        with (self.work / f"gateway-{self.name}.log").open("ab") as log:
            self.process = subprocess.Popen([sys.executable, "-m", "gateway.cli", "serve", "--port", str(self.port)],
                                            env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)  # fmt: skip

    def kill(self) -> None:
        if self.process is not None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()
        self.process = None

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    async def keep(self) -> None:
        """A process manager's ``Restart=always``, ``RestartSec=1``: a process that ended on its own (not killed
        here) is started again a second later, its exit code noted."""
        while True:
            await asyncio.sleep(0.5)
            if self.process is not None and (code := self.process.poll()) is not None:
                lines = (self.work / f"gateway-{self.name}.log").read_text(errors="replace").splitlines()
                self.exits.append(f"exit {code} after {lines[-1][:160] if lines else 'nothing logged'}")
                self.process = None
                await asyncio.sleep(1.0)
                self.start()

    async def status(self, session: ClientSession, path: str) -> int:
        try:
            async with session.get(self.url + path) as response:
                await response.read()
                return response.status
        except (ClientError, TimeoutError):
            return 0

    async def ready(self, session: ClientSession, limit: float = 180.0) -> bool:
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            if await self.status(session, "/readyz") == 200:
                return True
            await asyncio.sleep(0.2)
        return False

    async def worker_restarts(self, session: ClientSession) -> Counter[str]:
        counts: Counter[str] = Counter()
        try:
            async with session.get(self.url + "/metrics") as response:
                text = await response.text()
        except (ClientError, TimeoutError):
            return counts
        for line in text.splitlines():
            if line.startswith("gateway_worker_restarts_total{"):
                name, value = line.rsplit(" ", 1)
                counts[name.split('worker="', 1)[1].split('"', 1)[0]] += int(float(value))
        return counts


@dataclass
class Fault:
    kind: str
    start: float  # monotonic
    end: float = 0.0
    target: str = ""  # the killed instance's generation, for a kill


@dataclass
class Meta:
    """The provider's side of the webhooks: round robin over the instances that are up, redelivery until a 2xx."""

    instances: list[Instance]
    session: ClientSession
    rng: random.Random
    lost_ack: float
    turn: int = 0
    statuses: Counter[str] = field(default_factory=Counter)
    acknowledged: dict[str, str] = field(default_factory=dict)  # mid → sender
    redelivered: int = 0
    given_up: list[str] = field(default_factory=list)

    def next_up(self) -> Instance:
        for _ in range(len(self.instances)):
            self.turn += 1
            instance = self.instances[self.turn % len(self.instances)]
            if instance.up:
                return instance
        return self.instances[0]  # all down: this post fails, and is redelivered a second later

    async def deliver(self, raw: bytes, headers: dict[str, str], deadline: float) -> bool:
        while time.monotonic() < deadline:
            try:
                async with self.session.post(
                    self.next_up().url + "/webhooks/messenger", data=raw, headers=headers
                ) as response:
                    await response.read()
                    self.statuses[str(response.status)] += 1
                    if 200 <= response.status < 300:
                        return True
            except (ClientError, TimeoutError) as error:
                self.statuses[type(error).__name__] += 1
            self.redelivered += 1
            await asyncio.sleep(REDELIVER_AFTER)
        return False

    async def message(self, sender: str, mid: str, step: Step, deadline: float) -> None:
        document = messenger_body([messenger_message(sender, step.text, mid, quick_reply=step.payload)])
        raw, headers = signed_messenger(SECRET, document)
        if not await self.deliver(raw, headers, deadline):
            self.given_up.append(mid)
            return
        self.acknowledged[mid] = sender
        if self.rng.random() < self.lost_ack:  # the 200 lost on its way back: Meta delivers it again
            self.redelivered += 1
            await self.deliver(raw, headers, deadline)


async def conversations(meta: Meta, script: list[list[Step]], rate: float, gap: float, duration: float) -> int:
    """``rate * gap`` conversations at once, each sending its next message ``gap`` s after the previous one was
    acknowledged, a new one starting when one reaches its hand-off; until ``duration`` s. Senders started."""
    started = 0
    stop = time.monotonic() + duration
    deadline = stop + 600  # a webhook still refused 10 minutes after the load: given up (counted)

    async def slot(number: int) -> None:
        nonlocal started
        await asyncio.sleep(meta.rng.random() * gap)
        while time.monotonic() < stop:
            started += 1
            walk = script[meta.rng.randrange(len(script))]
            sender = f"72{number:04d}{started:08d}"
            for index, step in enumerate(walk):
                if time.monotonic() >= stop:
                    return
                await meta.message(sender, f"m_{sender}_{index}", step, deadline)
                await asyncio.sleep(gap)

    await asyncio.gather(*(slot(n) for n in range(max(1, int(rate * gap)))))
    return started


class Chaos:
    """Faults at random times from one seeded generator, each running on its own (they overlap: a kill during a
    Redis outage during a provider's hang), never the same one twice at once."""

    def __init__(
        self, rng: random.Random, instances: list[Instance], redis: AofRedis, provider: ChaosProvider,
        session: ClientSession,
    ) -> None:  # fmt: skip
        self.rng, self.instances, self.redis, self.provider, self.session = rng, instances, redis, provider, session
        self.faults: list[Fault] = []
        self.busy: set[str] = set()  # "redis", "provider-5xx", "provider-hang", or an instance's name
        self.began = time.monotonic()

    async def inject(self, kind: str) -> None:
        pause = self.rng.uniform(2.0, 8.0)
        victims = [i for i in self.instances if i.name not in self.busy and i.up]
        if (kind == "kill" and not victims) or kind in self.busy:
            return
        victim = self.rng.choice(victims or self.instances)
        held = victim.name if kind == "kill" else kind
        self.busy.add(held)
        fault = Fault(kind, time.monotonic())
        self.faults.append(fault)
        try:
            if kind == "kill":
                victim.restarts += await victim.worker_restarts(self.session)
                fault.target = f"{victim.name}-{victim.generation}"
                fault.start = time.monotonic()
                victim.kill()
                await asyncio.sleep(pause)
                victim.start()
            elif kind == "redis":
                await self.redis.shutdown()
                await asyncio.sleep(pause)
                await self.redis.start()
            elif kind == "provider-5xx":
                self.provider.down()
                await asyncio.sleep(pause)
                self.provider.up()
            else:  # provider-hang
                self.provider.stall()
                await asyncio.sleep(pause)
                self.provider.resume()
        finally:
            fault.end = time.monotonic()
            self.busy.discard(held)
        print(f"  {fault.start - self.began:6.1f}–{fault.end - self.began:5.1f} s  {kind} {fault.target}".rstrip(),
              flush=True)  # fmt: skip

    async def run(self, every: float, duration: float, kinds: list[str]) -> list[Fault]:
        stop = time.monotonic() + duration
        running: set[asyncio.Task[None]] = set()
        while True:
            await asyncio.sleep(self.rng.uniform(0.3, 1.7) * every)
            if time.monotonic() >= stop - 5:
                break
            task = asyncio.create_task(self.inject(self.rng.choice(kinds)))
            running.add(task)
            task.add_done_callback(running.discard)
        if running:
            await asyncio.wait(running)
        return self.faults


async def drained(store_url: str, senders: set[str], limit: float) -> tuple[int, int]:
    """Wait (up to ``limit`` s) until no sender has messages in the inbox and no reply is pending: what is left."""
    from gateway.store import Author, Delivery, open_store

    keyed = KeyedHash("bench-secret-key")  # bench/load.py's GATEWAY_SECRET_KEY
    keys = [sender_key(keyed, Inbound(ChannelName.MESSENGER, s, "")) for s in senders]
    store = await open_store(store_url, keys=store_keys(store_url))
    deadline = time.monotonic() + limit
    try:
        while True:
            waiting = sum([await store.inbox_waiting(key) for key in keys])
            pending = 0
            for conversation in await store.list_conversations(datetime(2000, 1, 1, tzinfo=UTC),
                                                               datetime.now(UTC) + timedelta(days=1)):  # fmt: skip
                entries = await store.transcript(conversation.id)
                pending += sum(e.author is Author.BOT and e.delivery is Delivery.PENDING for e in entries)
            if (waiting == 0 and pending == 0) or time.monotonic() > deadline:
                return waiting, pending
            await asyncio.sleep(2.0)
    finally:
        await store.close()


@dataclass
class Audit:
    processed_once: int = 0
    never_processed: int = 0
    recorded_twice: int = 0
    no_conversation: int = 0
    empty_engine: int = 0
    replies_received: int = 0
    twice_in_bound: int = 0
    twice_by_fault: Counter[str] = field(default_factory=Counter)  # the in-bound ones, by the fault they were in
    twice_beyond: list[str] = field(default_factory=list)
    lost: int = 0


def in_flight(first: Accepted, faults: list[Fault]) -> str | None:
    """The fault a reply was in flight at, "kill" or "redis", or None: accepted just before a kill of its sender,
    or around a Redis outage, its record as sent may not have been written (the documented bound of replies sent
    twice). A kill is named first: a process killed loses its records whatever the store does."""
    for kind in ("kill", "redis"):
        for fault in faults:
            if fault.kind != kind or first.at < fault.start - IN_FLIGHT_MARGIN:
                continue
            if kind == "kill" and first.sender == fault.target and first.at <= fault.end:
                return kind
            if kind == "redis" and first.at <= fault.end + IN_FLIGHT_MARGIN:
                return kind
    return None


async def audit(store_url: str, meta: Meta, provider: ChaosProvider, faults: list[Fault], began: float) -> Audit:
    from gateway.store import Author, Delivery, open_store

    result = Audit()
    store = await open_store(store_url, keys=store_keys(store_url))
    try:
        by_sender: dict[str, list[str]] = {}
        for conversation in await store.list_conversations(datetime(2000, 1, 1, tzinfo=UTC),
                                                           datetime.now(UTC) + timedelta(days=1)):  # fmt: skip
            by_sender.setdefault(conversation.sender, []).append(conversation.id)
            result.empty_engine += not conversation.engine
        users: Counter[str] = Counter()
        by_recipient: dict[str, list[Accepted]] = {}
        for accepted_reply in provider.log:
            by_recipient.setdefault(accepted_reply.recipient, []).append(accepted_reply)
        for sender in set(meta.acknowledged.values()):
            if sender not in by_sender:
                result.no_conversation += 1
                continue
            entries = [e for c in by_sender[sender] for e in await store.transcript(c)]
            users.update(e.id for e in entries if e.author is Author.USER)
            replies = [e for e in entries if e.author in (Author.BOT, Author.LISTENER)]
            recorded = Counter(e.text for e in replies)
            accepted = Counter(e.text for e in replies if e.delivery not in (Delivery.PENDING, Delivery.FAILED))
            mine = by_recipient.get(sender, [])
            received = Counter(a.text for a in mine)
            result.replies_received += sum(received.values())
            result.lost += sum((accepted - received).values())
            for text, extra in (received - recorded).items():
                firsts = [a for a in mine if a.text == text]
                if extra == 1 and firsts and (fault := in_flight(firsts[0], faults)):
                    result.twice_in_bound += 1
                    result.twice_by_fault[fault] += 1
                else:
                    result.twice_beyond.append(
                        f"{len(firsts)} sends of a recorded {recorded[text]}: " + ", ".join(
                            f"{a.sender}@{a.at - began:.1f}s" for a in firsts)
                    )  # fmt: skip
        for mid, sender in meta.acknowledged.items():
            times = users[inbound_entry_id(Inbound(ChannelName.MESSENGER, sender, mid))]
            result.processed_once += times == 1
            result.never_processed += times == 0
            result.recorded_twice += times > 1
    finally:
        await store.close()
    return result


async def main(args: argparse.Namespace) -> None:
    rng = random.Random(args.seed)
    flows_text = bench_flows((ROOT / "flows.yaml").read_text(encoding="utf-8"))
    script = walks(flows_text)
    print(machine_line())
    print(
        f"seed {args.seed}; {args.rate:.0f} msg/s for {args.duration:.0f} s, a fault every ~{args.every:.0f} s"
        f" ({', '.join(args.faults)}); understanding {args.understanding}; 2 instances, Redis AOF everysec"
    )
    with tempfile.TemporaryDirectory(prefix="gateway-chaos-") as directory:
        work = Path(directory)
        flows = work / "flows.yaml"
        flows.write_text(flows_text, encoding="utf-8")
        redis = AofRedis(work / "redis")
        await redis.start()
        async with ChaosProvider() as provider, ClientSession(timeout=ClientTimeout(total=30)) as session:
            env = gateway_env(redis.url, flows, provider, args.understanding)
            env["GATEWAY_LOG_LEVEL"] = "WARNING"
            instances = [Instance(name, env, work, provider.url) for name in ("a", "b")]
            keepers: list[asyncio.Task[None]] = []
            try:
                for instance in instances:
                    instance.start()
                for instance in instances:
                    if not await instance.ready(session):
                        raise SystemExit(f"chaos: instance {instance.name} not ready; see its log")
                keepers += [asyncio.create_task(i.keep()) for i in instances]
                meta = Meta(instances, session, random.Random(args.seed + 1), args.lost_ack)
                began = time.monotonic()
                load = asyncio.create_task(conversations(meta, script, args.rate, args.gap, args.duration))
                chaos = Chaos(rng, instances, redis, provider, session)
                faults = await chaos.run(args.every, args.duration, args.faults)
                started = await load
                loaded = time.monotonic() - began
                ready = [await i.ready(session, 240) for i in instances]
                senders = set(meta.acknowledged.values())
                waiting, pending = await drained(redis.url, senders, args.drain)
                await asyncio.sleep(3)  # a stray resend would show by now
                result = await audit(redis.url, meta, provider, faults, chaos.began)
                readyz = [await i.status(session, "/readyz") for i in instances]
                restarts: Counter[str] = Counter()
                for instance in instances:
                    restarts += instance.restarts + await instance.worker_restarts(session)
            finally:
                for keeper in keepers:
                    keeper.cancel()
                for instance in instances:
                    instance.stop()
                redis.stop()
            problems = Counter[str]()
            for instance in instances:
                for line in (work / f"gateway-{instance.name}.log").read_text(errors="replace").splitlines():
                    if " ERROR " in line or "Traceback" in line:
                        problems[line.split(" ", 3)[-1][:80]] += 1
    kinds = Counter(f.kind for f in faults)
    acked = len(meta.acknowledged)
    print(
        f"\nload: {acked:,} messages acknowledged ({acked / loaded:.1f}/s) in {started:,} conversations;"
        f" {meta.redelivered:,} redeliveries; webhook answers {dict(sorted(meta.statuses.items()))};"
        f" given up {len(meta.given_up)}"
    )
    print(f"faults: {sum(kinds.values())} ({', '.join(f'{k} {n}' for k, n in sorted(kinds.items()))})")
    exits = [code for i in instances for code in i.exits]
    print(f"instances that ended on their own (started again a second later): {len(exits)}")
    for how in Counter(exits).most_common(5):
        print(f"  {how[1]}x {how[0]}")
    print(
        f"ready again after the load: {ready}; drain left: {waiting} senders with inbox items,"
        f" {pending} replies pending"
    )
    print(
        f"inbound: processed once {result.processed_once:,}, never {result.never_processed},"
        f" twice or more {result.recorded_twice}; senders without a conversation {result.no_conversation};"
        f" conversations with an empty engine state {result.empty_engine}"
    )
    print(
        f"replies: {result.replies_received:,} received; twice within the bound (in flight at a fault)"
        f" {result.twice_in_bound} {dict(result.twice_by_fault)}, beyond it {len(result.twice_beyond)};"
        f" lost {result.lost}"
    )
    for line in result.twice_beyond[:10]:
        print(f"  beyond: {line}")
    print(f"HTTP 500: {meta.statuses.get('500', 0)}; /readyz at the end: {readyz}")
    print(f"worker restarts: {dict(sorted(restarts.items())) or 'none'}")
    print(f"log errors: {sum(problems.values())} " + "; ".join(f"{n}x {w}" for w, n in problems.most_common(4)))


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--duration", type=float, default=120.0, help="seconds of load and faults (default 120)")
    parser.add_argument("--rate", type=float, default=20.0, help="messages per second offered (default 20)")
    parser.add_argument("--gap", type=float, default=2.0, help="seconds between one sender's messages")
    parser.add_argument("--every", type=float, default=10.0, help="seconds between faults, on average")
    parser.add_argument("--faults", nargs="+", default=["kill", "redis", "provider-5xx", "provider-hang"],
                        choices=["kill", "redis", "provider-5xx", "provider-hang"])  # fmt: skip
    parser.add_argument("--lost-ack", type=float, default=0.02, help="share of acknowledged webhooks delivered again")
    parser.add_argument("--drain", type=float, default=180.0, help="seconds at most for the drain after the load")
    parser.add_argument("--understanding", choices=["on", "off"], default="on")
    return parser.parse_args(argv)


if __name__ == "__main__":
    run(main, parse())
