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
        "type": "refused", "id": "m1", "reason": "rate_limited"
    }  # fmt: skip
    # before: no retry_after (the page tried about once a minute for up to an hour)
    assert isinstance(frame.get("retry_after"), int), frame
    assert 3500 <= frame["retry_after"] <= 3600  # the hour's window, opened a moment ago
