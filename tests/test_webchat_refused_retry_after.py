"""A held page's message refused by a rate of new chats (``chats_per_address``: the network's cap freed, its window
spent) is told when that window ends: the ``refused`` frame's ``retry_after`` (seconds), so that chat.js waits for it
instead of trying about once a minute for up to an hour. A refusal by the cap (``client_full``) has no window: no
``retry_after``. Nothing else is added to the frame (no address, no id).

Until 2026-12-07 the frame carried no ``retry_after``. The real app, the web chat socket, the store (SQLite: the
counters in memory; Redis).
"""

from __future__ import annotations

from typing import Any

import pytest

from gateway.settings import Settings
from tests.conftest import AppFactory
from tests.store.conftest import redis_url, store_url  # an empty store: SQLite, the session's Redis
from tests.test_security import is_notice, receive_until

__all__ = ["redis_url", "store_url"]  # fixtures used below
SCHOOL = {"X-Forwarded-For": "198.51.100.9"}  # one public address in front of a class


async def hello(ws: Any, opening: str) -> dict[str, Any]:
    await ws.send_json({"type": "hello", "token": None, "opening": opening, "language": "fr"})
    return (await receive_until(ws, lambda f: f["type"] == "session" or is_notice(f)))[-1]


async def send(ws: Any, message_id: str, text: str, **extra: Any) -> dict[str, Any]:
    await ws.send_json({"type": "message", "id": message_id, "text": text, **extra})
    frames = await receive_until(ws, lambda f: f.get("id") == message_id and f["type"] in ("ack", "refused"))
    return frames[-1]


@pytest.mark.parametrize("store_url", ["sqlite", pytest.param("redis", marks=pytest.mark.redis)], indirect=True)
async def test_a_held_pages_try_refused_by_the_networks_rate_says_when_its_window_ends(
    settings: Settings, store_url: str, make_client: AppFactory
) -> None:  # the counters in memory (SQLite) and in Redis (one TTL)
    settings = settings.replace(
        store=store_url,
        client_address_header="X-Forwarded-For",
        max_waiting_per_client=1,
        limit_chats_per_address="1/hour",
    )
    client = await make_client(settings)
    async with client.ws_connect("/chat/ws", headers=SCHOOL) as classmate:
        assert (await hello(classmate, "classmate-opening-key"))["type"] == "session"  # the cap, the hour's chat
        async with client.ws_connect("/chat/ws", headers=SCHOOL) as held:
            assert is_notice(await hello(held, "held-page-opening-key"))
            full = await send(held, "m1", "salut, je voudrais parler à quelqu'un")
            assert full == {"type": "refused", "id": "m1", "reason": "client_full"}  # the cap: no window to tell
            await classmate.send_json({"type": "end"})  # "Terminer": the cap frees, the hour's chat stays spent
            await receive_until(classmate, lambda f: f["type"] == "status" and f["status"] in ("closed", "abandoned"))
            frame = await send(held, "m1", "salut, je voudrais parler à quelqu'un", auto=True)
    assert {k: v for k, v in frame.items() if k != "retry_after"} == {
        "type": "refused", "id": "m1", "reason": "rate_limited", "limit": "network"
    }  # fmt: skip  # the network's rate (since 2026-12-07: "limit"); nothing else
    # before: no retry_after (the page tried about once a minute for up to an hour)
    assert isinstance(frame.get("retry_after"), int), frame
    assert 3500 <= frame["retry_after"] <= 3600  # the hour's window, opened a moment ago


@pytest.mark.parametrize("store_url", ["sqlite", pytest.param("redis", marks=pytest.mark.redis)], indirect=True)
async def test_a_first_message_refused_by_the_networks_rate_says_so_and_the_pages_own_refusals_do_not(
    settings: Settings, store_url: str, make_client: AppFactory
) -> None:
    """A first message refused by the network's rate of new chats (a classmate opened the window's one chat) says
    ``"limit": "network"`` (chat.js tries it again by itself after ``retry_after``); one refused for the page's own
    doing does not: its own flood (``messages_per_conversation``) nor its browser's rate (``chats_per_browser``).
    Before (2026-12-07) both rate refusals were ``rate_limited`` with a ``retry_after``, nothing telling them apart."""
    settings = settings.replace(
        store=store_url, client_address_header="X-Forwarded-For", shared_networks="198.51.100.0/28",
        limit_chats_per_shared_network="1/hour", limit_chats_per_address="5/hour", limit_chats_per_browser="1/hour",
        limit_messages_per_conversation="1/hour",
    )  # fmt: skip  # the school declared shared: its rate (chats_per_shared_network) is the network's too
    client = await make_client(settings)
    async with client.ws_connect("/chat/ws", headers=SCHOOL) as classmate:
        assert (await hello(classmate, "classmate-opening-key"))["type"] == "session"  # the window's one chat
        async with client.ws_connect("/chat/ws", headers=SCHOOL) as held:
            assert is_notice(await hello(held, "held-page-opening-key"))
            by_network = await send(held, "m1", "salut, je voudrais parler à quelqu'un")
            flood = await send(held, "m2", "tu es là ?")  # the held token's second message in the hour
    # before: no "limit" (the page could not tell it from its own refusals, and waited for "Réessayer")
    assert by_network.get("limit") == "network", by_network
    assert by_network["reason"] == "rate_limited" and isinstance(by_network.get("retry_after"), int), by_network
    assert flood == {"type": "refused", "id": "m2", "reason": "rate_limited"}  # its own flood: no window, no limit
    home = {"X-Forwarded-For": "203.0.113.7"}  # a browser alone behind its address: its own rate of new chats
    async with client.ws_connect("/chat/ws", headers=home) as page:
        opened = await hello(page, "home-page-opening-key")
        assert opened["type"] == "session"  # the browser's one chat of the hour
        await page.send_json({"type": "end"})
        await receive_until(page, lambda f: f["type"] == "status" and f["status"] in ("closed", "abandoned"))
        await page.send_json({"type": "hello", "token": opened["token"], "language": "fr"})  # "Nouvelle conversation"
        assert is_notice((await receive_until(page, lambda f: f["type"] == "session" or is_notice(f)))[-1])
        by_browser = await send(page, "m3", "re bonjour")
    assert by_browser["reason"] == "rate_limited" and isinstance(by_browser.get("retry_after"), int), by_browser
    assert "limit" not in by_browser, by_browser  # the browser's own rate: the page does not loop on it
