"""An interrupt that hands off and refers a partner, read while a listener holds the conversation (a sextortion going
on: "il me demande 200€ sinon il envoie mes photos", an interrupt without a risk class): the bot says nothing then
(the listener answers), but, as a risk read while held (tests/test_held_risk.py), the priority is raised to the
interrupt's, its partners are kept owed and given when the conversation goes back to a queue (the listener's
hand-back, or the gateway's when they left their console), each once, and its alert shows on the card beside the
young person's own answer. Its words (the advice) are not said at the hand-back: the listener had the conversation.
"human" (no partner) written to a listener raises nothing: they are with a human. And in the bot: a sextortion after
the young person chose "cyberharcèlement" shows its alert beside their answer on the card.

The real app on SQLite, the web chat's socket, the console's queue; the alert checks driven as the worker runs them.
Until 2026-12-05 the held young person went back to the queue at "normal", told their place only (never Pharos), and
the card read "Sujet : Cyberharcèlement"; in the bot too the card said nothing of the sextortion.
"""

from __future__ import annotations

from aiohttp import web
from aiohttp.test_utils import TestClient

from gateway.app import STORE, WATCH
from gateway.conversation import Priority, Status
from tests.conftest import Clock, add_listener, login
from tests.test_alerts_handback import GRACE, take_with_console_open, waiting_on_the_web_chat, whole
from tests.test_waiting_interrupt_say import BLACKMAIL, partner, words
from tests.test_waiting_partners import bot_texts
from tests.test_webchat import WALK_TO_QUEUE, say

Client = TestClient[web.Request, web.Application]


async def topic_on_card(client: Client, conversation_id: str, side: str = "waiting") -> str:
    queue = await (await client.get("/api/queue")).json()
    [card] = [c for c in queue[side] if c["id"] == conversation_id]
    return str(dict(card["summary"])["Sujet"])


async def test_a_sextortion_written_to_a_listener_who_hands_back_waits_at_high_told_pharos_with_the_cards_alert(
    client: Client, clock: Clock
) -> None:
    store = client.app[STORE]
    ws, lea = await waiting_on_the_web_chat(client)  # cyberharcèlement, at normal
    await add_listener(client, "anne")
    await login(client, "anne")
    assert (await client.post(f"/api/conversations/{lea}/take", json={})).status == 200
    before = await bot_texts(store, lea)
    await say(ws, "s1", BLACKMAIL)  # to Anne: the bot says nothing
    assert await bot_texts(store, lea) == before
    held = await store.get_conversation(lea)
    assert held is not None and held.status == Status.WITH_LISTENER and held.priority == Priority.HIGH
    topic = await topic_on_card(client, lea, "mine")
    assert topic.startswith("Cyberharcèlement") and "alerte « sextortion »" in topic  # their answer kept

    assert (await client.post(f"/api/conversations/{lea}/hand-back", json={})).status == 200
    [entry] = await store.waiting()
    assert entry.priority == Priority.HIGH
    said = (await bot_texts(store, lea))[len(before) :]
    assert said.count(partner(client, "pharos")) == 1
    assert words(client, "sextortion") not in said  # the listener had the conversation: no advice after it
    assert (await topic_on_card(client, lea)) == topic

    clock.advance(minutes=1)  # taken and handed back again: Pharos not twice
    assert (await client.post(f"/api/conversations/{lea}/take", json={})).status == 200
    await say(ws, "s2", "il me fait du chantage avec mes photos")
    assert (await client.post(f"/api/conversations/{lea}/hand-back", json={})).status == 200
    assert (await bot_texts(store, lea)).count(partner(client, "pharos")) == 1
    assert (await topic_on_card(client, lea)) == topic  # its alert not added twice
    await ws.close()


async def test_the_gateways_hand_back_after_a_sextortion_while_held_gives_pharos_at_high(
    client: Client, clock: Clock
) -> None:
    store, watch = client.app[STORE], client.app[WATCH]
    ws, lea = await waiting_on_the_web_chat(client)
    await take_with_console_open(client, lea)  # Anne's console closes without a logout
    await say(ws, "s1", BLACKMAIL)
    await whole(client)
    await watch.check()
    clock.advance(seconds=GRACE)
    await watch.check()  # handed back by itself
    back = await store.get_conversation(lea)
    assert back is not None and back.status == Status.QUEUED and back.priority == Priority.HIGH
    [entry] = await store.waiting()
    assert entry.priority == Priority.HIGH
    said = await bot_texts(store, lea)
    disconnected = next(n for n, text in enumerate(said) if "déconnecté" in text)
    assert said[disconnected + 1 :].count(partner(client, "pharos")) == 1
    assert "alerte « sextortion »" in await topic_on_card(client, lea)
    await ws.close()


async def test_asking_for_a_human_while_with_a_listener_raises_nothing(client: Client) -> None:
    store = client.app[STORE]
    ws, lea = await waiting_on_the_web_chat(client)
    await add_listener(client, "anne")
    await login(client, "anne")
    assert (await client.post(f"/api/conversations/{lea}/take", json={})).status == 200
    await say(ws, "h1", "je veux parler a quelqu un de vrai")
    held = await store.get_conversation(lea)
    assert held is not None and held.priority == Priority.NORMAL and held.partners_owed == ()
    assert (await client.post(f"/api/conversations/{lea}/hand-back", json={})).status == 200
    [entry] = await store.waiting()
    assert entry.priority == Priority.NORMAL
    await ws.close()


async def test_a_sextortion_in_the_bot_after_the_topic_was_answered_shows_its_alert_beside_the_answer(
    client: Client,
) -> None:
    store = client.app[STORE]
    await add_listener(client, "anne")
    await login(client, "anne")
    async with client.ws_connect("/chat/ws") as ws:
        await ws.send_json({"type": "hello", "token": None, "language": "fr"})
        for number, answer in enumerate(WALK_TO_QUEUE[:-1]):  # up to "cyberharcèlement"; the details asked
            await say(ws, f"w{number}", answer)
        await say(ws, "s1", BLACKMAIL)  # the interrupt hands off in the bot
        [entry] = await store.waiting()
        assert entry.priority == Priority.HIGH
        said = await bot_texts(store, entry.conversation_id)
        assert said.count(words(client, "sextortion")) == 1
        topic = await topic_on_card(client, entry.conversation_id)
        assert topic.startswith("Cyberharcèlement") and "alerte « sextortion »" in topic
