"""One store round trip's CPU in the gateway's process: ``python bench/roundtrip.py [--calls N] [--together K]``.

A ``GET`` sent through the store's batcher (``gateway/store/redis_batch.py``) on the store's own pool
(``gateway/store/redis_pool.py``), awaited before the next: every call is a batch of its own, a round trip with
nothing else in it, so what is printed is the batcher's and the pool's cost per batch (the queueing, the task that
sends it, the connection taken and given back, the write, the read, the parse), not Redis's work. ``--together K``:
K calls at once each time (one batch of K). User and system CPU of this process per batch (``getrusage``), three
runs one after the other on a Redis of its own, on uvloop as ``gateway serve`` runs. Counts, not latency; compare
two trees in the same minutes (``PYTHONPATH=<tree>``). Asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # runnable from a checkout without installing

import uvloop  # noqa: E402
from redis.asyncio import Redis as AsyncRedis  # noqa: E402

from bench.load import Redis  # noqa: E402
from gateway.store.redis_batch import AutoPipeline  # noqa: E402
from gateway.store.redis_pool import open_pool  # noqa: E402


async def measure(url: str, calls: int, together: int) -> None:
    pool = open_pool(url, max_connections=100, timeout=10, health_check_interval=30, decode_responses=True,
                     socket_timeout=5)  # fmt: skip
    client = AsyncRedis(connection_pool=pool)
    batcher = AutoPipeline(client)
    try:
        for _ in range(200):  # the server and the connections warm
            await client.ping()
        await batcher.client.set("k", "v")
        for run in range(3):
            before, started = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
            for _ in range(calls):
                if together == 1:
                    await batcher.client.get("k")
                else:
                    await asyncio.gather(*(batcher.client.get("k") for _ in range(together)))
            after, seconds = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter() - started
            user = (after.ru_utime - before.ru_utime) / calls * 1e6
            system = (after.ru_stime - before.ru_stime) / calls * 1e6
            print(f"  run {run + 1}: {calls:,} batches of {together} GET in {seconds:.1f} s: user {user:.1f} µs,"
                  f" system {system:.1f} µs a batch")  # fmt: skip
    finally:
        await batcher.close()
        await client.aclose(close_connection_pool=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=20_000, help="batches a run")
    parser.add_argument("--together", type=int, default=1, help="GETs a batch (sent at once)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-roundtrip-") as work:
        redis = Redis(Path(work) / "redis")
        try:
            redis.wait_ready()
            print(f"{ROOT.name}: the store's batcher, {args.together} GET a batch, each batch awaited before the next")
            uvloop.run(measure(redis.url, args.calls, args.together))
        finally:
            redis.process.terminate()
            redis.process.wait()


if __name__ == "__main__":
    main()
