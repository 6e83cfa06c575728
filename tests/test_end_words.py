"""A "stop" ("arrête", "laisse tomber", "c'est bon") alone, just after a conversation ended: one short reply kept in the
ended conversation, no new conversation. The real app, Messenger through signed webhooks and the fake Graph API on
127.0.0.1, the clock pinned (day: 14:00 in Paris, night: 23:30; the web chat refuses any message after its end:
``tests/test_thanks_after_end.py``). Until 2026-12-06 it opened a new one: the welcome, the closed line at
night, the danger question, then "D'accord, on s'arrête là": four messages to a young person who had said goodbye.
Anything more than such words, or a risk read in them, starts a new conversation as before."""

from __future__ import annotations

import logging

import pytest

from gateway.app import STORE
from gateway.messages import ChannelName
from gateway.settings import Settings
from gateway.testing import FakeGraphAPI
from tests.e2e.channel_support import GatewayFactory, gateway, offline
from tests.test_thanks_after_end import (
    CLOSED_LINE,
    PSID,
    THANKS,
    closed_by_a_listener,
    conversations,
    ended_at_night,
    messenger,
    new_conversation_after,
    sent_after,
    users_words,
)

__all__ = ["gateway", "offline"]  # fixtures used below

STOPPED = "D'accord, on s'arrête là"
NOT_UNDERSTOOD = "Je n'ai pas bien compris"
URGENCY = "es-tu en danger en ce moment"
STOPS = ["stop", "STOP", "Stop !", "arrête", "arrete", "Laisse tomber", "laisse tomber stp", "c'est bon", "C BON",
         "cest bon", "stop 👋", "stop merci", "bye bye"]  # fmt: skip
MORE = ["stop il continue à m'écrire", "laisse tomber je vais me tuer", "stop 😢", "arrête de me harceler",
        "c'est bon je sais ce que je vais faire ce soir", "stop stop stop je suis en danger"]  # fmt: skip


@pytest.mark.parametrize("text", STOPS)
async def test_stop_just_after_the_closed_line_gets_one_short_reply_and_no_new_conversation(
    gateway: GatewayFactory, settings: Settings, graph: FakeGraphAPI, text: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    client = await gateway(messenger(settings, graph))
    store = client.app[STORE]
    ended = await ended_at_night(client, graph)

    after = await sent_after(client, graph, 2, (text, "m_stop"))
    assert len(after) == 1, after  # no welcome, no closed line again, no question
    assert "17 ou 112" in after[0] and CLOSED_LINE not in after[0] and URGENCY not in after[0]
    assert await store.find_active_conversation(ChannelName.MESSENGER, PSID) is None
    assert await conversations(store) == 1
    assert (await users_words(store, ended))[-1] == text  # kept where a listener reads their history

    # the provider's redelivery, then "stop" said again (kept, not answered): nothing more
    assert await sent_after(client, graph, 0, (text, "m_stop"), ("stop", "m_stop_2")) == []
    assert await conversations(store) == 1
    assert PSID not in caplog.text and (" " not in text or text.lower() not in caplog.text.lower())


async def test_stop_after_a_listeners_close_in_the_day_gets_one_short_reply(
    gateway: GatewayFactory, settings: Settings, graph: FakeGraphAPI
) -> None:
    client = await gateway(messenger(settings, graph))
    store = client.app[STORE]
    desk, closed = await closed_by_a_listener(client)

    after = await sent_after(client, graph, 1, ("laisse tomber", "m_laisse"))
    assert len(after) == 1 and after[0].startswith(STOPPED) and "17 ou 112" in after[0], after
    assert await store.find_active_conversation(ChannelName.MESSENGER, PSID) is None
    assert (await users_words(store, closed))[-1] == "laisse tomber"
    assert await desk.waiting() == []


async def test_a_thank_you_then_stop_is_answered_once(
    gateway: GatewayFactory, settings: Settings, graph: FakeGraphAPI
) -> None:
    client = await gateway(messenger(settings, graph))
    store = client.app[STORE]
    ended = await ended_at_night(client, graph)
    after = await sent_after(client, graph, 1, ("merci", "m_merci"), ("stop", "m_stop"))
    assert len(after) == 1 and THANKS in after[0], after
    assert (await users_words(store, ended))[-2:] == ["merci", "stop"]


@pytest.mark.parametrize("text", MORE)
async def test_anything_more_than_a_closing_word_after_an_end_starts_a_new_conversation(
    gateway: GatewayFactory, settings: Settings, graph: FakeGraphAPI, text: str
) -> None:
    client = await gateway(messenger(settings, graph))
    store = client.app[STORE]
    ended = await ended_at_night(client, graph)
    latest = await new_conversation_after(client, 1, text, "m_more")
    assert latest != ended and await users_words(store, latest) == [text]


async def test_stop_long_after_the_end_starts_a_new_conversation(
    gateway: GatewayFactory, settings: Settings, graph: FakeGraphAPI
) -> None:
    client = await gateway(messenger(settings, graph))
    await ended_at_night(client, graph)
    await new_conversation_after(client, 31, "stop", "m_late")
