"""The inbound message path alone, in one process: ``python bench/path.py [--conversations N] [--store sqlite]``.

What a provider webhook's message goes through up to its conversation's batch, with the real components and no
HTTP: the gate (block, message limit), the inbox's check (``Inbox.handle``), the dispatcher (claim, the sender's
conversation, lock, engine, the batch with the release). The flows.yaml walks of ``bench/load.py`` to the
hand-off, ``--concurrency`` conversations at once, on a Redis of its own (or, with ``--store sqlite``, a SQLite
file of its own: its thread's CPU is this process's); the outbox does not run (nothing is sent). Prints, per
message: CPU of this process (the load's own share is small: no HTTP, no fake provider), Redis's CPU, and Redis
round trips (read events on client sockets: a pipeline is one; both 0 on SQLite, whose counters are then in
memory as ``gateway serve`` keeps them). Asserts nothing.

CPU per message moves with the machine's load less than latencies do; compare runs made in the same minutes.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # runnable from a checkout without installing

from bench.load import Redis, Step, bench_flows, cpu_seconds, walks  # noqa: E402
from gateway.clock import utcnow  # noqa: E402
from gateway.dispatcher import Dispatcher  # noqa: E402
from gateway.flowset import FlowSet  # noqa: E402
from gateway.gate import Gate  # noqa: E402
from gateway.inbox import Inbox  # noqa: E402
from gateway.keyed import KeyedHash  # noqa: E402
from gateway.messages import ChannelName, Inbound  # noqa: E402
from gateway.metrics import Metrics  # noqa: E402
from gateway.ratelimit import RateLimits, open_limit_storage  # noqa: E402
from gateway.settings import Settings  # noqa: E402
from gateway.store import open_store  # noqa: E402
from gateway.testing import SECRET_KEY, store_keys  # noqa: E402


async def run(args: argparse.Namespace, redis: Redis, flows_path: Path, round_: int) -> None:
    script = walks(flows_path.read_text(encoding="utf-8"))
    url = f"sqlite:///{flows_path.parent / 'path.sqlite3'}" if args.store == "sqlite" else redis.url
    store = await open_store(url, keys=store_keys(url))
    counters = open_limit_storage(url)
    try:
        flows = FlowSet(flows_path)
        flows.reload()
        metrics, keyed = Metrics(), KeyedHash(SECRET_KEY)
        settings = Settings(secret_key=SECRET_KEY, limit_messages_per_conversation="100000/minute")
        limits = RateLimits.from_settings(settings, counters.storage, metrics)
        dispatcher = Dispatcher(store, flows, clock=utcnow, metrics=metrics)
        gate = Gate(store, flows, limits, keyed, metrics, clock=utcnow, on_outgoing=lambda: None)
        # Every message inline: the inbox's worker does not run here, and a message its busy rule (a webhook
        # inline for 50 ms already) put in the inbox would never be processed, nor counted apart.
        inbox = Inbox(store, dispatcher, metrics, keyed, inline_seconds=0)
        ids = itertools.count()

        async def message(sender: str, step: Step) -> None:
            inbound = Inbound(ChannelName.MESSENGER, sender, f"m{round_}-{next(ids)}", step.text, step.payload)
            keys = inbox.sender_keys([inbound])  # as the webhook handler: the keys, the turn, the gate, the inbox
            async with inbox.turns([inbound], keys):
                if await gate.check(inbound, keys[0]) is None:
                    await inbox.handle([inbound], keys)

        async def walker(numbers: itertools.count[int], count: int, tag: str) -> int:
            sent = 0
            while (n := next(numbers)) < count:
                for step in script[n % len(script)]:
                    await message(f"{tag}{n}", step)
                    sent += 1
            return sent

        await walker(itertools.count(), 2, f"warm{round_}-")
        reads0, cpu0, rcpu0 = redis.reads(), time.process_time(), cpu_seconds(redis.process.pid)
        started = time.perf_counter()
        numbers = itertools.count()
        walkers = (walker(numbers, args.conversations, f"p{round_}-") for _ in range(args.concurrency))
        sent = sum(await asyncio.gather(*walkers))
        seconds = time.perf_counter() - started
        cpu = (time.process_time() - cpu0) * 1000 / sent
        rcpu = (cpu_seconds(redis.process.pid) - rcpu0) * 1000 / sent
        trips = (redis.reads() - reads0 - 2) / sent  # ``reads`` itself: redis-cli connects, then asks
        print(
            f"  {sent} messages in {seconds:.1f} s ({sent / seconds:.0f} msg/s), load average"
            f" {os.getloadavg()[0]:.1f}: cpu {cpu:.3f} ms/msg (+redis {rcpu:.3f}), {trips:.2f} round trips/msg"
        )
    finally:
        await counters.close()
        await store.close()


async def main(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="gateway-path-") as directory:
        work = Path(directory)
        flows = work / "flows.yaml"
        flows.write_text(bench_flows((ROOT / "flows.yaml").read_text(encoding="utf-8")), encoding="utf-8")
        redis = Redis(work / "redis")
        try:
            await asyncio.sleep(0.5)
            for round_ in range(args.repeat):  # new senders and message ids each round: no duplicates
                await run(args, redis, flows, round_)
        finally:
            redis.stop()


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--conversations", type=int, default=300, help="walks to the hand-off (default 300)")
    parser.add_argument("--concurrency", type=int, default=8, help="conversations at once (default 8)")
    parser.add_argument("--repeat", type=int, default=1, help="runs, one after the other, on the same store")
    parser.add_argument("--store", choices=["redis", "sqlite"], default="redis", help="the store (default redis)")
    return parser.parse_args(argv)


if __name__ == "__main__":
    arguments = parse()
    try:
        import uvloop  # as ``gateway serve`` runs (gateway/cli.py)
    except ImportError:
        asyncio.run(main(arguments))
    else:
        uvloop.run(main(arguments))
