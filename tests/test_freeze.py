"""A frozen instance: a real ``gateway serve`` stopped (SIGSTOP) and resumed (SIGCONT), as a virtual machine paused or
live-migrated, a suspended host, a swap storm or a long GC stop one. Unlike a wall clock stepped forward
(``tests/test_outbox_clock_jump.py``), both the wall clock and the loop's own clock have moved on while it slept: its
leases lapsed, its timers all due at once, its sockets still open."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
from collections import Counter
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import pytest
from redis.asyncio import Redis

from gateway.channels.base import SEND_TIMEOUT_SECONDS
from gateway.inbox import sender_key
from gateway.keyed import KeyedHash
from gateway.messages import ChannelName, Inbound
from gateway.store import Author, Store, TimerKind
from gateway.testing import (
    BOT_TOKEN,
    SECRET_KEY,
    FakeGraphAPI,
    FakeTelegramAPI,
    messenger_body,
    messenger_message,
    signed_messenger,
    telegram_headers,
    telegram_update,
)
from tests.test_faults import SECRET, inbox_drained, instance, psid, redis_server, settled, store_at
from tests.test_webchat import hello, say

# GATEWAY_OUTBOX_LEASE_SECONDS: its first renewal (a third of it, 2 s) due after the outbox's next poll (1 s), so
# that on resume the claim's timer fires first, as it does at the default 15 s
LEASE = 6.0


def unread(port: int, *, at_redis: bool) -> int:
    """The bytes received and not read yet on the established TCP connections to Redis's ``port``: at Redis's end
    (``at_redis``: what the gateway wrote), else at the gateway's (Redis's answers). Linux's ``/proc/net/tcp``."""
    total = 0
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local, remote = (int(address.rsplit(":", 1)[1], 16) for address in fields[1:3])
        if fields[3] == "01" and (local if at_redis else remote) == port:  # 01: established
            total += int(fields[4].split(":")[1], 16)  # tx_queue:rx_queue
    return total


async def until_true(check: Callable[[], bool], what: str) -> None:
    for _ in range(2000):
        if check():
            return
        await asyncio.sleep(0.005)
    raise AssertionError(what)


async def post(http: aiohttp.ClientSession, url: str, sender: str, text: str, mid: str) -> None:
    """One Messenger webhook, posted again a second after any answer that is not a 200 (as Meta does)."""
    raw, headers = signed_messenger(SECRET, messenger_body([messenger_message(sender, text, mid)]))
    for _ in range(60):
        try:
            async with http.post(url + "/webhooks/messenger", data=raw, headers=headers) as response:
                if response.status == 200:
                    return
        except (aiohttp.ClientError, TimeoutError):
            pass
        await asyncio.sleep(1.0)
    raise AssertionError(f"{mid} never acknowledged")


@contextlib.asynccontextmanager
async def one_greeting_held(
    tmp_path: Path, graph: FakeGraphAPI, name: str
) -> AsyncIterator[tuple[subprocess.Popen[bytes], str]]:
    """A Messenger ``gateway serve`` alone on a Redis of its own (outbox lease ``LEASE``), its greeting to a first
    message held at the fake Graph API, unanswered: its process and the Redis URL, for the test to freeze it as its
    fault needs. On leaving: the instance goes on (a second message: its outbox kicked, a claim made), the provider
    answers, everything settles, the instance stops. What the fake then received: :func:`copies_sent`."""
    with redis_server(tmp_path) as url:
        only = instance(tmp_path, "only", url, graph, "v23.0")
        only.env["GATEWAY_OUTBOX_LEASE_SECONDS"] = str(int(LEASE))
        sender = psid(1)
        try:
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as http:
                only.start()
                await only.ready(http)
                assert only.process is not None
                graph.stall()
                await post(http, only.url, sender, "Bonjour", f"m_{name}_0")
                await graph.wait_held(1)  # the greeting at the provider, unanswered
                yield only.process, url
                await post(http, only.url, sender, "Non", f"m_{name}_1")
                graph.resume()
                async with store_at(url) as store:
                    await inbox_drained(store)
                    conversation = await store.find_active_conversation(ChannelName.MESSENGER, sender)
                    assert conversation is not None
                    await settled(store, [conversation])
        finally:
            only.stop()


def copies_sent(graph: FakeGraphAPI) -> list[int]:
    """How many times the fake Graph API received each reply's text, fewest first."""
    sent = Counter(r.body["message"]["text"] for r in graph.requests_to("messages") if "message" in r.body)
    return sorted(sent.values())


@pytest.mark.redis
async def test_an_instance_frozen_past_its_outbox_lease_mid_send_does_not_send_that_reply_again(
    tmp_path: Path, graph: FakeGraphAPI
) -> None:
    """The provider holds the bot's first reply when the instance is frozen for longer than the outbox lease; once
    resumed, its own outbox must renew the lease of that send in flight before it claims again, not take the reply
    back and send it a second time (docs/guarantees.md: a suspended machine does not make the outbox send its own
    reply in flight twice)."""
    async with one_greeting_held(tmp_path, graph, "freeze") as (process, _):
        process.send_signal(signal.SIGSTOP)
        try:
            await asyncio.sleep(LEASE + 1.5)  # the fault itself: frozen past the lease, both clocks moving
        finally:
            process.send_signal(signal.SIGCONT)
        # leaving: the instance goes on (a message more: its outbox kicked, a claim made), then the provider answers
    copies = copies_sent(graph)
    assert copies and max(copies) == 1, f"a reply sent more than once after the freeze: {copies}"


@pytest.mark.redis
async def test_a_webhook_redelivered_to_the_other_instance_while_the_first_is_frozen_is_processed_once(
    tmp_path: Path, graph: FakeGraphAPI
) -> None:
    """Webhooks posted to an instance as it freezes hang (its socket open, nothing read); the provider gives up on
    them (2 s here; Twilio waits 15 s, Meta about 20) and delivers them to the other instance, which processes them.
    Once resumed, the frozen instance reads the same webhooks and must answer them as already done: each message
    recorded once, each reply sent once."""
    with redis_server(tmp_path) as url:
        one, two = instance(tmp_path, "one", url, graph, "one"), instance(tmp_path, "two", url, graph, "two")
        senders = [psid(n) for n in range(3)]
        try:
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as http:
                for server in (one, two):
                    server.start()
                    await server.ready(http)
                assert one.process is not None
                for number, sender in enumerate(senders):  # a conversation each, on the instance that will freeze
                    await post(http, one.url, sender, "Bonjour", f"m_open_{number}")
                async with store_at(url) as store:  # nothing in flight as it freezes: its replies all sent
                    await inbox_drained(store)
                    opened = [await store.find_active_conversation(ChannelName.MESSENGER, s) for s in senders]
                    await settled(store, [c for c in opened if c is not None])
                one.process.send_signal(signal.SIGSTOP)
                try:
                    impatient = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2))
                    async with impatient:
                        for number, sender in enumerate(senders):
                            raw, headers = signed_messenger(
                                SECRET, messenger_body([messenger_message(sender, "Non", f"m_frozen_{number}", "no")])
                            )
                            with pytest.raises(TimeoutError):  # the frozen instance reads nothing
                                async with impatient.post(one.url + "/webhooks/messenger", data=raw, headers=headers):
                                    pass
                            await post(http, two.url, sender, "Non", f"m_frozen_{number}")  # the provider's retry
                finally:
                    one.process.send_signal(signal.SIGCONT)
                for number, sender in enumerate(senders):  # the webhooks it held, read late, and Meta's redelivery
                    await post(http, one.url, sender, "Non", f"m_frozen_{number}")
                async with store_at(url) as store:
                    await inbox_drained(store)
                    conversations = []
                    for sender in senders:
                        found = await store.find_active_conversation(ChannelName.MESSENGER, sender)
                        assert found is not None
                        conversations.append(found)
                    await settled(store, conversations)
                    for conversation in conversations:
                        texts = [e.text for e in await store.transcript(conversation.id) if e.author is Author.USER]
                        assert texts == ["Bonjour", "Non"], texts
        finally:
            one.stop()
            two.stop()
    sent = Counter(
        (r.body["recipient"]["id"], r.body["message"]["text"])
        for r in graph.requests_to("messages")
        if "message" in r.body
    )
    assert sent and max(sent.values()) == 1, f"a reply sent more than once: {sent}"


@pytest.mark.redis
async def test_a_page_gone_to_the_other_instance_while_the_first_was_frozen_is_not_marked_gone(
    tmp_path: Path, graph: FakeGraphAPI
) -> None:
    """A web chat page on an instance that freezes hears nothing (a page takes 2.5 keepalives of silence, 50 s, for a
    dead connection: a VM paused, a laptop-class host suspended that long), closes its socket and says hello on the
    other instance, which resumes its conversation. Once resumed, the frozen instance sees that socket's close: it
    must not arm the "young person gone" timer (else 90 s later the listeners are told nobody reads while the young
    person is there, waiting), as when it arms that timer late after a store outage
    (``tests/test_gone_timer_instances.py``)."""
    with redis_server(tmp_path) as url:
        one, two = instance(tmp_path, "one", url, graph, "one"), instance(tmp_path, "two", url, graph, "two")
        one.env.update({"GATEWAY_LOG_LEVEL": "INFO", "GATEWAY_ACCESS_LOG": "1"})  # a socket's handler done: its line
        try:
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as http:
                for server in (one, two):
                    server.start()
                    await server.ready(http)
                assert one.process is not None
                page = await http.ws_connect(one.url + "/chat/ws", timeout=aiohttp.ClientWSTimeout(ws_close=1.0))
                token = (await hello(page))["token"]
                await say(page, "m1", "Bonjour")
                one.process.send_signal(signal.SIGSTOP)
                try:
                    await page.close()  # the page gives up on the silent connection (its close never answered)
                    async with http.ws_connect(two.url + "/chat/ws") as again:
                        assert (await hello(again, token))["token"] == token  # back, on the other instance
                        one.process.send_signal(signal.SIGCONT)
                        await one.log_once('"GET /chat/ws" 101')  # the frozen one saw the close, its arming tried
                        async with store_at(url) as store:
                            found = await store.find_active_conversation(ChannelName.WEBCHAT, token)
                            assert found is not None
                            due = await store.due_timers(datetime.now(UTC) + timedelta(days=1))
                        gone = [t for t in due if t.conversation_id == found.id and t.kind is TimerKind.WEBCHAT_GONE]
                        assert gone == [], "the page, open on the other instance, will be marked gone"
                finally:
                    one.process.send_signal(signal.SIGCONT)
        finally:
            one.stop()
            two.stop()


@pytest.mark.redis
async def test_an_instance_frozen_past_its_send_timeout_with_the_answer_waiting_does_not_send_that_reply_again(
    tmp_path: Path, graph: FakeGraphAPI
) -> None:
    """The provider accepts the bot's first reply while the instance is frozen (its answer waits, unread, in the
    frozen process's socket) and the freeze outlasts the send's timeout (15 s, ``SEND_TIMEOUT_SECONDS``): once
    resumed, the send's timer and its answer are both due at once, and the answer must win: the reply recorded as
    sent, never taken for timed out and sent a second time (one instance alone: nobody else could have sent it)."""
    async with one_greeting_held(tmp_path, graph, "answered") as (process, _):
        process.send_signal(signal.SIGSTOP)
        try:
            graph.resume()  # accepted: its answer waits in the frozen process's socket
            await graph.wait_accepted(1)
            await asyncio.sleep(SEND_TIMEOUT_SECONDS + 2.0)  # past the send's timer (aiohttp rounds it up)
        finally:
            process.send_signal(signal.SIGCONT)
    copies = copies_sent(graph)
    assert copies and max(copies) == 1, f"a reply the provider had accepted sent again after the freeze: {copies}"


CHAT = 424242  # the young person's Telegram chat


async def post_update(http: aiohttp.ClientSession, url: str, update_id: int, text: str) -> None:
    """One Telegram webhook, posted again a second after any answer that is not a 200 (as Telegram does)."""
    update = json.dumps(telegram_update(update_id, CHAT, text))
    for _ in range(60):
        try:
            async with http.post(url + "/webhooks/telegram", data=update, headers=telegram_headers("tg")) as response:
                if response.status == 200:
                    return
        except (aiohttp.ClientError, TimeoutError):
            pass
        await asyncio.sleep(1.0)
    raise AssertionError(f"update {update_id} never acknowledged")


async def telegram_inbox_drained(store: Store) -> None:
    key = sender_key(KeyedHash(SECRET_KEY), Inbound(ChannelName.TELEGRAM, str(CHAT), ""))
    for _ in range(300):
        if not await store.inbox_waiting(key):
            return
        await asyncio.sleep(0.1)
    raise AssertionError("the inbox never drained")


@pytest.mark.redis
async def test_a_telegram_send_frozen_past_its_timeout_with_the_answer_waiting_is_not_sent_again(
    tmp_path: Path, graph: FakeGraphAPI, telegram: FakeTelegramAPI
) -> None:
    """As above, on Telegram, whose sends go through python-telegram-bot and httpx (their own timeouts): the Bot API
    accepts the greeting while the instance is frozen past the send timeout; once resumed, the answer waiting in the
    socket must be read, never the send taken for timed out and sent a second time."""
    with redis_server(tmp_path) as url:
        only = instance(tmp_path, "only", url, graph, "v23.0")
        only.env.update({"GATEWAY_OUTBOX_LEASE_SECONDS": str(int(LEASE)), "TELEGRAM_BOT_TOKEN": BOT_TOKEN,
                         "TELEGRAM_WEBHOOK_SECRET": "tg", "TELEGRAM_API_URL": telegram.url})  # fmt: skip
        try:
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as http:
                only.start()
                await only.ready(http)
                assert only.process is not None
                telegram.stall()
                await post_update(http, only.url, 1, "Bonjour")
                await telegram.wait_held(1)  # the first reply is at the Bot API, unanswered
                only.process.send_signal(signal.SIGSTOP)
                try:
                    telegram.resume()  # accepted: its answer waits in the frozen process's socket
                    await telegram.wait_accepted(1)
                    await asyncio.sleep(SEND_TIMEOUT_SECONDS + 2.0)  # past the send's timers
                finally:
                    only.process.send_signal(signal.SIGCONT)
                await post_update(http, only.url, 2, "Non")
                async with store_at(url) as store:
                    await telegram_inbox_drained(store)
                    conversation = await store.find_active_conversation(ChannelName.TELEGRAM, str(CHAT))
                    assert conversation is not None
                    await settled(store, [conversation])
        finally:
            only.stop()
    sent = Counter(r.body["text"] for r in telegram.requests_to("sendMessage"))
    copies = sorted(sent.values())
    assert copies and max(copies) == 1, f"a reply the Bot API had accepted sent again after the freeze: {copies}"


@pytest.mark.redis
async def test_an_instance_frozen_with_redis_s_answer_to_a_send_s_record_waiting_does_not_send_that_reply_again(
    tmp_path: Path, graph: FakeGraphAPI
) -> None:
    """The provider accepts the greeting, the instance writes its record to Redis, and freezes before it reads
    Redis's answer, past the outbox lease (Redis runs the record meanwhile: the answer waits in the frozen process's
    socket). Once resumed, the batch's read timeout (``GATEWAY_REDIS_SOCKET_TIMEOUT``) and that answer are both due:
    the answer must win, the send recorded, never taken for a store failure, given up to the next worker and sent
    again. Redis is stopped for the few milliseconds it takes to hold the record at its end before the freeze."""
    async with one_greeting_held(tmp_path, graph, "recorded") as (process, url):
        port = int(url.rsplit(":", 1)[1].split("/")[0])
        async with Redis.from_url(url) as client:
            redis_pid = int((await client.info("server"))["process_id"])
        os.kill(redis_pid, signal.SIGSTOP)
        try:
            graph.resume()
            await graph.wait_accepted(1)
            await until_true(lambda: unread(port, at_redis=True) > 0, "the send's record never left")
            process.send_signal(signal.SIGSTOP)
        finally:
            os.kill(redis_pid, signal.SIGCONT)
        try:
            await until_true(lambda: unread(port, at_redis=False) > 0, "Redis never answered the record")
            await asyncio.sleep(LEASE + 1.5)  # the fault itself: frozen past the lease and the socket timeout
        finally:
            process.send_signal(signal.SIGCONT)
    copies = copies_sent(graph)
    assert copies and max(copies) == 1, f"a reply recorded by Redis during the freeze sent again: {copies}"


def unread_on(redis_port: int, client_port: int, *, at_redis: bool) -> int:
    """As :func:`unread`, on the one connection from ``client_port`` to Redis's ``redis_port``."""
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        ends = tuple(int(address.rsplit(":", 1)[1], 16) for address in fields[1:3])
        if fields[3] == "01" and ends == ((redis_port, client_port) if at_redis else (client_port, redis_port)):
            return int(fields[4].split(":")[1], 16)
    return 0


@pytest.mark.redis
async def test_an_instance_frozen_with_the_answer_to_its_events_check_waiting_keeps_its_events_connection(
    tmp_path: Path, graph: FakeGraphAPI
) -> None:
    """The events (pub/sub) connection, quiet, is asked its check's PING (``RedisEvents._next``) and the instance
    freezes before it reads the answer, which Redis sends meanwhile; the freeze outlasts the answer's wait
    (``GATEWAY_REDIS_SOCKET_TIMEOUT``). Once resumed, the connection answered: it must be kept, not dropped with every
    subscription of the instance (the web chat's, the console's forwarding, presence, typing: each subscribing again
    and resyncing its sockets from the store). Redis is stopped for the moment it takes to hold the PING at its end."""
    with redis_server(tmp_path) as url:
        port = int(url.rsplit(":", 1)[1].split("/")[0])
        async with Redis.from_url(url) as client:
            redis_pid = int((await client.info("server"))["process_id"])
        only = instance(tmp_path, "only", url, graph, "v23.0")
        only.env.update({"GATEWAY_REDIS_HEALTH_CHECK_SECONDS": "0.5", "GATEWAY_REDIS_SOCKET_TIMEOUT": "1"})
        dropped = []
        try:
            async with (
                aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as http,
                Redis.from_url(url) as client,
            ):
                only.start()
                await only.ready(http)
                assert only.process is not None
                for _ in range(3):
                    for _ in range(100):  # its workers subscribed: one events connection
                        if len(listed := await client.client_list(_type="pubsub")) == 1:
                            break
                        await asyncio.sleep(0.1)
                    (events,) = listed
                    events_port = int(events["addr"].rsplit(":", 1)[1])
                    os.kill(redis_pid, signal.SIGSTOP)
                    try:
                        await until_true(lambda e=events_port: unread_on(port, e, at_redis=True) > 0, "no PING asked")
                        only.process.send_signal(signal.SIGSTOP)
                    finally:
                        os.kill(redis_pid, signal.SIGCONT)
                    try:
                        await until_true(lambda e=events_port: unread_on(port, e, at_redis=False) > 0, "no answer")
                        await asyncio.sleep(3.0)  # the fault itself: frozen past the answer's wait (1 s)
                    finally:
                        only.process.send_signal(signal.SIGCONT)
                    await asyncio.sleep(2.5)  # resumed: the check judges (a drop is seen within 1 s)
                    after = await client.client_list(_type="pubsub")
                    dropped.append(not after or after[0]["id"] != events["id"])
        finally:
            only.stop()
    assert not any(dropped), f"the events connection dropped after a freeze that its PING's answer came in: {dropped}"
