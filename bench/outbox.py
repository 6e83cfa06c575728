"""The outbox alone on Redis: ``python bench/outbox.py [--rate 300] [--duration 10] [--replies 4]``.

Messages' replies are put as the dispatcher puts them (each reply's transcript entry and outbox item, a message's
replies in one batch, then a kick), ``--rate`` messages a second for ``--duration`` s, open loop (message *k* is
due at start + *k*/rate whatever the outbox does), spread over ``--conversations`` conversations, each message
``--replies`` replies (the default flow's hand-off gives 4). One ``Outbox.run``, as the app runs it, delivers them
through the Messenger adapter to the fake Graph API, which runs in a process of its own (its CPU is not counted).

A slow provider (``--hold``: every send answered that many seconds later), a slow store (``--pause``: Redis holds
every command, every ``--pause-every`` s), failing renewals (``--renew-fail``, each after ``--renew-slow`` s) and a
busy event loop (``--stall``) show the outbox lease (``--lease``) at work: the renewals, and the least time a lease
had left when its renewal was answered (what a loop stalled, or a store slow, may eat before another worker could
claim the item).

Prints: p50 / p99 from a message's due time to its first and to its last reply at the fake; CPU ms per reply of
this process (the outbox, and the putting, which is the same work whatever the outbox does) and of Redis; Redis
round trips per reply (read events on client sockets: a pipeline is one) and the commands Redis ran per reply
(``INFO commandstats``: scripts, and all; these do not move with the machine's load); replies sent twice, lost,
and out of their conversation's order. Asserts nothing; compare runs made in the same minutes (the machine is shared).
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import random
import re
import statistics
import sys
import tempfile
import time
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, cast

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # runnable from a checkout without installing

import aiohttp  # noqa: E402
from aiohttp import web  # noqa: E402

from bench.load import Redis, cpu_seconds, pct, run  # noqa: E402
from gateway.channels.messenger import MessengerChannel  # noqa: E402
from gateway.clock import utcnow  # noqa: E402
from gateway.errors import StoreError  # noqa: E402
from gateway.messages import ChannelName, Outbound  # noqa: E402
from gateway.outbox import Outbox  # noqa: E402
from gateway.settings import Settings  # noqa: E402
from gateway.store import Author, OutboxItem, Store, TranscriptEntry, open_store  # noqa: E402
from gateway.store.codec import encode_outbound  # noqa: E402
from gateway.testing import SECRET_KEY, FakeGraphAPI, store_keys  # noqa: E402


class Fake(FakeGraphAPI):
    """The fake Graph API noting when each reply arrived (``time.monotonic``: one clock for both processes);
    ``hold``: a slow provider, every send answered that many seconds after it came."""

    def __init__(self, hold: float = 0.0) -> None:
        super().__init__()
        self.hold = hold
        self.arrivals: list[tuple[str, str, float]] = []
        self.app.router.add_post("/arrivals", self._arrivals)

    async def _messages(self, request: web.Request) -> web.Response:
        if self.hold:
            await asyncio.sleep(self.hold)
        response = await super()._messages(request)
        body = await request.json()
        if "message" in body and response.status == 200:
            self.arrivals.append((body["recipient"]["id"], body["message"]["text"], time.monotonic()))
        self.requests.clear()
        return response

    async def _arrivals(self, _: web.Request) -> web.Response:
        return web.json_response(self.arrivals)


def serve_fake(ports: Any, hold: float = 0.0) -> None:
    async def main() -> None:
        async with Fake(hold) as fake:
            ports.put(fake.url)
            await asyncio.Event().wait()

    run(lambda _: main(), argparse.Namespace())


async def bench(args: argparse.Namespace, redis: Redis, fake_url: str) -> None:
    opened = await open_store(redis.url, keys=store_keys(redis.url))
    store = Renewals(opened, args.renew_fail, args.renew_slow)
    settings = Settings(secret_key=SECRET_KEY, messenger_api_url=fake_url, messenger_page_access_token="token")
    lease = args.lease or settings.outbox_lease_seconds
    async with aiohttp.ClientSession() as session:
        outbox = Outbox(cast(Store, store), {ChannelName.MESSENGER: MessengerChannel(settings, session)},
                        lease_seconds=lease)  # fmt: skip
        worker = asyncio.create_task(outbox.run())
        pauses = asyncio.create_task(pause_redis(redis, args.pause, args.pause_every)) if args.pause else None
        stalls = asyncio.create_task(stall_loop(args.stall, args.pause_every)) if args.stall else None
        due: dict[int, float] = {}

        async def message(k: int) -> None:
            conversation = f"c{k % args.conversations}"
            now = utcnow()
            async with store.batch():
                for n in range(1, args.replies + 1):
                    text = f"{k} {n}"
                    reply = Outbound(f"m{k}-{n}", conversation, ChannelName.MESSENGER, f"psid-{conversation}", text)
                    at = now + timedelta(microseconds=n)
                    await store.append_transcript(TranscriptEntry(reply.id, conversation, at, Author.BOT, text))
                    await store.outbox_put(OutboxItem(reply.id, conversation, encode_outbound(reply), at))
            outbox.kick()

        count = int(args.rate * args.duration)
        cpu, redis_cpu, reads = time.process_time(), cpu_seconds(redis.process.pid), redis.reads()
        commands = command_counts(redis)
        start = time.monotonic()
        puts = []
        for k in range(count):
            due[k] = start + k / args.rate
            if (wait := due[k] - time.monotonic()) > 0:
                await asyncio.sleep(wait)
            puts.append(asyncio.create_task(message(k)))
        await asyncio.gather(*puts)
        arrivals = await drain(session, fake_url, count * args.replies, idle=5 + args.hold)
        for task in (pauses, stalls):
            if task is not None:
                task.cancel()
        cpu, redis_cpu = time.process_time() - cpu, cpu_seconds(redis.process.pid) - redis_cpu
        reads = redis.reads() - reads
        commands = command_counts(redis) - commands
        worker.cancel()
        await asyncio.gather(worker, return_exceptions=True)
    await opened.close()
    show(args, count, due, arrivals, cpu, redis_cpu, reads, commands)
    store.show(lease)


class Renewals:
    """The store, noting each lease renewal's answer: how long the lease it replaced still had to run (the margin
    before another worker could have claimed the item) and how long the call took."""

    def __init__(self, store: Store, fail: float = 0.0, slow: float = 0.0) -> None:
        """``fail``: the share of renewals that wait ``slow`` s, then fail (a store error: a call timed out)."""
        self._store, self.fail, self.slow = store, fail, slow
        self.random = random.Random(1)
        self.margins: list[float] = []
        self.calls: list[float] = []
        self.failed = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    async def outbox_renew(self, conversation_id: str, item_id: str, lease: datetime, until: datetime) -> bool:
        began = time.monotonic()
        if self.random.random() < self.fail:
            self.failed += 1
            await asyncio.sleep(self.slow)
            raise StoreError("bench: a renewal failed on purpose")
        try:
            renewed = await self._store.outbox_renew(conversation_id, item_id, lease, until)
        except Exception:
            self.failed += 1
            raise
        self.calls.append(time.monotonic() - began)
        if renewed:
            self.margins.append((lease - utcnow()).total_seconds())
        return renewed

    def show(self, lease: int) -> None:
        if not self.margins:
            print(f"  lease {lease} s: no renewal (every send shorter than a third of it)")
            return
        margins, calls = sorted(self.margins), sorted(self.calls)
        print(f"  lease {lease} s: {len(margins)} renewals ({self.failed} failed); lease left at the renewal's answer"
              f" min {margins[0]:.2f} s, p1 {margins[len(margins) // 100]:.2f} s, p50 {margins[len(margins) // 2]:.2f}"
              f" s (ideal {2 * lease / 3:.1f}); renewal call p50 {calls[len(calls) // 2] * 1000:.1f} ms,"
              f" max {calls[-1] * 1000:.0f} ms")  # fmt: skip


async def stall_loop(stall_ms: int, every: float) -> None:
    """A busy event loop: every ``every`` s this process's loop is held ``stall_ms`` ms (CPU-bound work on it)."""
    while True:
        await asyncio.sleep(every)
        time.sleep(stall_ms / 1000)


async def pause_redis(redis: Redis, pause_ms: int, every: float) -> None:
    """A slow store: every ``every`` s Redis holds every client's commands ``pause_ms`` ms (``CLIENT PAUSE``)."""
    while True:
        await asyncio.sleep(every)
        await asyncio.to_thread(redis.command, "CLIENT", "PAUSE", str(pause_ms), "ALL")


def command_counts(redis: Redis) -> Counter[str]:
    """The calls of each command Redis ran so far (``INFO commandstats``)."""
    found = re.findall(r"cmdstat_([a-z|]+):calls=(\d+)", redis.command("INFO", "commandstats"))
    return Counter({name: int(calls) for name, calls in found})


async def drain(session: aiohttp.ClientSession, fake_url: str, expected: int, idle: float = 5) -> list[list[Any]]:
    """The fake's arrivals once every reply came (a copy more does not count), or none came for ``idle`` s."""
    last, seen = time.monotonic(), -1
    while True:
        async with session.post(f"{fake_url}/arrivals") as answer:
            arrivals: list[list[Any]] = await answer.json()
        if len({(recipient, text) for recipient, text, _ in arrivals}) >= expected or time.monotonic() - last > idle:
            return arrivals
        if len(arrivals) != seen:
            seen, last = len(arrivals), time.monotonic()
        await asyncio.sleep(0.1)


def show(
    args: argparse.Namespace,
    count: int,
    due: dict[int, float],
    arrivals: list[list[Any]],
    cpu: float,
    redis_cpu: float,
    reads: int,
    commands: Counter[str],
) -> None:
    times: dict[tuple[int, int], float] = {}
    seen: Counter[str] = Counter()
    order: dict[str, list[tuple[int, int]]] = {}
    for recipient, text, at in arrivals:
        k, n = (int(part) for part in text.split())
        seen[text] += 1
        times.setdefault((k, n), at)
        order.setdefault(recipient, []).append((k, n))
    first = [times[(k, 1)] - due[k] for k in range(count) if (k, 1) in times]
    last = [times[(k, args.replies)] - due[k] for k in range(count) if (k, args.replies) in times]
    replies = count * args.replies
    twice = sum(n - 1 for n in seen.values())
    lost = replies - len(times)
    disorder = sum(line != sorted(line) for line in order.values())

    def ms(values: list[float]) -> str:
        return f"{pct(values, 0.5):.1f} / {pct(values, 0.99):.1f} ms" if values else "–"  # pct: ms

    load = os.getloadavg()[0]
    print(f"outbox on redis, {args.rate:g} msg/s × {args.replies} replies for {args.duration:g} s "
          f"({count} messages, {args.conversations} conversations), load average {load:.1f}")  # fmt: skip
    print(f"  due → first reply {ms(first)}   due → last reply {ms(last)}   (p50 / p99)")
    print(f"  cpu {cpu / replies * 1000:.3f} ms/reply (+redis {redis_cpu / replies * 1000:.3f}), "
          f"{reads / replies:.2f} round trips/reply   twice {twice}  lost {lost}  out of order {disorder}")  # fmt: skip
    scripts = commands["evalsha"] + commands["eval"]
    print(f"  redis commands per reply: {commands.total() / replies:.2f}, of which scripts {scripts / replies:.2f}"
          f" (per message: {commands.total() / count:.1f}, {scripts / count:.1f}; the putting's included)")  # fmt: skip
    if last:
        print(f"  mean due → last reply {statistics.fmean(last) * 1000:.1f} ms")


async def main(args: argparse.Namespace) -> None:
    ports: Any = multiprocessing.get_context("spawn").Queue()
    fake = multiprocessing.get_context("spawn").Process(target=serve_fake, args=(ports, args.hold), daemon=True)
    fake.start()
    fake_url = ports.get(timeout=30)
    with tempfile.TemporaryDirectory(prefix="bench-outbox-") as work:
        redis = Redis(Path(work))
        try:
            await asyncio.sleep(0.5)
            await bench(args, redis, fake_url)
        finally:
            redis.stop()
            fake.terminate()


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rate", type=float, default=300.0, help="messages per second offered")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds")
    parser.add_argument("--replies", type=int, default=4, help="replies per message (a hand-off: 4)")
    parser.add_argument("--conversations", type=int, default=1000, help="conversations the messages go to, in turn")
    parser.add_argument("--hold", type=float, default=0.0, help="a slow provider: each send answered after this (s)")
    parser.add_argument("--lease", type=int, default=0, help="the outbox lease (s; default: the settings' default)")
    parser.add_argument("--pause", type=int, default=0, help="a slow store: Redis holds every command this long (ms)")
    parser.add_argument("--stall", type=int, default=0, help="a busy event loop: held this long (ms) …")
    parser.add_argument("--pause-every", type=float, default=5.0, help="… every this many seconds (--pause, --stall)")
    parser.add_argument("--renew-fail", type=float, default=0.0, help="share of lease renewals failed on purpose")
    parser.add_argument("--renew-slow", type=float, default=0.0, help="… each after this many seconds")
    return parser.parse_args(argv)


if __name__ == "__main__":
    run(main, parse())
