"""The supervision board's risk flags against the number of open conversations: ``python bench/flags.py``.

For each store (Redis of its own, SQLite in a temporary file) and each size N (``--sizes``, default 1,000 and
10,000): N open conversations (bot, waiting, with a listener in turn), one in ``--every`` (default 10, about the
model's false alarms) with a flagged message in a transcript of four entries, the others without a transcript (no
version of the board reads theirs). Then ``--calls`` reads of what ``GET /api/supervision/flags`` answers, one at a
time, alternated:

* ``after``: ``console/flagged.py``'s ``flagged`` (the store's index of the open flagged conversations, the 50
  latest: ``ConversationStore.flagged_conversations``);
* ``before``: the same as the board did it before (every open conversation loaded by status, the flagged ones'
  transcripts read, sorted, the 50 latest kept), copied here.

The card is the console's without its language (a flow's look-up, the same in both); the garbage is collected
before each call, unmeasured. Prints per size and version: median and p90 of the wall time, median CPU of this
process and of Redis (from ``/proc``, in ticks of 10 ms), in ms, and how many conversations were shown. Asserts
nothing; compare runs made in the same minutes (the machine is shared).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # runnable from a checkout without installing

from bench.load import Redis, cpu_seconds  # noqa: E402
from gateway.clock import utcnow  # noqa: E402
from gateway.console.flagged import MAX_SHOWN, FlaggedRoles, flagged  # noqa: E402
from gateway.conversation import Conversation, RiskFlag, Status  # noqa: E402
from gateway.messages import ChannelName  # noqa: E402
from gateway.store import Author, Delivery, Store, TranscriptEntry, open_store  # noqa: E402
from gateway.testing import store_keys  # noqa: E402

OPEN = (Status.WITH_LISTENER, Status.QUEUED, Status.BOT)
TEXT = "j'ai reçu des messages bizarres d'un compte que je connais pas, il dit qu'il a des photos de moi"
FLAG = RiskFlag("suicide", 0.87, "model")


def card(conversation: Conversation, now: datetime) -> dict[str, Any]:
    """``ListenerAPI.card`` without the language."""
    return {
        "id": conversation.id, "pseudonym": conversation.pseudonym, "channel": conversation.channel.value,
        "status": conversation.status.value, "queue": conversation.queue, "priority": conversation.priority.value,
        "listener": conversation.listener, "summary": [list(pair) for pair in conversation.summary],
        "route": conversation.route, "flag": conversation.flag.to_dict() if conversation.flag else None,
        "created_at": conversation.created_at.isoformat(),
        "last_inbound_at": conversation.last_inbound_at.isoformat() if conversation.last_inbound_at else None,
        "left_how": conversation.left_how,
    }  # fmt: skip


async def flagged_before(store: FlaggedRoles, now: datetime) -> list[dict[str, Any]]:
    """``console/flagged.py``'s ``flagged`` before the index (2026-12-01, 81a0f7f)."""
    shown = []
    for status in OPEN:
        for conversation in await store.conversations_by_status(status):
            if conversation.flag is None:
                continue
            messages = [{"id": e.id, "at": e.at.isoformat(), "flag": e.flag.to_dict()}
                        for e in await store.transcript(conversation.id) if e.flag is not None]  # fmt: skip
            seen = {k: v for k, v in card(conversation, now).items() if k != "summary"}
            shown.append({**seen, "messages": messages})
    shown.sort(key=lambda c: max((m["at"] for m in c["messages"]), default=""), reverse=True)
    return shown[:MAX_SHOWN]


async def seed(store: Store, first: int, last: int, every: int) -> None:
    """Open conversations ``first`` to ``last - 1``; one in ``every`` flagged, with its four entries."""
    for n in range(first, last):
        conversation, _ = await store.active_conversation(ChannelName.MESSENGER, f"bench-{n:08d}", utcnow())
        conversation.status = OPEN[n % 3]
        if n % every == 0:
            now = utcnow()
            for k, author in enumerate((Author.USER, Author.BOT, Author.USER, Author.BOT)):
                entry = TranscriptEntry(f"{conversation.id}-{k}", conversation.id, now, author, TEXT,
                                        delivery=Delivery.DELIVERED, flag=FLAG if k == 2 else None)  # fmt: skip
                await store.append_transcript(entry)
            conversation.flag, conversation.flagged_at = FLAG, now
        await store.save_conversation(conversation)


async def measure(read: Callable[[], Awaitable[list[dict[str, Any]]]], redis_pid: int | None) -> tuple[float, ...]:
    """Wall, this process's CPU, Redis's CPU (ms), and how many were shown; the garbage of the calls before
    collected first (``before``'s thousands of records would be collected during the next call, whichever it is)."""
    gc.collect()
    redis_cpu = cpu_seconds(redis_pid) if redis_pid else 0.0
    cpu, wall = time.process_time(), time.perf_counter()
    shown = await read()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    redis_cpu = (cpu_seconds(redis_pid) - redis_cpu) if redis_pid else 0.0
    return wall * 1e3, cpu * 1e3, redis_cpu * 1e3, len(shown)


async def one_store(name: str, url: str, args: argparse.Namespace, redis_pid: int | None) -> None:
    store = await open_store(url, keys=store_keys(url))
    try:
        seeded = 0
        for size in args.sizes:
            started = time.perf_counter()
            await seed(store, seeded, size, args.every)
            seeded = size
            print(f"{name:6} N={size:<6} seeded in {time.perf_counter() - started:.1f} s", flush=True)
            versions: dict[str, Callable[[], Awaitable[list[dict[str, Any]]]]] = {
                "before": lambda: flagged_before(store, utcnow()),
                "after": lambda: flagged(store, card, utcnow()),
            }
            figures: dict[str, list[tuple[float, ...]]] = {v: [] for v in versions}
            for call in range(args.calls):
                for version in versions if call % 2 else reversed(versions):
                    figures[version].append(await measure(versions[version], redis_pid))
            for version, rows in figures.items():
                walls = sorted(r[0] for r in rows)
                p90 = walls[min(len(walls) - 1, int(0.9 * len(walls)))]
                cpu, redis_cpu = statistics.median(r[1] for r in rows), statistics.median(r[2] for r in rows)
                shown = f", Redis CPU {redis_cpu:8.2f} ms" if redis_pid else ""
                print(f"{name:6} N={size:<6} {version:6} wall p50 {statistics.median(walls):8.2f} ms, p90 {p90:8.2f}"
                      f" ms, CPU {cpu:8.2f} ms{shown}; {rows[0][3]} shown", flush=True)  # fmt: skip
    finally:
        await store.close()


async def main(args: argparse.Namespace) -> None:
    print(f"load average {os.getloadavg()[0]:.2f}; {args.calls} calls of each; one in {args.every} flagged",
          flush=True)  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="bench-flags-") as work:
        if "redis" in args.stores:
            redis = Redis(Path(work) / "redis")
            try:
                await asyncio.sleep(0.5)
                await one_store("redis", redis.url, args, redis.process.pid)
            finally:
                redis.stop()
        if "sqlite" in args.stores:
            await one_store("sqlite", f"sqlite:///{work}/store/gateway.sqlite3", args, None)
    print(f"load average {os.getloadavg()[0]:.2f}", flush=True)


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000], help="open conversations, growing")
    parser.add_argument("--every", type=int, default=10, help="one conversation in this many is flagged")
    parser.add_argument("--calls", type=int, default=20, help="reads of each version per size")
    parser.add_argument("--stores", nargs="+", default=["redis", "sqlite"], choices=["redis", "sqlite"])
    return parser.parse_args(argv)


if __name__ == "__main__":
    asyncio.run(main(parse()))
