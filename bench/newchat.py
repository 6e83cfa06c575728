"""The gate's check of a web chat client's open conversations (``Gate.new_chat``), timed alone, on both stores.

``python bench/newchat.py [--open 1000 10000] [--repeat 20]``: for each size, a new store (SQLite in a temporary
directory, then a Redis server of our own) gets that many open web chat conversations (half in the bot, half in
the queue, ten per client), then the check is timed: **before**, the way the gate counted until issue 8 (every
conversation in the bot and in the queue loaded, those of the client counted); **after**, the store's count
(``open_conversations_of_client``). Printed: the median of ``--repeat`` checks, in milliseconds. Never fails on
speed.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # runnable from a checkout without installing

from bench.load import Redis  # noqa: E402
from gateway.conversation import Status  # noqa: E402
from gateway.messages import ChannelName  # noqa: E402
from gateway.store import Store, open_store  # noqa: E402
from gateway.testing import store_keys  # noqa: E402

T0 = datetime(2030, 3, 4, 10, 0, tzinfo=UTC)
PER_CLIENT = 10


async def seed(store: Store, count: int) -> None:
    for n in range(count):
        conversation, _ = await store.active_conversation(ChannelName.WEBCHAT, f"browser-{n}", T0)
        status = Status.BOT if n % 2 else Status.QUEUED
        await store.save_conversation(replace(conversation, client=f"client-{n // PER_CLIENT}", status=status))


async def before(store: Store, client: str) -> int:
    waiting = 0
    for status in (Status.BOT, Status.QUEUED):
        waiting += sum(1 for c in await store.conversations_by_status(status) if c.client == client)
    return waiting


async def median_ms(check: object, store: Store, repeat: int) -> float:
    times = []
    for n in range(repeat):
        started = time.perf_counter()
        assert await check(store, f"client-{n}") == PER_CLIENT  # type: ignore[operator]
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


async def measure(url: str, count: int, repeat: int) -> tuple[float, float]:
    store = await open_store(url, keys=store_keys(url))
    try:
        await seed(store, count)
        return (await median_ms(before, store, repeat),
                await median_ms(lambda s, c: s.open_conversations_of_client(c), store, repeat))  # fmt: skip
    finally:
        await store.close()


async def main(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        redis = Redis(Path(tmp) / "redis")
        try:
            redis.wait_ready()
            for count in args.open:
                for name in ("sqlite", "redis"):
                    if name == "sqlite":
                        url = f"sqlite:///{tmp}/{count}/gateway.sqlite3"
                    else:
                        redis.command("FLUSHALL")
                        url = redis.url
                    old, new = await measure(url, count, args.repeat)
                    print(f"{name:6} {count:>6} open: before {old:8.2f} ms   after {new:6.2f} ms", flush=True)
        finally:
            redis.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--open", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--repeat", type=int, default=20)
    asyncio.run(main(parser.parse_args()))
