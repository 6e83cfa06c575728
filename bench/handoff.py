"""Hand-off latency at 1,000 and at 10,000 open conversations, side by side: ``python bench/handoff.py``.

For each store (Redis, then SQLite): two stores of their own (two Redis servers, or two SQLite files) and two
``gateway serve`` processes up at the same time, one store holding ``--small`` open conversations and the other
``--large`` (default 1,000 and 10,000: 48 walked to the hand-off through the gateway, the rest seeded through
the store API as copies of those, ``bench/load.py``'s ``seed``). Then ``--samples`` hand-offs on each gateway,
alternated (small, large, large, small, …: what the machine's neighbours do hits both sizes alike), one at a
time: each walks a conversation of the default flow up to its last message unmeasured, then measures that last
message (the answer that hands off), from its webhook to the queue confirmation's arrival at the fake Graph API.
The samples are shared among ``--rounds`` rounds, each with a fresh pair of gateway processes on the same stores
(a process's own luck stays within its round).

Printed per size: median and p90 of the wall time, of the gateway process's CPU time (every thread, from
``/proc/<pid>/task/*/schedstat``, nanoseconds) and of Redis's CPU time (``INFO cpu``) over that interval; the
gateway's read system calls and Redis's calls by command per hand-off (a count that grows with the size is a
scan, or pages read again); then the ratios large / small of the medians and p90s with a 95 % bootstrap
interval, and the same ratio in each round. Prints figures, asserts nothing. See bench/README.md.
"""

from __future__ import annotations

import argparse
import itertools
import os
import random
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import redis.asyncio as aioredis
from aiohttp import ClientSession, ClientTimeout, TCPConnector

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # runnable from a checkout without installing

from bench.load import (
    ROOT,
    Load,
    Provider,
    Redis,
    Server,
    Step,
    bench_flows,
    gateway_server,
    machine_line,
    run,
    seed,
    start_gateway,
    walks,
    write_order,
)

TEMPLATES = 48  # conversations walked through each gateway before seeding (``seed`` copies up to 48 of them)
RESAMPLES = 2000
WARMING = -1  # the round of a hand-off that is not measured


def thread_cpu_seconds(pid: int) -> float:
    """CPU time of every thread of a process so far, from the scheduler's nanosecond counts (``/proc/<pid>/stat``
    counts in ticks of 10 ms, coarser than a hand-off)."""
    total = 0
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            total += int(Path(f"/proc/{pid}/task/{task}/schedstat").read_text().split()[0])
        except FileNotFoundError:  # a thread that ended between the listing and the read
            continue
    return total / 1e9


def read_calls(pid: int) -> int:
    """Read system calls of a process so far (``/proc/<pid>/io``): SQLite reads a page it does not hold by one."""
    for line in Path(f"/proc/{pid}/io").read_text().splitlines():
        if line.startswith("syscr:"):
            return int(line.split()[1])
    return 0


@dataclass(frozen=True, slots=True)
class Sample:
    round: int  # the pair of gateway processes it was measured with
    wall: float  # seconds from the hand-off's webhook to the queue confirmation at the fake provider
    cpu: float  # seconds of the gateway process's CPU over that interval
    redis_cpu: float  # seconds of Redis's CPU over that interval (0 on SQLite)
    reads: int  # read system calls of the gateway process over that interval


@dataclass
class Side:
    """One gateway on a store of its own holding ``size`` open conversations, and its measured hand-offs."""

    size: int
    name: str
    server: Server
    redis: Redis | None
    store: str
    load: Load
    info: aioredis.Redis | None  # a client of the side's Redis, for INFO
    samples: list[Sample] = field(default_factory=list)
    commands: Counter[str] = field(default_factory=Counter)  # Redis calls by command, over the measured hand-offs
    failed: int = 0  # hand-offs whose replies did not all come
    problems: list[str] = field(default_factory=list)  # each gateway process's log, warnings and errors counted

    async def redis_state(self) -> tuple[float, Counter[str]]:
        """Redis's CPU seconds so far and its calls by command (``INFO cpu``, ``INFO commandstats``)."""
        if self.info is None:
            return 0.0, Counter()
        info = await self.info.info("cpu")
        stats = await self.info.info("commandstats")
        calls = Counter({name.removeprefix("cmdstat_"): int(value["calls"]) for name, value in stats.items()})
        return float(info["used_cpu_sys"]) + float(info["used_cpu_user"]), calls

    async def handoff(self, number: int, round_: int) -> None:
        """One conversation walked to its last message, then that message measured (see the module's docstring)."""
        walk = self.load.script[number % len(self.load.script)]
        sender = f"{self.load.tag}h{number}"
        refused = self.load.errors  # a refused webhook "expects" no reply: answered at once, with none
        for step in walk[:-1]:
            if await self.load.answered(sender, step) is None or self.load.errors > refused:
                self.failed += 1
                return
        pid = self.server.process.pid
        redis0, calls0 = await self.redis_state()
        reads0, cpu0 = read_calls(pid), thread_cpu_seconds(pid)
        started = time.perf_counter()
        state = await self.load.answered(sender, walk[-1])
        cpu, reads = thread_cpu_seconds(pid) - cpu0, read_calls(pid) - reads0
        redis1, calls1 = await self.redis_state()
        if state is None or self.load.errors > refused:  # until 2026-12-03 a refused one counted as a hand-off
            self.failed += 1
            return
        if round_ == WARMING:
            return
        self.samples.append(Sample(round_, state.last_reply_at - started, cpu, redis1 - redis0, reads))
        calls1.subtract(calls0)
        calls1["info"] -= 2  # the two INFO of redis_state before the hand-off
        self.commands.update(+calls1)


def quantile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def interval(small: Sequence[float], large: Sequence[float], q: float, rng: random.Random) -> tuple[float, float]:
    """95 % bootstrap interval of quantile(large) / quantile(small), each side resampled on its own."""
    ratios = sorted(
        quantile(rng.choices(large, k=len(large)), q) / max(1e-9, quantile(rng.choices(small, k=len(small)), q))
        for _ in range(RESAMPLES)
    )
    return ratios[int(0.025 * RESAMPLES)], ratios[int(0.975 * RESAMPLES) - 1]


def ratio(small: Sequence[float], large: Sequence[float], q: float) -> float:
    return quantile(large, q) / max(1e-9, quantile(small, q))


def report(kind: str, small: Side, large: Side, rounds: int) -> None:
    figures: list[tuple[str, Callable[[Sample], float]]] = [
        ("wall", lambda s: s.wall), ("gateway CPU", lambda s: s.cpu)]  # fmt: skip
    if small.redis is not None:
        figures.append(("Redis CPU", lambda s: s.redis_cpu))
    rng = random.Random(8)
    for one in (small, large):
        print(f"  {kind} at {one.size:,} open: {len(one.samples)} hand-offs ({one.failed} without every reply)")
        for name, get in figures:
            values = [get(s) * 1000 for s in one.samples]
            print(f"    {name:<12} median {statistics.median(values):7.2f} ms   p90 {quantile(values, 0.9):7.2f} ms")
        reads = [s.reads for s in one.samples]
        print(f"    gateway read system calls per hand-off: median {statistics.median(reads):.0f},"
              f" mean {statistics.mean(reads):.1f}")  # fmt: skip
        if one.redis is not None:
            per = ", ".join(f"{command} {n / len(one.samples):.1f}" for command, n in one.commands.most_common(12))
            print(f"    Redis calls per hand-off: {per}")
    print(f"  {kind} ratio {large.size:,} / {small.size:,}: all rounds [95 % bootstrap interval];"
          f" then each of the {rounds} rounds (fresh gateway processes)")  # fmt: skip
    for name, get in figures:
        a, b = [get(s) for s in small.samples], [get(s) for s in large.samples]
        for label, q in (("median", 0.5), ("p90", 0.9)):
            low, high = interval(a, b, q, rng)
            each = [ratio([get(s) for s in small.samples if s.round == r], [get(s) for s in large.samples
                                                                            if s.round == r], q)
                    for r in range(rounds)]  # fmt: skip
            print(
                f"    {name:<12} {label:<6} {ratio(a, b, q):5.2f} [{low:.2f}, {high:.2f}]   "
                + ", ".join(f"{r:.2f}" for r in each)
            )


async def side(
    size: int,
    kind: str,
    name: str,
    work: Path,
    session: ClientSession,
    provider: Provider,
    script: list[list[Step]],
    understanding: str,
) -> Side:
    """A gateway on its own store, ready, with ``size`` open conversations (``TEMPLATES`` of them walked)."""
    server, redis, store = await start_gateway(name, kind, work, work / f"{name}.sqlite3", work / "flows.yaml",
                                               provider, understanding)  # fmt: skip
    await server.ready(session)
    load = Load(session, provider, server, script)
    await load.closed(TEMPLATES, 16, 0)
    started = time.perf_counter()
    await seed(store, size - TEMPLATES, f"{load.tag}s")
    seconds = time.perf_counter() - started
    print(f"  {name}: {size:,} open conversations ({size - TEMPLATES:,} seeded in {seconds:.0f} s)", flush=True)
    return Side(size, name, server, redis, store, load, aioredis.from_url(store) if redis else None)


async def restart(one: Side, round_: int, work: Path, session: ClientSession, provider: Provider,
                  understanding: str) -> None:  # fmt: skip
    """The side's gateway replaced by a fresh process on the same store."""
    one.server.stop()
    one.problems.append(one.server.problems())
    log = work / f"gateway-{one.name}-{round_}.log"
    one.server = gateway_server(one.name, one.store, log, work / "flows.yaml", provider, understanding)
    await one.server.ready(session)
    one.load.server = one.server
    # the webhooks go to the fresh process's port: until 2026-12-03 they went on to the stopped one's, refused, and
    # each such hand-off counted as answered with no reply (rounds after the first: a wall time of minus the uptime)
    one.load.urls = itertools.cycle(one.server.urls)


async def compare(args: argparse.Namespace, kind: str, work: Path, session: ClientSession, provider: Provider,
                  script: list[list[Step]]) -> None:  # fmt: skip
    """The two sides, then ``args.rounds`` rounds of alternated hand-offs, each with fresh gateway processes: a
    process's own luck (where its memory landed, what its loops were doing) stays within one round."""
    sides: list[Side] = []
    try:
        for size, label in ((args.small, "a"), (args.large, "b")):
            sides.append(await side(size, kind, f"{label}-{kind}", work, session, provider, script, args.understanding))
        small, large = sides
        per_round = -(-args.samples // args.rounds)
        for round_ in range(args.rounds):
            if round_:
                for one in sides:
                    await restart(one, round_, work, session, provider, args.understanding)
            for n in range(args.warm):  # unmeasured: the first hand-offs of a process pay for its caches
                for one in sides:
                    await one.handoff(10**6 + round_ * args.warm + n, WARMING)
            for n in range(round_ * per_round, min(args.samples, (round_ + 1) * per_round)):
                for one in (small, large) if n % 2 == 0 else (large, small):
                    await one.handoff(n, round_)
        report(kind, small, large, args.rounds)
        for one in sides:
            print(f"    log ({one.server.name}): {'; '.join([*one.problems, one.server.problems()])}")
    finally:
        for one in sides:
            one.server.stop()
            if one.info is not None:
                await one.info.aclose()
            if one.redis is not None:
                one.redis.stop()


async def main(args: argparse.Namespace) -> None:
    flows_text = bench_flows((ROOT / "flows.yaml").read_text(encoding="utf-8"))
    script = walks(flows_text)
    print(machine_line())
    print(
        f"hand-offs at {args.small:,} and {args.large:,} open conversations, {args.samples} each, alternated;"
        f" understanding (embedded model) {args.understanding}\n",
        flush=True,
    )
    with tempfile.TemporaryDirectory(prefix="gateway-handoff-") as directory:
        work = Path(directory)
        (work / "flows.yaml").write_text(flows_text, encoding="utf-8")
        async with (
            Provider() as provider,
            ClientSession(
                connector=TCPConnector(limit=64), timeout=ClientTimeout(total=60), trace_configs=[write_order()]
            ) as session,
        ):
            for kind in args.stores:
                await compare(args, kind, work, session, provider, script)
    print(f"\nload average at the end {os.getloadavg()[0]:.1f}")


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", type=int, default=1000, help="open conversations of the first store")
    parser.add_argument("--large", type=int, default=10_000, help="open conversations of the second store")
    parser.add_argument("--samples", type=int, default=200, help="measured hand-offs on each gateway")
    parser.add_argument("--rounds", type=int, default=4, help="pairs of gateway processes, one after the other;"
                        " the samples are shared among them")  # fmt: skip
    parser.add_argument("--warm", type=int, default=10, help="unmeasured hand-offs on each gateway of a round first")
    parser.add_argument("--stores", nargs="+", default=["redis", "sqlite"], choices=["redis", "sqlite"])
    parser.add_argument("--understanding", choices=["on", "off"], default="off", help="the gateway's embedded"
                        " model (off by default: its cost does not depend on the number of conversations)")  # fmt: skip
    return parser.parse_args(argv)


if __name__ == "__main__":
    run(main, parse())
