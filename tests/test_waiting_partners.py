"""While waiting in the queue, every risk read in the young person's words gets its partners' numbers once, even when
it raises no priority (already as high): "il a un couteau" after "je veux mourir" must still bring 17/112, and harm
at home after a suicidal message must still bring 119. A priority raised to urgent while waiting brings the emergency
numbers as an urgent hand-off does. A message repeated in a loop adds nothing after the first (Dispatcher._escalate,
``Conversation.partners_given``)."""

from __future__ import annotations

from aiohttp import web
from aiohttp.test_utils import TestClient

from gateway.app import FLOWS, STORE
from gateway.conversation import Priority
from gateway.store import Store
from tests.test_webchat import WALK_TO_QUEUE, say

Client = TestClient[web.Request, web.Application]


async def bot_texts(store: Store, conversation_id: str) -> list[str]:
    return [e.text for e in await store.transcript(conversation_id) if e.author.value == "bot"]


async def test_each_risk_read_while_waiting_gets_its_partners_once_even_at_an_unchanged_priority(
    client: Client,
) -> None:
    store, engine = client.app[STORE], client.app[FLOWS].engine()
    partners = {name: engine.text(engine.flow.partners[name].message, "fr") for name in ("3114", "119", "emergency")}
    async with client.ws_connect("/chat/ws") as ws:
        await ws.send_json({"type": "hello", "token": None, "language": "fr"})
        for number, answer in enumerate(WALK_TO_QUEUE):
            await say(ws, f"w{number}", answer)
        [entry] = await store.waiting()
        assert entry.priority == Priority.NORMAL
        cid = entry.conversation_id
        before = len(await bot_texts(store, cid))

        await say(ws, "s1", "je veux mourir")  # suicide: urgent, 3114, and the emergency numbers as an urgent hand-off
        said = (await bot_texts(store, cid))[before:]
        assert partners["3114"] in said and partners["emergency"] in said
        [entry] = await store.waiting()
        assert entry.priority == Priority.URGENT

        before = len(await bot_texts(store, cid))
        await say(ws, "a1", "mon beau-père me frappe")  # harm at home: no higher priority, but its words and 119
        abuse = engine.text(engine.flow.interrupts["abuse_home"].then.say[0], "fr")  # (said once: since 2026-12-05)
        assert (await bot_texts(store, cid))[before:] == [abuse, partners["119"]]

        before = len(await bot_texts(store, cid))
        await say(ws, "d1", "il a un couteau")  # 17/112 given with the urgent raise: danger's own words only
        danger = engine.text(engine.flow.interrupts["danger_now"].then.say[0], "fr")
        assert (await bot_texts(store, cid))[before:] == [danger]

        before = len(await bot_texts(store, cid))
        for number, text in enumerate(["mon beau-père me frappe", "il a un couteau", "je veux mourir"]):
            await say(ws, f"r{number}", text)  # each partner and each interrupt's words given already: nothing more
        assert (await bot_texts(store, cid))[before:] == []
    [entry] = await store.waiting()
    assert entry.priority == Priority.URGENT
