"""A held page (its hello refused: its client network at its cap) whose risky first message's attempt was cut after
the gate counted it against ``risky_chats_per_network`` (a store reset before anything opened: a failover, an
instance killed) sends it again on its next socket, as chat.js does (the refused hello's ``onRefused`` sends what is
pending): it opens the conversation, as the first attempt would have (escalate, never silence), counted once.

Until 2026-12-07 every attempt counted, and the page's token is drawn anew at each refused hello (its opening key
opened nothing): with ``GATEWAY_LIMIT_RISKY_CHATS_PER_NETWORK=1/hour`` the second attempt got ``refused``
``client_full`` and the notice, the words of danger recorded nowhere. The bound still holds for another message, and
for the same one sent again once the conversation it opened has ended (counted then: a troll's "je veux mourir",
"Terminer", and again, never reopens past the bound).

The real app, the web chat socket, the real store (SQLite, Redis) behind tests/store_holds.py's :class:`Holds`
(its ``fail``: a StoreError at the step, what was written before it kept), nothing of the gateway patched.
"""

from __future__ import annotations

from typing import Any, cast

import pytest
from aiohttp import WSMsgType

from gateway.conversation import Priority
from gateway.settings import Settings
from gateway.store import Store
from tests.conftest import AppFactory
from tests.store.conftest import redis_url, store_url  # an empty store: SQLite, the session's Redis
from tests.store_holds import Holds, holds
from tests.test_security import DANGER, is_notice, receive_until, refused

__all__ = ["holds", "redis_url", "store_url"]  # fixtures used below
SCHOOL = "198.51.100.7"  # one public address in front of a class


async def hello(ws: Any, opening: str) -> dict[str, Any]:
    """chat.js's first hello: no token yet, its opening key; the session frame or the notice that refused it."""
    await ws.send_json({"type": "hello", "token": None, "opening": opening, "language": "fr"})
    return (await receive_until(ws, lambda f: f["type"] == "session" or is_notice(f)))[-1]


async def send(ws: Any, message_id: str, text: str) -> list[dict[str, Any]]:
    await ws.send_json({"type": "message", "id": message_id, "text": text})
    return await receive_until(ws, lambda f: f.get("id") == message_id and f["type"] in ("ack", "refused"))


@pytest.mark.parametrize("store_url", ["sqlite", pytest.param("redis", marks=pytest.mark.redis)], indirect=True)
async def test_a_held_pages_risky_message_sent_again_after_a_cut_attempt_opens_its_conversation(
    holds: tuple[Settings, Holds], make_client: AppFactory
) -> None:  # holds first: the app (which closes the store) stops before the fixture closes it again
    settings, store = holds
    settings = settings.replace(
        client_address_header="X-Forwarded-For", max_waiting_per_client=1, limit_risky_chats_per_network="1/hour"
    )
    client = await make_client(settings, store=cast(Store, store))
    school = {"X-Forwarded-For": SCHOOL}
    async with client.ws_connect("/chat/ws", headers=school) as first:
        assert (await hello(first, "first-page-opening-key"))["type"] == "session"  # the network at its cap
        opening = "held-page-opening-key-1"
        async with client.ws_connect("/chat/ws", headers=school) as held:
            assert is_notice(await hello(held, opening))
            store.fail("keep_opening")  # the reset after the gate's count, before anything is opened
            await held.send_json({"type": "message", "id": "k1", "text": DANGER})
            assert (await held.receive()).type in (WSMsgType.CLOSE, WSMsgType.CLOSED)  # 1013: the page comes back
            assert held.close_code == 1013 and store.failed["keep_opening"] == 1
        async with client.ws_connect("/chat/ws", headers=school) as again:  # the page's next socket
            assert is_notice(await hello(again, opening))  # still held: nothing was opened
            frames = await send(again, "k1", DANGER)
            assert frames[-1] == {"type": "ack", "id": "k1"}, frames[-1]  # before: refused, client_full
            assert any(f["type"] == "session" for f in frames)
            waiting = await store.waiting()
            assert [(w.priority, w.flag.risk if w.flag else None) for w in waiting] == [(Priority.URGENT, "suicide")]
            await again.send_json({"type": "end"})  # "Terminer"
            await receive_until(again, lambda f: f["type"] == "status" and f["status"] == "abandoned")  # left the queue
        async with client.ws_connect("/chat/ws", headers=school) as other:  # another page: the hour's bound holds
            assert is_notice(await hello(other, "another-page-opening-key"))
            assert refused((await send(other, "k1", DANGER))[-1])
        async with client.ws_connect("/chat/ws", headers=school) as churn:  # the same message after its chat ended
            assert is_notice(await hello(churn, opening))  # its opening key's token, held (the network at its cap)
            assert refused((await send(churn, "k1", DANGER))[-1])  # counted again: no reopening past the bound
        assert not await store.waiting()
