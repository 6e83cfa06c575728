"""A transcript write's cost against the transcript's length: ``python bench/transcript.py [--sizes 10 1000]``.

For each store (Redis of its own, SQLite in a temporary file) and each size N: conversations' transcripts are
filled with N entries each (a young person's message and a bot's reply in turn, texts of ordinary length), then
``--ops`` times each of (the calls spread over the conversations, each growing by a few entries at most):

* ``put_entry``: one new entry (``append_transcript``, the young person's message);
* ``reply``: a reply as the dispatcher writes it, its entry and its outbox item in one batch (``put_entry_item``
  on Redis);
* ``delivery``: a recent entry's delivery changed (``set_delivery``, a receipt);
* ``receipt``: a watermark's read receipt (Messenger's ``read``) marking one reply read, sent just before
  (``mark_until``, what ``Dispatcher._handle_watermark`` calls; each conversation's set marked made by a first
  watermark, unmeasured: once per conversation, ``RedisStore._make_unread``); ``receipt_old``: the same as the
  dispatcher did it before (the whole transcript loaded and decoded, then ``set_delivery`` on each reply sent up to
  the mark).

Prints per operation: wall µs (one at a time, so mostly round trips), CPU µs of this process and of Redis (from
``/proc``); a cost independent of the transcript's length gives the same figures at every N. Asserts nothing;
compare runs made in the same minutes (the machine is shared).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # runnable from a checkout without installing

from bench.load import Redis, cpu_seconds  # noqa: E402
from gateway.clock import utcnow  # noqa: E402
from gateway.messages import ChannelName  # noqa: E402
from gateway.store import Author, Delivery, OutboxItem, Store, TranscriptEntry, open_store  # noqa: E402
from gateway.testing import store_keys  # noqa: E402

TEXT = "j'ai reçu des messages bizarres d'un compte que je connais pas, il dit qu'il a des photos de moi"
Op = Callable[[int], Awaitable[object]]
FILLED = 3_000  # entries written before each size's calls (at least three conversations)
EARLY = datetime(2000, 1, 1, tzinfo=UTC)  # a watermark before every reply


def entry(conversation_id: str, n: int, author: Author = Author.USER) -> TranscriptEntry:
    return TranscriptEntry(f"e{n:08d}", conversation_id, utcnow(), author, f"{TEXT} ({n})")


async def fill(store: Store, conversation_id: str, size: int) -> None:
    for n in range(size):
        await store.append_transcript(entry(conversation_id, n, Author.USER if n % 2 else Author.BOT))


async def measure(op: Op, ops: int, redis_pid: int | None) -> tuple[float, float, float]:
    """Wall, this process's CPU and Redis's CPU, µs per call."""
    cpu, redis_cpu, wall = time.process_time(), cpu_seconds(redis_pid) if redis_pid else 0.0, time.perf_counter()
    for n in range(ops):
        await op(n)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    redis_cpu = (cpu_seconds(redis_pid) - redis_cpu) if redis_pid else 0.0
    return wall * 1e6 / ops, cpu * 1e6 / ops, redis_cpu * 1e6 / ops


async def one_store(name: str, url: str, sizes: list[int], ops: int, redis_pid: int | None) -> None:
    store = await open_store(url, keys=store_keys(url))
    try:
        for size in sizes:
            await one_size(store, name, size, ops, redis_pid)
    finally:
        await store.close()


async def one_size(store: Store, name: str, size: int, ops: int, redis_pid: int | None) -> None:
    # the calls spread over conversations of ``size`` entries, so that each grows by a few entries at most
    count = max(3, min(ops, FILLED // size))
    conversations = [(await store.active_conversation(ChannelName.MESSENGER, f"bench-{size}-{c}", utcnow()))[0].id
                     for c in range(count)]  # fmt: skip
    for conversation_id in conversations:
        await fill(store, conversation_id, size)

    def of(n: int) -> str:
        return conversations[n % count]

    async def put_entry(n: int) -> None:
        await store.append_transcript(entry(of(n), size + n))

    async def reply(n: int) -> None:
        reply_entry = entry(of(n), size + ops + n, Author.BOT)
        item = OutboxItem(reply_entry.id, of(n), {"text": reply_entry.text}, utcnow() + timedelta(days=1))
        async with store.batch():
            await store.append_transcript(reply_entry)
            await store.outbox_put(item)

    async def delivery(n: int) -> None:
        await store.set_delivery(of(n), f"e{size + ops + n:08d}", Delivery.SENT, f"pm{n}")

    async def sent_replies(first: int) -> list[tuple[str, datetime]]:
        """A reply per call, each put with its outbox item and sent (not measured): what a receipt marks read."""
        made = []
        for n in range(ops):
            reply_entry = entry(of(n), first + n, Author.BOT)
            async with store.batch():
                await store.append_transcript(reply_entry)
                await store.outbox_put(
                    OutboxItem(reply_entry.id, of(n), {"text": "…"}, reply_entry.at, awaits_read=True)
                )
            await store.set_delivery(of(n), reply_entry.id, Delivery.SENT, f"pm-{first + n}")
            made.append((reply_entry.id, reply_entry.at))
        return made

    read_now = await sent_replies(size + 2 * ops)
    for conversation_id in conversations:  # each set marked made by a first watermark (once per conversation)
        await store.mark_until(conversation_id, EARLY, Delivery.READ)

    async def receipt(n: int) -> None:
        assert await store.mark_until(of(n), read_now[n][1], Delivery.READ) == [read_now[n][0]]

    async def receipt_old(n: int) -> None:
        until = read_old[n][1]
        for found in await store.transcript(of(n)):
            if found.delivery in (Delivery.SENT, Delivery.DELIVERED) and found.at <= until:
                await store.set_delivery(of(n), found.id, Delivery.READ)

    ops_list: list[tuple[str, Op]] = [("put_entry", put_entry), ("reply", reply), ("delivery", delivery)]
    for label, op in [*ops_list, ("receipt", receipt)]:
        await report(name, size, label, op, ops, redis_pid)
    read_old = await sent_replies(size + 3 * ops)
    await report(name, size, "receipt_old", receipt_old, ops, redis_pid)


async def report(name: str, size: int, label: str, op: Op, ops: int, redis_pid: int | None) -> None:
    wall, cpu, redis_cpu = await measure(op, ops, redis_pid)
    shown = f", Redis CPU {redis_cpu:7.1f} µs" if redis_pid else ""
    print(f"{name:7} N={size:<5} {label:11} wall {wall:7.1f} µs, CPU {cpu:7.1f} µs{shown}", flush=True)


async def main(args: argparse.Namespace) -> None:
    print(f"load average {os.getloadavg()[0]:.2f}, {args.ops} calls each", flush=True)
    with tempfile.TemporaryDirectory(prefix="bench-transcript-") as work:
        redis = Redis(Path(work) / "redis")
        try:
            await asyncio.sleep(0.5)
            await one_store("redis", redis.url, args.sizes, args.ops, redis.process.pid)
        finally:
            redis.stop()
        await one_store("sqlite", f"sqlite:///{work}/store/gateway.sqlite3", args.sizes, args.ops, None)
    print(f"load average {os.getloadavg()[0]:.2f}", flush=True)


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 1000], help="transcript lengths")
    parser.add_argument("--ops", type=int, default=300, help="calls of each operation per size")
    return parser.parse_args(argv)


if __name__ == "__main__":
    asyncio.run(main(parse()))
