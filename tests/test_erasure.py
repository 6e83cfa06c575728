"""Erasure on request through the real app: the young person's phrase on the web chat, the supervisors' action,
a listener holding the conversation; and the retention purge, whose figures stay right."""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import timedelta

from aiohttp.test_utils import TestClient

from gateway.app import FLOWS, STORE
from gateway.console import stats
from gateway.conversation import Status
from gateway.events import Erased, Event, StatusChanged
from gateway.messages import ChannelName
from gateway.metrics import Metrics
from gateway.retention import Retention
from gateway.settings import Settings
from gateway.store import Author
from tests.conftest import Clock, add_listener, login
from tests.test_webchat import WALK_TO_QUEUE, bot_texts, hello, receive_until, say

SECRET = "personne ne sait que je dors dehors"


def store_text(settings: Settings) -> str:
    """Every row of the SQLite file, as text."""
    conn = sqlite3.connect(settings.store.removeprefix("sqlite:///"))
    try:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        return "\n".join(repr(row) for t in tables for row in conn.execute(f"SELECT * FROM {t}"))
    finally:
        conn.close()


async def test_the_young_person_erases_their_data_after_confirming(
    client: TestClient,
    settings: Settings,
    clock: Clock,  # type: ignore[type-arg]
) -> None:
    store = client.app[STORE]
    async with client.ws_connect("/chat/ws") as ws:
        session = await hello(ws)
        await say(ws, "m1", SECRET)
        conversation, _ = await store.active_conversation(ChannelName.WEBCHAT, session["token"], clock())
        asked = await say(ws, "m2", "Efface mes données stp")
        assert any("Réponds « oui »" in t for t in bot_texts(asked))
        assert SECRET in [e.text for e in await store.transcript(conversation.id)]  # sealed in the file
        await ws.send_json({"type": "message", "id": "m3", "text": "oui"})
        frames = await receive_until(ws, lambda f: f["type"] == "status" and f["status"] == "closed")
        done = await receive_until(ws, lambda f: f["type"] == "entry", limit=5) if not bot_texts(frames) else frames
        await ws.send_json({"type": "message", "id": "m4", "text": "encore là ?"})
        refused = await receive_until(ws, lambda f: f["type"] == "error")
        assert refused[-1]["code"] == "ended"  # never silently a new conversation: the page says hello again
    [goodbye] = [t for t in bot_texts(done) if "effacé" in t]
    assert all(number in goodbye for number in ("119", "3114", "17", "112"))
    dump = store_text(settings)
    assert SECRET not in dump and conversation.id not in dump and session["token"] not in dump
    assert await store.get_conversation(conversation.id) is None
    [entry] = [e for e in await store.audit_log() if e.action == "erase"]
    assert entry.actor == "young person" and entry.subject == conversation.pseudonym
    assert SECRET not in entry.detail and "1 conversation(s)" in entry.detail


async def test_anything_but_yes_cancels_and_the_chat_goes_on(client: TestClient, clock: Clock) -> None:  # type: ignore[type-arg]
    store = client.app[STORE]
    async with client.ws_connect("/chat/ws") as ws:
        session = await hello(ws)
        await say(ws, "m1", "delete my data")
        cancelled = await say(ws, "m2", "non")
        assert any("on n'efface rien" in t for t in bot_texts(cancelled))
        again = await say(ws, "m3", "2")  # the question asked before goes on
    assert bot_texts(again)
    conversation, created = await store.active_conversation(ChannelName.WEBCHAT, session["token"], clock())
    assert not created and conversation.erase_asked_at is None
    users = [e.text for e in await store.transcript(conversation.id) if e.author.value == "user"]
    assert users == ["delete my data", "non", "2"]
    assert [e for e in await store.audit_log() if e.action == "erase"] == []


async def test_the_phrase_inside_a_story_is_not_a_request(client: TestClient, clock: Clock) -> None:  # type: ignore[type-arg]
    async with client.ws_connect("/chat/ws") as ws:
        await hello(ws)
        frames = await say(ws, "m1", "il m'a dit efface mes données sinon je publie tes photos")
    assert not any("Réponds « oui »" in t for t in bot_texts(frames))


async def test_a_supervisor_erases_a_conversation_a_listener_holds(client: TestClient, clock: Clock) -> None:  # type: ignore[type-arg]
    store = client.app[STORE]
    await add_listener(client, "anne")
    await add_listener(client, "sam", supervisor=True)
    async with client.ws_connect("/chat/ws") as ws:
        session = await hello(ws)
        for number, answer in enumerate(WALK_TO_QUEUE):
            await say(ws, f"m{number}", answer)
        conversation, _ = await store.active_conversation(ChannelName.WEBCHAT, session["token"], clock())
        await login(client, "anne")
        assert (await client.post(f"/api/conversations/{conversation.id}/take", json={})).status == 200
        events = await store.subscribe()
        refused = await client.post(f"/api/conversations/{conversation.id}/erase", json={"confirm": True})
        assert refused.status == 403  # listeners cannot
        await login(client, "sam")
        unconfirmed = await client.post(f"/api/conversations/{conversation.id}/erase", json={})
        assert unconfirmed.status == 400
        response = await client.post(f"/api/conversations/{conversation.id}/erase", json={"confirm": True})
        assert response.status == 200 and (await response.json())["conversations"] == 1
        seen: list[Event] = []
        async with asyncio.timeout(10):
            async for event in events:
                seen.append(event)
                if isinstance(event, StatusChanged) and event.status is Status.CLOSED:
                    break
        await events.aclose()
        await receive_until(ws, lambda f: f["type"] == "status" and f["status"] == "closed")
    [note] = [e for e in seen if isinstance(e, Erased)]
    assert note.entry.author is Author.SYSTEM and "effacée" in note.entry.text
    assert note.conversation_id == conversation.id
    assert await store.get_conversation(conversation.id) is None
    assert await store.held_by("anne") == 0
    audit = await client.get("/api/audit")
    [entry] = [e for e in (await audit.json())["entries"] if e["action"] == "erase"]
    assert entry["actor"] == "sam" and entry["subject"] == conversation.pseudonym


async def test_a_purge_keeps_the_figures_and_drops_the_content(
    client: TestClient,
    settings: Settings,
    clock: Clock,  # type: ignore[type-arg]
) -> None:
    store, flows = client.app[STORE], client.app[FLOWS]
    async with client.ws_connect("/chat/ws") as ws:
        await hello(ws)
        for number, answer in enumerate([*WALK_TO_QUEUE, SECRET]):
            await say(ws, f"m{number}", answer)
    [conversation] = await store.conversations_by_status(Status.QUEUED)
    await add_listener(client, "anne")
    await login(client, "anne")
    await client.post(f"/api/conversations/{conversation.id}/take", json={})
    await client.post(f"/api/conversations/{conversation.id}/notes", json={"text": "note: " + SECRET})
    closed = await client.post(f"/api/conversations/{conversation.id}/close", json={"outcome": "cyberbullying"})
    assert closed.status == 200, await closed.text()
    period = stats.Period(clock() - timedelta(days=1), clock() + timedelta(days=1))
    before = await stats.period_figures(store, flows, period)
    retention = Retention(store, flows, clock=clock, metrics=Metrics())

    assert (await retention.purge(clock() + timedelta(days=29))).conversations == 0  # not yet
    dry = await retention.purge(clock() + timedelta(days=31), dry_run=True)
    assert dry.conversations == 1 and dry.entries > 5
    assert SECRET in "\n".join(e.text for e in await store.transcript(conversation.id))  # a dry run changes nothing
    purged = await retention.purge(clock() + timedelta(days=31))

    assert (purged.conversations, purged.entries) == (1, dry.entries)
    assert SECRET not in store_text(settings)
    assert await stats.period_figures(store, flows, period) == before
    assert (await retention.purge(clock() + timedelta(days=32))).conversations == 0  # once
    [entry] = [e for e in await store.audit_log() if e.action == "purge"]
    assert entry.actor == "gateway" and "1 conversation(s)" in entry.detail
