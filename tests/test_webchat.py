"""The web chat end to end through the real app and its websocket (the browser test is in tests/e2e)."""

from __future__ import annotations

import asyncio
import re
import time
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient

from gateway.app import STORE, WEBCHAT
from gateway.conversation import Status
from gateway.messages import ChannelName
from gateway.settings import Settings
from gateway.store import Author, Delivery, TranscriptEntry
from tests.conftest import AppFactory, Clock

WALK_TO_QUEUE = ["2", "1", "15", "1", "1", "On se moque de moi sur un groupe."]


async def receive_until(
    ws: aiohttp.ClientWebSocketResponse, predicate: Any, limit: int = 50, frames: list[dict[str, Any]] | None = None
) -> list[dict[str, Any]]:
    """The frames up to the first ``predicate`` accepts (each waited for 10 s at most), kept in ``frames`` when
    given: a caller that gives up still sees what came."""
    frames = [] if frames is None else frames
    for _ in range(limit):
        frame = await ws.receive_json(timeout=10)
        frames.append(frame)
        if predicate(frame):
            return frames
    raise AssertionError(f"no matching frame in {frames}")


async def hello(
    ws: aiohttp.ClientWebSocketResponse, token: str | None = None, frames: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    await ws.send_json({"type": "hello", "token": token, "language": "fr"})
    return (await receive_until(ws, lambda f: f["type"] == "session", frames=frames))[-1]


async def say(
    ws: aiohttp.ClientWebSocketResponse, message_id: str, text: str, frames: list[dict[str, Any]] | None = None
) -> list[dict[str, Any]]:
    await ws.send_json({"type": "message", "id": message_id, "text": text})
    return await receive_until(ws, lambda f: f == {"type": "ack", "id": message_id}, frames=frames)


def bot_texts(frames: list[dict[str, Any]]) -> list[str]:
    return [f["entry"]["text"] for f in frames if f["type"] == "entry" and f["entry"]["author"] == "bot"]


async def test_hello_greets_and_asks_urgency_first(client: TestClient) -> None:  # type: ignore[type-arg]
    async with client.ws_connect("/chat/ws") as ws:
        session = await hello(ws)
    assert session["status"] == "bot"
    assert len(session["token"]) >= 20
    texts = [e["text"] for e in session["history"]]
    assert "confidentiel" in texts[0].lower()
    assert session["history"][-1]["choices"][0]["value"] == "yes_now"


async def test_walk_to_the_queue(client: TestClient) -> None:  # type: ignore[type-arg]
    async with client.ws_connect("/chat/ws") as ws:
        await hello(ws)
        frames: list[dict[str, Any]] = []
        for number, answer in enumerate(WALK_TO_QUEUE):
            frames += await say(ws, f"m{number}", answer)
        if not any(f["type"] == "status" for f in frames):  # its event's frame may come after the last ack
            frames += await receive_until(ws, lambda f: f["type"] == "status")
    status = [f for f in frames if f["type"] == "status"][-1]
    assert status == {"type": "status", "status": "queued", "position": 1, "language": "fr"}
    waiting = await client.app[STORE].waiting()
    assert [w.priority.value for w in waiting] == ["normal"]


async def test_two_young_people_may_use_the_same_message_id(client: TestClient, clock: Clock) -> None:  # type: ignore[type-arg]
    """The page chooses message ids: one session reusing another's id must not lose its message."""
    async with client.ws_connect("/chat/ws") as first, client.ws_connect("/chat/ws") as second:
        sessions = [await hello(first), await hello(second)]
        replies = [await say(first, "m0", "2"), await say(second, "m0", "2")]
    assert all(len(bot_texts(frames)) == 1 for frames in replies)
    store = client.app[STORE]
    for session in sessions:
        conversation, _ = await store.active_conversation(ChannelName.WEBCHAT, session["token"], clock())
        users = [e.text for e in await store.transcript(conversation.id) if e.author.value == "user"]
        assert users == ["2"]


async def test_same_message_id_twice_gives_one_reply(client: TestClient, clock: Clock) -> None:  # type: ignore[type-arg]
    async with client.ws_connect("/chat/ws") as ws:
        session = await hello(ws)
        first = await say(ws, "same-id", "2")
        second = await say(ws, "same-id", "2")
    assert len(bot_texts(first)) == 1
    assert bot_texts(second) == []
    store = client.app[STORE]
    conversation, _ = await store.active_conversation(ChannelName.WEBCHAT, session["token"], clock())
    users = [e for e in await store.transcript(conversation.id) if e.author.value == "user"]
    assert len(users) == 1


async def test_reconnect_resumes_with_history(client: TestClient) -> None:  # type: ignore[type-arg]
    async with client.ws_connect("/chat/ws") as ws:
        token = (await hello(ws))["token"]
        await say(ws, "a", "2")
    async with client.ws_connect("/chat/ws") as ws:
        session = await hello(ws, token)
    assert session["token"] == token
    authors = [e["author"] for e in session["history"]]
    assert authors.count("user") == 1
    assert session["history"][-1]["choices"][0]["value"] == "fr"  # waiting at the language question


async def test_restart_between_two_messages(make_client: AppFactory, settings: Settings) -> None:
    first = await make_client(settings)
    async with first.ws_connect("/chat/ws") as ws:
        token = (await hello(ws))["token"]
        await say(ws, "a", "2")
    await first.close()
    second = await make_client(settings)
    async with second.ws_connect("/chat/ws") as ws:
        session = await hello(ws, token)
        frames = await say(ws, "b", "1")
    assert [e["author"] for e in session["history"]].count("user") == 1
    assert any("âge" in t.lower() for t in bot_texts(frames))


async def test_bad_frames_get_an_error_and_keep_the_socket(client: TestClient) -> None:  # type: ignore[type-arg]
    async with client.ws_connect("/chat/ws") as ws:
        await ws.send_str("not json")
        assert (await ws.receive_json(timeout=5))["code"] == "bad_frame"
        await ws.send_json({"type": "message", "id": "x", "text": "hi"})
        assert (await ws.receive_json(timeout=5))["code"] == "no_session"
        await hello(ws)
        await ws.send_json({"type": "message", "id": "y", "text": "x" * 5000})
        assert (await ws.receive_json(timeout=5))["code"] == "too_long"
        await ws.send_str("x" * 40000)
        frame = await ws.receive_json(timeout=5)
        assert frame["code"] == "bad_frame"


async def test_end_conversation(client: TestClient) -> None:  # type: ignore[type-arg]
    async with client.ws_connect("/chat/ws") as ws:
        await hello(ws)
        await ws.send_json({"type": "end"})
        frames = await receive_until(ws, lambda f: f["type"] == "status")
    assert frames[-1]["status"] == "closed"


async def test_a_message_after_the_end_starts_nothing(client: TestClient) -> None:  # type: ignore[type-arg]
    async with client.ws_connect("/chat/ws") as ws:
        session = await hello(ws)
        await ws.send_json({"type": "end"})
        await receive_until(ws, lambda f: f["type"] == "status" and f["status"] == "closed")
        await ws.send_json({"type": "message", "id": "after", "text": "encore là ?"})
        frame = await receive_until(ws, lambda f: f["type"] in ("error", "ack"))
        assert frame[-1]["type"] == "error" and frame[-1]["code"] == "ended"
        store = client.app[STORE]
        assert await store.find_active_conversation(ChannelName.WEBCHAT, session["token"]) is None
        fresh = await hello(ws, None)  # "Nouvelle conversation": a new token, greeted from the start
    assert fresh["token"] != session["token"] and fresh["status"] == "bot"


async def test_a_hello_naming_an_ended_conversation_shows_its_end_only_to_its_own_browser(
    client: TestClient,  # type: ignore[type-arg]
    clock: Clock,
) -> None:
    """A page that missed its conversation's end names it in its hello: shown ended, with the line's messages only
    (not the young person's), nothing opened, a message refused as after any end. Another browser's token naming
    it, a name that is not an id's, or the hour past: a hello as any, which tells nothing of that conversation."""
    async with client.ws_connect("/chat/ws") as ws:
        session = await hello(ws)
        await say(ws, "m1", "2")
        await ws.send_json({"type": "end"})
        await receive_until(ws, lambda f: f["type"] == "status" and f["status"] == "closed")
    token, conversation = session["token"], session["conversation"]

    async def hello_naming(token: str, name: object) -> dict[str, Any]:
        async with client.ws_connect("/chat/ws") as ws:
            await ws.send_json({"type": "hello", "token": token, "conversation": name, "language": "fr"})
            frame = (await receive_until(ws, lambda f: f["type"] == "session"))[-1]
            if frame["status"] == "closed":
                await ws.send_json({"type": "message", "id": "late", "text": "tu es là ?"})
                refused = await receive_until(ws, lambda f: f["type"] in ("error", "ack"))
                assert refused[-1]["code"] == "ended"
            return frame

    shown = await hello_naming(token, conversation)
    assert (shown["status"], shown["conversation"]) == ("closed", conversation)
    assert {e["author"] for e in shown["history"]} == {"bot"} and shown["history"]
    store = client.app[STORE]
    assert await store.find_active_conversation(ChannelName.WEBCHAT, token) is None  # nothing opened
    stranger = await hello_naming("another-browsers-token-123", conversation)
    assert stranger["status"] == "bot" and stranger["conversation"] != conversation
    assert not any("conversation est terminée" in e["text"] for e in stranger["history"])
    for name in ("hg:c:{x}*", 12, conversation + "}"):
        assert (await hello_naming("a-third-browsers-token-45", name))["status"] == "bot"
    clock.advance(hours=1, minutes=1)
    later = await hello_naming(token, conversation)
    assert later["status"] == "bot" and later["conversation"] != conversation


async def test_chat_page_and_widget_are_served(client: TestClient) -> None:  # type: ignore[type-arg]
    page = await client.get("/chat")
    assert page.status == 200
    assert "Content-Security-Policy" in page.headers
    widget = await client.get("/chat/widget.js")
    assert widget.status == 200


async def test_every_page_names_an_icon_that_is_served(client: TestClient) -> None:  # type: ignore[type-arg]
    """A browser asks for the page's icon: the chat and the console's login page name one, served as SVG (no 404
    in the listeners' consoles or the access log at every page load)."""
    for path in ("/chat", "/console/login"):
        page = await client.get(path)
        assert page.status == 200
        [href] = re.findall(r'<link rel="icon" href="([^"]+)" type="image/svg\+xml">', await page.text())
        icon = await client.get(href)
        assert icon.status == 200
        assert icon.content_type == "image/svg+xml"
        assert (await icon.text()).startswith("<svg")


async def test_receipts_move_only_the_lines_entries_of_this_conversation_forward(
    client: TestClient,
    clock: Clock,  # type: ignore[type-arg]
) -> None:
    store = client.app[STORE]
    async with client.ws_connect("/chat/ws") as other:  # another young person's conversation
        await hello(other)
        await say(other, "o1", "2")
    [theirs] = [c for c in await store.conversations_by_status(Status.BOT)]
    their_bot = [e.id for e in await store.transcript(theirs.id) if e.author == Author.BOT]
    async with client.ws_connect("/chat/ws") as ws:
        session = await hello(ws)
        await say(ws, "m1", "2")
        conversation = await store.find_active_conversation(ChannelName.WEBCHAT, session["token"])
        assert conversation is not None
        entries = await store.transcript(conversation.id)
        bot = [e.id for e in entries if e.author == Author.BOT]
        mine = [e.id for e in entries if e.author == Author.USER]
        await ws.send_json({"type": "receipt", "status": "read", "ids": [bot[0]]})
        await ws.send_json({"type": "receipt", "status": "delivered", "ids": bot + mine + their_bot + ["nope"]})
        bad_frames = [
            {"type": "receipt", "status": "failed", "ids": bot},
            {"type": "receipt", "status": "read"},
            {"type": "receipt", "status": "read", "ids": ["x"] * 101},
            {"type": "receipt", "ids": [1]},
        ]
        for bad in bad_frames:
            await ws.send_json(bad)
            assert (await receive_until(ws, lambda f: f["type"] == "error"))[-1]["code"] == "bad_frame"
    deliveries = {e.id: e.delivery for e in await store.transcript(conversation.id)}
    assert deliveries[bot[0]] == Delivery.READ  # never back to delivered
    assert all(deliveries[i] == Delivery.DELIVERED for i in bot[1:])
    assert all(deliveries[i] == Delivery.DELIVERED for i in mine)  # as stored: the young person's own, untouched
    assert all(e.delivery == Delivery.SENT for e in await store.transcript(theirs.id) if e.id in their_bot)


async def test_the_language_switch_switches_the_bot_from_the_next_message_on(client: TestClient) -> None:  # type: ignore[type-arg]
    async def next_question(start: str, switch: str | None) -> list[str]:
        async with client.ws_connect("/chat/ws") as ws:
            await ws.send_json({"type": "hello", "token": None, "language": start})
            await receive_until(ws, lambda f: f["type"] == "session")
            if switch is not None:
                await ws.send_json({"type": "language", "language": switch})
            return bot_texts(await say(ws, "m0", "2"))  # not in danger: the next question

    # three conversations: one client network may have ten open at once (GATEWAY_MAX_WAITING_PER_CLIENT)
    french, english = await next_question("fr", None), await next_question("en", None)
    assert french and english and french != english
    assert await next_question("fr", "en") == english  # switched: the bot answers in English


async def test_answering_english_to_the_language_question_tells_the_page_at_once(client: TestClient) -> None:  # type: ignore[type-arg]
    """The bot goes on in English; before, no frame said so until the next status (the hand-off), and the page's own
    texts (quick exit, hint, placeholder) stayed French while the bot's greeting named a "Quick exit"."""
    async with client.ws_connect("/chat/ws") as ws:
        await hello(ws)
        await say(ws, "m0", "2")  # not in danger: the language question
        frames = await say(ws, "m1", "English")
        if not any(f["type"] == "language" for f in frames):
            frames += await receive_until(ws, lambda f: f["type"] == "language")
    assert [f for f in frames if f["type"] == "language"] == [{"type": "language", "language": "en"}]
    assert "How old are you?" in " ".join(bot_texts(frames))


async def test_a_language_frame_outside_fr_and_en_is_refused(client: TestClient) -> None:  # type: ignore[type-arg]
    async with client.ws_connect("/chat/ws") as ws:
        await hello(ws)
        await ws.send_json({"type": "language", "language": "klingon"})
        frames = await receive_until(ws, lambda f: f["type"] == "error")
    assert frames[-1]["code"] == "bad_frame"


async def test_a_socket_that_leaves_during_a_resync_leaves_nothing_in_memory(
    client: TestClient[Any, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A page that goes while the hub reads its conversation again (a resync: events missed, Redis reconnected)
    leaves nothing behind: before, the read's entries were tracked for the receipts after the socket's detach had
    forgotten them, and stayed in memory for the process's life, one conversation's more at each such overlap."""
    hub, store = client.app[WEBCHAT], client.app[STORE]
    async with client.ws_connect("/chat/ws") as ws:
        session = await hello(ws)
        await say(ws, "a", "2")
        conversation_id = session["conversation"]
        reading, release = asyncio.Event(), asyncio.Event()
        transcript = store.transcript

        async def held(cid: str, *args: Any, **kwargs: Any) -> list[TranscriptEntry]:
            if cid == conversation_id and not reading.is_set():  # the resync's read only: held until the page left
                reading.set()
                await release.wait()
            return await transcript(cid, *args, **kwargs)

        monkeypatch.setattr(store, "transcript", held)
        resync = asyncio.create_task(hub.resync())
        await asyncio.wait_for(reading.wait(), 10)
    deadline = time.monotonic() + 10
    while conversation_id in hub.sockets:  # the page's socket detached
        assert time.monotonic() < deadline, "the socket never detached"
        await asyncio.sleep(0.01)
    release.set()
    await asyncio.wait_for(resync, 10)
    assert conversation_id not in hub.outgoing
    assert not hub.sockets and not hub.outgoing and not hub.positions
