"""A greeting alone ("Bonjour", "salut", "coucou", "hello") at a question, on the real app (Messenger through signed
webhooks and the fake Graph API on 127.0.0.1, the web chat through its socket), the clock pinned (day: 14:00 in Paris,
night: 23:30): a friendly word and the same question again, the first one counted as no wrong answer. Until 2026-12-06
it was "Je n'ai pas bien compris" and took one of the question's retries."""

from __future__ import annotations

import pytest

from gateway.app import STORE
from gateway.conversation import Status
from gateway.flows.engine import State
from gateway.messages import ChannelName
from gateway.settings import Settings
from gateway.testing import FakeGraphAPI
from tests.conftest import AppFactory, Clock, outbox_drained
from tests.e2e.channel_support import Client, GatewayFactory, eventually, gateway, offline, running_clock
from tests.test_thanks_after_end import PSID, messenger, model_loaded, post, sent
from tests.test_webchat import bot_texts, hello, receive_until, say

__all__ = ["gateway", "offline"]  # fixtures used below

NOT_UNDERSTOOD = "Je n'ai pas bien compris"
URGENCY = "es-tu en danger en ce moment"


async def _state(client: object, channel: ChannelName, sender: str) -> State:
    store = client.app[STORE]  # type: ignore[attr-defined]
    conversation = await store.find_active_conversation(channel, sender)
    assert conversation is not None and conversation.status is Status.BOT
    return State.from_dict(conversation.engine)


async def _messenger_at(gateway: GatewayFactory, settings: Settings, graph: FakeGraphAPI, night: bool) -> Client:
    """The real app on Messenger, the model read, at 14:00 in Paris or at 23:30 (``night``: the line closed)."""
    client = await gateway(messenger(settings, graph))
    await model_loaded(client)
    if night:
        running_clock(client).advance(hours=9, minutes=30)
    return client


@pytest.mark.parametrize("night", [False, True])
@pytest.mark.parametrize("greeting", ["Salut", "coucou 👋", "bonjour !", "Hello", "hi 👋", "HEYYY", "slt", "bjr",
                                      "bonsoir", "salut ça va", "slt cv"])  # fmt: skip
async def test_a_greeting_at_the_first_question_on_messenger_is_asked_again_kindly(
    gateway: GatewayFactory, settings: Settings, graph: FakeGraphAPI, greeting: str, night: bool
) -> None:
    client = await _messenger_at(gateway, settings, graph, night)
    await post(client, "Bonjour", "m_0")
    await outbox_drained(client)
    before = len(sent(graph))
    await post(client, greeting, "m_1")
    await outbox_drained(client)
    after = sent(graph)[before:]
    assert len(after) == 2 and NOT_UNDERSTOOD not in after[0], after
    assert URGENCY in after[1], after  # in French: until 2026-12-06 "Hello" switched the conversation to English
    assert (await _state(client, ChannelName.MESSENGER, PSID)).attempts == 0  # no wrong answer counted
    await post(client, "Non", "m_2", "no")  # the flow goes on
    await outbox_drained(client)
    assert (await _state(client, ChannelName.MESSENGER, PSID)).step == "language"


@pytest.mark.parametrize("night", [False, True])
@pytest.mark.parametrize("greeting", ["Hello", "hey", "hi 👋"])
async def test_hello_opening_a_messenger_conversation_keeps_it_in_french(
    gateway: GatewayFactory, settings: Settings, graph: FakeGraphAPI, greeting: str, night: bool
) -> None:
    """Messenger tells no language: a French teenager's "Hello" first is answered in French, and so is what follows."""
    client = await _messenger_at(gateway, settings, graph, night)
    await post(client, greeting, "m_0")
    await outbox_drained(client)
    assert URGENCY in sent(graph)[-1], sent(graph)
    await post(client, "Non", "m_1", "no")
    await outbox_drained(client)
    state = await _state(client, ChannelName.MESSENGER, PSID)
    assert state.step == "language" and state.language == "fr", state
    assert "français ou en anglais" in sent(graph)[-1], sent(graph)


async def test_hello_on_a_web_chat_in_a_browser_of_another_language_stays_french(
    make_client: AppFactory, settings: Settings, clock: Clock
) -> None:
    """A browser in German tells the bot no language it speaks: "Hello" alone keeps French, an English sentence
    switches to English."""
    client = await make_client(settings)
    for greeting, urgency in (("Hello", URGENCY), ("hello, I need help", "are you in danger right now")):
        async with client.ws_connect("/chat/ws") as ws:
            await ws.send_json({"type": "hello", "token": None, "language": "de"})
            await receive_until(ws, lambda f: f["type"] == "session")
            texts = bot_texts(await say(ws, "m0", greeting))
        assert texts and urgency in texts[-1], (greeting, texts)


async def test_a_greeting_at_the_first_question_on_the_web_chat_is_asked_again_kindly(
    make_client: AppFactory, settings: Settings, clock: Clock
) -> None:
    client = await make_client(settings)
    async with client.ws_connect("/chat/ws") as ws:
        session = await hello(ws)
        frames = await say(ws, "m0", "Bonjour")
        frames += await say(ws, "m1", "coucou")
        texts = bot_texts(frames)
    assert not any(NOT_UNDERSTOOD in t for t in texts), texts
    assert len(texts) == 4 and URGENCY in texts[1] and URGENCY in texts[3], texts
    state = await _state(client, ChannelName.WEBCHAT, session["token"])
    assert state.step == "urgency" and state.attempts == 1  # a second greeting at one question counts


async def test_small_talk_at_the_first_question_on_the_web_chat(
    make_client: AppFactory, settings: Settings, clock: Clock
) -> None:
    """A greeting with small talk, "coucou ça va ?", is greeted (until 2026-12-06: "Je n'ai pas bien compris");
    "salut ça va pas" is read as before."""
    client = await make_client(settings)
    async with client.ws_connect("/chat/ws") as ws:
        session = await hello(ws)
        greeted = bot_texts(await say(ws, "m0", "coucou ça va ?"))
        unread = bot_texts(await say(ws, "m1", "salut ça va pas"))
    assert len(greeted) == 2 and NOT_UNDERSTOOD not in greeted[0] and URGENCY in greeted[1], greeted
    assert len(unread) == 2 and NOT_UNDERSTOOD in unread[0] and URGENCY in unread[1], unread
    state = await _state(client, ChannelName.WEBCHAT, session["token"])
    assert state.step == "urgency" and state.attempts == 1


async def test_a_greeting_with_a_risk_at_a_question_hands_off_as_before(
    make_client: AppFactory, settings: Settings, clock: Clock
) -> None:
    client = await make_client(settings)
    async with client.ws_connect("/chat/ws") as ws:
        await hello(ws)
        await say(ws, "m0", "salut je veux mourir")
    store = client.app[STORE]
    [queued] = await eventually(lambda: store.conversations_by_status(Status.QUEUED))
    assert queued.priority == "urgent"
