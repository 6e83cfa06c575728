"""Messenger's echoes: a page admin answering from Meta's own inbox while the gateway holds the conversation.

Meta sends an ``is_echo`` message event for every message the page sends: the gateway's own replies (its app's
``app_id``) and those a page admin writes in Meta Business Suite's inbox (no ``app_id``, or another app's). The
admin's is recorded in the transcript as the page's, answered outside the gateway (author ``page``), shown to the
listener live, once however often Meta delivers it, never sent again, never read as the young person's words, and
the conversation goes on as it was. The real app (SQLite store, outbox, timers), signed webhooks, the fake Graph API.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

import pytest

from gateway.app import STORE
from gateway.conversation import Status
from gateway.settings import Settings
from gateway.store import TimerKind
from gateway.testing import FakeGraphAPI, messenger_body, messenger_echo
from tests.conftest import outbox_drained
from tests.e2e.channel_support import Client, GatewayFactory, eventually, gateway, offline
from tests.e2e.test_messenger import (
    PSID,
    SECRET,
    client,
    deliver,
    handed_to_listener,
    message,
    messenger_settings,
    texts,
)
from tests.redis_messenger import messenger_on_redis
from tests.store.conftest import redis_url
from tests.test_webchat import receive_until

__all__ = [
    "client",
    "gateway",
    "messenger_on_redis",
    "messenger_settings",
    "offline",
    "redis_url",
]  # fixtures used by the tests below

OURS = 1517  # the gateway's app in these tests (messenger_echo's default app_id)
META_INBOX = 263902037430900  # another app: Meta's inbox as some pages' echoes name it
ADMIN = "Bonjour, ici l'équipe de la page : on a bien lu ton message."


def echo(text: str, mid: str, app_id: int | None = None) -> dict[str, Any]:
    return messenger_body([messenger_echo(PSID, text, mid=mid, app_id=app_id)])


async def idle_close_at(client: Client, conversation_id: str) -> list[datetime]:
    timers = await client.app[STORE].due_timers(datetime(2100, 1, 1, tzinfo=UTC))
    return [t.due_at for t in timers if t.conversation_id == conversation_id and t.kind == TimerKind.IDLE_CLOSE]


async def test_an_admins_answer_from_metas_inbox_shows_live_in_the_listeners_console_once(
    client: Client, graph: FakeGraphAPI, caplog: pytest.LogCaptureFixture
) -> None:
    """Until 2026-12-05 every echo was dropped: the listener never saw that a page admin had answered the young
    person from Meta's inbox (two people answering one young person, maybe contradicting each other), and the
    transcript lacked what was said to them."""
    caplog.set_level(logging.DEBUG)
    desk, conversation_id = await handed_to_listener(client, graph)
    store = client.app[STORE]
    before = await store.get_conversation(conversation_id)
    assert before is not None
    timers_before = await idle_close_at(client, conversation_id)
    sent_before = len(graph.accepted())
    async with client.ws_connect("/api/events") as console:
        await receive_until(console, lambda f: f["type"] == "hello")
        for _ in range(2):  # Meta redelivers: once
            assert await deliver(client, echo(ADMIN, "m_admin_1")) == 200
        frames = await receive_until(console, lambda f: f["type"] == "entry" and f["entry"]["text"] == ADMIN, 2000)
    shown = frames[-1]["entry"]
    assert shown["author"] == "page" and frames[-1]["conversation_id"] == conversation_id
    assert not shown.get("flag")
    transcript = (await desk.conversation(conversation_id))["transcript"]
    assert [(e["author"], e["text"]) for e in transcript if e["text"] == ADMIN] == [("page", ADMIN)]
    assert ADMIN not in [text for text, _ in await desk.young_persons_words(conversation_id)]
    await outbox_drained(client)
    assert len(graph.accepted()) == sent_before and ADMIN not in texts(graph.accepted())  # never sent again
    after = await store.get_conversation(conversation_id)
    assert after is not None and after.status == Status.WITH_LISTENER
    assert after.last_inbound_at == before.last_inbound_at  # not the young person writing: the windows stay
    assert await idle_close_at(client, conversation_id) == timers_before  # nor the idle timer
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert ADMIN not in logged and PSID not in logged and "m_admin_1" not in logged


async def test_the_gateways_own_echoes_stay_ignored_with_its_app_id_set(
    gateway: GatewayFactory, messenger_settings: Settings, graph: FakeGraphAPI
) -> None:
    """MESSENGER_APP_ID set: an echo naming it is the gateway's own reply; another app's (Meta's inbox) is the
    admin's."""
    client = await gateway(messenger_settings.replace(messenger_app_id=str(OURS)))
    desk, conversation_id = await handed_to_listener(client, graph)
    reply = await desk.reply(conversation_id, "Je suis là.")
    await desk.delivery_of(conversation_id, reply["id"], "sent")
    [mid] = [e.provider_message_id for e in await client.app[STORE].transcript(conversation_id) if e.id == reply["id"]]
    assert mid is not None
    assert await deliver(client, echo("Je suis là.", "m_own_reply", app_id=OURS)) == 200
    assert await deliver(client, echo("Je suis là.", mid, app_id=None)) == 200  # a mid the outbox recorded: ours
    assert await deliver(client, echo(ADMIN, "m_admin_2", app_id=META_INBOX)) == 200

    async def pages() -> list[str]:
        transcript = (await desk.conversation(conversation_id))["transcript"]
        return [e["text"] for e in transcript if e["author"] == "page"]

    assert await eventually(pages) == [ADMIN]
    transcript = (await desk.conversation(conversation_id))["transcript"]
    assert [e["author"] for e in transcript if e["text"] == "Je suis là."] == ["listener"]


async def test_without_an_app_id_set_only_echoes_without_one_are_an_admins(client: Client, graph: FakeGraphAPI) -> None:
    desk, conversation_id = await handed_to_listener(client, graph)
    assert await deliver(client, echo("une réponse d'une app", "m_app", app_id=META_INBOX)) == 200
    assert await deliver(client, echo(ADMIN, "m_admin_3", app_id=None)) == 200

    async def pages() -> list[str]:
        transcript = (await desk.conversation(conversation_id))["transcript"]
        return [e["text"] for e in transcript if e["author"] == "page"]

    assert await eventually(pages) == [ADMIN]


async def test_an_echo_while_the_bot_asks_is_recorded_and_the_bot_says_nothing(
    client: Client, graph: FakeGraphAPI
) -> None:
    assert await deliver(client, message("Bonjour", mid="m_hello")) == 200
    store = client.app[STORE]

    async def in_bot() -> list[Any]:
        return await store.conversations_by_status(Status.BOT)

    [conversation] = await eventually(in_bot)
    await outbox_drained(client)
    sent = len(graph.accepted())
    engine = dict(conversation.engine)
    # words a young person's message would be flagged for: an admin's are never read for the young person's risk
    assert await deliver(client, echo("Si tu veux te suicider, appelle le 3114.", "m_admin_4")) == 200

    async def pages() -> list[Any]:
        return [e for e in await store.transcript(conversation.id) if e.author.value == "page"]

    [entry] = await eventually(pages)
    assert entry.flag is None
    await outbox_drained(client)
    assert len(graph.accepted()) == sent  # no answer of the bot's
    current = await store.get_conversation(conversation.id)
    assert current is not None and current.status == Status.BOT and current.flag is None
    assert current.engine == engine and current.last_inbound_at == conversation.last_inbound_at


async def test_an_echo_to_someone_without_an_open_conversation_starts_none(client: Client) -> None:
    assert await deliver(client, echo(ADMIN, "m_admin_5")) == 200
    store = client.app[STORE]
    for status in Status:
        assert await store.conversations_by_status(status) == []


async def test_on_redis_an_admins_answer_is_recorded_once_and_shown(
    gateway: GatewayFactory, messenger_on_redis: Settings, graph: FakeGraphAPI
) -> None:
    """The same on Redis (the store several instances share): the entry written once under the conversation's
    lock, however often Meta delivers the echo."""
    client = await gateway(messenger_on_redis.replace(messenger_app_secret=SECRET))
    desk, conversation_id = await handed_to_listener(client, graph)
    for _ in range(3):
        assert await deliver(client, echo(ADMIN, "m_admin_redis")) == 200
    transcript = (await desk.conversation(conversation_id))["transcript"]
    assert [(e["author"], e["text"]) for e in transcript if e["text"] == ADMIN] == [("page", ADMIN)]
    current = await client.app[STORE].get_conversation(conversation_id)
    assert current is not None and current.status == Status.WITH_LISTENER
