"""What a long-running gateway keeps as it serves ever new senders, networks and pages:
``nice .venv/bin/python bench/leak.py [--store sqlite|redis] [--rounds 3] [--senders 300] [--pages 150]``.

A deployment runs for weeks without a restart, and every young person, client network and web chat page it ever
served is new to it: any structure of the process keyed by one of them and never pruned grows until the process
is killed. This bench runs the real app (``gateway.app.create_app``, SQLite or a Redis of its own, the model off by
default) on 127.0.0.1 behind the guarded listener ``gateway serve`` uses (``ConnectionGuard``; the trusted proxy
127.0.0.1 alone, so 127.a.b.c is a client network of its own), with the fake providers of ``gateway/testing.py`` in
the same process, and drives churn through it, round after round, each round the same work with new identities:

- ``--senders`` distinct senders on each provider channel (signed Messenger, Twilio WhatsApp and Telegram
  webhooks), each saying two messages, and ``--floods`` Messenger senders saying 25 (past the flood limit: the
  refusals and their notice);
- ``--walks`` Messenger senders walked through the flow to the hand-off, taken, answered and closed by a
  supervisor logged in on the console (a login, its events socket and a supervision board's, a logout, from a
  network of its own);
- ``--pages`` web chat pages, each from a client network of its own (``X-Forwarded-For`` from the trusted
  loopback proxy, or a loopback address of their own, 127.a.b.c, alternately), which say hello, type, send a
  message (a sixth an image too, through ``/chat/upload``), and then end the conversation (a sixth), close their
  socket (a third), erase it ("efface mes données", "oui") and say hello again on the same socket before closing it
  (a sixth), or drop it without a close frame (a third);
- a flows.yaml reload (its text changed) every round.

After ``--warm`` rounds (caches filled, every code path taken once), ``gc.collect()``, a ``tracemalloc`` snapshot
and the RSS; then ``--rounds`` more rounds; then the same. Printed: the RSS, the allocations' growth by file:line
(the top ``--top``, the gateway's own lines and the libraries'), and ``len()`` of the in-process structures that
could grow with distinct senders, networks, pages or conversations, after each round. A structure that grows
round after round by the round's count of new identities, and never returns, is the defect this looks for.
Prints figures; asserts nothing. What the providers' fakes record is cleared after each round (theirs, not the
gateway's). Since 2026-12-07; on that day's code before 8bb43871, ``webchat.erased`` grew by the round's erasing
pages (25, 50, 75, 100, 125) and nothing else of the gateway's did (bench/README.md).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import gc
import io
import itertools
import json
import os
import re
import secrets
import sys
import tempfile
import time
import tracemalloc
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aiohttp import ClientSession, ClientTimeout, CookieJar, TCPConnector, WSMsgType, web
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # runnable from a checkout without installing

from bench.load import Redis, bench_flows, free_port, machine_line, walks  # noqa: E402
from gateway.app import API, DISPATCHER, FLOWS, GATE, METRICS, OUTBOX, READER, STORE, SUPERVISOR, TIMERS, WEBCHAT  # noqa: E402
from gateway.connections import ConnectionGuard, GuardedSite  # noqa: E402
from gateway.console.auth import hash_password  # noqa: E402
from gateway.settings import Settings  # noqa: E402
from gateway.store import Listener  # noqa: E402
from gateway.testing import (  # noqa: E402
    ACCOUNT_SID,
    BOT_TOKEN,
    DATA_KEY,
    SECRET_KEY,
    WHATSAPP_FROM,
    FakeAPI,
    FakeGraphAPI,
    FakeTelegramAPI,
    FakeTwilioAPI,
    messenger_body,
    messenger_message,
    sign_twilio,
    signed_messenger,
    telegram_headers,
    telegram_update,
    twilio_form,
)

APP_SECRET, TWILIO_TOKEN, TELEGRAM_SECRET = "leak-app-secret", "leak-twilio-token", "leak-telegram-secret"
PASSWORD = "leak bench password"
PUBLIC = "http://127.0.0.1:8080"


def _photo() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (64, 48), (200, 40, 40)).save(out, "JPEG")
    return out.getvalue()


PHOTO = _photo()


def rss_mib() -> float:
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) / 1024 for line in status if line.startswith("VmRSS"))


def sizes(app: Any, guard: ConnectionGuard) -> dict[str, int]:
    """``len()`` of what could grow with distinct senders, networks, pages or conversations (0 where absent)."""
    found: dict[str, int] = {}

    def put(name: str, read: Callable[[], Any]) -> None:
        try:
            found[name] = len(read())
        except (AttributeError, KeyError, TypeError):
            found[name] = -1  # not there in this configuration

    hub, gate, dispatcher, outbox, timers = app[WEBCHAT], app[GATE], app[DISPATCHER], app[OUTBOX], app[TIMERS]
    store, api, supervisor = app[STORE], app[API], app[SUPERVISOR]
    limits_storage = gate.limits.storage
    for name in ("open", "held", "caps", "sizes"):
        put(f"connections.{name}", functools.partial(getattr, guard, name))
    put("limits.memory.storage", lambda: limits_storage.storage)
    put("limits.memory.expirations", lambda: limits_storage.expirations)
    put("limits.memory.locks", lambda: limits_storage.locks)
    for name in ("sockets", "attached", "holding", "outgoing", "erased", "arming", "following", "_leaving",
                 "positions", "open"):  # fmt: skip
        put(f"webchat.{name}", functools.partial(getattr, hub, name))
    put("webchat.hellos._lines", lambda: hub.hellos._lines)
    put("webchat.hellos._shares", lambda: hub.hellos._shares)
    put("webchat.hellos.working_by", lambda: hub.hellos.working_by)
    put("webchat.subscription.followed", lambda: _followed(hub._forwarding.current))
    put("dispatcher._processing", lambda: dispatcher._processing)
    for name in ("_paused", "refused", "_slow_until", "_in_flight", "_held", "_sending"):
        put(f"outbox.{name}", functools.partial(getattr, outbox, name))
    put("timers._failures", lambda: timers._failures)
    put("timers._firings", lambda: timers._firings)
    put("supervisor._workers", lambda: supervisor._workers)
    put("store._locks", lambda: store._locks)
    put("store._claims", lambda: store._claims)
    for name in ("_read_under_lock", "_leaving_under_lock", "_erasing_under_lock", "_indexed_under_lock"):
        put(f"store.{name}", functools.partial(getattr, store, name))  # Redis only
    put("store._texts._opened", lambda: store._texts._opened)
    put("store._texts._sealed", lambda: store._texts._sealed)
    put("store._events._subscriptions", lambda: store._events._subscriptions)
    put("console.live.sockets", lambda: api.live.sockets)
    put("console.presence.connections", lambda: api.presence.connections)
    put("flows.engines", lambda: app[FLOWS].engines)
    put("flows.retired", lambda: app[FLOWS].retired)
    reader = app.get(READER)
    if reader is not None:
        put("reader._remembered", lambda: reader._remembered)
        put("reader._under_way", lambda: reader._under_way)
    metrics = app[METRICS]
    found["metrics.samples"] = sum(len(m.samples) for m in metrics.registry.collect())
    found["asyncio.tasks"] = len(asyncio.all_tasks())
    return found


def _followed(subscription: Any) -> Any:
    """The conversations the web chat's subscription follows (SQLite's ``_followed``, Redis's ``followed``)."""
    return subscription.followed if hasattr(subscription, "followed") else subscription._followed


class Churn:
    """One round's work, with identities never used before."""

    def __init__(self, args: argparse.Namespace, base: str, session: ClientSession, flows: Path,
                 steps: list[list[Any]]) -> None:  # fmt: skip
        self.args, self.base, self.session, self.flows, self.steps = args, base, session, flows, steps
        self.numbers = itertools.count(1)
        self.failures: dict[str, int] = {}

    def failed(self, what: str) -> None:
        self.failures[what] = self.failures.get(what, 0) + 1

    async def round(self, number: int, app: Any) -> None:
        limit = asyncio.Semaphore(self.args.concurrency)

        async def bounded(work: Any) -> None:
            async with limit:
                try:
                    await work
                except Exception as exc:  # counted, never stops the round
                    self.failed(type(exc).__name__)

        senders = range(self.args.senders)
        work = [
            *(self.messenger(f"{number}{i:06d}") for i in senders),
            *(self.messenger(f"8{number}{i:05d}", ("bonjour",) * 25) for i in range(self.args.floods)),
            *(self.whatsapp(f"+33{number % 10}{i:08d}") for i in senders),
            *(self.telegram(number * 10_000_000 + i) for i in senders),
            *(self.page(number, i) for i in range(self.args.pages)),
            *(self.walk(f"9{number}{i:05d}", i) for i in range(self.args.walks)),
        ]
        await asyncio.gather(*(bounded(w) for w in work))
        await self.console(number, app)
        await self.reload(number, app)

    async def post(self, path: str, **kwargs: Any) -> None:
        async with self.session.post(self.base + path, **kwargs) as response:
            await response.read()
            if response.status != 200:
                self.failed(f"{path} {response.status}")

    async def messenger(self, sender: str, texts: tuple[str, ...] = ("bonjour", "texte")) -> None:
        for text in texts:
            raw, headers = signed_messenger(APP_SECRET, messenger_body([messenger_message(sender, text)]))
            await self.post("/webhooks/messenger", data=raw, headers=headers)

    async def whatsapp(self, phone: str) -> None:
        for text in ("bonjour", "texte"):
            form = twilio_form("whatsapp:" + phone, text)
            headers = {"X-Twilio-Signature": sign_twilio(TWILIO_TOKEN, PUBLIC + "/webhooks/whatsapp", form)}
            await self.post("/webhooks/whatsapp", data=form, headers=headers)

    async def telegram(self, chat: int) -> None:
        for text in ("bonjour", "texte"):
            update = telegram_update(next(self.numbers) + chat * 10, chat, text)
            await self.post("/webhooks/telegram", data=json.dumps(update), headers=telegram_headers(TELEGRAM_SECRET))

    async def walk(self, sender: str, index: int) -> None:
        for step in self.steps[index % len(self.steps)]:
            raw, headers = signed_messenger(
                APP_SECRET, messenger_body([messenger_message(sender, step.text, quick_reply=step.payload)])
            )
            await self.post("/webhooks/messenger", data=raw, headers=headers)

    async def page(self, number: int, index: int) -> None:
        """A page from a client network never seen before: an IPv6 /64 named by the trusted proxy (127.0.0.1), or
        its own loopback address (127.a.b.c: a client of its own for the connection caps too), alternately."""
        n = number * 100_000 + index
        if index % 2:
            headers = {"X-Forwarded-For": f"2001:db8:{n >> 16:x}:{n & 0xFFFF:x}::1"}
            await self.chat(self.session, headers, index)
            return
        local = f"127.{(n >> 16) & 255}.{(n >> 8) & 255}.{max(2, n & 255)}"
        async with ClientSession(connector=TCPConnector(local_addr=(local, 0)), timeout=ClientTimeout(total=60)) as own:
            await self.chat(own, {}, index)

    async def chat(self, session: ClientSession, headers: dict[str, str], index: int) -> None:
        ws = await session.ws_connect(self.base + "/chat/ws", headers=headers, heartbeat=None)
        try:
            await ws.send_json({"type": "hello", "token": None, "opening": secrets.token_urlsafe(16),
                                "language": "fr"})  # fmt: skip
            token = await self.until(ws, "session")
            await ws.send_json({"type": "typing"})
            if index % 6 == 1:  # an image, as the page's upload sends it
                upload = {"X-Chat-Token": token, "X-Upload-Id": str(uuid.uuid4()), **headers}
                async with session.post(self.base + "/chat/upload", data=PHOTO, headers=upload) as response:
                    await response.read()
                    if response.status != 201:
                        self.failed(f"upload {response.status}")
            message = str(uuid.uuid4())
            await ws.send_json({"type": "message", "id": message, "text": "bonjour", "payload": None})
            await self.until(ws, "ack")
            if index % 6 == 0:
                await ws.send_json({"type": "end"})
                await self.until(ws, "status")
            if index % 6 == 3:  # the young person erases it, then a new conversation on the same socket
                for text in ("Efface mes données stp", "oui"):
                    await ws.send_json({"type": "message", "id": str(uuid.uuid4()), "text": text, "payload": None})
                await self.until(ws, "status")
                await ws.send_json({"type": "hello", "token": None, "language": "fr"})
                await self.until(ws, "session")
            if index % 3 == 2:  # dropped: no close frame (a phone losing its network)
                transport = ws._response.connection.transport if ws._response.connection else None
                if transport is not None:
                    transport.abort()
                return
        finally:
            await ws.close()

    async def until(self, ws: Any, kind: str) -> str:
        """The next frame of ``kind`` waited for; its ``token`` if it has one."""
        async with asyncio.timeout(30):
            async for message in ws:
                if message.type != WSMsgType.TEXT:
                    raise ConnectionError(f"socket closed before {kind}")
                frame = json.loads(message.data)
                if frame.get("type") == kind:
                    return str(frame.get("token", ""))
        raise ConnectionError(f"socket closed before {kind}")

    async def console(self, number: int, app: Any) -> None:
        """A supervisor logs in from a network of its own, takes, answers and closes what waits, logs out."""
        headers = {"X-Forwarded-For": f"172.16.{number % 256}.{(number // 256) % 256}"}
        async with ClientSession(cookie_jar=CookieJar(unsafe=True), timeout=ClientTimeout(total=60)) as console:
            async with console.post(self.base + "/api/session", json={"name": "anne", "password": PASSWORD},
                                    headers=headers) as response:  # fmt: skip
                if response.status != 200:
                    self.failed(f"login {response.status}")
                    return
            events = await console.ws_connect(self.base + "/api/events", headers=headers)
            board = await console.ws_connect(self.base + "/api/events?watch=1", headers=headers)
            async with console.get(self.base + "/api/queue", headers=headers) as response:
                waiting = (await response.json()).get("waiting", [])
            for card in waiting:
                cid = card["id"]
                for path, body in (("/take", {}), ("/messages", {"text": "Bonjour, je suis là."}),
                                   ("/close", {"outcome": "cyberbullying"})):  # fmt: skip
                    async with console.post(f"{self.base}/api/conversations/{cid}{path}", json=body,
                                            headers=headers) as response:  # fmt: skip
                        if response.status >= 300:
                            self.failed(f"console {path} {response.status}")
                            break
            await events.close()
            await board.close()
            async with console.delete(self.base + "/api/session", headers=headers) as response:
                await response.read()

    async def reload(self, number: int, app: Any) -> None:
        text = self.flows.read_text(encoding="utf-8")
        self.flows.write_text(re.sub(r"\A(# leak round \d+\n)?", f"# leak round {number}\n", text), encoding="utf-8")
        await app[FLOWS].reload_aside()


def growth(before: tracemalloc.Snapshot, after: tracemalloc.Snapshot, top: int) -> list[str]:
    keep = [tracemalloc.Filter(False, tracemalloc.__file__), tracemalloc.Filter(False, "*/gateway/testing.py"),
            tracemalloc.Filter(False, "*/bench/*")]  # fmt: skip
    stats = after.filter_traces(keep).compare_to(before.filter_traces(keep), "lineno")
    lines = []
    for stat in sorted(stats, key=lambda s: s.size_diff, reverse=True)[:top]:
        frame = stat.traceback[0]
        where = frame.filename.replace(str(ROOT) + "/", "").replace(str(ROOT / ".venv") + "/", "")
        where = re.sub(r".*site-packages/", "", where)
        lines.append(f"  {stat.size_diff / 1024:+9.1f} KiB {stat.count_diff:+7d} blocks  {where}:{frame.lineno}")
    return lines


async def main(args: argparse.Namespace) -> None:
    print(machine_line())
    print(f"store {args.store}; a round: {args.senders} senders × 3 channels, {args.pages} web chat pages, "
          f"{args.walks} hand-offs closed on the console, one login, one flows.yaml reload")  # fmt: skip
    flows_text = bench_flows((ROOT / "flows.yaml").read_text(encoding="utf-8"))
    steps = walks(flows_text, 8)
    with tempfile.TemporaryDirectory(prefix="leak-") as tmp:
        directory = Path(tmp)
        flows = directory / "flows.yaml"
        flows.write_text(flows_text, encoding="utf-8")
        redis = Redis(directory / "redis") if args.store == "redis" else None
        graph, twilio, telegram = FakeGraphAPI(), FakeTwilioAPI(auth_token=TWILIO_TOKEN), FakeTelegramAPI()
        fakes: list[FakeAPI] = [graph, twilio, telegram]
        try:
            for fake in fakes:
                await fake.start()
            if redis is not None:
                await asyncio.sleep(0.5)  # redis-server's start: a few ms
            settings = Settings(
                store=redis.url if redis is not None else f"sqlite:///{tmp}/gateway.sqlite3",
                flows=str(flows), public_url=PUBLIC, secret_key=SECRET_KEY, data_key=DATA_KEY,
                understanding=args.understanding, outbox_base_delay=0.05,
                messenger_app_secret=APP_SECRET, messenger_verify_token="verify", messenger_page_access_token="page",
                messenger_api_url=graph.url + "/v23.0",
                twilio_account_sid=ACCOUNT_SID, twilio_auth_token=TWILIO_TOKEN, twilio_whatsapp_from=WHATSAPP_FROM,
                twilio_api_url=twilio.url,
                telegram_bot_token=BOT_TOKEN, telegram_webhook_secret=TELEGRAM_SECRET, telegram_api_url=telegram.url,
                client_address_header="X-Forwarded-For", trusted_proxies="127.0.0.1/32,::1/128",
            )  # fmt: skip
            from gateway.app import create_app

            app = await create_app(settings, worker_poll_seconds=0.2)
            runner = web.AppRunner(app, access_log=None, handle_signals=False)
            await runner.setup()
            guard = ConnectionGuard(  # as ``gateway serve`` guards its connections (gateway/cli.py)
                max_per_address=settings.max_connections_per_address, header_timeout=settings.http_header_timeout,
                metrics=app[METRICS], networks=settings.client_networks(),
                max_per_shared_network=settings.max_connections_per_shared_network,
                addresses=settings.client_addresses(), max_open=10_000,
            )  # fmt: skip
            port = free_port()
            await GuardedSite(runner, "127.0.0.1", port, guard).start()
            await app[STORE].add_listener(Listener("anne", hash_password(PASSWORD), capacity=1000, supervisor=True))
            base = f"http://127.0.0.1:{port}"
            async with ClientSession(timeout=ClientTimeout(total=120)) as session:
                churn = Churn(args, base, session, flows, steps)
                tracemalloc.start(args.frames)
                names: list[str] = []
                rows: list[dict[str, int]] = []
                snapshots: list[tuple[tracemalloc.Snapshot, float]] = []
                total = args.warm + args.rounds
                for number in range(1, total + 1):
                    began = time.monotonic()
                    await churn.round(number, app)
                    await asyncio.sleep(args.settle)  # the outbox's replies and the inbox's items go out
                    for fake in fakes:  # what the fakes recorded is theirs, not the gateway's: forgotten
                        fake.requests.clear()
                    twilio.kept.clear()
                    gc.collect()
                    rows.append(sizes(app, guard))
                    names = list(rows[-1])
                    mib = rss_mib()
                    print(f"round {number}/{total}: {time.monotonic() - began:5.1f} s, RSS {mib:6.1f} MiB, "
                          f"traced {tracemalloc.get_traced_memory()[0] / 2**20:6.1f} MiB")  # fmt: skip
                    if number in (args.warm, total):
                        snapshots.append((tracemalloc.take_snapshot(), mib))
                print(f"failures: {churn.failures or 'none'}")
                (before, rss_before), (after, rss_after) = snapshots
                print(f"\nRSS after warm-up {rss_before:.1f} MiB, after {args.rounds} more rounds {rss_after:.1f} MiB "
                      f"({(rss_after - rss_before) / args.rounds:+.2f} MiB a round)")  # fmt: skip
                print(f"allocations' growth over those {args.rounds} rounds, by file:line (top {args.top}):")
                print("\n".join(growth(before, after, args.top)))
                print("\nlen() after each round (a structure growing with each round's new identities: marked *):")
                width = max(map(len, names))
                for name in names:
                    values = [row.get(name, -1) for row in rows]
                    tail = values[args.warm - 1 :]
                    grows = all(b > a for a, b in itertools.pairwise(tail)) and len(tail) > 1
                    print(f"  {'*' if grows else ' '} {name:<{width}} " + " ".join(f"{v:>7}" for v in values))
            await runner.cleanup()
        finally:
            for fake in fakes:
                with contextlib.suppress(Exception):
                    await fake.close()
            if redis is not None:
                redis.stop()


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--store", choices=("sqlite", "redis"), default="sqlite")
    parser.add_argument("--warm", type=int, default=2, help="rounds before the first snapshot")
    parser.add_argument("--rounds", type=int, default=3, help="rounds between the two snapshots")
    parser.add_argument("--senders", type=int, default=300, help="distinct senders a channel a round")
    parser.add_argument("--pages", type=int, default=150, help="web chat pages a round, each its own network")
    parser.add_argument("--walks", type=int, default=10, help="hand-offs a round, closed on the console")
    parser.add_argument("--floods", type=int, default=10, help="Messenger senders a round past the flood limit")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--settle", type=float, default=2.0, help="seconds after a round before measuring")
    parser.add_argument("--frames", type=int, default=1, help="tracemalloc's frames a trace")
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--understanding", choices=("on", "off"), default="off")
    return parser.parse_args(argv)


if __name__ == "__main__":
    import uvloop

    arguments = parse()
    os.nice(0)
    uvloop.run(main(arguments))
