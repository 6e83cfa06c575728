"""The console's two reads of a month: a listener's history and a conversation's earlier ones, before and after the
store's indexes of them (``ConversationStore.ended_with``, ``conversations_of``):

    .venv/bin/python bench/history.py                          # SQLite, 5,000 conversations in the month
    .venv/bin/python bench/history.py --redis redis://127.0.0.1:6379/15 --count 5000   # that db is flushed

"before" is what ``console/api.py`` did until 2026-12-05 (the month listed, then filtered); "after" what it does
now. Each read is timed on the event loop (wall time of the awaited call, the store's thread included on SQLite),
median of 20; the records read are counted on Redis (``INFO commandstats``: ``GET``s). Prints figures, asserts
nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import redis

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # runnable from a checkout without installing

from gateway.conversation import Conversation, Status  # noqa: E402
from gateway.messages import ChannelName  # noqa: E402
from gateway.store import Store, open_store  # noqa: E402
from gateway.testing import store_keys  # noqa: E402

NOW = datetime.now(UTC)
MONTH = timedelta(days=30)
LISTENERS = 20
ENDED = (Status.CLOSED, Status.REFERRED, Status.ABANDONED)


def month(count: int) -> list[Conversation]:
    """``count`` ended conversations over the month, 20 listeners, each young person writing twice."""
    made = []
    for n in range(count):
        created = NOW - MONTH * (n / count)
        ended = created + timedelta(minutes=20)
        made.append(Conversation(
            id=f"b{n:07d}", channel=ChannelName.WEBCHAT, sender=f"person-{n // 2}", pseudonym=f"Lynx-{n}",
            created_at=created, updated_at=ended, status=ENDED[n % 3], listener=f"listener{n % LISTENERS}",
            closed_at=ended, outcome="cyberbullying",
        ))  # fmt: skip
    return made


async def history_before(store: Store, name: str) -> list[Conversation]:
    started = await store.list_conversations(NOW - MONTH, NOW + timedelta(seconds=1))
    ended = [c for c in started if not c.active and c.listener == name]
    ended.sort(key=lambda c: c.closed_at or c.updated_at, reverse=True)
    return ended[:50]


async def history_after(store: Store, name: str) -> list[Conversation]:
    return await store.ended_with(name, NOW - MONTH, NOW + timedelta(seconds=1), 50)


async def earlier_before(store: Store, c: Conversation) -> list[Conversation]:
    started = await store.list_conversations(NOW - MONTH, c.created_at)
    return [e for e in reversed(started) if e.channel == c.channel and e.sender == c.sender and e.id != c.id][:10]


async def earlier_after(store: Store, c: Conversation) -> list[Conversation]:
    return await store.conversations_of(c.channel, c.sender, NOW - MONTH, c.created_at, 11)


def gets(url: str | None) -> int:
    if url is None:
        return 0
    with redis.Redis.from_url(url) as client:
        return int(client.info("commandstats").get("cmdstat_get", {}).get("calls", 0))


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, default=5000)
    parser.add_argument("--redis", default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        url = args.redis or f"sqlite:///{directory}/bench.sqlite3"
        if args.redis:
            with redis.Redis.from_url(args.redis) as client:
                client.flushdb()
        store = await open_store(url, keys=store_keys(url))
        try:
            conversations = month(args.count)
            for n in range(0, len(conversations), 500):
                await asyncio.gather(*(store.save_conversation(c) for c in conversations[n : n + 500]))
            opened = conversations[0]  # the latest young person's second conversation: one earlier
            reads: dict[str, Callable[[], Awaitable[list[Conversation]]]] = {
                "history, before": lambda: history_before(store, "listener1"),
                "history, after": lambda: history_after(store, "listener1"),
                "earlier, before": lambda: earlier_before(store, opened),
                "earlier, after": lambda: earlier_after(store, opened),
            }
            print(f"{url.split(':')[0]}, {args.count} conversations in the month, {LISTENERS} listeners")
            for name, read in reads.items():
                times, before = [], gets(args.redis)
                for _ in range(20):
                    t0 = time.perf_counter()
                    found = await read()
                    times.append(time.perf_counter() - t0)
                read_count = (gets(args.redis) - before) / 20
                counted = f", {read_count:.0f} records read (GET)" if args.redis else ""
                print(f"  {name}: {statistics.median(times) * 1000:.2f} ms median, {len(found)} shown{counted}")
        finally:
            await store.close()


if __name__ == "__main__":
    asyncio.run(main())
