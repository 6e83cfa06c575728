"""The listener API through the real app: sessions, the queue, take (with a race), reply, notes, refer,
transfer, hand back, close; the young person's web chat sees what it must and nothing more."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp.test_utils import TestClient

from gateway.app import STORE
from gateway.store import Listener
from tests.conftest import login, password_hash
from tests.console.conftest import other_session
from tests.test_webchat import WALK_TO_QUEUE, hello, receive_until, say


async def test_api_needs_a_session(client: TestClient) -> None:  # type: ignore[type-arg]
    assert (await client.get("/api/queue")).status == 401
    assert (await client.post("/api/session", json={"name": "x", "password": "y"})).status == 401
    assert (await client.post("/api/session", data="name=x")).status == 415
    assert (await client.post("/api/session", data="{", headers={"Content-Type": "application/json"})).status == 400


async def test_forged_cookie_is_refused(client: TestClient) -> None:  # type: ignore[type-arg]
    client.session.cookie_jar.update_cookies({"hg_session": "YW5uZXw5OTk5OTk5OTk5fHg.AAAA"})
    assert (await client.get("/api/me")).status == 401


async def test_queue_card_shows_summary_not_sender(client: TestClient, queued: Any) -> None:  # type: ignore[type-arg]
    body = await (await client.get("/api/queue")).json()
    card = body["waiting"][0]
    assert card["channel"] == "webchat"
    assert card["priority"] == "normal"
    assert dict(card["summary"])["Âge"] == "15"
    assert "sender" not in card and "-" in card["pseudonym"]


async def test_take_reply_note_close(client: TestClient, queued: Any) -> None:  # type: ignore[type-arg]
    ws, conversation_id = queued
    base = f"/api/conversations/{conversation_id}"
    assert (await client.post(base + "/messages", json={"text": "too early"})).status == 409
    assert (await client.post(base + "/take", json={})).status == 200
    await receive_until(ws, lambda f: f["type"] == "status" and f["status"] == "with_listener")
    assert (await client.post(base + "/messages", json={"text": "Bonjour, je suis là."})).status == 201
    frames = await receive_until(ws, lambda f: f["type"] == "entry" and f["entry"]["author"] == "listener")
    assert frames[-1]["entry"]["text"] == "Bonjour, je suis là."
    assert (await client.post(base + "/notes", json={"text": "secret note"})).status == 201
    await say(ws, "u1", "merci")
    detail = await (await client.get(base)).json()
    authors = [e["author"] for e in detail["transcript"]]
    assert "note" in authors and authors[-1] == "user"
    closed = await client.post(base + "/close", json={"outcome": "cyberbullying", "notes": "ok"})
    assert closed.status == 200, await closed.text()
    frames = await receive_until(ws, lambda f: f["type"] == "status")
    assert frames[-1]["status"] == "closed"
    seen = [f for f in frames if f["type"] == "entry"]
    assert all("secret note" not in f["entry"]["text"] for f in seen)


async def test_two_listeners_race_one_wins(client: TestClient, queued: Any) -> None:  # type: ignore[type-arg]
    _, conversation_id = queued
    bruno = await other_session(client, "bruno")
    try:
        url = f"/api/conversations/{conversation_id}/take"
        statuses = sorted(r.status for r in await asyncio.gather(client.post(url, json={}), bruno.post(url, json={})))
    finally:
        await bruno.close()
    assert statuses == [200, 409]


async def test_refer_sends_partner_message(client: TestClient, queued: Any) -> None:  # type: ignore[type-arg]
    _, conversation_id = queued
    base = f"/api/conversations/{conversation_id}"
    await client.post(base + "/take", json={})
    response = await client.post(base + "/refer", json={"partner": "pharos"})
    assert response.status == 201
    assert "internet-signalement" in (await response.json())["text"]
    assert (await client.post(base + "/refer", json={"partner": "nope"})).status == 409


async def test_transfer_and_hand_back(client: TestClient, queued: Any) -> None:  # type: ignore[type-arg]
    _, conversation_id = queued
    base = f"/api/conversations/{conversation_id}"
    await client.post(base + "/take", json={})
    back = await client.post(base + "/hand-back", json={})
    assert (await back.json())["status"] == "queued"
    assert (await client.post(base + "/transfer", json={"queue": "nope"})).status == 409
    assert (await client.post(base + "/transfer", json={"queue": "listeners"})).status == 409  # waits there already
    await client.post(base + "/take", json={})
    moved = await client.post(base + "/transfer", json={"queue": "listeners"})
    assert (await moved.json())["status"] == "queued"


async def test_close_needs_a_known_outcome(client: TestClient, queued: Any) -> None:  # type: ignore[type-arg]
    _, conversation_id = queued
    response = await client.post(f"/api/conversations/{conversation_id}/close", json={"outcome": "zzz"})
    assert response.status == 409


async def test_flow_material(client: TestClient, queued: Any) -> None:  # type: ignore[type-arg]
    material = await (await client.get("/api/flow")).json()
    assert {"119", "pharos"} <= {p["id"] for p in material["partners"]}
    assert material["canned_responses"] and material["outcomes"]
    cyberbullying = next(o for o in material["outcomes"] if o["id"] == "cyberbullying")
    assert cyberbullying["labels"] == {"fr": "Cyberharcèlement", "en": "Cyberbullying"}  # the console picks its own
    assert all(p["names"]["fr"] for p in material["partners"]) and all(q["names"] for q in material["queues"])


async def test_reload_is_for_supervisors(client: TestClient, queued: Any) -> None:  # type: ignore[type-arg]
    assert (await client.post("/api/admin/reload", json={})).status == 403
    sam = await other_session(client, "sam")
    try:
        response = await sam.post("/api/admin/reload", json={})
        assert response.status == 200
    finally:
        await sam.close()


async def test_two_tabs_cannot_take_past_the_capacity(client: TestClient) -> None:  # type: ignore[type-arg]
    await client.app[STORE].add_listener(Listener("solo", password_hash(), capacity=1))
    for person in range(2):
        async with client.ws_connect("/chat/ws") as ws:
            await hello(ws)
            for number, answer in enumerate(WALK_TO_QUEUE):
                await say(ws, f"p{person}-{number}", answer)
    await login(client, "solo")
    waiting = (await (await client.get("/api/queue")).json())["waiting"]
    assert len(waiting) == 2
    second_tab = await other_session(client, "solo")
    try:
        responses = await asyncio.gather(
            client.post(f"/api/conversations/{waiting[0]['id']}/take", json={}),
            second_tab.post(f"/api/conversations/{waiting[1]['id']}/take", json={}),
        )
        answers = sorted([(r.status, (await r.json()).get("error")) for r in responses], key=str)
    finally:
        await second_tab.close()
    assert answers == [(200, None), (409, "capacity")]


async def test_a_waiting_conversation_transferred_to_its_own_queue_keeps_its_place(client: TestClient) -> None:  # type: ignore[type-arg]
    """A listener reading the first waiting card opens "Transférer" and picks the queue it already waits in (the only
    one in the default flow): nothing to move. Before, it went to the back of the line, told a worse place."""
    for person in ("first", "second"):
        async with client.ws_connect("/chat/ws") as ws:
            await hello(ws)
            for number, answer in enumerate(WALK_TO_QUEUE):
                await say(ws, f"{person}-{number}", answer)
    await client.app[STORE].add_listener(Listener("anne", password_hash()))
    await login(client, "anne")
    before = [c["id"] for c in (await (await client.get("/api/queue")).json())["waiting"]]
    moved = await client.post(f"/api/conversations/{before[0]}/transfer", json={"queue": "listeners"})
    assert (moved.status, (await moved.json()).get("error")) == (409, "same_queue")
    after = [c["id"] for c in (await (await client.get("/api/queue")).json())["waiting"]]
    assert after == before
