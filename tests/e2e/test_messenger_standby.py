"""Messenger's ``standby``: the young person's messages on a thread the gateway's app does not own.

Under Meta's Conversation Routing (which replaced the Handover Protocol), when another app owns the thread (a page
admin took it in Meta's Page inbox, or another app, Meta's AI, answers for the page), Meta delivers the young
person's messages to the other subscribed apps in the entry's ``standby`` array instead of ``messaging`` (Meta's
"standby Webhook Event Reference"). They are the young person's words: recorded once in their conversation's
transcript, read for a risk; never answered by the bot (it does not own the thread), and a risk is raised to the
listeners as in any wait. The real app (SQLite store, outbox, timers), signed webhooks, the fake Graph API; the
clock pinned at 14:00 in Paris (``running_clock``).
"""

from __future__ import annotations

import logging
from typing import Any

import pytest

from gateway.app import STORE, TIMERS
from gateway.conversation import Conversation, Priority, Status
from gateway.settings import Settings
from gateway.store import Author
from gateway.testing import PAGE_ID, FakeGraphAPI, messenger_message, messenger_postback
from tests.conftest import outbox_drained
from tests.e2e.channel_support import (
    Client,
    GatewayFactory,
    ListenerDesk,
    eventually,
    gateway,
    offline,
    running_clock,
    timer_rearmed,
)
from tests.e2e.test_messenger import (
    PSID,
    SECRET,
    deliver,
    handed_to_listener,
    message,
    messenger_settings,
    texts,
    walk_to_queue,
)
from tests.e2e.test_messenger_echoes import in_bot, now_waiting
from tests.redis_messenger import messenger_on_redis
from tests.store.conftest import redis_url

__all__ = ["gateway", "messenger_on_redis", "messenger_settings", "offline", "redis_url"]  # fixtures used below

RISK = "je veux mourir"


@pytest.fixture
async def client(gateway: GatewayFactory, messenger_settings: Settings) -> Client:
    return await gateway(messenger_settings)


def standby(*items: dict[str, Any]) -> dict[str, Any]:
    """A webhook body whose one entry carries ``items`` in ``standby`` (the thread is another app's)."""
    return {"object": "page", "entry": [{"id": PAGE_ID, "time": 1, "standby": list(items)}]}


def said(text: str, mid: str) -> dict[str, Any]:
    return messenger_message(PSID, text, mid=mid)


async def users_words(client: Client, conversation_id: str) -> list[str]:
    return [e.text for e in await client.app[STORE].transcript(conversation_id) if e.author == Author.USER]


async def recorded(client: Client, conversation_id: str, words: str) -> list[str]:
    """The young person's words in the transcript, once ``words`` is the last of them."""
    found = await users_words(client, conversation_id)
    return found if found and found[-1] == words else []


async def test_a_message_on_a_thread_an_admin_took_is_recorded_once_and_the_bot_says_nothing(
    client: Client, graph: FakeGraphAPI, caplog: pytest.LogCaptureFixture
) -> None:
    """Until 2026-12-06 a message Meta delivered in ``standby`` (a page admin had taken the thread in Meta's inbox)
    was never parsed: the listeners never saw it, nothing read it. Now it is the young person's, recorded once
    however often Meta delivers it; the bot, which does not own the thread, asks nothing over the human."""
    caplog.set_level(logging.DEBUG)
    assert await deliver(client, message("Bonjour", mid="m_hello")) == 200
    conversation = await in_bot(client)
    sent = len(graph.accepted())
    words = "Merci de m'avoir répondu, je vous explique"
    for _ in range(2):  # Meta redelivers: once
        assert await deliver(client, standby(said(words, "m_standby_1"))) == 200
    assert await eventually(lambda: recorded(client, conversation.id, words)) == ["Bonjour", words]
    await outbox_drained(client)
    assert len(graph.accepted()) == sent  # no question over the human's thread
    current = await client.app[STORE].get_conversation(conversation.id)
    assert current is not None and current.status == Status.BOT
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert words not in logged and PSID not in logged and "m_standby_1" not in logged


async def test_a_young_person_writing_on_a_thread_an_admin_took_is_not_reminded_nor_told_they_left(
    client: Client, graph: FakeGraphAPI
) -> None:
    """Until 2026-12-06 the bot's timers ran on while the young person wrote on the admin's thread: 10 minutes after
    the bot's last question it sent "Tu es toujours là ?" and the danger question again over the human, then "On n'a
    plus de nouvelles, alors on ferme cette conversation" to someone writing every five minutes, and the
    conversation was abandoned (their next words, without a risk, recorded nowhere). Now the bot says nothing on
    another app's thread; the conversation closes as any wait does, after its idle hours, with its goodbye."""
    assert await deliver(client, message("Bonjour", mid="m_hello_t")) == 200
    conversation = await in_bot(client)
    sent = len(graph.accepted())
    for minute in range(0, 60, 5):
        running_clock(client).advance(minutes=5)
        assert await deliver(client, standby(said(f"je réponds à la page ({minute})", f"m_standby_t{minute}"))) == 200
        await client.app[TIMERS].fire_due()
    await outbox_drained(client)
    assert texts(graph.accepted()[sent:]) == []
    current = await client.app[STORE].get_conversation(conversation.id)
    assert current is not None and current.status == Status.BOT
    assert len(await users_words(client, conversation.id)) == 13
    running_clock(client).advance(hours=23, minutes=50)  # nothing more: the idle close, its goodbye (where to turn)
    await client.app[TIMERS].fire_due()
    await outbox_drained(client)
    [goodbye] = texts(graph.accepted()[sent:])
    assert "3114" in goodbye
    current = await client.app[STORE].get_conversation(conversation.id)
    assert current is not None and not current.active


async def test_a_risk_written_on_a_thread_an_admin_took_goes_to_the_listeners_urgent(
    client: Client, graph: FakeGraphAPI
) -> None:
    """Escalate, never silence: "je veux mourir" in ``standby`` while the bot held the conversation hands it to the
    listeners (flagged, urgent, the emergency numbers), the bot asking no question."""
    await risk_handed_to_the_listeners(client, graph)


async def test_on_redis_a_risk_on_a_thread_an_admin_took_goes_to_the_listeners_once(
    gateway: GatewayFactory, messenger_on_redis: Settings, graph: FakeGraphAPI
) -> None:
    """The same on Redis (the store several instances share), Meta delivering the message twice."""
    client = await gateway(messenger_on_redis.replace(messenger_app_secret=SECRET))
    conversation_id = await risk_handed_to_the_listeners(client, graph, times=2)
    assert (await users_words(client, conversation_id)).count(RISK) == 1


async def risk_handed_to_the_listeners(client: Client, graph: FakeGraphAPI, times: int = 1) -> str:
    assert await deliver(client, message("Bonjour", mid="m_hello_r")) == 200
    conversation = await in_bot(client)
    sent = len(graph.accepted())
    for _ in range(times):
        assert await deliver(client, standby(said(RISK, "m_standby_risk"))) == 200
    waiting = await now_waiting(client, conversation.id)
    assert waiting.priority == Priority.URGENT and waiting.flag is not None
    assert (await users_words(client, conversation.id))[-1] == RISK
    await outbox_drained(client)
    told = texts(graph.accepted()[sent:])
    assert any("3114" in text for text in told)  # where to turn, never a question
    assert not any(r.body["message"].get("quick_replies") for r in graph.accepted()[sent:] if "message" in r.body)
    return conversation.id


async def test_a_risk_in_standby_with_no_conversation_open_opens_one_for_the_listeners(
    client: Client, graph: FakeGraphAPI
) -> None:
    """No conversation open (another app answers for the page): words without risk start nothing (the thread is
    the other app's, as an echo to someone without a conversation); a risk opens one, straight to the listeners."""
    assert await deliver(client, standby(said("Bonjour, j'ai une question", "m_standby_plain"))) == 200
    assert await deliver(client, standby(messenger_postback(PSID, "", "Commencer"))) == 200
    await outbox_drained(client)
    store = client.app[STORE]
    for status in Status:
        assert await store.conversations_by_status(status) == []
    assert graph.accepted() == []
    assert await deliver(client, standby(said(RISK, "m_standby_alone"))) == 200

    async def queued() -> list[Conversation]:
        return await store.conversations_by_status(Status.QUEUED)

    [conversation] = await eventually(queued)
    assert conversation.priority == Priority.URGENT
    assert await users_words(client, conversation.id) == [RISK]


async def test_a_risk_in_standby_to_a_listener_raises_its_priority_and_shows(
    client: Client, graph: FakeGraphAPI
) -> None:
    _, conversation_id = await handed_to_listener(client, graph)
    sent = len(graph.accepted())
    assert await deliver(client, standby(said(RISK, "m_standby_held"))) == 200
    await eventually(lambda: recorded(client, conversation_id, RISK))
    current = await client.app[STORE].get_conversation(conversation_id)
    assert current is not None and current.status == Status.WITH_LISTENER and current.priority == Priority.URGENT
    await outbox_drained(client)
    assert len(graph.accepted()) == sent  # the listener answers


async def test_a_malformed_standby_item_is_400_naming_the_field(client: Client) -> None:
    assert await deliver(client, standby({"recipient": {"id": PAGE_ID}, "message": {"text": "x"}})) == 400
    assert await deliver(client, {"object": "page", "entry": [{"standby": "nope"}]}) == 400


async def test_a_flood_on_a_thread_an_admin_took_is_held_back_without_the_gateways_notice_over_the_human(
    gateway: GatewayFactory, messenger_settings: Settings, graph: FakeGraphAPI
) -> None:
    """A young person writing fast on a thread a page admin took: their messages past the flood limit are still held
    back (a troll cannot flood the listeners' transcript through another app's thread), but the gateway does not
    speak over the human who owns the thread: until 2026-12-06 the first refused one got the gateway's "Beaucoup de
    messages arrivent en ce moment…" notice there. A risk past the limit still goes to the listeners."""
    client = await gateway(messenger_settings.replace(limit_messages_per_conversation="3/minute"))
    assert await deliver(client, message("Bonjour", mid="m_hello_f")) == 200
    conversation = await in_bot(client)
    sent = len(graph.accepted())
    for number in range(6):
        assert await deliver(client, standby(said(f"je t'explique ({number})", f"m_standby_f{number}"))) == 200
    await eventually(lambda: recorded(client, conversation.id, "je t'explique (1)"))
    await outbox_drained(client)
    assert texts(graph.accepted()[sent:]) == []  # no notice over the admin's words
    assert await users_words(client, conversation.id) == ["Bonjour", "je t'explique (0)", "je t'explique (1)"]
    assert await deliver(client, standby(said(RISK, "m_standby_f_risk"))) == 200  # past the limit, a risk goes on
    waiting = await now_waiting(client, conversation.id)
    assert waiting.priority == Priority.URGENT
    assert (await users_words(client, conversation.id))[-1] == RISK
    await outbox_drained(client)
    assert not any("Beaucoup de messages" in text for text in texts(graph.accepted()[sent:]))
    assert await deliver(client, message("Vous êtes là ?", mid="m_back_f")) == 200  # their own thread again: told
    await eventually(lambda: told_flood(graph, sent))


async def told_flood(graph: FakeGraphAPI, sent: int) -> bool:
    return any("Beaucoup de messages" in text for text in texts(graph.accepted()[sent:]))


async def test_a_young_person_waiting_whose_thread_an_admin_took_gets_no_queue_messages_over_the_admin(
    client: Client, graph: FakeGraphAPI
) -> None:
    """Waiting for a listener, the young person's thread taken by a page admin in Meta's inbox (their messages now
    come in ``standby``): until 2026-12-06 the queue's timer went on sending "On ne t'oublie pas : tu es maintenant
    en position 1…" every five minutes over the admin's words. Now the bot's timed messages hold back while the
    thread is another app's, the listeners still see the conversation waiting; a message on the gateway's own
    thread again (the admin gave it back) brings them back."""
    await walk_to_queue(client)
    desk = ListenerDesk(client)
    await desk.login()
    conversation_id = (await desk.first_waiting())["id"]
    await graph.wait_accepted(len(await desk.all_sent(conversation_id)))
    await outbox_drained(client)  # every reply recorded before the count and the clock's moves (the lease is on it)
    sent, clock = len(graph.accepted()), running_clock(client)
    assert await deliver(client, standby(said("la page me répond", "m_standby_q"))) == 200
    await eventually(lambda: recorded(client, conversation_id, "la page me répond"))
    for _ in range(3):  # three reassurance times
        clock.advance(minutes=6)
        await client.app[TIMERS].fire_due()
        await eventually(lambda: timer_rearmed(client, conversation_id, "queue_reassure"))
    await outbox_drained(client)
    assert texts(graph.accepted()[sent:]) == []
    assert [card["id"] for card in await desk.waiting()] == [conversation_id]  # still waiting for the listeners
    assert await deliver(client, message("Vous êtes là ?", mid="m_back_q")) == 200  # the gateway's thread again
    await eventually(lambda: recorded(client, conversation_id, "Vous êtes là ?"))
    clock.advance(minutes=6)
    await client.app[TIMERS].fire_due()
    [reassured] = texts(await graph.wait_accepted(sent + 1))[sent:]
    assert "position 1" in reassured
