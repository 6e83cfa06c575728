"""A school's held pages trying again by themselves: ``python bench/held.py [--pages 500] [--cap 10]``.

A school of 500-2,000 pupils behind one public address, the network's cap (``GATEWAY_MAX_WAITING_PER_CLIENT``,
``--cap``) full: every other page that writes is held, its message refused ``client_full``, and chat.js tries it
again by itself (``heldRetry``, since 2026-12-07: about 4 s, doubling to 60 s, a random part; an automatic try
refused ``rate_limited`` waits for the frame's ``retry_after`` when it has one). This bench (since 2026-12-07) opens
``--cap`` pages that take the cap, then ``--pages`` held pages of the same address, each with one message refused and
tried again as chat.js does (the same backoff, ported below: :func:`backoff`), and prints:

1. once the tries are at their pace (``--warmup`` s), over ``--measure`` s: the held pages' tries a second, Redis's
   commands a second (``INFO commandstats``, by command) and the gateway's CPU a second spent on them;
2. one place freed (an occupant's "Terminer"): how long until a held page's message is let in (its ``ack``), and
   over ``--after`` s more, how many were let in (one place: one);
3. the audit: every message let in acknowledged once and recorded once (the store's transcripts), every try
   answered (``refused`` or ``ack``: none lost), no held page's message recorded without its ack.

``--rate-spent``: the network's rate of new chats (``GATEWAY_LIMIT_CHATS_PER_ADDRESS``) is ``--cap`` an hour, spent
by the occupants: the freed place is then refused ``rate_limited`` until the hour ends, and the figures of step 1
are measured again over two spans after the place freed (what the held pages cost while the window lasts; with
``retry_after`` they wait for it; ``--ignore-retry-after``: the backoff alone, as chat.js before that). Prints
figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import sys
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from aiohttp import ClientSession, ClientTimeout, ClientWebSocketResponse, TCPConnector, WSMsgType

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # runnable from a checkout without installing

from bench.load import Provider, Redis, Server, bench_flows, gateway_server, machine_line, run, workdir  # noqa: E402

SCHOOL = "198.51.100.23"  # the school's one public address
HELD_RETRY_MS = 4000  # chat.js's HELD_RETRY_MS, HELD_RETRY_MAX_MS, HELD_RETRY_AFTER_MAX_S
HELD_RETRY_MAX_MS = 60000
HELD_RETRY_AFTER_MAX_S = 86400


IGNORE_RETRY_AFTER = False  # --ignore-retry-after: chat.js as it was before 2026-12-07 evening (the backoff alone)


def backoff(delay_ms: float, retry_after: object) -> float:
    """chat.js's ``heldRetry``: the wait (ms) before the next automatic try at this ``delay``; the frame's
    ``retry_after`` (seconds) waited for, never less than the backoff, a random part of it after."""
    wait = delay_ms / 2 + random.random() * delay_ms / 2
    if isinstance(retry_after, int | float) and retry_after > 0 and not IGNORE_RETRY_AFTER:
        wait = max(wait, min(retry_after, HELD_RETRY_AFTER_MAX_S) * 1000 + random.random() * delay_ms / 2)
    return wait


@dataclass
class HeldPage:
    """One pupil's page, held: its one message refused and tried again by itself until an ack."""

    number: int
    ws: ClientWebSocketResponse | None = None
    message_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    delay: float = HELD_RETRY_MS
    tries: int = 0  # frames sent with the message (the first and the automatic ones)
    answers: int = 0  # refused or ack frames naming it
    acks: int = 0
    acked_at: float | None = None
    reasons: Counter[str] = field(default_factory=Counter)
    retry_afters: list[int] = field(default_factory=list)
    _timer: asyncio.TimerHandle | None = None

    @property
    def text(self) -> str:
        return f"élève {self.number} : je voudrais parler à quelqu'un"

    async def open(self, session: ClientSession, url: str) -> bool:
        """Its hello, refused (the cap full): True; then its message, sent once."""
        self.ws = await session.ws_connect(url, headers={"X-Forwarded-For": SCHOOL}, heartbeat=None)
        await self.ws.send_json({"type": "hello", "token": None, "opening": uuid.uuid4().hex, "language": "fr"})
        while True:
            frame = await self.ws.receive_json(timeout=120)
            if frame["type"] == "session":
                return False
            if frame["type"] == "refused" and frame["id"] is None:
                break
        await self._send(auto=False)
        return True

    async def _send(self, *, auto: bool) -> None:
        assert self.ws is not None
        if self.ws.closed or self.acked_at is not None:
            return
        self.tries += 1
        frame: dict[str, Any] = {"type": "message", "id": self.message_id, "text": self.text}
        if auto:
            frame["auto"] = True
        await self.ws.send_json(frame)

    async def read(self) -> None:
        assert self.ws is not None
        loop = asyncio.get_running_loop()
        async for message in self.ws:
            if message.type is not WSMsgType.TEXT:
                break
            frame = message.json()
            if frame.get("id") != self.message_id:
                continue
            if frame["type"] == "ack":
                self.answers += 1
                self.acks += 1
                self.acked_at = self.acked_at or time.monotonic()
            elif frame["type"] == "refused":
                self.answers += 1
                self.reasons[frame["reason"]] += 1
                if isinstance(frame.get("retry_after"), int):
                    self.retry_afters.append(frame["retry_after"])
                # chat.js: client_full, or an automatic try refused rate_limited (every try here after the first)
                if frame["reason"] == "client_full" or (self.tries > 1 and frame["reason"] == "rate_limited"):
                    wait = backoff(self.delay, frame.get("retry_after"))
                    self.delay = min(self.delay * 2, HELD_RETRY_MAX_MS)
                    self._timer = loop.call_later(wait / 1000, lambda: asyncio.ensure_future(self._send(auto=True)))

    async def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        if self.ws is not None:
            await self.ws.close()


async def drain(ws: ClientWebSocketResponse) -> None:
    """An occupant's frames read (and the gateway's pings answered) until it closes."""
    async for message in ws:
        if message.type is not WSMsgType.TEXT:
            break


class Pace:
    """What the held pages cost over a span: tries, Redis commands and gateway CPU a second."""

    def __init__(self, pages: list[HeldPage], redis: Redis, server: Server) -> None:
        self.pages, self.redis, self.server = pages, redis, server
        self.at, self.tries, self.cpu, self.commands = (
            time.monotonic(),
            self._tries(),
            server.cpu_seconds(),
            redis.commands(),
        )

    def _tries(self) -> int:
        return sum(page.tries for page in self.pages)

    def line(self, name: str) -> str:
        span = time.monotonic() - self.at
        tries = self._tries() - self.tries
        commands = self.redis.commands() - self.commands
        cpu = self.server.cpu_seconds() - self.cpu
        top = ", ".join(f"{name} {calls / span:,.1f}" for name, calls in commands.most_common(6))
        total = sum(commands.values())
        return (f"{name} ({span:.0f} s): {tries / span:,.1f} tries/s; Redis {total / span:,.0f} commands/s"
                f" ({total / max(tries, 1):.1f} a try: {top}); gateway CPU {cpu / span * 100:.1f} %"
                f" ({cpu / max(tries, 1) * 1000:.2f} ms a try)")  # fmt: skip


async def audit(store_url: str, pages: list[HeldPage]) -> str:
    """Each held page's message recorded as many times as it was acknowledged (once, or never)."""
    from gateway.messages import ChannelName
    from gateway.store import open_store
    from gateway.testing import store_keys

    store = await open_store(store_url, keys=store_keys(store_url))
    try:
        recorded: Counter[str] = Counter()
        since, until = datetime(2000, 1, 1, tzinfo=UTC), datetime.now(UTC) + timedelta(days=1)
        for conversation in await store.list_conversations(since, until):
            if conversation.channel is ChannelName.WEBCHAT:
                recorded.update(e.text for e in await store.transcript(conversation.id) if e.author == "user")
    finally:
        await store.close()
    twice = sum(1 for page in pages if page.acks > 1 or recorded[page.text] > 1)
    unacked = sum(1 for page in pages if page.acks == 0 and recorded[page.text] > 0)
    lost = sum(1 for page in pages if page.acks == 1 and recorded[page.text] == 0)
    unanswered = sum(1 for page in pages if page.answers < page.tries - (1 if page._timer is None else 0))
    let_in = sum(1 for page in pages if page.acks)
    return (f"audit: {let_in} let in; acknowledged or recorded twice {twice}; acknowledged, never recorded {lost};"
            f" recorded, never acknowledged {unacked}; tries never answered (at most the last one in flight)"
            f" {unanswered}")  # fmt: skip


async def main(args: argparse.Namespace) -> None:
    print(machine_line())
    rate = f"{args.cap}/hour" if args.rate_spent else "100000/hour"
    print(f"{args.pages} held pages behind one address, its cap {args.cap} full; chats_per_address {rate}"
          f"{'; retry_after ignored (the backoff alone)' if IGNORE_RETRY_AFTER else ''}")  # fmt: skip
    flows_text = bench_flows((ROOT / "flows.yaml").read_text(encoding="utf-8"))
    with workdir("gateway-held-", flows_text) as (work, flows):
        redis = Redis(work / "redis")
        server = None
        pages: list[HeldPage] = []
        try:
            async with contextlib.AsyncExitStack() as stack:
                provider = await stack.enter_async_context(Provider())  # unused by the web chat; gateway_env wants it
                env = {"GATEWAY_CLIENT_ADDRESS_HEADER": "X-Forwarded-For", "GATEWAY_MAX_WAITING_PER_CLIENT":
                       str(args.cap), "GATEWAY_LIMIT_CHATS_PER_ADDRESS": rate}  # fmt: skip
                server = gateway_server("held", redis.url, work / "gateway.log", flows, provider, "off", env=env)
                session = await stack.enter_async_context(ClientSession(timeout=ClientTimeout(total=30)))
                await server.ready(session)
                sockets = await stack.enter_async_context(
                    ClientSession(connector=TCPConnector(limit=0), timeout=ClientTimeout(total=None, connect=60))
                )
                url = server.urls[0].replace("http", "ws", 1) + "/chat/ws"
                occupants = []
                for _ in range(args.cap):  # the cap: each its hello's session
                    ws = await sockets.ws_connect(url, headers={"X-Forwarded-For": SCHOOL}, heartbeat=None)
                    await ws.send_json({"type": "hello", "token": None, "opening": uuid.uuid4().hex, "language": "fr"})
                    while (await ws.receive_json(timeout=60))["type"] != "session":
                        pass
                    occupants.append(ws)
                drains = [asyncio.create_task(drain(ws)) for ws in occupants]  # their pings answered: kept open
                idle = Pace([], redis, server)
                await asyncio.sleep(min(args.measure, 20))
                print(idle.line(f"baseline: the cap's {args.cap} chats open, no held page"))
                pages = [HeldPage(n) for n in range(args.pages)]
                gate = asyncio.Semaphore(50)
                readers = []

                async def held(page: HeldPage) -> None:
                    async with gate:
                        await page.open(sockets, url)
                    readers.append(asyncio.create_task(page.read()))

                began = time.monotonic()
                await asyncio.gather(*(held(page) for page in pages))
                print(f"{args.pages} held pages opened, each message refused, in {time.monotonic() - began:.1f} s")
                await asyncio.sleep(args.warmup)  # the tries at their pace (60 s apart at most)
                pace = Pace(pages, redis, server)
                await asyncio.sleep(args.measure)
                print(pace.line("the cap full"))
                await occupants[0].send_json({"type": "end"})  # "Terminer": one place frees
                freed = time.monotonic()
                if args.rate_spent:
                    pace = Pace(pages, redis, server)
                    await asyncio.sleep(args.measure)
                    print(pace.line("one place free, the hour's rate spent"))
                    pace = Pace(pages, redis, server)  # every page has tried once since: told, or not
                    await asyncio.sleep(args.measure)
                    print(pace.line("the next span, the hour's rate still spent"))
                    told = sorted(after for page in pages for after in page.retry_afters)
                    if told:
                        print(f"retry_after told: {len(told)} times, {told[0]}-{told[-1]} s")
                else:
                    while not any(page.acked_at for page in pages) and time.monotonic() - freed < args.patience:
                        await asyncio.sleep(0.05)
                    firsts = sorted(page.acked_at - freed for page in pages if page.acked_at)
                    print(f"the freed place taken after {firsts[0]:.2f} s" if firsts else "the freed place not taken")
                    await asyncio.sleep(args.after)
                let_in = sum(1 for page in pages if page.acks)
                reasons = sum((page.reasons for page in pages), Counter())
                print(f"let in: {let_in} (one place freed); refusals by reason: {dict(reasons)}")
                for page in pages:
                    await page.close()
                for ws in occupants:
                    await ws.close()
                for reader in readers + drains:
                    reader.cancel()
                print(await audit(redis.url, pages))
                print(f"log warnings and errors: {server.problems()}")
        finally:
            if server is not None:
                server.stop()
            redis.stop()


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pages", type=int, default=500, help="held pages behind the one address (default 500)")
    parser.add_argument("--cap", type=int, default=10, help="the network's cap of open chats (default 10)")
    parser.add_argument("--warmup", type=float, default=90.0, help="s before measuring: the tries at pace (90)")
    parser.add_argument("--measure", type=float, default=60.0, help="s measured (default 60)")
    parser.add_argument("--after", type=float, default=10.0, help="s after the place was taken (default 10)")
    parser.add_argument("--patience", type=float, default=120.0, help="s waited for the freed place to be taken")
    parser.add_argument("--rate-spent", action="store_true", help="chats_per_address spent by the cap's chats")
    parser.add_argument(
        "--ignore-retry-after", action="store_true", help="the backoff alone, as chat.js before retry_after"
    )
    return parser.parse_args(argv)


if __name__ == "__main__":
    arguments = parse()
    IGNORE_RETRY_AFTER = arguments.ignore_retry_after
    run(main, arguments)
