"""The attacks of issue 10 (abuse and flood limits), replayed against the real server; each asserts the defence.

Every test drives the real app (aiohttp test server, real store, real workers) or the real ``gateway serve``
process, as an attacker would: web chat sockets, logins, webhooks, raw TCP sockets on loopback. Counts are bounded
and small; nothing waits a fixed time: every wait is for a condition, with a generous timeout.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import re
import socket
import sqlite3
import stat
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import redis
from aiohttp import web
from aiohttp.test_utils import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from multidict import CIMultiDict

from gateway.app import API, DISPATCHER, STORE
from gateway.console.auth import DUMMY_HASH, verify_password
from gateway.conversation import Priority, Status
from gateway.errors import ConfigError
from gateway.messages import ChannelName
from gateway.settings import Settings
from gateway.store import Store
from gateway.testing import (
    ACCOUNT_SID,
    BOT_TOKEN,
    WHATSAPP_FROM,
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
from tests.conftest import PASSWORD, AppFactory, Clock, add_listener, login, outbox_drained
from tests.console.conftest import other_session
from tests.e2e.channel_support import ListenerDesk
from tests.e2e.test_whatsapp import PUBLIC, TOKEN, WALK
from tests.test_redis_restart import OwnRedis, own_redis
from tests.test_serve import running
from tests.test_webchat import WALK_TO_QUEUE, receive_until, say

__all__ = ["own_redis"]  # fixture used below
Client = TestClient[web.Request, web.Application]
DANGER = "je veux mourir"
TG_SECRET = "webhook_secret-123"
APP_SECRET = "messenger-app-secret"
EMERGENCY = ("119", "3114", "17", "112")


def keeps_the_emergency_numbers(text: str) -> bool:
    return all(re.search(rf"\b{number}\b", text) for number in EMERGENCY)


async def metric(client: Client, name: str, **labels: str) -> float:
    text = await (await client.get("/metrics")).text()
    wanted = ",".join(f'{k}="{v}"' for k, v in labels.items())
    for line in text.splitlines():
        if line.startswith(f"{name}_total{{{wanted}}}" if labels else f"{name}_total "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


async def open_chat(ws: aiohttp.ClientWebSocketResponse, token: str | None = None) -> dict[str, Any]:
    """hello; the session frame, or the notice that refused it."""
    await ws.send_json({"type": "hello", "token": token, "language": "fr"})
    frames = await receive_until(ws, lambda f: f["type"] == "session" or is_notice(f))
    return frames[-1]


def is_notice(frame: dict[str, Any]) -> bool:
    return bool(frame["type"] == "entry" and frame["entry"]["id"].startswith("notice-"))


def refused(frame: dict[str, Any]) -> bool:
    """The frame that tells the page a message was refused (the notice follows it once a minute per socket)."""
    return bool(frame["type"] == "refused" and frame["id"] is not None)


async def send_message(ws: aiohttp.ClientWebSocketResponse, message_id: str, text: str) -> list[dict[str, Any]]:
    """A message; the frames up to its ack, or up to the ``refused`` frame that names it."""
    await ws.send_json({"type": "message", "id": message_id, "text": text})
    return await receive_until(ws, lambda f: f.get("id") == message_id and f["type"] in ("ack", "refused"))


async def frames_so_far(ws: aiohttp.ClientWebSocketResponse) -> list[dict[str, Any]]:
    """Every frame the server sent before it answers one more (an unknown frame type: its error frame)."""
    await ws.send_json({"type": "sentinel"})
    return (await receive_until(ws, lambda f: f["type"] == "error", limit=500))[:-1]


async def waiting_and_open(store: Store) -> tuple[int, int]:
    waiting = len(await store.waiting())
    open_ = len(await store.conversations_by_status(Status.BOT)) + len(
        await store.conversations_by_status(Status.QUEUED)
    )
    return waiting, open_


# --- web chat floods ------------------------------------------------------------------------------------------


async def test_one_socket_typing_danger_in_a_loop_cannot_bury_the_queue(
    make_client: AppFactory, settings: Settings
) -> None:
    """Measured: 1,106 urgent queue entries in 60 s from one socket. Now: at most the network's cap, plus the risky
    first messages a full network may still open (escalate, never silence), themselves bounded per hour."""
    settings = settings.replace(max_waiting_per_client=3, limit_risky_chats_per_network="2/hour")
    client = await make_client(settings)
    notices, refusals = [], 0
    async with client.ws_connect("/chat/ws") as ws:
        for attempt in range(12):  # a new conversation each time (no token), danger at once
            frame = await open_chat(ws)
            if is_notice(frame):  # refused: the troll types danger anyway, which may open it (a bounded few)
                notices.append(frame["entry"]["text"])
                refusals += refused((await send_message(ws, f"r{attempt}", DANGER))[-1])
                continue
            await say(ws, f"d{attempt}", DANGER)
    bound = settings.max_waiting_per_client + 2
    waiting, open_ = await waiting_and_open(client.app[STORE])
    assert waiting == open_ == bound
    assert refusals == 12 - bound
    assert all(keeps_the_emergency_numbers(text) for text in notices)  # never silence: each refused hello says it
    assert await metric(client, "gateway_refused", reason="client_full") >= refusals
    assert await metric(client, "gateway_refusal_overridden", reason="client_full", source="keywords") == 2


async def test_another_sites_page_cannot_open_a_chat_or_call_its_routes_through_a_visitors_browser(
    client: Client,
) -> None:
    """A troll's page (a forum post, an ad) opening the chat's socket from every visitor's browser and typing a
    danger phrase: each visitor would be a young person at risk in the queue, on their own network's limits. The
    browser says which page asks (``Origin``): another site's is refused 403 before anything is opened or stored;
    the gateway's own page (the chat, the widget's frame) and a client that names no page go on."""
    evil = {"Origin": "https://evil.example"}
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await client.ws_connect("/chat/ws", headers=evil)
    assert refused.value.status == 403
    for path in ("/chat/leave", "/chat/upload"):
        response = await client.post(path, data=b'{"token": "x"}', headers=evil)
        assert (response.status, (await response.json())["error"]) == (403, "cross_site"), path
    assert await waiting_and_open(client.app[STORE]) == (0, 0)
    assert await metric(client, "gateway_refused", reason="cross_site") == 3

    own = f"http://{client.server.host}:{client.server.port}"
    for origin in ({"Origin": own}, {"Origin": "http://127.0.0.1:8080"}, {}):  # its own page, the public URL, none
        async with client.ws_connect("/chat/ws", headers=origin) as ws:
            session = await open_chat(ws)
            assert session["type"] == "session", origin
    left = await client.post("/chat/leave", json={"token": session["token"]}, headers={"Origin": own})
    assert left.status == 204


async def test_ending_and_starting_again_in_a_loop_is_rate_limited_per_browser(
    make_client: AppFactory, settings: Settings
) -> None:
    """The same browser: hello, danger, end, hello, danger, end… each hello after an end opens a new conversation."""
    client = await make_client(settings.replace(limit_chats_per_browser="3/hour"))
    refused, token = 0, None
    async with client.ws_connect("/chat/ws") as ws:
        for attempt in range(10):
            frame = await open_chat(ws, token)
            if is_notice(frame):
                refused += 1
                assert keeps_the_emergency_numbers(frame["entry"]["text"])
                continue
            token = frame["token"]
            await say(ws, f"m{attempt}", DANGER)
            await ws.send_json({"type": "end"})
            await receive_until(ws, lambda f: f["type"] == "status" and f["status"] in ("abandoned", "closed"))
    conversations = await client.app[STORE].list_conversations(datetime(2000, 1, 1, tzinfo=UTC), datetime.now(UTC))
    assert len(conversations) == 3
    assert refused == 10 - 3
    assert await metric(client, "gateway_rate_limited", limit="chats_per_browser") == refused


async def test_many_sockets_from_one_address_open_few_conversations(
    make_client: AppFactory, settings: Settings
) -> None:
    """Measured: 3,000 sockets from one address, 3,000 conversations in 14 s."""
    client = await make_client(settings)
    sessions = notices = 0
    sockets = [await client.ws_connect("/chat/ws") for _ in range(15)]
    try:
        for ws in sockets:
            frame = await open_chat(ws)
            sessions += frame["type"] == "session"
            notices += is_notice(frame)
    finally:
        for ws in sockets:
            await ws.close()
    assert sessions == settings.max_waiting_per_client
    assert notices == 15 - settings.max_waiting_per_client
    assert len(await client.app[STORE].conversations_by_status(Status.BOT)) == settings.max_waiting_per_client


async def test_a_new_conversation_rate_per_address(make_client: AppFactory, settings: Settings) -> None:
    client = await make_client(settings.replace(limit_chats_per_address="2/hour", max_waiting_per_client=50))
    async with client.ws_connect("/chat/ws") as ws:
        frames = [await open_chat(ws) for _ in range(4)]
    assert [f["type"] == "session" for f in frames] == [True, True, False, False]
    assert await metric(client, "gateway_rate_limited", limit="chats_per_address") == 2


async def test_a_message_flood_in_one_conversation_is_cut_with_a_calm_notice(
    make_client: AppFactory, settings: Settings
) -> None:
    """The refused messages are each marked (the page shows them "Pas encore envoyé", kept to send again), and the
    calm notice with the emergency numbers comes once a minute per socket: a burst, or the refused messages the page
    sends again after a reconnection, no longer bury the conversation under the same notice (before: one each)."""
    client = await make_client(settings.replace(limit_messages_per_conversation="4/minute"))
    async with client.ws_connect("/chat/ws") as ws:
        token = (await open_chat(ws))["token"]
        outcomes, seen = [], []
        for n in range(8):
            frames = await send_message(ws, f"f{n}", "2")
            seen += frames
            outcomes.append("refused" if refused(frames[-1]) else "ack")
            if refused(frames[-1]):  # which message was refused: the page says it as not sent yet, and keeps it
                assert frames[-1] == {"type": "refused", "id": f"f{n}", "reason": "rate_limited"}
        assert outcomes == ["ack"] * 4 + ["refused"] * 4
        [notice] = [f for f in seen + await frames_so_far(ws) if is_notice(f)]  # once, not four times
        assert keeps_the_emergency_numbers(notice["entry"]["text"])
        assert "Beaucoup" not in notice["entry"]["text"]  # "2" chose English at the welcome: the notice follows
    async with client.ws_connect("/chat/ws") as again:  # reconnected: the page sends the refused ones again
        await open_chat(again, token)
        seen = [frame for n in range(4, 8) for frame in await send_message(again, f"f{n}", "2")]
        assert [f for f in seen if f["type"] in ("ack", "refused")] == [
            {"type": "refused", "id": f"f{n}", "reason": "rate_limited"} for n in range(4, 8)
        ]
        assert len([f for f in seen + await frames_so_far(again) if is_notice(f)]) == 1  # a new socket says it again
        # "2" chose English at the welcome: the page switched back to French, the notice is said once in French
        await again.send_json({"type": "language", "language": "fr"})
        seen = [frame for n in range(8, 10) for frame in await send_message(again, f"f{n}", "2")]
        [french] = [f for f in seen + await frames_so_far(again) if is_notice(f)]
        assert keeps_the_emergency_numbers(french["entry"]["text"]) and "Beaucoup" in french["entry"]["text"]
    conversation = (await client.app[STORE].conversations_by_status(Status.BOT))[0]
    users = [e for e in await client.app[STORE].transcript(conversation.id) if e.author.value == "user"]
    assert len(users) == 4  # the refused messages were not written anywhere
    assert await metric(client, "gateway_rate_limited", limit="messages_per_conversation") == 10  # each refusal


async def test_typing_frames_are_rate_limited(make_client: AppFactory, settings: Settings) -> None:
    client = await make_client(settings.replace(limit_typing_per_conversation="3/minute"))
    async with client.ws_connect("/chat/ws") as ws:
        await open_chat(ws)
        for _ in range(10):
            await ws.send_json({"type": "typing"})
        await say(ws, "after-typing", "2")  # frames are handled in order: the typing ones are done
    assert await metric(client, "gateway_rate_limited", limit="typing_per_conversation") == 7


async def test_danger_typed_again_and_again_while_waiting_raises_the_priority_once(
    client: Client, clock: Clock
) -> None:
    async with client.ws_connect("/chat/ws") as ws:
        await open_chat(ws)
        for number, answer in enumerate(WALK_TO_QUEUE):
            await say(ws, f"w{number}", answer)
        [before] = await client.app[STORE].waiting()
        assert before.priority == Priority.NORMAL
        clock.advance(minutes=5)
        for number in range(10):  # within the message rate (20 a minute)
            await say(ws, f"x{number}", DANGER)
    [after] = await client.app[STORE].waiting()  # one entry, raised, its arrival kept
    assert (after.conversation_id, after.priority, after.at) == (before.conversation_id, Priority.URGENT, before.at)
    conversation = await client.app[STORE].get_conversation(after.conversation_id)
    assert conversation is not None and conversation.priority == Priority.URGENT


async def test_a_waiting_conversation_is_raised_once_not_once_per_message(client: Client) -> None:
    async with client.ws_connect("/chat/ws") as ws:
        await open_chat(ws)
        for number, answer in enumerate(WALK_TO_QUEUE):
            await say(ws, f"w{number}", answer)
    store, dispatcher = client.app[STORE], client.app[DISPATCHER]
    [entry] = await store.waiting()
    conversation = await store.get_conversation(entry.conversation_id)
    assert conversation is not None and conversation.priority == Priority.NORMAL
    changed = [await dispatcher.raise_priority(conversation, Priority.URGENT, dispatcher.clock()) for _ in range(50)]
    assert changed == [True] + [False] * 49
    assert not await dispatcher.raise_priority(conversation, Priority.HIGH, dispatcher.clock())  # never lowers
    [raised] = await store.waiting()
    assert (raised.priority, raised.at) == (Priority.URGENT, entry.at)  # one entry, its arrival kept


# --- logins ---------------------------------------------------------------------------------------------------


async def test_wrong_passwords_slow_then_lock_the_account_and_tell_the_supervisors(
    make_client: AppFactory, settings: Settings
) -> None:
    """Measured: 4–7 wrong passwords a second, no lockout."""
    client = await make_client(settings.replace(login_free_failures=2, login_lock_failures=3))
    await add_listener(client, "anne")
    wrong = {"name": "anne", "password": "guess"}
    assert (await client.post("/api/session", json=wrong)).status == 401
    assert (await client.post("/api/session", json=wrong)).status == 401
    braked = await client.post("/api/session", json={"name": "anne", "password": PASSWORD})
    assert braked.status == 429 and int(braked.headers["Retry-After"]) >= 1  # even the right one, unchecked
    await wait_until_free(client, "anne")
    assert (await client.post("/api/session", json=wrong)).status == 401  # the third: locked
    locked = await client.post("/api/session", json={"name": "anne", "password": PASSWORD})
    assert locked.status == 429 and int(locked.headers["Retry-After"]) > 60
    audit = await client.app[STORE].audit_log()
    assert {(e.action, e.subject) for e in audit} == {("login_locked", "anne"), ("login_locked", "(an address)")}
    assert not any("guess" in e.detail or "127.0.0.1" in e.detail for e in audit)
    assert await metric(client, "gateway_refused", reason="login_braked") >= 2


async def test_wrong_passwords_sent_at_once_are_braked_as_if_sent_one_after_the_other(
    make_client: AppFactory, settings: Settings
) -> None:
    """A red-team review: 16 wrong passwords for one account sent at the same instant were all hashed and answered
    401 (each passed the brake before the first was counted), where the brake allows ``free`` before its wait. Taken
    in turn, the ones after the ``free``-th failure find the wait: refused, unhashed."""
    client = await make_client(settings.replace(login_free_failures=3))
    await add_listener(client, "anne")
    wrong = {"name": "anne", "password": "guess"}
    responses = await asyncio.gather(*(client.post("/api/session", json=wrong) for _ in range(16)))
    statuses = sorted(r.status for r in responses)
    assert statuses == [401] * 3 + [429] * 13
    assert await metric(client, "gateway_refused", reason="login_braked") == 13


async def test_wrong_current_passwords_sent_at_once_are_braked_as_if_sent_one_after_the_other(
    make_client: AppFactory, settings: Settings
) -> None:
    """The password change checks the current password as a login does: whoever holds a listener's cookie (a desk
    left logged in) guessing the password with 16 changes at once had every guess hashed and answered 403 (each
    passed the brake before the first was counted; until 2026-12-07 the change took no turn). Taken in turn, the
    ones after the ``free``-th failure find the wait: refused, unhashed."""
    client = await make_client(settings.replace(login_free_failures=3))
    await add_listener(client, "anne")
    await login(client, "anne")
    wrong = {"current": "guess", "new": "un nouveau mot de passe sûr"}
    responses = await asyncio.gather(*(client.post("/api/me/password", json=wrong) for _ in range(16)))
    statuses = sorted(r.status for r in responses)
    assert statuses == [403] * 3 + [429] * 13  # before: 16 × 403, every guess hashed


@pytest.mark.parametrize("name", ["URGENT: supervisors call 06 12 34 56 78 " + "A" * 200_000, "URGENT-call-0612345678"])
async def test_a_guessers_name_never_becomes_the_audit_entry_or_the_supervisors_alert(
    make_client: AppFactory, settings: Settings, name: str
) -> None:
    """A red-team review: the name a guesser sends was counted as typed and, at the lock, became the subject of the
    audit entry and of the alert every supervisor's console shows (900,000 characters of their choosing). Only an
    existing account is named; any other name is "(an unknown account)"."""
    client = await make_client(settings.replace(login_free_failures=3, login_lock_failures=3))
    for _ in range(3):
        assert (await client.post("/api/session", json={"name": name, "password": "x"})).status == 401
    assert (await client.post("/api/session", json={"name": name, "password": "x"})).status == 429
    audit = await client.app[STORE].audit_log()
    assert {(e.action, e.subject) for e in audit} == {
        ("login_locked", "(an unknown account)"), ("login_locked", "(an address)"),
    }  # fmt: skip
    assert not any("URGENT" in e.subject + e.detail for e in audit)


async def wait_until_free(client: Client, name: str) -> None:
    """The one-second delay passes: polled on the brake itself, which a probe login would extend."""
    deadline = time.monotonic() + 10
    while await client.app[API].logins.brake.wait_seconds(name, "127.0.0.1"):
        assert time.monotonic() < deadline, "the delay never ended"
        await asyncio.sleep(0.05)


async def test_guessing_many_accounts_from_one_address_is_braked_too(
    make_client: AppFactory, settings: Settings
) -> None:
    client = await make_client(settings.replace(login_free_failures=3))
    statuses = [
        (await client.post("/api/session", json={"name": f"user{n}", "password": "x"})).status for n in range(6)
    ]
    assert statuses[:3] == [401, 401, 401] and statuses[3] == 429


async def test_guessing_from_every_address_of_one_ipv6_64_is_braked_as_one_address(
    make_client: AppFactory, settings: Settings
) -> None:
    """One IPv6 subscriber holds a /64: a new address for each guess must not escape the brake."""
    client = await make_client(settings.replace(login_free_failures=3, client_address_header="X-Forwarded-For"))
    assert await _guesses(client, [f"2001:db8:1:2::{n + 1}" for n in range(4)]) == [401, 401, 401, 429]
    other = await client.post("/api/session", json={"name": "user9", "password": "x"},
                              headers={"X-Forwarded-For": "2001:db8:1:3::1"})  # fmt: skip
    assert other.status == 401  # another /64: not braked


async def test_a_header_naming_a_new_address_each_guess_escapes_nothing_from_a_peer_that_is_not_a_proxy(
    make_client: AppFactory, settings: Settings
) -> None:
    """``X-Forwarded-For`` is believed from the declared proxies only (``gateway/proxies.py``): a guesser talking to
    the gateway directly and naming a new address each time is braked as the one peer it is."""
    client = await make_client(
        settings.replace(login_free_failures=3, client_address_header="X-Forwarded-For", trusted_proxies="192.0.2.0/24")
    )  # the test client: 127.0.0.1
    assert await _guesses(client, [f"198.51.100.{n + 1}" for n in range(4)]) == [401, 401, 401, 429]


async def _guesses(client: Client, addresses: list[str]) -> list[int]:
    """A wrong password for another account each time, each request naming the next address in X-Forwarded-For."""
    statuses = []
    for n, address in enumerate(addresses):
        guess = {"name": f"user{n}", "password": "x"}
        statuses.append((await client.post("/api/session", json=guess, headers={"X-Forwarded-For": address})).status)
    return statuses


async def test_a_login_flood_does_not_hold_a_signed_webhook(make_client: AppFactory, settings: Settings) -> None:
    """Measured: 32 parallel logins delayed a signed webhook by 24 s (argon2 ran on the event loop)."""
    async with FakeTelegramAPI() as telegram:
        client = await make_client(settings.replace(
            login_free_failures=1000, login_lock_failures=1000, telegram_bot_token=BOT_TOKEN,
            telegram_webhook_secret=TG_SECRET, telegram_api_url=telegram.url,
        ))  # fmt: skip
        started = time.perf_counter()
        await asyncio.to_thread(verify_password, DUMMY_HASH, "wrong")
        one_hash = time.perf_counter() - started
        logins = [
            asyncio.create_task(client.post("/api/session", json={"name": f"nobody{n}", "password": "x"}))
            for n in range(32)
        ]
        await asyncio.sleep(0)  # the logins' requests go out first
        started = time.perf_counter()
        update = telegram_update(700000001, 4242, "bonjour")
        response = await client.post("/webhooks/telegram", data=json.dumps(update), headers=telegram_headers(TG_SECRET))
        took = time.perf_counter() - started
        pending = sum(not task.done() for task in logins)
        statuses = [(await task).status for task in logins]
        assert response.status == 200
        assert pending >= 1, "every login was answered before the webhook: they held the event loop"
        assert took < max(1.0, 10 * one_hash), (took, one_hash)
        assert set(statuses) <= {401, 429}  # wrong passwords, or "busy" beyond the bounded hashing queue


# --- listener API ---------------------------------------------------------------------------------------------


async def test_listener_writes_are_rate_limited(make_client: AppFactory, settings: Settings) -> None:
    client = await make_client(settings.replace(limit_listener_writes="3/minute"))
    await add_listener(client, "anne")
    await login(client, "anne")
    statuses = [(await client.post("/api/conversations/nope/take", json={})).status for _ in range(5)]
    assert statuses == [404, 404, 404, 429, 429]
    assert (await client.get("/api/queue")).status == 200  # reading is not a write


# --- blocks ---------------------------------------------------------------------------------------------------


async def test_a_blocked_browser_gets_the_neutral_notice_and_nothing_is_recorded(client: Client, clock: Clock) -> None:
    await add_listener(client, "anne")
    await add_listener(client, "sam", supervisor=True)
    async with client.ws_connect("/chat/ws") as ws:
        session = await open_chat(ws)
        await say(ws, "b1", "2")
        conversation_id = (await client.app[STORE].conversations_by_status(Status.BOT))[0].id
        await login(client, "sam")  # still in the bot: a supervisor's to see (a listener blocks waiting or held ones)
        refused = await client.post(
            f"/api/conversations/{conversation_id}/block", json={"duration": "1y", "reason": "x"}
        )
        assert refused.status == 400
        blocked = await client.post(
            f"/api/conversations/{conversation_id}/block", json={"duration": "24h", "reason": "insultes répétées"}
        )
        assert blocked.status == 201
        block = await blocked.json()
        assert session["token"] not in json.dumps(block)
        await ws.send_json({"type": "message", "id": "b2", "text": "encore"})
        *refused, notice = await receive_until(ws, is_notice)
        assert refused == [{"type": "refused", "id": "b2", "reason": "blocked"}]
        assert keeps_the_emergency_numbers(notice["entry"]["text"])
    async with client.ws_connect("/chat/ws") as again:  # the same browser, a new socket
        frame = await open_chat(again, session["token"])
        assert is_notice(frame)
    users = [e for e in await client.app[STORE].transcript(conversation_id) if e.author.value == "user"]
    assert len(users) == 1
    clock.advance(hours=25)  # expiry honoured
    async with client.ws_connect("/chat/ws") as later:
        assert (await open_chat(later, session["token"]))["type"] == "session"
    audit = await client.app[STORE].audit_log()
    assert [(e.actor, e.action) for e in audit] == [("sam", "block")]
    assert session["token"] not in json.dumps([dataclasses.asdict(e) for e in audit], default=str)


async def test_supervisors_list_and_lift_blocks_and_listeners_cannot(client: Client) -> None:
    await add_listener(client, "anne")
    await add_listener(client, "sam", supervisor=True)
    async with client.ws_connect("/chat/ws") as ws:
        session = await open_chat(ws)
    conversation_id = (await client.app[STORE].conversations_by_status(Status.BOT))[0].id
    await login(client, "sam")
    await client.post(f"/api/conversations/{conversation_id}/block", json={"duration": "permanent", "reason": "spam"})
    await login(client, "anne")
    assert (await client.get("/api/blocks")).status == 403
    assert (await client.delete("/api/blocks/whatever")).status == 403
    await login(client, "sam")
    [block] = (await (await client.get("/api/blocks")).json())["blocks"]
    assert (block["until"], block["reason"], block["by"]) == (None, "spam", "sam")
    assert (await client.delete(f"/api/blocks/{block['key']}")).status == 204
    assert (await client.delete(f"/api/blocks/{block['key']}")).status == 404
    assert (await (await client.get("/api/blocks")).json())["blocks"] == []
    async with client.ws_connect("/chat/ws") as ws:
        assert (await open_chat(ws, session["token"]))["type"] == "session"
    actions = [e["action"] for e in (await (await client.get("/api/audit")).json())["entries"]]
    assert actions == ["unblock", "block"]


async def test_a_blocked_telegram_sender_is_told_once_and_never_reaches_the_bot(
    make_client: AppFactory, settings: Settings
) -> None:
    async with FakeTelegramAPI() as telegram:
        client = await make_client(settings.replace(
            telegram_bot_token=BOT_TOKEN, telegram_webhook_secret=TG_SECRET, telegram_api_url=telegram.url,
        ))  # fmt: skip
        await add_listener(client, "anne", supervisor=True)  # the sender is still in the bot: a supervisor's
        headers = telegram_headers(TG_SECRET)
        first = telegram_update(710000001, 5151, "bonjour")
        assert (await client.post("/webhooks/telegram", data=json.dumps(first), headers=headers)).status == 200
        [conversation] = await client.app[STORE].conversations_by_status(Status.BOT)
        before = len(await client.app[STORE].transcript(conversation.id))
        await login(client, "anne")
        await client.post(f"/api/conversations/{conversation.id}/block", json={"duration": "30d", "reason": "menaces"})
        sent_before = len(telegram.requests)
        for n in range(5):
            update = telegram_update(710000010 + n, 5151, DANGER)
            assert (await client.post("/webhooks/telegram", data=json.dumps(update), headers=headers)).status == 200
        assert len(await client.app[STORE].transcript(conversation.id)) == before
        assert len(await client.app[STORE].waiting()) == 0
        notices = await eventually_sent(client, telegram, sent_before)
        assert len(notices) == 1 and keeps_the_emergency_numbers(notices[0])


async def eventually_sent(client: Client, telegram: FakeTelegramAPI, after: int) -> list[str]:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if any(r.endpoint == "sendMessage" for r in telegram.requests[after:]):
            await outbox_drained(client)  # a second notice, if one were wrongly queued, is sent by now
            return [str(r.body.get("text", "")) for r in telegram.requests[after:] if r.endpoint == "sendMessage"]
        await asyncio.sleep(0.05)
    raise AssertionError("no notice was sent")


# --- floods, seen and closed by supervisors --------------------------------------------------------------------


async def test_supervisors_see_a_flood_by_client_and_close_it_at_once(client: Client) -> None:
    await add_listener(client, "sam", supervisor=True)
    sockets = [await client.ws_connect("/chat/ws") for _ in range(3)]
    try:
        for ws in sockets:
            await open_chat(ws)
            await say(ws, "d", DANGER)
        await login(client, "sam")
        rows = (await (await client.get("/api/floods")).json())["conversations"]
        assert len(rows) == 3 and {r["client"] for r in rows} == {"client 1"} and rows[0]["same_client"] == 3
        assert all(r["flagged"] for r in rows)  # each said a risky word: kept unless closed deliberately (rel36)
        ids = [r["id"] for r in rows]
        kept = await client.post("/api/floods/close", json={"ids": ids})
        assert (await kept.json()) == {"closed": 0, "ending": 0, "flagged_kept": 3, "flagged_kept_ids": ids}
        assert len(await client.app[STORE].waiting()) == 3
        closed = await client.post("/api/floods/close", json={"ids": ids, "include_flagged": True})
        assert (await closed.json()) == {"closed": 3, "ending": 0, "flagged_kept": 0, "flagged_kept_ids": []}
        assert await client.app[STORE].waiting() == []
        [entry, *_] = await client.app[STORE].audit_log()
        detail = "3 conversations closed, 3 flagged at risk among them"
        assert (entry.actor, entry.action, entry.detail) == ("sam", "bulk_close", detail)
    finally:
        for ws in sockets:
            await ws.close()


# --- provider webhooks ------------------------------------------------------------------------------------------


async def test_a_signed_messenger_event_from_2001_is_acknowledged_and_ignored(
    make_client: AppFactory, settings: Settings
) -> None:
    async with FakeGraphAPI() as graph:
        client = await make_client(settings.replace(
            messenger_app_secret=APP_SECRET, messenger_page_access_token="page-token",
            messenger_verify_token="verify", messenger_api_url=graph.url,
        ))  # fmt: skip
        old = {**messenger_message("2001000000000001", DANGER, mid="m.2001"), "timestamp": 978_307_200_000}
        raw, headers = signed_messenger(APP_SECRET, messenger_body([old]))
        response = await client.post("/webhooks/messenger", data=raw, headers=headers)
        assert response.status == 200
        assert await client.app[STORE].conversations_by_status(Status.BOT) == []
        assert await client.app[STORE].waiting() == []
        assert await metric(client, "gateway_webhook_old_events", channel="messenger") == 1


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=12),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=20,
)
telegram_fields = st.sampled_from(["message", "callback_query", "chat", "from", "id", "text", "data", "type", "date"])
telegram_shaped = st.recursive(
    json_values, lambda children: st.dictionaries(telegram_fields, children, max_size=4), max_leaves=25
)


@pytest.fixture
async def telegram_client(make_client: AppFactory, settings: Settings) -> AsyncIterator[Client]:
    async with FakeTelegramAPI() as telegram:
        yield await make_client(settings.replace(
            telegram_bot_token=BOT_TOKEN, telegram_webhook_secret=TG_SECRET, telegram_api_url=telegram.url,
        ))  # fmt: skip


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(update_id=st.integers(min_value=-(2**40), max_value=2**40), body=telegram_shaped)
async def test_malformed_telegram_updates_get_200_or_400_never_5xx(
    telegram_client: Client, update_id: int, body: Any
) -> None:
    document = {"update_id": update_id, **body} if isinstance(body, dict) else body
    response = await telegram_client.post(
        "/webhooks/telegram", data=json.dumps(document), headers=telegram_headers(TG_SECRET)
    )
    assert response.status in (200, 400)


# --- connections ------------------------------------------------------------------------------------------------


async def test_a_body_that_trickles_in_is_cut_with_408(make_client: AppFactory, settings: Settings) -> None:
    client = await make_client(settings.replace(http_body_timeout=0.5))
    assert client.port is not None
    reader, writer = await asyncio.open_connection("127.0.0.1", client.port)
    writer.write(
        b"POST /api/session HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"
    )
    await writer.drain()
    status_line = await asyncio.wait_for(reader.readline(), timeout=15)
    writer.close()
    assert status_line.startswith(b"HTTP/1.1 408")


def _slow_socket(port: int) -> socket.socket:
    """A client on another loopback address that starts a request and never finishes its headers."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.2", 0))
    sock.connect(("127.0.0.1", port))
    sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")
    return sock


def _closed_by_server(sock: socket.socket, timeout: float) -> bool:
    sock.settimeout(timeout)
    try:
        return sock.recv(1) == b""
    except TimeoutError:
        return False
    except ConnectionResetError:
        return True


async def test_slowloris_connections_are_capped_and_dropped_and_healthz_answers(tmp_path: Path) -> None:
    """Measured: 1,100 slow connections were never closed and took /healthz down."""
    with running(tmp_path) as server:
        server.env.update({"GATEWAY_HTTP_HEADER_TIMEOUT": "2", "GATEWAY_MAX_CONNECTIONS_PER_ADDRESS": "20"})
        server.start()
        async with aiohttp.ClientSession() as http:
            await server.ready(http)
            slow = [await asyncio.to_thread(_slow_socket, server.port) for _ in range(60)]
            try:
                async with http.get(server.url + "/healthz") as response:  # from 127.0.0.1: its own allowance
                    assert response.status == 200
                over_the_cap = await asyncio.gather(*(asyncio.to_thread(_closed_by_server, s, 10) for s in slow[20:]))
                assert all(over_the_cap)
                admitted = await asyncio.gather(*(asyncio.to_thread(_closed_by_server, s, 20) for s in slow[:20]))
                assert all(admitted), "a connection that never finished its headers was kept"
                async with http.get(server.url + "/healthz") as response:
                    assert response.status == 200
                metrics = await (await http.get(server.url + "/metrics")).text()
                assert 'gateway_connections_refused_total{reason="slow_headers"} 20.0' in metrics
                assert 'gateway_connections_refused_total{reason="too_many"} 40.0' in metrics
            finally:
                for sock in slow:
                    sock.close()


# --- access walls (listener side) -----------------------------------------------------------------------------


async def queue_young_person(client: Client, ws: aiohttp.ClientWebSocketResponse, prefix: str) -> str:
    """A young person in the web chat walked to the queue; the conversation's id."""
    store = client.app[STORE]
    before = {c.id for c in await store.conversations_by_status(Status.QUEUED)}
    await ws.send_json({"type": "hello", "token": None, "language": "fr"})
    await receive_until(ws, lambda f: f["type"] == "session")
    for number, answer in enumerate(WALK_TO_QUEUE):
        await say(ws, f"{prefix}{number}", answer)
    [conversation] = [c.id for c in await store.conversations_by_status(Status.QUEUED) if c.id not in before]
    return conversation


async def test_another_listeners_conversation_and_its_notes_stay_unreadable_even_live(client: Client) -> None:
    """Measured: any listener read any conversation, another listener's private notes included, live on
    /api/events. Now: a waiting conversation shows its card only; a held one is its holder's (403 for the others,
    on every route, and none of its events reach them); supervisors see everything, and their reads are audited."""
    for name in ("anne", "bruno"):
        await add_listener(client, name)
    await add_listener(client, "sam", supervisor=True)
    anne, bruno, sam = [await other_session(client, name) for name in ("anne", "bruno", "sam")]
    try:
        async with client.ws_connect("/chat/ws") as young:
            conversation_id = await queue_young_person(client, young, "w")
            base = f"/api/conversations/{conversation_id}"
            waiting = await (await bruno.get(base)).json()
            assert waiting["restricted"] and waiting["transcript"] == [] and dict(waiting["summary"])["Âge"] == "15"
            assert (await bruno.get(base + "/attachments/0")).status == 403
            assert (await bruno.get(base + "/notices")).status == 403
            assert (await anne.post(base + "/take", json={})).status == 200
            assert (await anne.post(base + "/notes", json={"text": "note privée d'anne"})).status == 201
            async with anne.ws_connect("/api/events") as to_anne, bruno.ws_connect("/api/events") as to_bruno, \
                    sam.ws_connect("/api/events") as to_sam:  # fmt: skip
                for socket_ in (to_anne, to_bruno, to_sam):
                    await receive_until(socket_, lambda f: f["type"] == "hello")
                await say(young, "secret", "mon secret")
                assert (await anne.post(base + "/notes", json={"text": "deuxième note"})).status == 201
                assert (await bruno.post(base + "/typing", json={})).status == 403
                assert (await anne.post(base + "/typing", json={})).status == 204
                for socket_ in (to_anne, to_sam):
                    await receive_until(socket_, lambda f: f["type"] == "entry" and f["entry"]["text"] == "mon secret")
                    await receive_until(socket_, lambda f: f["type"] == "note" and "deuxième" in f["entry"]["text"])
                async with client.ws_connect("/chat/ws") as other_young:  # a broadcast after: the queue changes
                    await queue_young_person(client, other_young, "o")
                    to_bruno_frames = await receive_until(to_bruno, lambda f: f["type"] == "queue", limit=200)
            seen_by_bruno = json.dumps(to_bruno_frames)
            assert "mon secret" not in seen_by_bruno and "note" not in seen_by_bruno
            assert all(f["type"] in ("queue", "status", "presence") for f in to_bruno_frames)
            for method, path, body in [("GET", "", None), ("POST", "/notes", {"text": "x"}),
                                       ("POST", "/messages", {"text": "x"}), ("POST", "/hand-back", {}),
                                       ("POST", "/close", {"outcome": "cyberbullying"}), ("POST", "/typing", {}),
                                       ("GET", "/attachments/0", None), ("GET", "/notices", None)]:  # fmt: skip
                response = await bruno.request(method, base + path, json=body)
                assert response.status == 403, (method, path, response.status)
            assert (await bruno.post(base + "/take", json={})).status == 409  # taken
            assert (await anne.get(base)).status == 200
            assert await client.app[STORE].audit_log() == []  # the holder's reads are not audited
            detail = await (await sam.get(base)).json()
            assert {"note privée d'anne", "mon secret"} <= {e["text"].split(": ", 1)[-1] for e in detail["transcript"]}
        [read] = await client.app[STORE].audit_log()
        assert (read.actor, read.action, read.subject) == ("sam", "read", conversation_id)
        assert "secret" not in read.detail and "note" not in read.detail
    finally:
        for http in (anne, bruno, sam):
            await http.close()


async def test_a_cross_origin_socket_or_form_cannot_use_a_listeners_cookie(
    make_client: AppFactory, settings: Settings
) -> None:
    """Measured: a page on another port of the same host read live conversations through a listener's browser,
    and a cross-origin form took and handed back conversations. Now: 403 for another Origin, 415 for a POST that
    is not JSON (a form cannot send JSON), on every state-changing route and the live socket."""
    client = await make_client(settings.replace(console_origins="https://console.example"))
    await add_listener(client, "anne")
    await login(client, "anne")
    foreign = "http://127.0.0.1:1"  # another port: the same site, another origin
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        async with client.ws_connect("/api/events", origin=foreign):
            pass
    assert refused.value.status == 403
    own = str(client.make_url("")).rstrip("/")
    for origin in (own, "https://console.example", None):
        async with client.ws_connect("/api/events", origin=origin) as events:
            await receive_until(events, lambda f: f["type"] == "hello")
    async with client.ws_connect("/chat/ws") as young:
        conversation_id = await queue_young_person(client, young, "x")
        base = f"/api/conversations/{conversation_id}"
        form = {"confirm": "1"}
        assert (await client.post(base + "/take", data=form)).status == 415  # urlencoded, no Origin
        assert (await client.post(base + "/take", data=form, headers={"Origin": foreign})).status == 403
        assert (await client.post(base + "/take", data="{}", headers={"Content-Type": "text/plain"})).status == 415
        assert (await client.post(base + "/take", headers={"Origin": "null"}, json={})).status == 403
        conversation = await client.app[STORE].get_conversation(conversation_id)
        assert conversation is not None and conversation.status == Status.QUEUED
        assert (await client.post(base + "/take", json={}, headers={"Origin": own})).status == 200
        assert (await client.post(base + "/hand-back", data=form)).status == 415
        assert (await client.post(base + "/hand-back", data=form, headers={"Origin": foreign})).status == 403
        assert (await client.delete("/api/session", headers={"Origin": foreign})).status == 403
        conversation = await client.app[STORE].get_conversation(conversation_id)
        assert conversation is not None and conversation.status == Status.WITH_LISTENER
    login_elsewhere = await client.post("/api/session", json={"name": "anne", "password": PASSWORD},
                                        headers={"Origin": foreign})  # fmt: skip
    assert login_elsewhere.status == 403
    assert await metric(client, "gateway_refused", reason="cross_site") >= 6


MALFORMED_ORIGINS = ["http://[", "http://[::1", "http://a]b", "http://[zz]", "https://[v1.x]:8080"]


@pytest.mark.parametrize("origin", MALFORMED_ORIGINS)
async def test_a_malformed_origin_is_refused_as_another_sites_never_a_503(
    client: Client, origin: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A red-team review, 2026-12-07: an ``Origin`` (or a ``Host``) that Python's URL parser cannot split (a bracket
    left open, not an IPv6 address inside) raised ``ValueError`` in the cross-site check: 503 and an ERROR line
    ("unexpected ValueError") on the login, every console action and socket, and the web chat's socket, for anyone,
    at will. Now it is no origin of ours: 403 ``cross_site``, nothing logged at ERROR."""
    await add_listener(client, "anne")
    handshake = {"Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Version": "13",
                 "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="}  # fmt: skip
    with caplog.at_level(logging.ERROR):
        login_ = await client.post("/api/session", json={"name": "anne", "password": PASSWORD},
                                   headers={"Origin": origin})  # fmt: skip
        chat = await client.get("/chat/ws", headers={**handshake, "Origin": origin})
        # a Host as malformed as the Origin is not the page's own origin either
        same = await client.post("/api/session", json={"name": "anne", "password": PASSWORD},
                                 headers={"Origin": origin, "Host": origin.partition("://")[2]})  # fmt: skip
    assert [login_.status, chat.status, same.status] == [403, 403, 403]  # before: 503 each
    assert (await login_.json())["error"] == "cross_site"
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text


HANDSHAKE = {"Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Version": "13",
             "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="}  # fmt: skip


async def as_page_of(client: Client, host: str) -> tuple[int, int]:
    """A login and a web chat socket asked by a page of ``http://<host>`` addressed to ``host`` (its ``Host``, as a
    browser sends both when the page's name resolves to the gateway): their answers' statuses."""
    page = {"Origin": f"http://{host}", "Host": host}
    login_ = await client.post("/api/session", json={"name": "anne", "password": PASSWORD}, headers=page)
    chat = await client.get("/chat/ws", headers={**HANDSHAKE, **page})
    chat.close()
    return login_.status, chat.status


async def test_a_rebound_name_is_not_the_gateways_own_origin(client: Client) -> None:
    """DNS rebinding (a red-team review, 2026-12-07): a page of ``http://rebind.example:<port>`` whose name then
    resolves to the gateway sends its requests with its own name in both ``Origin`` and ``Host``. The cross-site
    check took the request's ``Host`` for the gateway's own origin, so the page passed: its visitors' browsers opened
    web chats (the troll's page the ``Origin`` check is there for) and the login answered. A ``Host`` counts as ours
    only as an address (``127.0.0.1``, ``[::1]``, any IP) or ``localhost``, which no other page can claim; a name
    must be the public URL's or one of ``GATEWAY_CONSOLE_ORIGINS``."""
    await add_listener(client, "anne")
    port = client.server.port
    # before: [200, 101] (a session cookie for the page, a web chat opened)
    assert await as_page_of(client, f"rebind.example:{port}") == (403, 403)
    assert await waiting_and_open(client.app[STORE]) == (0, 0)
    for own in (f"127.0.0.1:{port}", f"localhost:{port}", f"LocalHost:{port}"):  # `make run`, the README's address
        assert await as_page_of(client, own) == (200, 101), own


async def test_an_operators_origins_are_the_only_names_taken_for_ours(
    make_client: AppFactory, settings: Settings
) -> None:
    """With ``GATEWAY_PUBLIC_URL`` and ``GATEWAY_CONSOLE_ORIGINS`` set, a name that is neither is another site's,
    whatever ``Host`` it addressed (an internal name, a rebound one): 403; theirs pass, and so does an address."""
    configured = settings.replace(public_url="https://helpline.example", console_origins="https://console.example")
    client = await make_client(configured)
    await add_listener(client, "anne")
    assert await as_page_of(client, "helpline.internal") == (403, 403)  # before: (200, 101)
    for origin in ("https://helpline.example", "https://console.example"):
        answer = await client.post("/api/session", json={"name": "anne", "password": PASSWORD},
                                   headers={"Origin": origin, "Host": "helpline.internal"})  # fmt: skip
        assert answer.status == 200, origin
    chat = await client.get("/chat/ws", headers={**HANDSHAKE, "Origin": "https://console.example"})
    assert chat.status == 403  # the chat's page is the gateway's own, never a console's origin
    assert await as_page_of(client, f"127.0.0.1:{client.server.port}") == (200, 101)


async def test_the_web_chats_aliases_are_its_own_origins(make_client: AppFactory, settings: Settings) -> None:
    """The chat page served under an alias of the public URL's name (``www.`` and not, a second domain):
    ``GATEWAY_WEBCHAT_ORIGINS`` lists it, its socket opens; an alias not listed is another site's page (403), and the
    chat's aliases are not the console's. Since the rebinding fix (2026-12-07) the request's ``Host`` no longer made
    an alias ours, and no setting could list one: every web chat socket of such a deployment was refused."""
    configured = settings.replace(public_url="https://helpline.example", webchat_origins="https://www.helpline.example")
    client = await make_client(configured)
    await add_listener(client, "anne")
    opened = await client.get("/chat/ws", headers={**HANDSHAKE, "Origin": "https://www.helpline.example"})
    assert opened.status == 101  # before: no such setting, 403
    opened.close()
    other = await client.get("/chat/ws", headers={**HANDSHAKE, "Origin": "https://helpline.example.evil"})
    assert other.status == 403
    login = await client.post("/api/session", json={"name": "anne", "password": PASSWORD},
                              headers={"Origin": "https://www.helpline.example"})  # fmt: skip
    assert login.status == 403  # the chat's alias is not a console's origin
    with pytest.raises(ConfigError, match="GATEWAY_WEBCHAT_ORIGINS"):
        settings.replace(webchat_origins="www.helpline.example")


async def test_a_logged_out_cookie_and_its_open_socket_stop_at_once(client: Client) -> None:
    """Measured: a logged-out listener's cookie and open socket kept working. Now the session is ended in the store:
    the cookie gets 401 and the socket is closed (1008) at once."""
    await add_listener(client, "anne")
    anne = await other_session(client, "anne")
    cookie = {"hg_session": anne.cookie_jar.filter_cookies(client.make_url("/"))["hg_session"].value}
    thief = aiohttp.ClientSession(base_url=str(client.make_url("/")), cookies=cookie)
    try:
        assert (await thief.get("/api/me")).status == 200  # a copy of the cookie, taken while it worked
        async with thief.ws_connect("/api/events") as stolen:
            await receive_until(stolen, lambda f: f["type"] == "hello")
            assert (await anne.delete("/api/session", json={})).status == 204
            closing = await stolen.receive(timeout=10)
            for _ in range(40):  # frames already on their way; an open socket gets presence beats for ever
                if closing.type != aiohttp.WSMsgType.TEXT:
                    break
                closing = await stolen.receive(timeout=10)
            assert closing.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
            assert stolen.close_code == 1008 or closing.data == 1008
        assert (await thief.get("/api/me")).status == 401
        with pytest.raises(aiohttp.WSServerHandshakeError):
            async with thief.ws_connect("/api/events"):
                pass
    finally:
        await thief.close()
        await anne.close()


# ----- retention and erasure: what is left in the files ---------------------------------------------------------

DISCLOSED = "mon oncle vient la nuit dans ma chambre"


def file_bytes(settings: Settings) -> bytes:
    """The SQLite store's files as they are on disk (the database, its write-ahead log), for a grep."""
    base = Path(settings.store.removeprefix("sqlite:///"))
    return b"".join(p.read_bytes() for p in (base, base.with_name(base.name + "-wal")) if p.exists())


async def test_an_erased_disclosure_is_nowhere_in_the_sqlite_files(
    make_client: AppFactory, settings: Settings, clock: Clock
) -> None:
    client = await make_client(settings)
    async with client.ws_connect("/chat/ws") as ws:
        await ws.send_json({"type": "hello", "token": None, "language": "fr"})
        session_token = (await receive_until(ws, lambda f: f["type"] == "session"))[-1]["token"]
        await say(ws, "m1", DISCLOSED)
        # in the bot, or already in the queue when the model read harm at home in time: either way, the active one
        conversation = await client.app[STORE].find_active_conversation(ChannelName.WEBCHAT, session_token)
        assert conversation is not None
        assert DISCLOSED in [e.text for e in await client.app[STORE].transcript(conversation.id)]  # sealed in the file
        await say(ws, "m2", "efface mes données")
        await ws.send_json({"type": "message", "id": "m3", "text": "oui"})
        await receive_until(ws, lambda f: f["type"] == "status" and f["status"] == "closed")
    assert DISCLOSED.encode() not in file_bytes(settings)  # deleted rows overwritten, the WAL emptied


async def test_a_purged_disclosure_is_nowhere_in_the_sqlite_files(
    make_client: AppFactory, settings: Settings, clock: Clock
) -> None:
    from gateway.app import FLOWS, METRICS
    from gateway.retention import Retention

    client = await make_client(settings)
    async with client.ws_connect("/chat/ws") as ws:
        await ws.send_json({"type": "hello", "token": None, "language": "fr"})
        await receive_until(ws, lambda f: f["type"] == "session")
        await say(ws, "m1", DISCLOSED)
        await ws.send_json({"type": "end"})
        await receive_until(ws, lambda f: f["type"] == "status" and f["status"] != "bot")
    store = client.app[STORE]
    retention = Retention(store, client.app[FLOWS], clock=clock, metrics=client.app[METRICS])
    assert (await retention.purge(clock() + timedelta(days=31))).conversations == 1
    assert DISCLOSED.encode() not in file_bytes(settings)


# --- data at rest -----------------------------------------------------------------------------------------------

PHONE = "whatsapp:+33612345678"
PSID = "7100000000042424"
SAID = "je dors dans la voiture depuis lundi"  # what the young people write, the note and the reply
NOTE = "note: sa voisine l'héberge parfois"
REPLY = "Merci de nous l'avoir dit, on cherche avec toi un endroit sûr"
AT_REST = ("33612345678", PSID, SAID, "voisine l'héberge", "endroit sûr", "On se moque de moi")


def redis_everything(url: str) -> bytes:
    """Every key name and value of the Redis store: GET / HGETALL / LRANGE / SMEMBERS / ZRANGE, and DUMP."""
    client = redis.Redis.from_url(url)
    seen = bytearray()
    try:
        for key in client.scan_iter(count=500):
            seen += key + b"\n" + b"\n".join(_redis_values(client, key)) + (client.dump(key) or b"")
    finally:
        client.close()
    return bytes(seen)


def _redis_values(client: Any, key: bytes) -> list[bytes]:
    kind = client.type(key).decode()
    if kind == "string":
        return [client.get(key)]
    if kind == "hash":
        return [part for pair in client.hgetall(key).items() for part in pair]
    if kind == "list":
        return list(client.lrange(key, 0, -1))
    if kind == "set":
        return list(client.smembers(key))
    return list(client.zrange(key, 0, -1))


@pytest.mark.parametrize("where", ["sqlite", pytest.param("redis", marks=pytest.mark.redis)])
async def test_no_phone_number_psid_or_text_in_the_store_files(
    make_client: AppFactory, settings: Settings, tmp_path: Path, request: pytest.FixtureRequest, where: str
) -> None:
    """Measured: phone numbers, platform ids and every message were in clear in the SQLite file and in Redis."""
    store = f"sqlite:///{tmp_path}/var/gateway.sqlite3"  # the embedded default: a key file of its own in var/
    if where == "redis":
        own: OwnRedis = request.getfixturevalue("own_redis")
        store = own.url
    async with FakeTwilioAPI(auth_token=TOKEN) as twilio, FakeGraphAPI() as graph:
        client = await make_client(settings.replace(
            store=store, data_key=settings.data_key if where == "redis" else "", public_url=PUBLIC,
            twilio_account_sid=ACCOUNT_SID, twilio_auth_token=TOKEN, twilio_whatsapp_from=WHATSAPP_FROM,
            twilio_api_url=twilio.url, messenger_app_secret=APP_SECRET, messenger_page_access_token="page-token",
            messenger_verify_token="verify", messenger_api_url=graph.url,
        ))  # fmt: skip
        await add_listener(client, "anne", supervisor=True)
        for number, text in enumerate([*WALK, SAID]):
            form = twilio_form(PHONE, text, message_sid=f"SM{number:032d}")
            headers = {"X-Twilio-Signature": sign_twilio(TOKEN, PUBLIC + "/webhooks/whatsapp", form)}
            assert (await client.post("/webhooks/whatsapp", data=form, headers=headers)).status == 200
        raw, headers = signed_messenger(APP_SECRET, messenger_body([messenger_message(PSID, SAID, mid="m.rest")]))
        assert (await client.post("/webhooks/messenger", data=raw, headers=headers)).status == 200
        desk = ListenerDesk(client)
        await desk.login()
        card = await desk.first_waiting()
        await desk.take(card["id"])
        assert (await client.post(f"/api/conversations/{card['id']}/notes", json={"text": NOTE})).status == 201
        await desk.reply(card["id"], REPLY)
        await desk.all_sent(card["id"])
        assert any(SAID in entry["text"] for entry in (await desk.conversation(card["id"]))["transcript"])
        if where == "sqlite":
            directory = tmp_path / "var"
            live = b"".join(path.read_bytes() for path in directory.iterdir() if path.name.startswith("gateway"))
            modes = {path.name: stat.S_IMODE(path.stat().st_mode) for path in directory.iterdir()}
            assert stat.S_IMODE(directory.stat().st_mode) == 0o700
            assert modes == dict.fromkeys(["gateway.sqlite3", "gateway.sqlite3-wal", "gateway.sqlite3-shm",
                                           "gateway.sqlite3-locks", "data-keys"], 0o600)  # fmt: skip
        else:
            live = redis_everything(store)
        await client.close()
    if where == "sqlite":
        with sqlite3.connect(tmp_path / "var" / "gateway.sqlite3") as db:
            db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        stored = live + (tmp_path / "var" / "gateway.sqlite3").read_bytes()
    else:
        stored = live + redis_everything(store)
    assert len(stored) > 10_000
    found = [needle for needle in AT_REST if needle.encode() in stored]
    assert found == [], f"in clear at rest: {found}"


async def test_a_header_the_client_wrote_before_the_proxys_own_line_escapes_nothing(
    make_client: AppFactory, settings: Settings
) -> None:
    """HAProxy's ``option forwardfor`` (and others) add their own ``X-Forwarded-For`` line after any the client sent,
    instead of appending to it: the request then carries two lines, which HTTP reads as one comma-separated list.
    A guesser behind such a proxy (the test client's loopback address) naming a new address in its own line for each
    guess is still the one client the proxy saw, and one naming the loopback is not this machine for ``/metrics``."""
    client = await make_client(settings.replace(login_free_failures=3, client_address_header="X-Forwarded-For"))
    statuses = []
    for n in range(4):
        lines = CIMultiDict([("X-Forwarded-For", f"198.51.100.{n + 1}"), ("X-Forwarded-For", "203.0.113.9")])
        guess = {"name": f"user{n}", "password": "x"}
        statuses.append((await client.post("/api/session", json=guess, headers=lines)).status)
    assert statuses == [401, 401, 401, 429]
    lines = CIMultiDict([("X-Forwarded-For", "127.0.0.1"), ("X-Forwarded-For", "203.0.113.9")])
    assert (await client.get("/metrics", headers=lines)).status == 403
