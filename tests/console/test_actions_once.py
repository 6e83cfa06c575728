"""A listener's note, block, hand-back and close sent again by the console (the answer lost with the connection, a
503 while Redis restarts) are made and audited once, and answered as the first was: the console gives each an id and
keeps it until an answer comes, as it does for a reply and "Orienter" (``tests/console/test_refer_once.py``). Before,
a note was recorded twice, a block audited twice with its end moved on, and a hand-back or close answered 409
(``not_yours``, ``not_active``): the console said the conversation was not the listener's, or no longer active, after
an action that succeeded (a review of the console's actions sent again, 2026-12)."""

from __future__ import annotations

import aiohttp
from aiohttp.test_utils import TestClient

from gateway.app import STORE
from gateway.store import Author

Client = TestClient  # type: ignore[type-arg]
Queued = tuple[aiohttp.ClientWebSocketResponse, str]


async def test_a_note_sent_again_with_its_id_is_recorded_once(client: Client, queued: Queued) -> None:
    _, conversation_id = queued
    path = f"/api/conversations/{conversation_id}/notes"
    first = await client.post(path, json={"text": "parle de son frère", "id": "n1"})
    again = await client.post(path, json={"text": "parle de son frère", "id": "n1"})  # the answer was lost
    assert (first.status, again.status) == (201, 201)
    assert (await first.json())["id"] == (await again.json())["id"]
    notes = [e for e in await client.app[STORE].transcript(conversation_id) if e.author == Author.NOTE]
    assert len(notes) == 1, notes

    other = await client.post(path, json={"text": "parle de son frère", "id": "n2"})  # written again, on purpose
    assert other.status == 201
    assert (await client.post(path, json={"text": "x", "id": "a b"})).status == 400
    notes = [e for e in await client.app[STORE].transcript(conversation_id) if e.author == Author.NOTE]
    assert len(notes) == 2, notes
