"""Messenger end to end, a sextortion going on in the young person's own words: the real app (SQLite store, outbox,
the shipped model) behind signed webhooks, and a fake Graph API.

"il veut 50 balles en carte paysafecard sinon tout le lycée verra la vidéo" holds none of the sextortion interrupt's
phrases; the model reads it as a sextortion at 0.96. Until 2026-12-05 only the phrases fired the interrupt (37 of 110
blind messages of blackmail going on): the bot asked its next question, and "ne paie pas" and Pharos came four
questions later, at the routing's illegal_content rule. flows.yaml's ``understanding.topics`` now fires it at 0.8.
"""

from __future__ import annotations

from gateway.app import STORE
from gateway.conversation import Conversation, Priority, Status
from gateway.testing import FakeGraphAPI
from tests.conftest import outbox_drained
from tests.e2e.channel_support import Client, eventually, gateway, offline
from tests.e2e.test_messenger import client, deliver, message, messenger_settings, texts

__all__ = ["client", "gateway", "messenger_settings", "offline"]  # fixtures used by the tests below

IN_THEIR_WORDS = "il veut 50 balles en carte paysafecard sinon tout le lycée verra la vidéo"


async def test_a_blackmail_in_their_own_words_at_the_first_question_hands_off_at_once_with_the_advice_and_pharos(
    client: Client, graph: FakeGraphAPI
) -> None:
    assert await deliver(client, message("Bonjour", mid="m_hello")) == 200
    store = client.app[STORE]

    async def asking() -> list[Conversation]:
        return [c for c in await store.conversations_by_status(Status.BOT) if c.engine.get("step")]

    (first,) = await eventually(asking)
    assert await deliver(client, message(IN_THEIR_WORDS, mid="m_blackmail")) == 200
    (queued,) = await eventually(lambda: store.conversations_by_status(Status.QUEUED))
    assert queued.id == first.id and queued.priority is Priority.HIGH
    assert ("Sujet", "Chantage, sextorsion (alerte « sextortion »)") in queued.summary
    await outbox_drained(client)
    sent = texts(graph.accepted())
    assert any("ne paie pas" in text for text in sent), sent
    assert any("internet-signalement.gouv.fr" in text for text in sent), sent
    assert not any("Tu préfères continuer en français" in text for text in sent[2:]), sent  # no next question
