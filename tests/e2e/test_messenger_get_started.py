"""Messenger's "Get Started" tapped again, and the page's menu: buttons of the page's own, never a young person's words.

A young person who deletes the thread (to hide it) and comes back is shown Meta's "Get Started" button again; its
tap is a ``postback`` whose payload is the page's (``MESSENGER_GET_STARTED_PAYLOAD``) and whose title is Meta's
("Commencer", "Démarrer", "Get Started"). A persistent menu's item is a postback too. The real app (SQLite store,
outbox, timers), signed webhooks and the fake Graph API.
"""

from __future__ import annotations

from typing import Any

from gateway.app import STORE
from gateway.conversation import Status
from gateway.settings import Settings
from gateway.testing import FakeGraphAPI, messenger_body, messenger_postback
from tests.conftest import outbox_drained
from tests.e2e.channel_support import Client, GatewayFactory, eventually, gateway, offline
from tests.e2e.test_messenger import (
    PSID,
    client,
    deliver,
    handed_to_listener,
    message,
    messenger_settings,
    texts,
    walk_to_queue,
)

__all__ = ["client", "gateway", "messenger_settings", "offline"]  # fixtures used by the tests below

DANGER = "urgency"  # the default flow's first question: is the young person in danger now


def get_started(mid: str, title: str = "Commencer", payload: str = "GET_STARTED") -> dict[str, Any]:
    return messenger_body([messenger_postback(PSID, payload, title, mid=mid)])


async def test_get_started_during_the_questions_asks_the_question_again_without_a_retry(
    client: Client, graph: FakeGraphAPI
) -> None:
    """Until 2026-12-05 "Commencer" answered "es-tu en danger ?": "not understood", a retry used (a second tap: the
    fallback), and the young person's thread, just emptied, got "Je n'ai pas bien compris" without the greeting."""
    assert await deliver(client, message("Bonjour", mid="m_hello")) == 200
    store = client.app[STORE]
    [conversation] = await eventually(lambda: _by_status(client, Status.BOT))
    asked = [e.text for e in await store.transcript(conversation.id) if e.author.value == "bot"]
    for number in range(3):  # more taps than the flow's retries: never a hand-off for it
        assert await deliver(client, get_started(f"m_start_{number}")) == 200
    await outbox_drained(client)
    transcript = await store.transcript(conversation.id)
    assert [e.text for e in transcript if e.author.value == "user"] == ["Bonjour"]  # no "Commencer"
    said = [e.text for e in transcript if e.author.value == "bot"]
    assert said == asked + [asked[-1]] * 3  # the waiting question again, each time, nothing else
    current = await store.get_conversation(conversation.id)
    assert current is not None and current.status == Status.BOT and current.engine.get("attempts", 0) == 0
    assert texts(await graph.wait_accepted(len(said))) == said


async def test_a_first_get_started_greets_with_no_words_of_the_young_person(
    client: Client, graph: FakeGraphAPI
) -> None:
    """A first contact through Get Started: the welcome and the first question (as before), "Commencer" not in the
    transcript as the young person's words (Meta's button, not theirs)."""
    assert await deliver(client, get_started("m_first", "Démarrer")) == 200
    [conversation] = await eventually(lambda: _by_status(client, Status.BOT))
    transcript = await client.app[STORE].transcript(conversation.id)
    assert [e.author.value for e in transcript] == ["bot", "bot"]
    assert texts(await graph.wait_accepted(2)) == [e.text for e in transcript]


async def test_get_started_in_the_queue_tells_the_young_person_they_still_wait(
    client: Client, graph: FakeGraphAPI
) -> None:
    """Until 2026-12-05 a young person waiting who deleted the thread and tapped Get Started got nothing (their
    thread empty, nobody answering), and "Commencer" was shown to listeners as their words. Now their place in line
    again, and the listeners read what happened."""
    await walk_to_queue(client)
    [conversation] = await eventually(lambda: _by_status(client, Status.QUEUED))
    store = client.app[STORE]
    before = await store.transcript(conversation.id)
    assert await deliver(client, get_started("m_back")) == 200
    await outbox_drained(client)
    after = await store.transcript(conversation.id)
    added = after[len(before) :]
    assert [e.author.value for e in added] == ["system", "bot"]
    assert added[0].system is not None and added[0].system.code == "restarted"
    assert "position 1" in added[1].text
    assert "Commencer" not in [e.text for e in after]
    assert texts(await graph.wait_accepted(len([e for e in after if e.author.value == "bot"])))[-1] == added[1].text


async def test_get_started_with_a_listener_is_told_to_the_listener_not_as_words(
    client: Client, graph: FakeGraphAPI
) -> None:
    """Until 2026-12-05 the listener read "Commencer" as the young person's message and could answer it as one;
    nobody told them the young person's thread had been emptied. Now a note says so; the bot says nothing."""
    desk, conversation_id = await handed_to_listener(client, graph)
    before = (await desk.conversation(conversation_id))["transcript"]
    assert await deliver(client, get_started("m_back", "Get Started")) == 200

    async def noted() -> list[dict[str, Any]] | None:
        return await desk.system_entries(conversation_id, "Démarrer") or None

    await eventually(noted)
    after = (await desk.conversation(conversation_id))["transcript"]
    added = after[len(before) :]
    assert [e["author"] for e in added] == ["system"]
    assert "Get Started" not in [e["text"] for e in after]


async def test_an_old_menu_button_is_not_taken_as_the_young_persons_answer(client: Client, graph: FakeGraphAPI) -> None:
    """A persistent menu item the page once had ("Aide", payload unknown to the flow): until 2026-12-05 its title
    was the young person's answer to the question ("not understood", a retry used). Now a button the flow does not
    know: the question again, no retry."""
    assert await deliver(client, message("Bonjour", mid="m_hello")) == 200
    store = client.app[STORE]
    [conversation] = await eventually(lambda: _by_status(client, Status.BOT))
    asked = [e.text for e in await store.transcript(conversation.id) if e.author.value == "bot"]
    assert await deliver(client, get_started("m_menu", "Aide", payload="MENU_AIDE")) == 200
    await outbox_drained(client)
    transcript = await store.transcript(conversation.id)
    assert [e.text for e in transcript if e.author.value == "user"] == ["Bonjour"]
    assert [e.text for e in transcript if e.author.value == "bot"] == [*asked, asked[-1]]
    current = await store.get_conversation(conversation.id)
    assert current is not None and current.engine.get("attempts", 0) == 0


async def test_a_menu_button_the_flow_knows_answers_as_a_button(client: Client, graph: FakeGraphAPI) -> None:
    """A postback whose payload is one of the flow's buttons (a template, a menu set up for it) is that button."""
    assert await deliver(client, message("Bonjour", mid="m_hello")) == 200
    assert await deliver(client, get_started("m_no", "Non", payload="no")) == 200
    await outbox_drained(client)
    [conversation] = await _by_status(client, Status.BOT) or []
    transcript = await client.app[STORE].transcript(conversation.id)
    assert [e.text for e in transcript if e.author.value == "user"] == ["Bonjour", "Non"]
    assert conversation.engine["fields"].get(DANGER) == "no"


async def test_the_line_sets_its_own_get_started_payload(
    gateway: GatewayFactory, messenger_settings: Settings, graph: FakeGraphAPI
) -> None:
    """``MESSENGER_GET_STARTED_PAYLOAD``: the payload the line gave its Get Started button; and Meta's documented
    shape of a Get Started tapped from an m.me link, a QR code or an ad (a ``referral`` in the postback)."""
    client = await gateway(messenger_settings.replace(messenger_get_started_payload="DEMARRER_3018"))
    assert await deliver(client, message("Bonjour", mid="m_hello")) == 200
    store = client.app[STORE]
    [conversation] = await eventually(lambda: _by_status(client, Status.BOT))
    asked = [e.text for e in await store.transcript(conversation.id) if e.author.value == "bot"]
    assert await deliver(client, get_started("m_own", payload="DEMARRER_3018")) == 200
    referred = messenger_postback(PSID, "ANYTHING", "Get Started", mid="m_ref")
    referred["postback"]["referral"] = {"ref": "site", "source": "SHORTLINK", "type": "OPEN_THREAD"}
    assert await deliver(client, messenger_body([referred])) == 200
    await outbox_drained(client)
    transcript = await store.transcript(conversation.id)
    assert [e.text for e in transcript if e.author.value == "user"] == ["Bonjour"]
    assert [e.text for e in transcript if e.author.value == "bot"] == asked + [asked[-1]] * 2


async def _by_status(client: Client, status: Status) -> list[Any] | None:
    return await client.app[STORE].conversations_by_status(status) or None
