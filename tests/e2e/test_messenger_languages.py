"""Messenger end to end, words of danger in a language the bot does not speak: the real app (SQLite store, outbox,
the shipped model) behind signed webhooks, and a fake Graph API.

A young person who writes "quero morrer" (Portuguese: "I want to die") at the details question is handed off
urgent with 3114's number, in the language the conversation was held in; the model alone reads it at 0.28, under
suicide's threshold, and before the keyword line read it the conversation went to the normal queue without 3114.
"""

from __future__ import annotations

import pytest

from gateway.app import STORE
from gateway.conversation import Conversation, Priority, Status
from gateway.testing import FakeGraphAPI
from tests.conftest import outbox_drained
from tests.e2e.channel_support import Client, eventually, gateway, offline
from tests.e2e.test_messenger import client, deliver, message, messenger_settings, texts

__all__ = ["client", "gateway", "messenger_settings", "offline"]  # fixtures used by the tests below

# Messenger does not tell the language: "Hello" makes it English, and the young person prefers not to choose one,
# so each message's words may still tell it (State.unsure) when "quero morrer" comes.
WALK = [
    ("Hello", None),
    ("No", "no"),
    ("Prefer not to say", "unknown"),
    ("I'm 15", None),
    ("For me", "me"),
    ("Cyberharassment", "cyberharassment"),
]


@pytest.mark.parametrize("words", ["quero morrer", "я убью себя", "kendimi öldüreceğim"])
async def test_words_of_danger_in_another_language_hand_off_urgent_with_3114_in_the_conversations_language(
    client: Client, graph: FakeGraphAPI, words: str
) -> None:
    for number, (text, payload) in enumerate(WALK):
        assert await deliver(client, message(text, payload, mid=f"m_walk_{number}")) == 200
    store = client.app[STORE]

    async def at_details() -> list[Conversation]:
        found = await store.conversations_by_status(Status.BOT)
        return [c for c in found if c.engine.get("step") == "details"]

    (asking,) = await eventually(at_details)
    assert asking.engine["language"] == "en"

    assert await deliver(client, message(words, mid="m_details")) == 200

    (queued,) = await eventually(lambda: store.conversations_by_status(Status.QUEUED))
    assert queued.id == asking.id
    assert queued.priority is Priority.URGENT
    assert queued.engine["language"] == "en"  # the words told no language: still English
    await outbox_drained(client)
    sent = texts(graph.accepted())
    assert any("call 3114" in text and "24/7" in text for text in sent), sent
    assert not any("appelle le 3114" in text for text in sent), sent
