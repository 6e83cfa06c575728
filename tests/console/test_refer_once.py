"""A listener's "Orienter" and warm referral consent question sent again by the console (the answer lost with the
connection, a 503 while Redis restarts, a second click on a console that said nothing) reach the young person once:
the console gives each an id and keeps it until an answer comes (``POST …/refer {partner, id}``, ``POST
…/referrals/ask {partner, id}``), as it does for a reply (``tests/console/test_reply_once.py``). Before, neither took
an id: each click told the young person the partner's message (the consent question) again, and audited it again (a
review of the listener's actions done twice or cut, 2027-01)."""

from __future__ import annotations

import aiohttp
from aiohttp.test_utils import TestClient

from gateway.app import STORE
from gateway.store import Author

Client = TestClient  # type: ignore[type-arg]
Queued = tuple[aiohttp.ClientWebSocketResponse, str]


async def listener_texts(client: Client, conversation_id: str) -> list[str]:
    return [e.text for e in await client.app[STORE].transcript(conversation_id) if e.author == Author.LISTENER]


async def test_an_orienter_sent_again_with_its_id_tells_the_partner_once(client: Client, queued: Queued) -> None:
    _, conversation_id = queued
    path = f"/api/conversations/{conversation_id}"
    assert (await client.post(path + "/take", json={})).status == 200

    first = await client.post(path + "/refer", json={"partner": "119", "id": "o1"})
    again = await client.post(path + "/refer", json={"partner": "119", "id": "o1"})  # the answer was lost
    assert (first.status, again.status) == (201, 201)
    assert (await first.json())["id"] == (await again.json())["id"]
    told = await listener_texts(client, conversation_id)
    assert len(told) == 1 and "119" in told[0], told

    other = await client.post(path + "/refer", json={"partner": "119", "id": "o2"})  # clicked again, on purpose
    assert other.status == 201 and len(await listener_texts(client, conversation_id)) == 2
    bad = await client.post(path + "/refer", json={"partner": "119", "id": "a b"})
    assert bad.status == 400 and len(await listener_texts(client, conversation_id)) == 2


async def test_a_consent_question_sent_again_with_its_id_is_asked_and_audited_once(
    client: Client, queued: Queued
) -> None:
    _, conversation_id = queued
    path = f"/api/conversations/{conversation_id}"
    assert (await client.post(path + "/take", json={})).status == 200

    for _ in range(2):  # the first answer lost
        asked = await client.post(path + "/referrals/ask", json={"partner": "116006", "id": "q1"})
        assert asked.status == 204, await asked.text()
    told = await listener_texts(client, conversation_id)
    assert len(told) == 1 and "116 006" in told[0], told
    lines = [e.action for e in await client.app[STORE].audit_log()]
    assert lines.count("referral_consent_asked") == 1, lines

    asked = await client.post(path + "/referrals/ask", json={"partner": "116006", "id": "q2"})  # asked again, later
    assert asked.status == 204 and len(await listener_texts(client, conversation_id)) == 2
