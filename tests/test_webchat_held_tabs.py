"""Two tabs of one page held by their network's rate of new chats (the same opening key, the same message kept in the
browser's storage: chat.js's ``takeOthers``): once the window ends, both try that message again by themselves. It
must open ONE conversation, recorded once, whichever tab goes first.

The real app, raw websockets as the pages' (SQLite: the counters in memory; Redis). The two tries one after the
other, and at once (``at_once``: both pages wait for the same ``retry_after``, so their timers end together): until
2026-12-07 (night) only the first was tested, and it passed with the opening lock around the held socket's message
removed (the second try found the first's conversation by its opening key alone); at once, without that lock, both
tries find none and each opens its own."""

from __future__ import annotations

import asyncio

import pytest

from gateway.app import GATE, STORE
from gateway.settings import Settings
from tests.conftest import AppFactory
from tests.store.conftest import redis_url, store_url  # an empty store: SQLite, the session's Redis
from tests.test_security import is_notice
from tests.test_webchat_erased import everything
from tests.test_webchat_refused_retry_after import SCHOOL, hello, send

__all__ = ["redis_url", "store_url"]  # fixtures used below


@pytest.mark.parametrize("at_once", [False, True], ids=["in_turn", "at_once"])
@pytest.mark.parametrize("store_url", ["sqlite", pytest.param("redis", marks=pytest.mark.redis)], indirect=True)
async def test_two_held_tabs_trying_one_message_again_open_one_conversation(
    settings: Settings, store_url: str, make_client: AppFactory, at_once: bool
) -> None:
    settings = settings.replace(store=store_url, client_address_header="X-Forwarded-For",
                                limit_chats_per_address="2/hour")  # fmt: skip
    client = await make_client(settings)
    text = "salut, je voudrais parler à quelqu'un"
    async with (
        client.ws_connect("/chat/ws", headers=SCHOOL) as one,
        client.ws_connect("/chat/ws", headers=SCHOOL) as two,
    ):
        assert (await hello(one, "classmate-one"))["type"] == "session"
        assert (await hello(two, "classmate-two"))["type"] == "session"  # the window's two chats
        async with (
            client.ws_connect("/chat/ws", headers=SCHOOL) as tab_a,
            client.ws_connect("/chat/ws", headers=SCHOOL) as tab_b,
        ):
            assert is_notice(await hello(tab_a, "pupil-page-opening-key"))
            assert is_notice(await hello(tab_b, "pupil-page-opening-key"))  # the same page's second tab
            assert (await send(tab_a, "m1", text))["reason"] == "rate_limited"
            assert (await send(tab_b, "m1", text))["reason"] == "rate_limited"
            await client.app[GATE].limits.storage.reset()  # the window ends
            if at_once:  # both tries on their way before either is answered
                first, second = await asyncio.gather(send(tab_a, "m1", text, auto=True),
                                                     send(tab_b, "m1", text, auto=True))  # fmt: skip
            else:
                first = await send(tab_a, "m1", text, auto=True)
                second = await send(tab_b, "m1", text, auto=True)
    assert first["type"] == "ack", first
    mine = [c for c in await everything(client) if text in [e.text for e in await client.app[STORE].transcript(c.id)]]
    # before: two conversations, the message in each (two places in the queue for one young person)
    assert len(mine) == 1, (second, mine)
    assert second == {"type": "ack", "id": "m1"}  # the second tab's try: taken in the first's conversation
    assert [e.text for e in await client.app[STORE].transcript(mine[0].id) if e.author == "user"] == [text]  # once
