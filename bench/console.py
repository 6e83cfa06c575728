"""The listeners' console at a national line's peak: ``python bench/console.py``.

For each size N (``--sizes``, default 2,000 and 5,000 waiting): a Redis and one ``gateway serve`` of their own, N
conversations waiting in the queue (written through the store API as the dispatcher's hand-off writes them: the
record, the queue entry), ``--consoles`` listeners (default 40) logged in, each with its console socket open and
behaving as ``console.js`` does: on a ``queue``, ``status`` or ``language`` frame, ``GET /api/queue`` 150 ms after
the first one of a burst (the page's ``scheduleQueue``; until 2026-12-07 after the last one). Then, for ``--seconds``:

* arrivals at ``--rate`` a second (the bench writes a waiting conversation and publishes its ``status`` and
  ``queue`` events, as the dispatcher does at a hand-off);
* ``--actors`` of the listeners in a loop: take a waiting conversation, reply, close (each timed, over HTTP);
* with ``--slow``, one more console socket that never reads (a listener on a bad connection).

``--supervisors N`` (since 2026-12-07): the first N consoles are supervisors' (their ``GET /api/queue`` also lists
every conversation others hold), each with the supervision board open too, reloading ``GET /api/supervision`` 200
ms after the first ``queue``/``status`` frame of a burst (``supervision.js``'s ``loadBoardSoon``). ``--held N``: N
conversations held by listeners who are not at a console (as at a peak: taken, being answered), seeded before.

Printed per size: the first load (``GET /api/queue`` alone: time, bytes, cards), the gateway's CPU seconds per
queue change and per second, the queue reads the gateway made (``gateway_console_queue_reads``), the bytes a
console received per second (frames and queue reloads) and per change, the actions' latency p50/p99, what became
of the slow socket (``gateway_socket_drops``) and the gateway's memory per open console (RSS before and after
opening them, idle). Asserts nothing; see bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import statistics
import sys
import tempfile
import time
from collections.abc import Coroutine
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiohttp import ClientSession, ClientTimeout, ClientWebSocketResponse, TCPConnector, WSMsgType

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # runnable from a checkout without installing

from bench.load import ROOT, Provider, Redis, bench_flows, gateway_server, machine_line, rss_mb, run
from gateway.console.auth import hash_password
from gateway.console.sessions import SESSION_COOKIE
from gateway.conversation import Priority, Status
from gateway.events import QueueChanged, StatusChanged
from gateway.messages import ChannelName
from gateway.store import Listener, Store, open_store
from gateway.testing import store_keys

PASSWORD = "bench-console-password"
QUEUE = "listeners"
RELOAD_DELAY = 0.15  # console.js's scheduleQueue
BOARD_DELAY = 0.2  # supervision.js's loadBoardSoon
BOARDING = ("queue", "status")
RELOADING = ("queue", "status", "language")
PAUSE = 1.0  # seconds between an actor's cycles


async def waiting_one(store: Store, n: int, tag: str) -> str:
    """A conversation handed off and waiting, as the dispatcher writes it (without its transcript)."""
    now = datetime.now(UTC)
    fresh, _ = await store.active_conversation(ChannelName.MESSENGER, f"{tag}{n}", now)
    summary = [("Âge", "15 ans"), ("Sujet", "Cyberharcèlement"), ("Depuis", "une semaine")]
    conversation = replace(fresh, status=Status.QUEUED, queue=QUEUE, queued_at=now, waiting_since=now,
                           last_inbound_at=now, route="listener", summary=summary)  # fmt: skip
    async with store.batch():
        await store.enqueue(fresh.id, QUEUE, Priority.NORMAL, now)
        await store.save_conversation(conversation)
    return fresh.id


async def held_one(store: Store, n: int) -> str:
    """A conversation a listener took and holds (``holder<n % 20>``, not at a console)."""
    conversation_id = await waiting_one(store, n, "h")
    listener = f"holder{n % 20}"
    await store.take(conversation_id, listener, datetime.now(UTC))
    record = await store.get_conversation(conversation_id)
    assert record is not None
    await store.save_conversation(replace(record, status=Status.WITH_LISTENER, listener=listener))
    return conversation_id


@dataclass
class Console:
    name: str
    session: ClientSession
    url: str
    ws: ClientWebSocketResponse | None = None
    frames: int = 0
    frame_bytes: int = 0
    reloads: int = 0
    reload_bytes: int = 0
    reload_seconds: list[float] = field(default_factory=list)
    timer: asyncio.TimerHandle | None = None
    board: bool = False  # a supervisor with the supervision board open too
    boards: int = 0
    board_bytes: int = 0
    board_seconds: list[float] = field(default_factory=list)
    board_timer: asyncio.TimerHandle | None = None
    tasks: set[asyncio.Task[None]] = field(default_factory=set)

    async def open(self, read: bool = True) -> None:
        self.ws = await self.session.ws_connect(self.url + "/api/events", max_msg_size=0)
        await self.ws.receive_json(timeout=30)  # hello
        if read:
            self._keep(self._read())

    def _keep(self, coroutine: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(coroutine)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _read(self) -> None:
        assert self.ws is not None
        async for message in self.ws:
            if message.type != WSMsgType.TEXT:
                break
            self.frames += 1
            self.frame_bytes += len(message.data.encode())
            reloading = any(f'"type": "{k}"' in message.data or f'"type":"{k}"' in message.data for k in RELOADING)
            if reloading and self.timer is None:  # console.js's scheduleQueue: 150 ms after a burst's first event
                self.timer = asyncio.get_running_loop().call_later(RELOAD_DELAY, self._due)
            boarding = any(f'"type": "{k}"' in message.data or f'"type":"{k}"' in message.data for k in BOARDING)
            if self.board and boarding and self.board_timer is None:  # supervision.js, as fixed on 2026-12-07
                self.board_timer = asyncio.get_running_loop().call_later(BOARD_DELAY, self._board_due)

    def _due(self) -> None:
        self.timer = None
        self._keep(self.reload())

    def _board_due(self) -> None:
        self.board_timer = None
        self._keep(self.reload_board())

    async def reload_board(self) -> None:
        started = time.perf_counter()
        async with self.session.get(self.url + "/api/supervision") as response:
            body = await response.read()
        self.boards += 1
        self.board_bytes += len(body)
        self.board_seconds.append(time.perf_counter() - started)

    async def reload(self) -> None:
        started = time.perf_counter()
        async with self.session.get(self.url + "/api/queue") as response:
            body = await response.read()
        self.reloads += 1
        self.reload_bytes += len(body)
        self.reload_seconds.append(time.perf_counter() - started)

    async def close(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
        if self.board_timer is not None:
            self.board_timer.cancel()
        if self.ws is not None:
            await self.ws.close()
        for task in list(self.tasks):
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        await self.session.close()


async def login(url: str, name: str) -> ClientSession:
    session = ClientSession(timeout=ClientTimeout(total=120), connector=TCPConnector(limit=4))
    async with session.post(url + "/api/session", json={"name": name, "password": PASSWORD}) as response:
        if response.status != 200:
            raise SystemExit(f"bench: login of {name} refused ({response.status})")
        session.cookie_jar.update_cookies({SESSION_COOKIE: response.cookies[SESSION_COOKIE].value})
    return session


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def metric(session: ClientSession, url: str, prefix: str) -> float:
    async with session.get(url + "/metrics") as response:
        text = await response.text()
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(prefix))


async def loop_lag(session: ClientSession, url: str) -> list[float]:
    """The loop watch's histogram (since 2026-12-07): seconds late in all, wake-ups, those within 0.1 s, 0.5 s."""
    async with session.get(url + "/metrics") as response:  # one scrape: the four from the same moment
        text = await response.text()
    name = "gateway_loop_lag_seconds"
    wanted = [name + "_sum ", name + "_count ", name + '_bucket{le="0.1"} ', name + '_bucket{le="0.5"} ']
    return [sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(w)) for w in wanted]


async def actor(console: Console, ids: list[str], stop: float, latency: dict[str, list[float]]) -> None:
    """Take a waiting conversation, reply, close; again until ``stop``."""
    numbers = itertools.count()
    while time.perf_counter() < stop and ids:
        conversation = ids.pop(0)
        n = next(numbers)
        steps: tuple[tuple[str, str, dict[str, str]], ...] = (
            ("take", "/take", {}),
            ("reply", "/messages", {"text": "Bonjour, je suis là.", "id": f"r{n}"}),
            ("close", "/close", {"outcome": "cyberbullying", "id": f"c{n}"}),
        )
        for what, path, body in steps:
            started = time.perf_counter()
            async with console.session.post(f"{console.url}/api/conversations/{conversation}{path}", json=body) as r:
                await r.read()
                if r.status >= 300:
                    latency.setdefault(f"{what} refused {r.status}", []).append(0.0)
                    break
            latency.setdefault(what, []).append(time.perf_counter() - started)
        await asyncio.sleep(PAUSE)  # a listener's pace: one conversation a second or so, not as fast as HTTP goes


async def one_size(args: argparse.Namespace, size: int, work: Path, provider: Provider, http: ClientSession) -> None:
    redis = Redis(work / f"redis-{size}")
    await asyncio.sleep(0.5)
    server = gateway_server(f"console-{size}", redis.url, work / f"gateway-{size}.log", work / "flows.yaml",
                            provider, "off")  # fmt: skip
    store = await open_store(redis.url, keys=store_keys(redis.url))
    consoles: list[Console] = []
    try:
        await server.ready(http)
        url, pid = server.url, server.process.pid
        names = [f"listener{n}" for n in range(args.consoles)]
        hashed = hash_password(PASSWORD)
        for n, name in enumerate([*names, "slow"]):
            await store.add_listener(Listener(name, hashed, capacity=3, supervisor=n < args.supervisors))
        started, ids = time.perf_counter(), []
        for first in range(0, size, 200):
            ids += await asyncio.gather(*(waiting_one(store, n, "w") for n in range(first, min(size, first + 200))))
        for first in range(0, args.held, 200):
            await asyncio.gather(*(held_one(store, n) for n in range(first, min(args.held, first + 200))))
        print(f"  {size:,} waiting, {args.held:,} held seeded in {time.perf_counter() - started:.0f} s", flush=True)

        one = Console("listener0", await login(url, "listener0"), url)
        loads, sizes = [], []
        for _ in range(5):
            t0 = time.perf_counter()
            async with one.session.get(url + "/api/queue") as response:
                body = await response.json()
                sizes.append(len(await response.read()))
            loads.append(time.perf_counter() - t0)
        shown = len(body["waiting"])
        print(f"  first load GET /api/queue: median {statistics.median(loads) * 1000:.0f} ms, max"
              f" {max(loads) * 1000:.0f} ms, {sizes[-1] / 1e6:.2f} MB, {shown:,} cards of {size:,} waiting"
              f" (waiting_total {body.get('waiting_total', '-')})", flush=True)  # fmt: skip

        if args.supervisors:
            for what in ("/api/queue", "/api/supervision"):
                loads, sizes = [], []
                for _ in range(5):
                    t0 = time.perf_counter()
                    async with one.session.get(url + what) as response:
                        sizes.append(len(await response.read()))
                    loads.append(time.perf_counter() - t0)
                print(f"  a supervisor's first load GET {what}: median {statistics.median(loads) * 1000:.0f} ms,"
                      f" {sizes[-1] / 1e6:.2f} MB", flush=True)  # fmt: skip

        rss_before = rss_mb(pid)
        consoles = [one] + [Console(name, await login(url, name), url) for name in names[1:]]
        for console in consoles[: args.supervisors]:
            console.board = True
        for console in consoles:
            await console.open()
        slow = None
        if args.slow:
            slow = Console("slow", await login(url, "slow"), url)
            await slow.open(read=False)
        await asyncio.sleep(2)
        rss_after = rss_mb(pid)
        print(f"  memory: {rss_before:.0f} MB before the consoles, {rss_after:.0f} MB with {len(consoles)} open"
              f" (idle): {(rss_after - rss_before) * 1000 / len(consoles):.0f} kB a console", flush=True)  # fmt: skip

        for console in consoles:
            console.frames = console.frame_bytes = console.reloads = console.reload_bytes = 0
            console.boards = console.board_bytes = 0
            console.reload_seconds.clear()
            console.board_seconds.clear()
        reads_before = await metric(http, url, "gateway_console_queue_reads_total")
        lag_before = await loop_lag(http, url)
        cpu_before, t_start = server.cpu_seconds(), time.perf_counter()
        stop = t_start + args.seconds
        latency: dict[str, list[float]] = {}
        pool = ids[: args.actors * 40]
        doing = consoles[args.supervisors :] if len(consoles) > args.supervisors + args.actors else consoles[1:]
        actors = [asyncio.create_task(actor(doing[n], pool, stop, latency)) for n in range(args.actors)]
        arrivals, tag = 0, itertools.count(size)
        while time.perf_counter() < stop:
            new = await waiting_one(store, next(tag), "a")
            await store.publish(StatusChanged(new, Status.QUEUED, QUEUE))
            await store.publish(QueueChanged())
            arrivals += 1
            await asyncio.sleep(max(0.0, t_start + arrivals / args.rate - time.perf_counter()))
        await asyncio.gather(*actors)
        await asyncio.sleep(1.0)  # the last reloads
        seconds = time.perf_counter() - t_start
        cpu = server.cpu_seconds() - cpu_before
        reads = await metric(http, url, "gateway_console_queue_reads_total") - reads_before
        lag = [after - before for after, before in zip(await loop_lag(http, url), lag_before, strict=True)]
        actions = sum(len(v) for k, v in latency.items() if " " not in k)  # takes, replies and closes
        changes = arrivals + len(latency.get("take", [])) + len(latency.get("close", []))  # a reply is not one
        frames = statistics.mean(c.frames for c in consoles)
        received = statistics.mean(c.frame_bytes + c.reload_bytes for c in consoles)
        reloads = sum(c.reloads for c in consoles)
        reload_times = [s for c in consoles for s in c.reload_seconds]
        print(f"  churn {seconds:.0f} s: {arrivals} arrivals, {actions} actions ({changes / seconds:.1f} changes/s);"
              f" gateway CPU {cpu:.1f} s ({cpu / seconds * 100:.0f} % of a core, {cpu / max(1, changes) * 1000:.0f} ms"
              f" a change); {reads:.0f} queue reads of the store", flush=True)  # fmt: skip
        print(f"  a console: {frames / seconds:.1f} frames/s, {received / seconds / 1e6:.2f} MB/s received"
              f" ({received / max(1, changes) / 1e3:.0f} kB a change); {reloads} reloads in all, p50"
              f" {pct(reload_times, 0.5) * 1000:.0f} ms p99 {pct(reload_times, 0.99) * 1000:.0f} ms",
              flush=True)  # fmt: skip
        told = [f"{what} n={len(v)} p50 {pct(v, 0.5) * 1000:.0f} ms p99 {pct(v, 0.99) * 1000:.0f} ms"
                if " " not in what else f"{what}: {len(v)}" for what, v in latency.items()]  # fmt: skip
        print("  actions: " + "; ".join(told), flush=True)
        print(f"  the event loop (gateway_loop_lag_seconds, a wake-up every 0.25 s): {lag[1]:.0f} wake-ups, late"
              f" {lag[0] / max(1, lag[1]) * 1000:.0f} ms on average, {lag[1] - lag[2]:.0f} late 0.1 s or more,"
              f" {lag[1] - lag[3]:.0f} 0.5 s or more", flush=True)  # fmt: skip
        boards = [c for c in consoles if c.board]
        if boards:
            board_times = [s for c in boards for s in c.board_seconds]
            queue_bytes = statistics.mean(c.reload_bytes / max(1, c.reloads) for c in boards)
            print(f"  a supervisor: {statistics.mean(c.boards for c in boards) / seconds:.1f} board reloads/s,"
                  f" p50 {pct(board_times, 0.5) * 1000:.0f} ms p99 {pct(board_times, 0.99) * 1000:.0f} ms,"
                  f" {statistics.mean(c.board_bytes / max(1, c.boards) for c in boards) / 1e3:.1f} kB each;"
                  f" a queue reload {queue_bytes / 1e3:.0f} kB", flush=True)  # fmt: skip
        if slow is not None:
            drops = await metric(http, url, 'gateway_socket_drops_total{reason="queue_full",surface="console"}')
            drops += await metric(http, url, 'gateway_socket_drops_total{reason="send_timeout",surface="console"}')
            print(f"  the slow console (never reads): console sockets dropped {drops:.0f}; the others kept"
                  f" receiving ({min(c.frames for c in consoles)} frames the fewest)", flush=True)  # fmt: skip
            await slow.close()
        print(f"  log: {server.problems()}", flush=True)
    finally:
        for console in consoles:
            await console.close()
        await store.close()
        server.stop()
        redis.stop()


async def main(args: argparse.Namespace) -> None:
    print(machine_line())
    print(f"{args.consoles} consoles, {args.actors} of them taking/replying/closing, arrivals {args.rate}/s,"
          f" {args.seconds} s of churn\n", flush=True)  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="gateway-console-") as directory:
        work = Path(directory)
        (work / "flows.yaml").write_text(bench_flows((ROOT / "flows.yaml").read_text(encoding="utf-8")), "utf-8")
        async with Provider() as provider, ClientSession(timeout=ClientTimeout(total=60)) as http:
            for size in args.sizes:
                print(f"{size:,} waiting", flush=True)
                await one_size(args, size, work, provider, http)


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[2000, 5000], help="conversations waiting")
    parser.add_argument("--consoles", type=int, default=40, help="listeners' consoles open")
    parser.add_argument("--actors", type=int, default=5, help="consoles that take, reply and close")
    parser.add_argument("--rate", type=float, default=5.0, help="arrivals a second")
    parser.add_argument("--seconds", type=float, default=20.0, help="of churn")
    parser.add_argument("--slow", action="store_true", help="one more console socket that never reads")
    parser.add_argument("--supervisors", type=int, default=0, help="of the consoles, supervisors' with the board open")
    parser.add_argument("--held", type=int, default=0, help="conversations held by listeners not at a console")
    return parser.parse_args(argv)


if __name__ == "__main__":
    run(main, parse())
