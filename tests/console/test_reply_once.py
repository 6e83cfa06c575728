"""A listener's reply sent again by the console, its answer lost with the connection, reaches the young person once:
the console gives each reply an id and keeps it for its resends (``POST …/messages {text, id}``); the server
records a reply under its id once (a de-duplication claim marked done with the conversation's save) and answers a
resend with the entry it recorded.

The real app on SQLite, a young person waiting in the web chat (``queued``), the console's HTTP calls.
"""

from __future__ import annotations

import aiohttp
from aiohttp.test_utils import TestClient

from gateway.app import STORE
from gateway.store import Author

Client = TestClient  # type: ignore[type-arg]
Queued = tuple[aiohttp.ClientWebSocketResponse, str]


async def listener_texts(client: Client, conversation_id: str) -> list[str]:
    return [e.text for e in await client.app[STORE].transcript(conversation_id) if e.author == Author.LISTENER]


async def test_a_reply_sent_again_with_its_id_is_recorded_and_sent_once(client: Client, queued: Queued) -> None:
    _, conversation_id = queued
    path = f"/api/conversations/{conversation_id}"
    assert (await client.post(path + "/take", json={})).status == 200

    first = await client.post(path + "/messages", json={"text": "Je suis là.", "id": "k1"})
    again = await client.post(path + "/messages", json={"text": "Je suis là.", "id": "k1"})  # the answer was lost
    assert (first.status, again.status) == (201, 201)
    assert (await first.json())["id"] == (await again.json())["id"]
    assert await listener_texts(client, conversation_id) == ["Je suis là."]

    other = await client.post(path + "/messages", json={"text": "Je suis là.", "id": "k2"})  # a new reply
    assert other.status == 201 and await listener_texts(client, conversation_id) == ["Je suis là."] * 2
    without = await client.post(path + "/messages", json={"text": "Tu veux m'en dire plus ?"})  # an API client
    assert without.status == 201 and len(await listener_texts(client, conversation_id)) == 3


async def test_a_reply_id_that_is_not_one_is_refused(client: Client, queued: Queued) -> None:
    _, conversation_id = queued
    path = f"/api/conversations/{conversation_id}"
    assert (await client.post(path + "/take", json={})).status == 200
    for key in ("", "x" * 65, "a b", 7, ["k"]):
        answer = await client.post(path + "/messages", json={"text": "Bonjour", "id": key})
        assert answer.status == 400, key
    assert await listener_texts(client, conversation_id) == []
