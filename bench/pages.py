"""Many web chat pages open at once on one instance: ``python bench/pages.py [--pages 2000] [--active 50]``.

A national line's evening has hundreds of young people on the web chat at once, most of them reading or waiting in
the queue, a few typing. This bench opens that crowd against one ``gateway serve`` on a Redis of its own and
measures what an open page costs and whether the pages that talk are slowed by the ones that only stay open:

1. ``--active`` pages open (each its own client address in ``X-Forwarded-For``, as behind a load balancer) and are
   greeted; each sends the next step of a walk of the default flow at ``--rate`` messages a second in all, one
   message a page at a time: the **round with few pages open** (acknowledgement and first reply latencies);
2. ``--pages`` more pages open (``--concurrency`` connecting at once) and are greeted: how long that took, the
   gateway's RSS and open files before and after (**KB and files per open page**), its CPU per opened page, and
   Redis's memory, clients and pub/sub channels;
3. the same active pages send their next step again, the crowd idle but open: the **round with the crowd open**;
4. every page of the crowd sends its first answer at ``--rate``: the **crowd's round** (losses: a message never
   acknowledged, or acknowledged and never answered, within ``--patience`` seconds); with ``--drop``, right after
   Redis dropped every connection of the gateway's (``CLIENT KILL``, as a restart or a failover does, the data
   kept): every page's subscription is made again while the crowd talks.

Prints figures; asserts nothing. A page here does what ``gateway/webchat_static/chat.js`` does on the wire (hello,
message with an id, a ``delivered`` receipt for each bot entry), without reconnecting: every close is counted.
How late the gateway's event loop woke is printed after the crowd's round and again once every page closed (all at
once, as a proxy restarting closes them): the loop_watch lines printed at the end cover both.
The model is off by default (``--understanding on`` reads every message: then its CPU, not the sockets', leads).

``--instances 2 --kill`` (since 2026-12-07): two ``gateway serve`` on the one Redis, ``--pages`` pages spread over
them, each a page that reconnects as chat.js does (``bench/chaos_webchat.py``'s ``WebChatClient``); once all are in
session, ``kill -9`` of the second instance, and every page says its next step (``--kill-after S``: first, the kill
S s later). Printed: how long until the killed instance's pages are back in session, the hellos the survivor took
at once, its loop's lateness, and the store's audit (acknowledged and lost, recorded twice, never acknowledged,
replies never received, pages given a new conversation). The active pages and the rounds above are not run then.
With ``--talk-rate R`` (since 2026-12-07) the pages that stay on the survivor talk at R messages a second in all from
``--talk-before`` s before the kill to as long after the last page is back, and the killed pages say nothing (the
herd alone): their ack and first reply latency printed before the kill, during the herd and after.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import secrets
import signal
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import ClientError, ClientSession, ClientTimeout, ClientWebSocketResponse, TCPConnector, WSMsgType

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # runnable from a checkout without installing

from bench.chaos_webchat import Tally, WebChatClient, WebChats, audit_webchat  # noqa: E402
from bench.load import (  # noqa: E402
    Provider,
    Redis,
    Server,
    Step,
    bench_flows,
    cpu_seconds,
    gateway_server,
    machine_line,
    pct,
    rss_mb,
    run,
    walks,
    workdir,
)


@dataclass
class Page:
    """One young person's page: its socket, its token once greeted, its walk and what it measured."""

    number: int
    steps: list[Step]
    ws: ClientWebSocketResponse | None = None
    token: str | None = None
    step: int = 1  # the walk's next step (0 is "bonjour": the hello greets)
    bot_entries: int = 0
    seen: set[str] = field(default_factory=set)  # the bot entries' ids shown
    resyncs: int = 0
    greeted: asyncio.Event = field(default_factory=asyncio.Event)
    acked: dict[str, float] = field(default_factory=dict)  # message id -> when its ack came (monotonic)
    answered: dict[str, float] = field(default_factory=dict)  # message id -> when the first bot entry after it came
    waiting: str | None = None  # the message id whose first reply is awaited
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    closes: Counter[str] = field(default_factory=Counter)
    reader: asyncio.Task[None] | None = None

    @property
    def address(self) -> str:
        """A client address of its own, each in a /24 of its own (the per-network limits see one young person)."""
        return f"10.{self.number // 256 % 256}.{self.number % 256}.7"

    async def open(self, session: ClientSession, url: str) -> None:
        self.ws = await session.ws_connect(url + "/chat/ws", headers={"X-Forwarded-For": self.address})
        await self.ws.send_json({"type": "hello", "token": None, "opening": secrets.token_urlsafe(18),
                                 "language": "fr"})  # fmt: skip
        self.reader = asyncio.create_task(self._read(), name=f"page-{self.number}")

    async def _read(self) -> None:
        assert self.ws is not None
        try:
            async for message in self.ws:
                if message.type is WSMsgType.TEXT:
                    await self._frame(json.loads(message.data))
            self.closes[str(self.ws.close_code)] += 1
        except (ClientError, ConnectionError) as error:
            self.closes[type(error).__name__] += 1
        self.changed.set()

    async def _frame(self, frame: dict[str, Any]) -> None:
        kind, now = frame.get("type"), time.monotonic()
        if kind == "session":
            self.token = str(frame["token"])
            await self._shown([e for e in frame.get("history", []) if e.get("author") == "bot"], now)
            self.greeted.set()
        elif kind == "entry" and frame["entry"].get("author") == "bot":
            await self._shown([frame["entry"]], now)
        elif kind == "resync":  # after the gateway's subscription was made again: what the page may have missed
            self.resyncs += 1
            await self._shown([e for e in frame.get("entries", []) if e.get("author") == "bot"
                               and str(e["id"]) not in self.seen], now)  # fmt: skip
        elif kind == "ack":
            self.acked.setdefault(str(frame["id"]), now)
        self.changed.set()

    async def _shown(self, entries: list[dict[str, Any]], now: float) -> None:
        entries = [e for e in entries if str(e["id"]) not in self.seen]  # shown once per id, as chat.js does
        if not entries:
            return
        self.seen.update(str(e["id"]) for e in entries)
        self.bot_entries += len(entries)
        if self.waiting is not None:
            self.answered.setdefault(self.waiting, now)
            self.waiting = None
        assert self.ws is not None
        with contextlib.suppress(ClientError, ConnectionError, RuntimeError):  # chat.js's delivered receipt
            await self.ws.send_json({"type": "receipt", "status": "delivered", "ids": [str(e["id"]) for e in entries]})

    async def say(self, patience: float) -> tuple[float | None, float | None] | None:
        """The walk's next step: (seconds to its ack, seconds to its first reply, 0.0 when none is due), None for
        what never came; None when the walk is over (nothing said)."""
        if self.step >= len(self.steps):
            return None
        if self.ws is None or self.ws.closed:
            return None, None
        step = self.steps[self.step]
        message_id = f"p{self.number}-{self.step}"
        self.step += 1
        self.waiting = message_id if step.replies else None
        began = time.monotonic()
        await self.ws.send_json({"type": "message", "id": message_id, "text": step.text, "payload": step.payload})
        deadline = began + patience
        while time.monotonic() < deadline and not (
            message_id in self.acked and (not step.replies or message_id in self.answered)
        ):
            self.changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.changed.wait(), deadline - time.monotonic())
            if self.ws.closed:
                break
        ack, reply = self.acked.get(message_id), self.answered.get(message_id)
        return (ack - began if ack else None), (reply - began if reply else None) if step.replies else 0.0

    async def close(self) -> None:
        if self.ws is not None:
            await self.ws.close()
        if self.reader is not None:
            await asyncio.gather(self.reader, return_exceptions=True)


@dataclass
class Round:
    acks: list[float] = field(default_factory=list)
    replies: list[float] = field(default_factory=list)
    unacknowledged: int = 0
    unanswered: int = 0
    walked_out: int = 0
    seconds: float = 0.0

    def line(self, name: str) -> str:
        def ms(values: list[float], q: float) -> str:
            return f"{pct(values, q / 100):,.0f}" if values else "–"

        sent = len(self.acks) + self.unacknowledged
        return (f"{name}: {sent} messages in {self.seconds:.1f} s; ack p50 {ms(self.acks, 50)} / p99"
                f" {ms(self.acks, 99)} / max {ms(self.acks, 100)} ms; first reply p50 {ms(self.replies, 50)} / p99"
                f" {ms(self.replies, 99)} / max {ms(self.replies, 100)} ms; never acknowledged {self.unacknowledged},"
                f" acknowledged and never answered {self.unanswered}"
                + (f" ({self.walked_out} at their walk's end said nothing)" if self.walked_out else ""))  # fmt: skip


async def round_of(pages: list[Page], rate: float, patience: float) -> Round:
    """Each page says its next step, the starts spread at ``rate`` a second in all."""
    result, began = Round(), time.monotonic()

    async def one(page: Page, at: float) -> None:
        await asyncio.sleep(max(0.0, at - time.monotonic()))
        said = await page.say(patience)
        if said is None:  # its walk is over (a short walk reached the hand-off): nothing to say
            result.walked_out += 1
            return
        ack, reply = said
        if ack is None:
            result.unacknowledged += 1
            return
        result.acks.append(ack)
        if reply is None:
            result.unanswered += 1
        elif reply:
            result.replies.append(reply)

    await asyncio.gather(*(one(page, began + n / rate) for n, page in enumerate(pages)))
    result.seconds = time.monotonic() - began
    return result


async def open_pages(pages: list[Page], session: ClientSession, urls: list[str], concurrency: int,
                     patience: float) -> int:  # fmt: skip
    """Opened and greeted, ``concurrency`` connecting at once, spread over ``urls`` (the instances, as a load balancer
    would): how many were not greeted within ``patience``."""
    gate = asyncio.Semaphore(concurrency)

    async def one(page: Page) -> bool:
        async with gate:
            try:
                await page.open(session, urls[page.number % len(urls)])
                await asyncio.wait_for(page.greeted.wait(), patience)
            except (ClientError, ConnectionError, TimeoutError):
                return False
            return True

    return sum(not ok for ok in await asyncio.gather(*(one(page) for page in pages)))


SETTLE = 2.0  # s after the closes: the gateway's side of them, then wake-ups of its loop watch (every 0.25 s)


async def loop_lags(session: ClientSession, url: str, when: str) -> str:
    """The gateway's loop wake-ups so far (``gateway_loop_lag_seconds``), by how late: which phase held the loop.
    Until 2026-12-07 only the loop_watch lines were printed, read after the pages closed: the hold of 4,050 pages
    closing at once was taken for the Redis drop's."""
    async with session.get(url + "/metrics") as response:
        text = await response.text()
    counts = {line.split('le="')[1].split('"')[0]: float(line.split()[-1]) for line in text.splitlines()
              if line.startswith("gateway_loop_lag_seconds_bucket")}  # fmt: skip
    over = {le: counts.get("+Inf", 0.0) - n for le, n in counts.items() if le in ("0.1", "0.25", "0.5", "1.0")}
    return f"event loop wake-ups {when}: {counts.get('+Inf', 0.0):.0f}, late over " + ", ".join(
        f"{float(le) * 1000:.0f} ms: {n:.0f}" for le, n in over.items()
    )


def open_files(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def redis_line(redis: Redis) -> str:
    clients = redis.info("clients", "connected_clients")
    channels = len(redis.command("PUBSUB", "CHANNELS").split())
    return f"Redis used memory {redis.used_memory() / 2**20:,.1f} MiB, clients {clients}, pub/sub channels {channels}"


class KilledPage(WebChatClient):
    """A page of the ``--kill`` run: chat.js on the wire (bench/chaos_webchat.py), and which instance each of its
    hellos went to, when its sessions came, and every conversation its sessions named."""

    def __init__(self, session: ClientSession, urls: list[str], server: Server, number: int, tally: Tally,
                 hellos: list[tuple[float, str]]) -> None:  # fmt: skip
        self.urls, self.server, self.hellos = urls, server, hellos
        super().__init__(session, self._pick, f"10.{number // 256 % 256}.{number % 256}.7", number, tally)
        self.conversations: set[str] = set()
        self.sessions: list[float] = []  # when each session frame came (monotonic)

    def _pick(self) -> str:
        """As a load balancer: the page's own instance (pages spread over them), another one up when it is down."""
        ups = [url for url, p in zip(self.urls, self.server.processes, strict=True) if p.poll() is None]
        own = self.urls[self.number % len(self.urls)]
        url = own if own in ups else ups[self.number % len(ups)] if ups else own
        self.hellos.append((time.monotonic(), url))
        return url

    async def _handle(self, ws: ClientWebSocketResponse, frame: dict[str, Any]) -> None:
        if frame.get("type") == "session":
            self.sessions.append(time.monotonic())
            self.conversations.add(str(frame.get("conversation")))
        await super()._handle(ws, frame)


@dataclass
class Said:
    """One message a page already on the survivor said around the kill (``--talk-rate``)."""

    at: float  # when it was sent (monotonic)
    ack: float | None  # seconds to its ack, None: never within the patience
    reply: float | None  # seconds to its first reply (0.0: none due), None: never


async def talk(pages: list[KilledPage], script: list[list[Step]], rate: float, until: Callable[[], bool],
               deadline: float) -> list[Said]:  # fmt: skip
    """The pages that stayed on the survivor talk at ``rate`` messages a second in all, each its walk's next step
    (from its second, a page at a time: one message in flight each), until ``until()`` or ``deadline``."""
    said: list[Said] = []
    busy: set[int] = set()
    walked = dict.fromkeys((page.number for page in pages), 1)  # the walk's next step (0 is the hello's greeting)

    async def one(page: KilledPage) -> None:
        steps = script[page.number % len(script)]
        step, message_id = steps[walked[page.number]], f"t{page.number}-{walked[page.number]}"
        walked[page.number] += 1
        page.pending[message_id], replies, began = step, page.replies, time.monotonic()
        if page.ws is not None and not page.ws.closed:
            await page._send(page.ws, message_id)
        acked = await page._until(lambda: message_id not in page.pending, deadline)
        answered = not step.replies or await page._until(lambda: page.replies > replies, deadline)
        ack = page.acked_at.get(message_id)
        said.append(Said(began, ack - began if acked and ack else None,
                         (time.monotonic() - began if step.replies else 0.0) if answered else None))  # fmt: skip
        busy.discard(page.number)

    tasks, turn = [], 0
    while not until() and time.monotonic() < deadline:
        ready = [p for p in pages if p.number not in busy and p.in_session and walked[p.number] < len(
            script[p.number % len(script)])]  # fmt: skip
        if ready:
            page = ready[turn % len(ready)]
            turn += 1
            busy.add(page.number)
            tasks.append(asyncio.create_task(one(page)))
        await asyncio.sleep(1 / rate)
    await asyncio.gather(*tasks)
    return said


def said_line(name: str, said: list[Said]) -> str:
    acks = [s.ack for s in said if s.ack is not None]
    replies = [s.reply for s in said if s.reply]

    def ms(values: list[float]) -> str:
        return " / ".join(f"{pct(values, q):,.0f}" for q in (0.5, 0.99, 1.0)) if values else "–"

    return (f"  {name}: {len(said)} messages; ack p50 / p99 / max {ms(acks)} ms; first reply p50 / p99 / max"
            f" {ms(replies)} ms; never acknowledged {sum(s.ack is None for s in said)}, never answered"
            f" {sum(s.reply is None for s in said)}")  # fmt: skip


def peak_at_once(starts: list[float], ends: list[float]) -> int:
    """The most intervals open at once (``starts[i]``, ``ends[i]``: a hello sent, its session come)."""
    events = sorted([(t, 1) for t in starts] + [(t, -1) for t in ends])
    most = now = 0
    for _, step in events:
        now += step
        most = max(most, now)
    return most


async def kill_run(args: argparse.Namespace, server: Server, session: ClientSession, sockets: ClientSession,
                   store_url: str, script: list[list[Step]], work: Path) -> None:  # fmt: skip
    """``--kill``: ``--pages`` pages spread over the instances, then ``kill -9`` of the last one; every page then
    says its next step (those of the killed one keep it pending until their next session, as chat.js does); with
    ``--kill-after``, every page says it first and the kill comes that many seconds later (their messages in flight
    on the killed one: sent again, same id, after the next session)."""
    tally, hellos = Tally(), list[tuple[float, str]]()
    pages = [KilledPage(sockets, server.urls, server, n, tally, hellos) for n in range(args.pages)]
    gate = asyncio.Semaphore(args.concurrency)
    began = time.monotonic()

    async def opened(page: KilledPage) -> bool:
        async with gate:
            page.start()
            return await page._until(lambda: page.in_session, time.monotonic() + args.patience)

    missed = sum(not ok for ok in await asyncio.gather(*(opened(page) for page in pages)))
    print(f"{args.pages} pages opened over {len(server.urls)} instances and greeted in {time.monotonic() - began:.1f} s"
          f" ({missed} not greeted)")  # fmt: skip
    victim, survivor = server.processes[-1], server.urls[0]
    print(await loop_lags(session, survivor, "on the surviving instance before the kill"))
    on_victim = [page for page in pages if page.url == server.urls[-1]]
    hellos.clear()
    killed_at = time.monotonic() + args.kill_after  # every page says its next step now; the kill then
    deadline = killed_at + args.patience

    async def says(page: KilledPage) -> tuple[bool, bool]:
        """The page's next step, kept pending until acknowledged: (acknowledged, answered) within the patience."""
        steps = script[page.number % len(script)]
        step, message_id = steps[1], f"k{page.number}"
        page.pending[message_id], replies = step, page.replies
        if page.ws is not None and not page.ws.closed:
            await page._send(page.ws, message_id)
        acked = await page._until(lambda: message_id not in page.pending, deadline)
        answered = await page._until(lambda: page.replies > replies or page.status != "bot", deadline)
        return acked, answered or not step.replies

    async def kill() -> None:
        await asyncio.sleep(max(0.0, killed_at - time.monotonic()))
        victim.send_signal(signal.SIGKILL)
        await asyncio.to_thread(victim.wait)

    async def back(page: KilledPage) -> float | None:
        ok = await page._until(lambda: page.in_session and bool(page.sessions) and page.sessions[-1] > killed_at,
                               deadline)  # fmt: skip
        return page.sessions[-1] - killed_at if ok else None

    if args.talk_rate:  # the herd alone: the pages on the survivor talk, from --talk-before s before the kill
        stayed = [page for page in pages if page.url == survivor]
        killed_at = time.monotonic() + args.talk_before
        deadline = killed_at + args.patience
        all_back = asyncio.Event()

        async def returns_all() -> list[float | None]:
            try:
                return await asyncio.gather(*(back(p) for p in on_victim))
            finally:
                all_back.set()

        async def then_quiet() -> None:  # the talk goes on AFTER s past the herd's end: the after phase
            await all_back.wait()
            await asyncio.sleep(args.talk_before)

        quiet = asyncio.create_task(then_quiet())
        talked, returns, _ = await asyncio.gather(talk(stayed, script, args.talk_rate, quiet.done, deadline),
                                                  returns_all(), kill())  # fmt: skip
        said: list[tuple[bool, bool]] = []
    else:
        if not args.kill_after:
            await kill()
        said, returns, _ = await asyncio.gather(asyncio.gather(*(says(p) for p in pages)),
                                                asyncio.gather(*(back(p) for p in on_victim)), kill())  # fmt: skip
        talked = []
    back_in = [r for r in returns if r is not None]
    starts = [at for at, url in hellos if url == survivor]
    ends = [at for page in on_victim for at in page.sessions if at > killed_at]
    second = Counter(int(at - killed_at) for at in starts)
    print(f"kill -9 of one instance ({len(on_victim)} pages on it): back in session {len(back_in)}, never"
          f" {len(returns) - len(back_in)}; all back in {max(back_in, default=0.0):.1f} s (p50"
          f" {pct(back_in, 0.5) / 1000 if back_in else 0.0:.1f} s)")  # fmt: skip
    print(f"  the surviving instance took {len(starts)} hellos, {peak_at_once(starts, ends)} at once at most,"
          f" {max(second.values(), default=0)} in its busiest second; sockets ended by"
          f" {dict(tally.closes.most_common(6)) or 'nothing'}; error frames {dict(tally.errors) or 'none'},"
          f" notices {tally.notices}")  # fmt: skip
    print(f"  messages said {args.kill_after:g} s before the kill: {len(said)}, acknowledged"
          f" {sum(a for a, _ in said)}, answered {sum(b for _, b in said)}; frames {tally.sends}"
          f" ({tally.resent} resent)")  # fmt: skip
    if talked:  # the young people already on the survivor, before the kill, while the herd came back, after it
        herd_end = killed_at + max(back_in, default=0.0)
        print(f"the survivor's own pages talking ({args.talk_rate:g} messages/s in all), by when each was sent:")
        print(said_line(f"before the kill ({args.talk_before:g} s)", [s for s in talked if s.at < killed_at]))
        print(said_line(f"during the herd ({herd_end - killed_at:.1f} s, kill to the last page back)",
                        [s for s in talked if killed_at <= s.at < herd_end]))  # fmt: skip
        print(said_line("after the herd", [s for s in talked if s.at >= herd_end]))
    print(await loop_lags(session, survivor, "on the surviving instance after the kill"))
    audit = await audit_webchat(store_url, WebChats(sockets, pages[0].pick, tally, list(pages)))
    renewed = sum(len(page.tokens) > 1 or len(page.conversations) > 1 for page in pages)
    print(f"audit: acknowledged {audit.acknowledged}, recorded once {audit.processed_once}, acknowledged and lost"
          f" {audit.never_processed}, recorded twice {audit.recorded_twice}; never acknowledged"
          f" {audit.still_pending}; replies recorded {audit.replies_recorded}, never received"
          f" {audit.never_received}, shown twice {audit.phantoms}; pages given a NEW conversation {renewed}"
          f" (orphan conversations {audit.orphans})")  # fmt: skip
    await asyncio.gather(*(page.stop() for page in pages))
    print(f"log warnings and errors: {server.problems()}")
    for line in (work / "gateway.log").read_text(errors="replace").splitlines():
        if "gateway.loop_watch" in line:  # the survivor's (the first instance's log)
            print("  " + line.split(" ", 2)[-1][:200])


async def main(args: argparse.Namespace) -> None:
    print(machine_line())
    print(f"{args.pages} pages open at once on {args.instances} instance(s) ({args.active} of them talking), Redis,"
          f" understanding"
          f" {args.understanding}; {args.rate:g} messages/s in each round")  # fmt: skip
    flows_text = bench_flows((ROOT / "flows.yaml").read_text(encoding="utf-8"))
    script = walks(flows_text)
    with workdir("gateway-pages-", flows_text) as (work, flows):
        redis = Redis(work / "redis")
        provider = Provider()  # unused by the web chat; gateway_env wants a Messenger API
        server = None
        try:
            async with contextlib.AsyncExitStack() as stack:
                await stack.enter_async_context(provider)
                await asyncio.sleep(0.5)
                behind_proxy = {"GATEWAY_CLIENT_ADDRESS_HEADER": "X-Forwarded-For"}  # each page its own address
                server = gateway_server("pages", redis.url, work / "gateway.log", flows, provider, args.understanding,
                                        args.instances, env=behind_proxy)  # fmt: skip
                session = await stack.enter_async_context(ClientSession(timeout=ClientTimeout(total=30)))
                await server.ready(session)
                sockets = await stack.enter_async_context(
                    ClientSession(connector=TCPConnector(limit=0), timeout=ClientTimeout(total=None, connect=30))
                )
                if args.kill:
                    await kill_run(args, server, session, sockets, redis.url, script, work)
                    return
                pid = server.process.pid
                rss0, files0, cpu0 = rss_mb(pid), open_files(pid), cpu_seconds(pid)
                print(f"before any page: RSS {rss0:,.1f} MB, open files {files0}; {redis_line(redis)}")

                active = [Page(n, script[n % len(script)]) for n in range(args.active)]
                missed = await open_pages(active, sockets, server.urls, args.concurrency, args.patience)
                print(f"{args.active} talking pages open ({missed} not greeted)")
                few = await round_of(active, args.rate, args.patience)
                print(few.line(f"round with {args.active} pages open"))

                rss1, files1, cpu1 = rss_mb(pid), open_files(pid), cpu_seconds(pid)
                crowd = [Page(args.active + n, script[n % len(script)]) for n in range(args.pages)]
                began = time.monotonic()
                missed = await open_pages(crowd, sockets, server.urls, args.concurrency, args.patience)
                opened_in = time.monotonic() - began
                rss2, files2, cpu2 = rss_mb(pid), open_files(pid), cpu_seconds(pid)
                print(f"{args.pages} more pages opened and greeted in {opened_in:.1f} s"
                      f" ({args.pages / opened_in:,.0f} a second; {missed} not greeted), gateway CPU"
                      f" {(cpu2 - cpu1) / args.pages * 1000:.2f} ms an opened page")  # fmt: skip
                print(f"with {args.active + args.pages} pages open: RSS {rss2:,.1f} MB"
                      f" (+{(rss2 - rss1) * 1024 / args.pages:,.1f} KB an open page), open files {files2}"
                      f" (+{(files2 - files1) / args.pages:.2f} a page); {redis_line(redis)}")  # fmt: skip

                crowded = await round_of(active, args.rate, args.patience)
                print(crowded.line(f"round with {args.active + args.pages} pages open"))
                if args.drop:  # every connection of the gateway's to Redis cut, as a restart or a failover does
                    killed = [redis.command("CLIENT", "KILL", "TYPE", kind).strip() for kind in ("pubsub", "normal")]
                    print(f"Redis dropped the gateway's connections (pub/sub {killed[0]}, others {killed[1]}):"
                          " the crowd's round starts at once")  # fmt: skip
                everyone = await round_of(crowd, args.rate, args.patience)
                print(everyone.line(f"the crowd's round ({args.pages} pages, one message each)"))
                print(await loop_lags(session, server.url, "until the crowd's round ended"))
                cpu3 = cpu_seconds(pid)
                print(f"gateway CPU {cpu3 - cpu0:.1f} s in all; RSS {rss_mb(pid):,.1f} MB at the end")
                resyncs = sum(page.resyncs for page in active + crowd)
                print(f"resync frames received: {resyncs}")
                closes = sum((page.closes for page in active + crowd), Counter())
                print(f"sockets closed by the gateway before the end: {dict(closes) or 0}")
                await asyncio.gather(*(page.close() for page in active + crowd))
                await asyncio.sleep(SETTLE)
                print(await loop_lags(session, server.url, "once every page closed"))
                print(f"log warnings and errors: {server.problems()}")
                for line in (work / "gateway.log").read_text(errors="replace").splitlines():
                    if "gateway.loop_watch" in line:  # how long the event loop was held (no content in these lines)
                        print("  " + line.split(" ", 2)[-1][:200])
        finally:
            if server is not None:
                server.stop()
            redis.stop()


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pages", type=int, default=2000, help="the crowd: pages open and idle (default 2000)")
    parser.add_argument("--active", type=int, default=50, help="pages that talk in every round (default 50)")
    parser.add_argument("--rate", type=float, default=100.0, help="messages a second in a round (default 100)")
    parser.add_argument("--concurrency", type=int, default=50, help="pages connecting at once (default 50)")
    parser.add_argument("--patience", type=float, default=60.0, help="s a page waits for an ack, a reply, a greeting")
    parser.add_argument("--understanding", choices=("on", "off"), default="off")
    parser.add_argument("--instances", type=int, default=1, help="gateway serve processes on the one Redis")
    parser.add_argument(
        "--kill",
        action="store_true",
        help="pages spread over the instances (--instances 2), then kill -9 of one: its pages reconnect to the other",
    )
    parser.add_argument(
        "--kill-after",
        type=float,
        default=0.0,
        help="--kill: s after every page said its next step (0: the kill first, then they say it)",
    )
    parser.add_argument(
        "--talk-rate",
        type=float,
        default=0.0,
        help="--kill: the survivor's own pages talk at this many messages/s in all, before, during and after the herd"
        " (their latency by phase); the killed pages say nothing then (the herd alone)",
    )
    parser.add_argument(
        "--talk-before", type=float, default=5.0, help="--talk-rate: s of talk before the kill, and after the herd"
    )
    parser.add_argument(
        "--drop",
        action="store_true",
        help="before the crowd's round, Redis drops every connection of the gateway's (CLIENT KILL)",
    )
    return parser.parse_args(argv)


if __name__ == "__main__":
    run(main, parse())
