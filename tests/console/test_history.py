"""Ended conversations through the real app: a listener's own history (GET /api/history) and a returning young
person's earlier conversations in the conversation detail, never with the channel identity."""

from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestClient

from tests.conftest import Clock, add_listener, login
from tests.test_webchat import WALK_TO_QUEUE, hello, receive_until, say

Client = TestClient  # type: ignore[type-arg]


async def visit(client: Client, token: str | None, person: str, end: bool) -> str:
    """One web chat visit with ``token`` walked to the queue (then ended if ``end``); the token."""
    async with client.ws_connect("/chat/ws") as ws:
        token = str((await hello(ws, token))["token"])
        for number, answer in enumerate(WALK_TO_QUEUE):
            await say(ws, f"{person}-{number}", answer)
        if end:
            await ws.send_json({"type": "end"})
            await receive_until(ws, lambda f: f["type"] == "status" and f["status"] == "abandoned")
    return token


async def waiting(client: Client) -> list[dict[str, Any]]:
    return list((await (await client.get("/api/queue")).json())["waiting"])


async def test_a_returning_young_person_is_shown_with_earlier_conversations(client: Client, clock: Clock) -> None:
    await add_listener(client, "anne")
    await login(client, "anne")
    token = await visit(client, None, "first", end=True)
    clock.advance(hours=2)
    await visit(client, token, "again", end=False)  # the same browser writes again
    await visit(client, None, "someone", end=False)  # somebody else
    cards = await waiting(client)
    assert len(cards) == 2
    details = [await (await client.get(f"/api/conversations/{card['id']}")).json() for card in cards]
    returning = [d for d in details if d["earlier"]]
    assert len(returning) == 1
    [earlier] = returning[0]["earlier"]
    assert set(earlier) == {"id", "created_at", "status", "outcome"} and earlier["status"] == "abandoned"
    assert token not in str(details)  # never the identity
    assert all(d["restricted"] and d["transcript"] == [] for d in details)  # waiting: the card only
    assert (await client.get(f"/api/conversations/{earlier['id']}")).status == 403
    held = returning[0]["id"]
    assert (await client.post(f"/api/conversations/{held}/take", json={})).status == 200
    other = next(d["id"] for d in details if d is not returning[0])  # somebody else's: no way in through it
    assert (await client.get(f"/api/conversations/{earlier['id']}?via={other}")).status == 403
    opened = await client.get(f"/api/conversations/{earlier['id']}?via={held}")  # from the one anne holds
    assert opened.status == 200 and (await opened.json())["transcript"]


async def test_history_lists_only_the_listeners_own_ended_conversations(client: Client) -> None:
    await add_listener(client, "anne")
    await login(client, "anne")
    await visit(client, None, "one", end=False)
    [card] = await waiting(client)
    assert (await client.post(f"/api/conversations/{card['id']}/take", json={})).status == 200
    assert (await (await client.get("/api/history")).json())["ended"] == []
    closed = await client.post(f"/api/conversations/{card['id']}/close", json={"outcome": "cyberbullying"})
    assert closed.status == 200
    [ended] = (await (await client.get("/api/history")).json())["ended"]
    assert (ended["id"], ended["outcome"], ended["status"]) == (card["id"], "cyberbullying", "closed")

    await add_listener(client, "bruno")
    await login(client, "bruno")
    assert (await (await client.get("/api/history")).json())["ended"] == []


async def test_an_earlier_conversation_another_listener_held_stays_theirs(client: Client, clock: Clock) -> None:
    """Bruno took a young person's conversation, wrote to them and a private note, and gave it back to the queue;
    the young person then left. They come back and Anne takes the new one: she sees the dates and outcome of the
    earlier one, but not Bruno's exchange and private note (access.py: "no other listener held it"). Before, the
    hand-back had cleared its listener, and the earlier conversation opened in full from the held one."""
    await add_listener(client, "anne")
    await add_listener(client, "bruno")
    async with client.ws_connect("/chat/ws") as ws:
        token = str((await hello(ws, None))["token"])
        for number, answer in enumerate(WALK_TO_QUEUE):
            await say(ws, f"first-{number}", answer)
        await login(client, "bruno")
        [first] = await waiting(client)
        path = f"/api/conversations/{first['id']}"
        assert (await client.post(path + "/take", json={})).status == 200
        assert (await client.post(path + "/messages", json={"text": "Bonjour, c'est Bruno."})).status == 201
        assert (await client.post(path + "/notes", json={"text": "secret de Bruno"})).status == 201
        assert (await client.post(path + "/hand-back", json={})).status == 200
        await ws.send_json({"type": "end"})
        await receive_until(ws, lambda f: f["type"] == "status" and f["status"] == "abandoned")
    clock.advance(hours=2)
    await visit(client, token, "again", end=False)  # the same browser writes again
    await login(client, "anne")
    [again] = await waiting(client)
    assert (await client.post(f"/api/conversations/{again['id']}/take", json={})).status == 200
    detail = await (await client.get(f"/api/conversations/{again['id']}")).json()
    assert [e["id"] for e in detail["earlier"]] == [first["id"]]  # its date and outcome are shown
    opened = await client.get(f"/api/conversations/{first['id']}?via={again['id']}")
    assert opened.status == 403, [e["text"] for e in (await opened.json())["transcript"]]
