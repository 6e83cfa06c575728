"""The gate's cap of open chats per client network, timed alone on a real Redis: ``python bench/capcheck.py
[--caps 10 60] [--repeat 2000]``.

For each cap (10: ``GATEWAY_MAX_WAITING_PER_CLIENT``; 60: ``GATEWAY_MAX_WAITING_PER_SHARED_NETWORK``), a network
below it (cap - 1 open, the dearest case below) and one full (cap open), the check the gate makes for every new web
chat and every held page's try is timed ``--repeat`` times: **count**, the way the gate asked until 2026-12-07
(``open_conversations_of_client(client) >= cap``: ``SMEMBERS`` and one ``GET`` per listed id); **at_cap**,
``client_at_cap(client, cap)`` (the ``SMEMBERS`` alone while the set lists fewer ids than the cap, the records
read at the cap). Since 2026-12-07 (later that day) ``client_at_cap`` is one script (``client_count``) reading the
set and the network's exact set, no record read while they list the same ids, at the cap too.
Printed: the process's CPU (``time.process_time``) and wall time a check, in ms; Redis's commands a check (``INFO
commandstats``: since Redis 7 a script's own calls counted too, so ``client_count`` shows its ``SCARD``,
``SMEMBERS`` and ``SISMEMBER`` besides its ``EVALSHA``); its reads a check (``total_reads_processed``: the round
trips); and Redis's own CPU a check (``used_cpu_user`` + ``used_cpu_sys``, µs). Alternated count / at_cap
``--rounds`` times, the median kept. Never fails on speed.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
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


async def seed(store: Store, client: str, count: int) -> None:
    for n in range(count):
        conversation, _ = await store.active_conversation(ChannelName.WEBCHAT, f"{client}-{n}", T0)
        status = Status.BOT if n % 2 else Status.QUEUED
        await store.save_conversation(replace(conversation, client=client, status=status))


def redis_cpu(redis: Redis) -> float:
    """Redis's own CPU so far (s): ``used_cpu_user`` + ``used_cpu_sys`` of ``INFO cpu``."""
    fields = dict(line.split(":", 1) for line in redis.command("INFO", "cpu").splitlines() if ":" in line)
    return float(fields["used_cpu_user"]) + float(fields["used_cpu_sys"])


async def timed(check: Callable[[], Awaitable[bool]], want: bool, repeat: int) -> tuple[float, float]:
    cpu, wall = time.process_time(), time.perf_counter()
    for _ in range(repeat):
        assert await check() is want
    return (time.process_time() - cpu) * 1000 / repeat, (time.perf_counter() - wall) * 1000 / repeat


async def main(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        redis = Redis(Path(tmp) / "redis")
        try:
            redis.wait_ready()
            store = await open_store(redis.url, keys=store_keys(redis.url))
            try:
                for cap in args.caps:
                    for state, count in (("below", cap - 1), ("full", cap)):
                        client = f"net-{cap}-{state}"
                        await seed(store, client, count)
                        full = count >= cap

                        async def counted(c: str = client, n: int = cap) -> bool:
                            return await store.open_conversations_of_client(c) >= n

                        async def at_cap(c: str = client, n: int = cap) -> bool:
                            return await store.client_at_cap(c, n)

                        figures: dict[str, list[tuple[float, float]]] = {"count": [], "at_cap": []}
                        commands: dict[str, float] = {}
                        reads: dict[str, float] = {}
                        server: dict[str, list[float]] = {"count": [], "at_cap": []}
                        for _ in range(args.rounds):
                            for name, check in (("count", counted), ("at_cap", at_cap)):
                                before, read, used = sum(redis.commands().values()), redis.reads(), redis_cpu(redis)
                                figures[name].append(await timed(check, full, args.repeat))
                                server[name].append((redis_cpu(redis) - used) * 1e6 / args.repeat)
                                reads[name] = (redis.reads() - read - 3) / args.repeat  # INFO's own, three
                                commands[name] = (
                                    sum(redis.commands().values()) - before - 1
                                ) / args.repeat  # INFO's own
                        for name, runs in figures.items():
                            cpu = statistics.median(r[0] for r in runs)
                            wall = statistics.median(r[1] for r in runs)
                            print(f"cap {cap:>3} {state:5} ({count:>2} open) {name:7} CPU {cpu:.3f} ms  wall "
                                  f"{wall:.3f} ms  {commands[name]:.0f} commands, {reads[name]:.2f} reads a check, "
                                  f"Redis CPU {statistics.median(server[name]):.1f} us", flush=True)  # fmt: skip
            finally:
                await store.close()
        finally:
            redis.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--caps", type=int, nargs="+", default=[10, 60])
    parser.add_argument("--repeat", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    asyncio.run(main(parser.parse_args()))
