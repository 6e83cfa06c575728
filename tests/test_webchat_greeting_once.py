"""The web chat's greeting under a store failure in the middle of it (the real app on SQLite and a real Redis, a raw
websocket as the page's): the first ``save_conversation`` of a new conversation fails (a Redis reset, a full disk),
after the greeting's entries were asked for. The socket closes with 1013 and the page says hello again with its
opening key, which finds the conversation (``keep_opening`` came first): the greeting is then said once.

Until 2026-12-07 ``Dispatcher.start_conversation`` wrote the greeting's entries one by one under the lock, then the
record: the failure left the entries written and the record without its engine, so the hello after it greeted
again, the welcome twice in the transcript and on the page. The store double (tests/store_holds.py's :class:`Holds`)
is the real store, its first save of a conversation refused as the store's own failure is (``StoreError``).
"""

from __future__ import annotations

from typing import cast

import pytest

from gateway.app import STORE
from gateway.settings import Settings
from gateway.store import Store
from tests.conftest import AppFactory
from tests.store.conftest import STORES, redis_url, store_url
from tests.store_holds import Holds, holds
from tests.test_webchat import receive_until

__all__ = ["holds", "redis_url", "store_url"]  # fixtures used below


@pytest.mark.parametrize("store_url", STORES, indirect=True)
async def test_a_greeting_cut_by_a_store_failure_is_said_once_after_the_page_says_hello_again(
    holds: tuple[Settings, Holds], make_client: AppFactory
) -> None:
    settings, store = holds
    store.fail("save_conversation")  # the first one: nothing of it written
    chat = await make_client(settings, store=cast(Store, store))
    hello = {"type": "hello", "token": None, "opening": "k" * 24, "language": "fr"}
    async with chat.ws_connect("/chat/ws") as ws:
        await ws.send_json(hello)
        await ws.receive()  # closed: 1013, try again later
    assert store.failed["save_conversation"] == 1 and ws.close_code == 1013
    async with chat.ws_connect("/chat/ws") as ws:
        await ws.send_json(hello)
        [*_, session] = await receive_until(ws, lambda f: f["type"] == "session")
    history = [e["text"] for e in session["history"]]
    entries = [e.text for e in await chat.app[STORE].transcript(session["conversation"])]
    assert history and len(set(history)) == len(history), history  # before: the welcome twice
    assert len(set(entries)) == len(entries), entries
