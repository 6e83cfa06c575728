"""A young person's "oui" (confirming their own erasure) racing a supervisor's "Effacer" of the same conversation, on
SQLite, Redis and a Redis Cluster.

The supervisor's erasure lists itself (``store.begin_erasure``, key ``erasure.asked_by``) under the lock
``erasing-<id>``; the young person's "oui" lists theirs in its message's commit, under the conversation's lock
only, then waits for ``erasing-<id>`` (``Eraser.finish_confirmed``). Either may list first. Until 2026-12-07 the
second listing replaced the first (SQLite ``INSERT OR REPLACE``, Redis ``HSET``): the supervisor's name lost from
the listing (a cut then finished by the alert check wrote "young person" in the audit line), or the young person's
confirmation lost; and the supervisor's erasure, run without a goodbye, unlisted it: ``finish_confirmed`` found
nothing, the page was never told its conversation was erased (flows.yaml's ``erasure.done``, where to turn).

The race: the store double of tests/store_holds.py (:class:`Holds`: the real store, nothing of the gateway patched)
holding the supervisor's erasure at one of its store calls until the "oui" is committed.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any, cast

import pytest

from gateway.app import STORE
from gateway.clock import utcnow
from gateway.erasure import ASKED_BY
from gateway.events import EntryAdded
from gateway.settings import Settings
from gateway.store import Author, Store, TranscriptEntry
from tests.conftest import AppFactory
from tests.store.conftest import redis_cluster_url, redis_url, store_url
from tests.store_holds import Holds, holds
from tests.test_webchat import bot_texts, hello, receive_until, say
from tests.test_webchat_erased import SECRET
from tests.test_webchat_erased_cut import erase

__all__ = ["holds", "redis_cluster_url", "redis_url", "store_url"]  # fixtures used below


async def listed_other_than(store: Holds, conversation_id: str, before: str | None) -> str:
    """The conversation's erasure listing once it is no longer ``before`` (the "oui" committed)."""
    async with asyncio.timeout(10):
        while True:
            now = (await store.erasures_begun()).get(conversation_id)
            if now is not None and now != before:
                return cast(str, now)
            await asyncio.sleep(0.01)


async def goodbyes(events: AsyncIterator[Any], conversation_id: str, store: Holds) -> int:
    """The ``erasure.done`` entries published for the conversation, up to a marker the test publishes once both
    erasures returned (every publish made before it arrives before it)."""
    marker = TranscriptEntry(id="xmarker", conversation_id="marker", at=utcnow(), author=Author.BOT, text="-")
    await store.publish(EntryAdded("marker", marker))
    told = 0
    async with asyncio.timeout(10):
        async for event in events:
            if isinstance(event, EntryAdded) and event.conversation_id == "marker":
                return told
            if isinstance(event, EntryAdded) and event.conversation_id == conversation_id:
                told += "effacé" in event.entry.text
    raise AssertionError("no marker")


@pytest.mark.parametrize(
    "held_at",
    [
        "inbox_forget",  # the supervisor's listed first, then the "oui" (held before its first conversation)
        "begin_erasure",  # the "oui" listed first, then the supervisor's (it read the listing empty before the "oui")
    ],
)
async def test_a_young_persons_oui_racing_a_supervisors_erasure_is_told_once_and_the_listing_keeps_the_supervisor(
    holds: tuple[Settings, Holds], make_client: AppFactory, held_at: str
) -> None:
    """Before: the page told nothing (0 ``erasure.done``), and with the supervisor's listed first, the listing
    replaced by the young person's key (the supervisor's name lost for an alert check finishing it)."""
    settings, store = holds
    chat = await make_client(settings, store=cast(Store, store))
    assert chat.app[STORE] is store
    async with chat.ws_connect("/chat/ws") as ws:
        session = await hello(ws)
        conversation = session["conversation"]
        await say(ws, "m1", SECRET)
        asked = await say(ws, "m2", "Efface mes données stp")
        assert any("Réponds « oui »" in t for t in bot_texts(asked))
        store.hold(held_at, lambda *args, **_: held_at == "inbox_forget" or str(args[1]).startswith(ASKED_BY))
        events = await store.subscribe()
        supervisor = asyncio.create_task(erase(chat, conversation))
        try:
            async with asyncio.timeout(10):
                await store.reached.wait()
            before = (await store.erasures_begun()).get(conversation)
            await ws.send_json({"type": "message", "id": "m3", "text": "oui"})
            listed = await listed_other_than(store, conversation, before)
            if before is not None:  # the supervisor's first: kept (before: replaced by the young person's key)
                assert listed.startswith(ASKED_BY) and '"sam"' in listed, listed
        finally:
            store.go.set()
        assert await supervisor == 200
        frames = await receive_until(ws, lambda f: f == {"type": "ack", "id": "m3"})  # the "oui" done
        told = await goodbyes(events, conversation, store)
        await events.aclose()
        assert told == 1  # before: 0, the page never told its conversation was erased
        if not any("effacé" in t for t in bot_texts(frames)):
            frames = await receive_until(ws, lambda f: any("effacé" in t for t in bot_texts([f])), limit=10)
        [goodbye] = [t for t in bot_texts(frames) if "effacé" in t]
        assert all(number in goodbye for number in ("119", "3114"))
    assert await store.erasures_begun() == {}
    assert await store.get_conversation(conversation) is None
    erasures = [e for e in await store.audit_log(20) if e.action == "erase"]
    assert [e.actor for e in erasures] == ["sam"]
