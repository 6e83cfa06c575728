"""An interrupt that hands off, read while the young person already waits in the queue: its first words (its `say`,
the advice it carries: "ne paie pas, ne supprime pas les messages…" for a sextortion going on) are said once in the
conversation, with the partners not given yet, and the listener's card shows its alert beside the young person's own
answer (Dispatcher._escalate). Never twice: not after the same interrupt handed off in the bot, not when the message
is repeated. The real app on SQLite, the web chat's socket, the console's queue.

Until 2026-12-05, "il me demande 200€ sinon il envoie mes photos" written while waiting after choosing
"cyberharcèlement" brought Pharos' message and a raise to "high", never the advice, and the card still read
"Sujet : Cyberharcèlement" with nothing saying a sextortion was going on."""

from __future__ import annotations

from aiohttp import web
from aiohttp.test_utils import TestClient

from gateway.app import FLOWS, STORE
from gateway.conversation import Priority
from tests.conftest import Clock, add_listener, login
from tests.test_waiting_partners import bot_texts
from tests.test_webchat import WALK_TO_QUEUE, say

Client = TestClient[web.Request, web.Application]
BLACKMAIL = "il me demande 200€ sinon il envoie mes photos à tous mes contacts"


def words(client: Client, interrupt: str) -> str:
    engine = client.app[FLOWS].engine()
    return " ".join(engine.text(t, "fr") for t in engine.flow.interrupts[interrupt].then.say)


def partner(client: Client, name: str) -> str:
    engine = client.app[FLOWS].engine()
    return engine.text(engine.flow.partners[name].message, "fr")


async def card_topic(client: Client, conversation_id: str) -> str:
    queue = await (await client.get("/api/queue")).json()
    [card] = [c for c in queue["waiting"] if c["id"] == conversation_id]
    return str(dict(card["summary"])["Sujet"])


async def test_a_sextortion_read_while_waiting_says_its_advice_once_and_the_card_shows_its_alert(
    client: Client,
) -> None:
    store = client.app[STORE]
    await add_listener(client, "anne")
    await login(client, "anne")
    async with client.ws_connect("/chat/ws") as ws:
        await ws.send_json({"type": "hello", "token": None, "language": "fr"})
        for number, answer in enumerate(WALK_TO_QUEUE):  # cyberharcèlement, at normal
            await say(ws, f"w{number}", answer)
        [entry] = await store.waiting()
        cid = entry.conversation_id
        assert (await card_topic(client, cid)) == "Cyberharcèlement"
        before = len(await bot_texts(store, cid))

        await say(ws, "s1", BLACKMAIL)
        assert (await bot_texts(store, cid))[before:] == [words(client, "sextortion"), partner(client, "pharos")]
        [entry] = await store.waiting()
        assert entry.priority == Priority.HIGH
        topic = await card_topic(client, cid)
        assert topic.startswith("Cyberharcèlement") and "alerte « sextortion »" in topic  # their answer kept

        before = len(await bot_texts(store, cid))
        await say(ws, "s2", "il me fait du chantage")  # the same interrupt again: said already
        assert (await bot_texts(store, cid))[before:] == []
        assert (await card_topic(client, cid)) == topic


async def test_the_advice_said_at_the_hand_off_in_the_bot_is_not_said_again_while_waiting(client: Client) -> None:
    store = client.app[STORE]
    await add_listener(client, "anne")
    await login(client, "anne")
    async with client.ws_connect("/chat/ws") as ws:
        await ws.send_json({"type": "hello", "token": None, "language": "fr"})
        await say(ws, "s0", BLACKMAIL)  # the interrupt hands off in the bot: the advice and Pharos said then
        [entry] = await store.waiting()
        cid = entry.conversation_id
        said = await bot_texts(store, cid)
        assert said.count(words(client, "sextortion")) == 1
        topic = await card_topic(client, cid)
        assert topic.startswith("Chantage, sextorsion")

        await say(ws, "s1", "il me fait du chantage avec mes photos")
        assert (await bot_texts(store, cid)) == said
        assert (await card_topic(client, cid)) == topic  # its alert not added twice


async def test_every_handing_off_risk_read_while_waiting_says_its_words_once_with_its_partners(
    client: Client,
) -> None:
    store = client.app[STORE]
    async with client.ws_connect("/chat/ws") as ws:
        await ws.send_json({"type": "hello", "token": None, "language": "fr"})
        for number, answer in enumerate(WALK_TO_QUEUE):
            await say(ws, f"w{number}", answer)
        [entry] = await store.waiting()
        cid = entry.conversation_id

        before = len(await bot_texts(store, cid))
        await say(ws, "a1", "mon beau-père me frappe")  # harm at home: "ce n'est pas de ta faute", then 119
        assert (await bot_texts(store, cid))[before:] == [words(client, "abuse_home"), partner(client, "119")]

        before = len(await bot_texts(store, cid))
        await say(ws, "a2", "mon beau-père me frappe encore")
        assert (await bot_texts(store, cid))[before:] == []


async def test_a_sextortion_read_while_waiting_at_night_promises_no_listener_as_soon_as_possible(
    client: Client, clock: Clock
) -> None:
    """Queued in the evening, still waiting at 23:30 with the line closed: the interrupt's words are its
    ``say_closed``, as at a hand-off in the bot. Until 2026-12-05 the waiting young person read "Un·e écoutant·e va te
    répondre dès que possible" minutes after being told nobody answers here before 9:00."""
    store = client.app[STORE]
    async with client.ws_connect("/chat/ws") as ws:
        await ws.send_json({"type": "hello", "token": None, "language": "fr"})
        for number, answer in enumerate(WALK_TO_QUEUE):
            await say(ws, f"w{number}", answer)
        [entry] = await store.waiting()
        cid = entry.conversation_id
        clock.advance(hours=9, minutes=30)  # 23:30 in Paris: the line closed
        before = len(await bot_texts(store, cid))
        await say(ws, "n1", BLACKMAIL)
        engine = client.app[FLOWS].engine()
        closed = " ".join(engine.text(t, "fr") for t in engine.flow.interrupts["sextortion"].then.say_closed or ())
        said = await bot_texts(store, cid)
        night = engine.message("closed_line", "fr").split("{", 1)[0]  # the timer's notice may come first: its own
        assert [text for text in said[before:] if not text.startswith(night)] == [closed, partner(client, "pharos")]
