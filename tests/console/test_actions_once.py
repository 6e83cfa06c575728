"""A listener's note, block, hand-back and close sent again by the console (the answer lost with the connection, a
503 while Redis restarts) are made and audited once, and answered as the first was: the console gives each an id and
keeps it until an answer comes, as it does for a reply and "Orienter" (``tests/console/test_refer_once.py``). Before,
a note was recorded twice, a block audited twice with its end moved on, and a hand-back or close answered 409
(``not_yours``, ``not_active``): the console said the conversation was not the listener's, or no longer active, after
an action that succeeded (a review of the console's actions sent again, 2026-12)."""

from __future__ import annotations

import aiohttp
import pytest
from aiohttp.test_utils import TestClient

from gateway.app import STORE
from gateway.settings import Settings
from gateway.store import Author
from tests.conftest import Clock
from tests.console.conftest import other_session
from tests.store.conftest import STORES, on_store, redis_url

__all__ = ["redis_url"]  # a fixture used below

Client = TestClient  # type: ignore[type-arg]
Queued = tuple[aiohttp.ClientWebSocketResponse, str]


@pytest.fixture(params=STORES)
def settings(request: pytest.FixtureRequest, settings: Settings) -> Settings:
    """Each test on SQLite and on the session's Redis (emptied)."""
    return on_store(request, settings)


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


async def bot_texts(client: Client, conversation_id: str) -> list[str]:
    return [e.text for e in await client.app[STORE].transcript(conversation_id) if e.author == Author.BOT]


async def test_a_close_sent_again_with_its_id_is_answered_as_the_close_it_repeats(
    client: Client, queued: Queued
) -> None:
    _, conversation_id = queued
    path = f"/api/conversations/{conversation_id}"
    assert (await client.post(path + "/take", json={})).status == 200
    before = await bot_texts(client, conversation_id)
    body = {"outcome": "cyberbullying", "notes": "rappeler demain", "id": "c1"}
    first = await client.post(path + "/close", json=body)
    again = await client.post(path + "/close", json=body)  # the answer was lost: the console sends it again
    assert (first.status, again.status) == (200, 200), await again.text()
    assert (await again.json())["status"] == "closed"
    told = await bot_texts(client, conversation_id)
    assert len(told) == len(before) + 1, told  # one goodbye
    notes = [e for e in await client.app[STORE].transcript(conversation_id) if e.author == Author.NOTE]
    assert len(notes) == 1, notes
    other = await client.post(path + "/close", json={**body, "id": "c2"})  # another close: refused, as before
    assert other.status == 409 and (await other.json())["error"] == "not_active"
    assert await bot_texts(client, conversation_id) == told


async def test_a_hand_back_sent_again_with_its_id_is_answered_as_the_hand_back_it_repeats(
    client: Client, queued: Queued
) -> None:
    _, conversation_id = queued
    path = f"/api/conversations/{conversation_id}"
    assert (await client.post(path + "/take", json={})).status == 200
    first = await client.post(path + "/hand-back", json={"id": "h1"})
    again = await client.post(path + "/hand-back", json={"id": "h1"})  # the answer was lost
    assert (first.status, again.status) == (200, 200), await again.text()
    assert (await again.json())["status"] == "queued"
    other = await client.post(path + "/hand-back", json={"id": "h2"})  # not a resend: not theirs, as before
    assert other.status == 409 and (await other.json())["error"] == "not_yours"
    assert (await client.post(path + "/hand-back", json={"id": "a b"})).status == 400


async def test_a_supervisors_hand_back_or_transfer_sent_again_never_takes_it_from_the_colleague_who_took_it(
    client: Client, queued: Queued
) -> None:
    """Sam gives back (then transfers) what Anne held; Bruno takes it at once; Sam's request arrives again (its answer
    lost, the browser's retry): before, it took the conversation from Bruno, in the middle of his first words, the
    young person told their place again after "a listener joined", and audited "from bruno"."""
    _, conversation_id = queued
    path = f"/api/conversations/{conversation_id}"
    bruno = await other_session(client, "bruno")
    sam = await other_session(client, "sam")
    try:
        for action, body in (("hand-back", {"id": "s1"}), ("transfer", {"queue": "listeners", "id": "s2"})):
            assert (await client.post(path + "/take", json={})).status == 200  # Anne holds it
            assert (await sam.post(path + "/" + action, json=body)).status == 200
            assert (await bruno.post(path + "/take", json={})).status == 200
            told = await bot_texts(client, conversation_id)
            again = await sam.post(path + "/" + action, json=body)  # the same request, again
            assert again.status == 200, await again.text()
            card = await again.json()
            assert (card["status"], card["listener"]) == ("with_listener", "bruno"), card
            stored = await client.app[STORE].get_conversation(conversation_id)
            assert stored is not None and stored.listener == "bruno"
            assert await bot_texts(client, conversation_id) == told  # nothing more told to the young person
            assert (await bruno.post(path + "/hand-back", json={})).status == 200
        lines = [(e.action, e.detail) for e in await client.app[STORE].audit_log(50)]
        assert not any("from bruno" in detail for _, detail in lines), lines
    finally:
        await bruno.close()
        await sam.close()


async def test_a_block_sent_again_is_recorded_and_audited_once(client: Client, queued: Queued, clock: Clock) -> None:
    _, conversation_id = queued
    path = f"/api/conversations/{conversation_id}/block"
    body = {"duration": "24h", "reason": "insultes répétées"}
    first = await client.post(path, json=body)
    clock.advance(seconds=20)  # the console's 15 s without an answer, then "Bloquer" again
    again = await client.post(path, json=body)
    assert (first.status, again.status) == (201, 201)
    assert await again.json() == await first.json()  # the same block: its end not moved on
    lines = [e.action for e in await client.app[STORE].audit_log(50)]
    assert lines.count("block") == 1, lines
    longer = await client.post(path, json={**body, "duration": "30d"})  # another block: made and audited
    assert longer.status == 201 and (await longer.json())["until"] != (await first.json())["until"]
    assert [e.action for e in await client.app[STORE].audit_log(50)].count("block") == 2
