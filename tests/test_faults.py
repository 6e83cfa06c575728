"""Faults with real processes: ``kill -9`` of a ``gateway serve`` during a burst of signed Messenger webhooks.

A provider that behaves like Meta (``Provider``) posts each young person's messages in order, and redelivers a
webhook one second after it was not acknowledged (a 5xx, a reset, a refused connection), to an instance that is
up; it also redelivers some webhooks that were acknowledged (their acknowledgement "lost" on the way). The fake
Graph API (in this process) records every reply. Afterwards, read from the store and the fake:

* nothing lost: every message is in its conversation's transcript exactly once, and every conversation has an
  engine state;
* nothing twice: no message recorded twice, and no reply reaches Graph twice, except a send in flight when the
  instance died (at most one per conversation: the last reply Graph accepted for it before the kill).

On Redis: two instances on one redis-server started here, processing each webhook before acknowledging it; one
is killed, the other carries on. On SQLite: the only instance, acknowledging each webhook once it is in the
durable inbox (``GATEWAY_INBOX_BATCH=0``), is killed and started again on the same file: what was acknowledged
and not yet processed is processed after the restart.
"""

from __future__ import annotations

import asyncio
import itertools
import shutil
import signal
import subprocess
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import pytest

from gateway.conversation import Conversation
from gateway.inbox import sender_key
from gateway.keyed import KeyedHash
from gateway.messages import ChannelName, Inbound
from gateway.store import Author, Delivery, Store, open_store
from gateway.testing import SECRET_KEY, FakeGraphAPI, messenger_body, messenger_message, signed_messenger, store_keys
from tests.store.conftest import _free_port, _wait_until_ready
from tests.test_serve import Server

SECRET = "fault-app-secret"
SENDERS = 24
WALK = [("Bonjour", None), ("Non", "no"), ("Français", "fr"), ("j'ai 15 ans", None)]
REDELIVER_AFTER = 1.0


@dataclass
class Webhook:
    sender: str
    mid: str
    raw: bytes
    headers: dict[str, str]
    acknowledged: bool = False


@dataclass
class Provider:
    """Meta, as far as delivery goes: in order per sender, redelivering what was not acknowledged."""

    instances: list[Server]
    http: aiohttp.ClientSession
    failures: int = 0
    posted: int = 0
    acknowledged: list[Webhook] = field(default_factory=list)
    _turn: Iterator[int] = field(default_factory=itertools.count)

    def _next_up(self) -> Server:
        for _ in range(len(self.instances) * 2):
            server = self.instances[next(self._turn) % len(self.instances)]
            if server.process is not None and server.process.poll() is None:
                return server
        return self.instances[0]  # all down: this post fails, and is redelivered a second later

    async def post(self, webhook: Webhook) -> None:
        """Deliver until acknowledged (200)."""
        while True:
            server = self._next_up()
            self.posted += 1
            try:
                async with self.http.post(
                    server.url + "/webhooks/messenger", data=webhook.raw, headers=webhook.headers
                ) as response:
                    if response.status == 200:
                        webhook.acknowledged = True
                        self.acknowledged.append(webhook)
                        return
            except (aiohttp.ClientError, TimeoutError):
                pass
            self.failures += 1
            await asyncio.sleep(REDELIVER_AFTER)

    async def young_person(self, number: int) -> None:
        sender = psid(number)
        for step, (text, payload) in enumerate(WALK):
            mid = f"m_{sender}_{step}"
            raw, headers = signed_messenger(SECRET, messenger_body([messenger_message(sender, text, mid, payload)]))
            await self.post(Webhook(sender, mid, raw, headers))


def psid(number: int) -> str:
    return f"71{number:014d}"


@contextmanager
def redis_server(tmp_path: Path) -> Iterator[str]:
    """A redis-server of this test's own, persistence off."""
    binary = shutil.which("redis-server")
    assert binary, "redis-server is not installed (make system-deps)"
    directory = tmp_path / "redis"
    directory.mkdir()
    port, log = _free_port(), directory / "redis.log"
    command = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
               "--dir", str(directory), "--logfile", str(log)]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    try:
        _wait_until_ready(process, port, log)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        process.kill()
        process.wait()


def instance(tmp_path: Path, name: str, store: str, graph: FakeGraphAPI, version: str) -> Server:
    """A ``gateway serve`` whose replies reach the fake Graph under ``/<version>/``: who sent what is known."""
    directory = tmp_path / name
    directory.mkdir()
    server = Server(directory)
    server.env.update({
        "GATEWAY_STORE": store,
        "GATEWAY_LOG_LEVEL": "WARNING",
        "MESSENGER_APP_SECRET": SECRET,
        "MESSENGER_VERIFY_TOKEN": "verify",
        "MESSENGER_PAGE_ACCESS_TOKEN": "page-token",
        "MESSENGER_API_URL": f"{graph.url}/{version}",
        "GATEWAY_OUTBOX_BASE_DELAY": "0.1",
        "GATEWAY_OUTBOX_LEASE_SECONDS": "3",  # a dead instance's sends are taken over after 3 s (fake: instant)
        "GATEWAY_INBOUND_CLAIM_SECONDS": "2",
        "GATEWAY_REDIS_SOCKET_TIMEOUT": "1",  # at most half the claim and a third of the lease (refused otherwise)
        "GATEWAY_REDIS_REPLICA_ACK_TIMEOUT": "0.5",  # below the socket timeout
    })  # fmt: skip
    return server


def kill(server: Server) -> None:
    assert server.process is not None
    server.process.send_signal(signal.SIGKILL)
    server.process.wait()
    server.process = None


@asynccontextmanager
async def store_at(url: str) -> AsyncIterator[Store]:
    store = await open_store(url, keys=store_keys(url))
    try:
        yield store
    finally:
        await store.close()


async def inbox_drained(store: Store) -> None:
    """Wait until no young person has messages waiting in the durable inbox."""
    keyed = KeyedHash(SECRET_KEY)  # the gateways' GATEWAY_SECRET_KEY
    keys = [sender_key(keyed, Inbound(ChannelName.MESSENGER, psid(n), "")) for n in range(SENDERS)]
    for _ in range(300):
        if not any([await store.inbox_waiting(key) for key in keys]):
            return
        await asyncio.sleep(0.1)
    raise AssertionError("the inbox never drained")


async def settled(store: Store, conversations: list[Conversation]) -> None:
    """Wait until no outgoing entry of these conversations is pending (the outboxes drained)."""
    for _ in range(300):
        pending = 0
        for conversation in conversations:
            entries = await store.transcript(conversation.id)
            pending += sum(e.author is Author.BOT and e.delivery is Delivery.PENDING for e in entries)
        if pending == 0:
            return
        await asyncio.sleep(0.1)
    details = []
    for conversation in conversations:
        for e in await store.transcript(conversation.id):
            if e.author is Author.BOT and e.delivery is Delivery.PENDING:
                details.append((conversation.id, e.id, e.text[:20], await store.outbox_get(conversation.id, e.id)))
    raise AssertionError(f"{pending} replies still pending: {details}")


async def check_once(store_url: str, graph: FakeGraphAPI, victim: str) -> dict[str, int]:
    """Every message recorded once, every reply at Graph once (beyond the bound); returns the figures."""
    async with store_at(store_url) as store:
        await inbox_drained(store)
        conversations: list[Conversation] = []
        lost_senders = 0
        for number in range(SENDERS):
            found = await store.find_active_conversation(ChannelName.MESSENGER, psid(number))
            if found is None:
                lost_senders += 1
            else:
                conversations.append(found)
        assert lost_senders == 0, f"{lost_senders} senders have no conversation"
        await settled(store, conversations)
        recorded_twice = lost = empty = 0
        expected: dict[str, Counter[str]] = {}
        for conversation in conversations:
            entries = await store.transcript(conversation.id)
            users = [e.text for e in entries if e.author is Author.USER]
            lost += len(WALK) - len(set(users))
            recorded_twice += len(users) - len(set(users))
            empty += not conversation.engine
            expected[conversation.sender] = Counter(e.text for e in entries if e.author is Author.BOT)
    await asyncio.sleep(0.5)  # a stray resend would show up by now (the lease is 3 s, the fake answers at once)
    accepted = graph.accepted()
    at_graph: dict[str, Counter[str]] = {}
    for request in accepted:
        at_graph.setdefault(request.body["recipient"]["id"], Counter())[request.body["message"]["text"]] += 1
    twice = sum(max(0, at_graph.get(s, Counter())[t] - n) for s, bot in expected.items() for t, n in bot.items())
    missing = sum(max(0, n - at_graph.get(s, Counter())[t]) for s, bot in expected.items() for t, n in bot.items())
    # A send in flight when the instance died is the last reply of its conversation that the killed instance sent
    # (the outbox sends a conversation's next reply only once the previous one is recorded as sent).
    by_victim = [r for r in accepted if r.path.startswith(f"/{victim}/")]
    last_before_kill = {r.body["recipient"]["id"]: r.body["message"]["text"] for r in by_victim}
    repeated = [(s, t, at_graph[s][t] - n) for s, bot in expected.items() for t, n in bot.items()
                if at_graph.get(s, Counter())[t] > n]  # fmt: skip
    not_in_flight = [(s, extra) for s, t, extra in repeated if extra > 1 or last_before_kill.get(s) != t]
    figures = {"lost": lost, "recorded_twice": recorded_twice, "empty_state": empty, "replies_twice": twice,
               "replies_missing": missing, "repeated_not_in_flight": len(not_in_flight)}  # fmt: skip
    assert figures == {**figures, "lost": 0, "recorded_twice": 0, "empty_state": 0, "replies_missing": 0,
                       "repeated_not_in_flight": 0}, (figures, not_in_flight, repeated)  # fmt: skip
    return figures


async def burst_with_a_kill(provider: Provider, graph: FakeGraphAPI, victim: Server, restart: bool) -> None:
    """All young people write at once; once a third of their messages are acknowledged, ``victim`` is killed
    (and started again when ``restart``, sending under ``/restarted/``). Then Meta redelivers some acknowledged
    webhooks."""
    people = [asyncio.create_task(provider.young_person(n)) for n in range(SENDERS)]
    try:
        while len(provider.acknowledged) < SENDERS * len(WALK) // 3:
            await asyncio.sleep(0.01)
        kill(victim)
        if restart:
            victim.env["MESSENGER_API_URL"] = f"{graph.url}/restarted"
            victim.start()
        await asyncio.wait_for(asyncio.gather(*people), timeout=120)
    finally:
        for task in people:
            task.cancel()
    for webhook in provider.acknowledged[::5]:  # acknowledged, but Meta did not get the 200: redelivered
        await provider.post(webhook)


@pytest.mark.redis
async def test_kill_9_of_one_of_two_instances_on_redis_loses_nothing_and_repeats_nothing(
    tmp_path: Path, graph: FakeGraphAPI
) -> None:
    with redis_server(tmp_path) as url:
        one, two = instance(tmp_path, "one", url, graph, "killed"), instance(tmp_path, "two", url, graph, "v23.0")
        try:
            async with aiohttp.ClientSession() as http:
                one.start()
                two.start()
                await one.ready(http)
                await two.ready(http)
                provider = Provider([one, two], http)
                await burst_with_a_kill(provider, graph, one, restart=False)
            figures = await check_once(url, graph, "killed")
        finally:
            one.stop()
            two.stop()
    assert provider.failures > 0  # the kill was felt: some webhooks were redelivered
    print(f"redis: {figures}, {provider.failures} webhooks redelivered after a failure")


async def test_kill_9_and_restart_on_sqlite_loses_nothing_and_repeats_nothing(
    tmp_path: Path, graph: FakeGraphAPI
) -> None:
    url = f"sqlite:///{tmp_path}/gateway.sqlite3"
    only = instance(tmp_path, "only", url, graph, "killed")
    only.env["GATEWAY_INBOX_BATCH"] = "0"  # every webhook through the durable inbox: acknowledged once stored
    try:
        async with aiohttp.ClientSession() as http:
            only.start()
            await only.ready(http)
            provider = Provider([only], http)
            await burst_with_a_kill(provider, graph, only, restart=True)
            await only.ready(http)
        figures = await check_once(url, graph, "killed")
    finally:
        only.stop()
    assert provider.failures > 0
    print(f"sqlite: {figures}, {provider.failures} webhooks redelivered after a failure")
