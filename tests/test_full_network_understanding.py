"""A first message from a full client network opens the web chat when the embedded model reads a risk in the young
person's own words, not only when the flow's keywords do (``Gate.new_chat``; docs/security.md, "Shared addresses").

The real app, store and shipped model (loaded in its worker thread as ``gateway serve`` loads it). The client
network is at its cap (``GATEWAY_MAX_WAITING_PER_CLIENT=1``, a classmate's chat open), its address the last hop of
``X-Forwarded-For``. The messages come from ``corpus/train.jsonl`` (never from a held-out or dev set).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from gateway.app import DISPATCHER, FLOWS, GATE, STORE
from gateway.conversation import Priority, Status
from gateway.ratelimit import Limit
from gateway.settings import Settings
from gateway.understanding import Model, load_model
from gateway.webchat import NOTICE_AGAIN
from tests.conftest import AppFactory, Clock
from tests.test_client_networks import SCHOOL, chat_from
from tests.test_security import DANGER, frames_so_far, is_notice, metric, refused, send_message
from tests.test_webchat import receive_until

Client = TestClient[web.Request, web.Application]
SUICIDAL = "demain matin ils me trouveront plus, g tout prévu pour cette nuit"  # corpus/train.jsonl: no keyword
HARMLESS = "je l'ai tué en un coup sur fortnite jsuis trop fort"  # corpus/train.jsonl: no risk
# A long message whose risk lies beyond the embedding's cut (48 tokens): its start reads no risk, its windows do.
# 38 words: under LONG_WORDS, so not read whole by a long reader (its windows are read late).
LONG_SUICIDAL = (
    "bon alors ya un compte instagram qui publie des photos de moi avec des commentaires désagréables depuis la "
    "rentrée, signalé deux fois, vous pouvez m'aider ? " + SUICIDAL
)


@pytest.fixture
async def stack() -> AsyncIterator[AsyncExitStack]:
    """The test's sockets, open until it ends."""
    async with AsyncExitStack() as sockets:
        yield sockets


def full_network(settings: Settings) -> Settings:
    # a generous timeout: on a busy machine a late reading would fall back to the keywords (tested below, loading)
    return settings.replace(client_address_header="X-Forwarded-For", max_waiting_per_client=1, understanding_timeout=30)


async def model_is(client: Client, status: str) -> None:
    deadline = time.monotonic() + 120
    while (await (await client.get("/readyz")).json())["understanding"] != status:
        assert time.monotonic() < deadline, f"the model never became {status}"
        await asyncio.sleep(0.05)


async def held_chat(client: Client, stack: AsyncExitStack) -> Any:
    """A socket from the school whose hello the full network refused (a classmate's chat is open)."""
    if not await conversations(client):
        assert (await chat_from(client, stack, SCHOOL))[1]["type"] == "session"  # the classmate
    ws, answer = await chat_from(client, stack, SCHOOL)
    assert is_notice(answer)
    return ws


async def conversations(client: Client) -> int:
    return sum([len(await client.app[STORE].conversations_by_status(status)) for status in Status])


def opened(frames: list[dict[str, Any]], message_id: str) -> bool:
    return frames[-1] == {"type": "ack", "id": message_id} and any(f["type"] == "session" for f in frames)


async def test_a_risk_only_the_model_reads_opens_a_full_networks_chat_and_a_harmless_message_stays_refused(
    make_client: AppFactory, settings: Settings, stack: AsyncExitStack
) -> None:
    client = await make_client(full_network(settings))
    assert client.app[FLOWS].engine().decide(SUICIDAL).flag is None  # the keywords alone read nothing in it
    await model_is(client, "ok")
    ws = await held_chat(client, stack)
    assert refused((await send_message(ws, "m1", HARMLESS))[-1])
    assert await conversations(client) == 1  # the refused message was not recorded: only the classmate's chat
    assert opened(await send_message(ws, "m2", SUICIDAL), "m2")
    [waiting] = await client.app[STORE].waiting()
    assert waiting.priority == Priority.URGENT and waiting.flag is not None
    assert (waiting.flag.risk, waiting.flag.source) == ("suicide", "model")
    assert await metric(client, "gateway_refusal_overridden", reason="client_full", source="model") == 1
    assert await metric(client, "gateway_refusal_overridden", reason="client_full", source="keywords") == 0


async def test_a_long_first_message_whose_risk_lies_beyond_the_cut_opens_a_full_networks_chat(
    make_client: AppFactory, settings: Settings, stack: AsyncExitStack
) -> None:
    """A refused message is not recorded, so no late reading of its windows would ever follow: the gate reads them
    before it decides (``Dispatcher.reading``)."""
    client = await make_client(full_network(settings))
    await model_is(client, "ok")
    reader = client.app[DISPATCHER].reader
    model = None if reader is None else reader.model
    assert model is not None
    assert client.app[FLOWS].engine().decide(LONG_SUICIDAL).flag is None  # no keyword
    [start] = model.read_inline([LONG_SUICIDAL])
    assert start.rest and client.app[FLOWS].engine().decide(LONG_SUICIDAL, start.reading).flag is None  # nor its start
    ws = await held_chat(client, stack)
    assert opened(await send_message(ws, "m1", LONG_SUICIDAL), "m1")
    deadline = time.monotonic() + 120  # processed like any message: its windows' flag comes with their late reading
    while not [w for w in await client.app[STORE].waiting() if w.flag is not None]:
        assert time.monotonic() < deadline, "the windows' flag never came"
        await asyncio.sleep(0.05)
    [waiting] = await client.app[STORE].waiting()
    assert waiting.flag is not None and (waiting.flag.risk, waiting.flag.source) == ("suicide", "model")
    assert waiting.priority == Priority.URGENT
    assert await metric(client, "gateway_refusal_overridden", reason="client_full", source="model") == 1


async def test_with_the_model_off_the_keywords_alone_decide(
    make_client: AppFactory, settings: Settings, stack: AsyncExitStack
) -> None:
    client = await make_client(full_network(settings).replace(understanding="off"))
    assert (await (await client.get("/readyz")).json())["understanding"] == "off"
    ws = await held_chat(client, stack)
    assert refused((await send_message(ws, "m1", SUICIDAL))[-1])
    assert opened(await send_message(ws, "m2", DANGER), "m2")
    assert await metric(client, "gateway_refusal_overridden", reason="client_full", source="keywords") == 1


async def test_a_model_still_loading_opens_the_chat_unread_and_its_late_reading_flags_it(
    make_client: AppFactory, settings: Settings, stack: AsyncExitStack
) -> None:
    """A restart during a school's peak: the model is still loading when a pupil's first message comes from the full
    network. Nobody can read the words yet, so the chat opens (counted apart: ``source="unread"``, within the risky
    chats' bound) and the message is read once the model is there, its risk then flagged. Until 2026-12-06 it was
    refused at once with the network's notice, unread (the page kept it and could send it again)."""
    loaded = threading.Event()

    def load() -> Model:  # the shipped model, once the test lets it load
        assert loaded.wait(120)
        return load_model()

    client = await make_client(full_network(settings), understanding=load)
    try:
        assert (await (await client.get("/readyz")).json())["understanding"] == "loading"
        ws = await held_chat(client, stack)
        assert opened(await send_message(ws, "m1", SUICIDAL), "m1")  # at once: nobody waits for the loading
        assert await metric(client, "gateway_refusal_overridden", reason="client_full", source="unread") == 1
    finally:
        loaded.set()
    await model_is(client, "ok")
    deadline = time.monotonic() + 120
    while not [c for c in await client.app[STORE].waiting() if c.flag is not None]:  # its late reading
        assert time.monotonic() < deadline, "the message opened unread was never read"
        await asyncio.sleep(0.05)
    [waiting] = await client.app[STORE].waiting()
    assert waiting.flag is not None and (waiting.flag.risk, waiting.flag.source) == ("suicide", "model")


async def test_the_models_readings_of_refused_messages_are_bounded_per_network_and_the_keywords_stay(
    make_client: AppFactory, settings: Settings, stack: AsyncExitStack
) -> None:
    """A troll's refused messages must not take the model from the conversations it reads."""
    client = await make_client(full_network(settings).replace(limit_refused_readings_per_network="1/hour"))
    await model_is(client, "ok")
    ws = await held_chat(client, stack)
    assert refused((await send_message(ws, "m1", HARMLESS))[-1])  # read by the model: no risk
    assert refused((await send_message(ws, "m2", SUICIDAL))[-1])  # beyond the bound: the keywords only
    assert await metric(client, "gateway_rate_limited", limit="refused_readings_per_network") == 1
    assert opened(await send_message(ws, "m3", DANGER), "m3")  # the keywords still open it


async def test_chats_opened_unread_leave_the_risky_chats_bound_to_the_words_of_danger(
    make_client: AppFactory, settings: Settings, stack: AsyncExitStack
) -> None:
    """A raid from a school's network while the model is still loading (or busy: the raid keeps it so): the raid's
    first messages, unread, open chats within a bound of their own (the risky chats' amount, counted apart), never
    spending the one a pupil's words of danger need. Until 2026-12-06 (the same day unread chats began to open) they
    spent it: after them, a pupil's "je veux mourir" from that network was refused with the network's notice."""
    loaded = threading.Event()

    def load() -> Model:  # never loads within the test: every reading is "loading"
        assert loaded.wait(120)
        return load_model()

    client = await make_client(full_network(settings).replace(limit_risky_chats_per_network="1/hour"),
                               understanding=load)  # fmt: skip
    try:
        assert (await (await client.get("/readyz")).json())["understanding"] == "loading"
        assert opened(await send_message(await held_chat(client, stack), "m1", HARMLESS), "m1")  # unread: opens
        assert refused((await send_message(await held_chat(client, stack), "m2", HARMLESS))[-1])  # its bound
        frames = await send_message(await held_chat(client, stack), "m3", DANGER)
        assert opened(frames, "m3"), "a pupil's words of danger refused: the unread chats spent the bound"
        assert await metric(client, "gateway_refusal_overridden", reason="client_full", source="unread") == 1
        assert await metric(client, "gateway_refusal_overridden", reason="client_full", source="keywords") == 1
    finally:
        loaded.set()


async def send_auto(ws: Any, message_id: str, text: str) -> list[dict[str, Any]]:
    """A message the page tries again by itself (chat.js's ``heldRetry``): the frames up to its ack or refusal."""
    await ws.send_json({"type": "message", "id": message_id, "text": text, "auto": True})
    return await receive_until(ws, lambda f: f.get("id") == message_id and f["type"] in ("ack", "refused"))


async def risky_hour_over(client: Client, address: str) -> None:
    """The hour of ``address``'s network's ``risky_chats_per_network`` over (its counter alone cleared: the other
    counters and marks stay, as when its window ends)."""
    limits = client.app[GATE].limits
    item, name = limits._items[Limit.RISKY_CHATS], Limit.RISKY_CHATS.value
    await limits._limiter.clear(item, name, limits._keyed(name, client.app[GATE].networks.key(address)))


async def test_a_message_only_the_model_read_as_danger_keeps_that_reading_when_the_page_tries_it_again(
    make_client: AppFactory, settings: Settings, stack: AsyncExitStack
) -> None:
    """A held page's words of danger only the model reads, refused past ``risky_chats_per_network`` with the
    network still full: the page tries them again by itself (``"auto": true``, the model not asked again). Once the
    hour's bound frees, the cap still full, the automatic try opens the conversation with the first try's reading
    (``Gate.new_chat``'s kept reading). Until 2026-12-07 the automatic try read the keywords only: refused for good,
    only "Réessayer" (the model asked again) let it in."""
    client = await make_client(full_network(settings).replace(limit_risky_chats_per_network="1/hour"))
    assert client.app[FLOWS].engine().decide(SUICIDAL).flag is None  # the keywords alone read nothing in it
    await model_is(client, "ok")
    ws = await held_chat(client, stack)
    assert opened(await send_message(await held_chat(client, stack), "k1", DANGER), "k1")  # the hour's risky chat
    assert refused((await send_message(ws, "m1", SUICIDAL))[-1])  # read risky by the model, past the bound
    assert refused((await send_auto(ws, "m1", SUICIDAL))[-1])  # tried again by the page: the bound still spent
    await risky_hour_over(client, SCHOOL)  # the network's cap still full (the classmate's, k1's)
    assert refused((await send_auto(ws, "m1", HARMLESS))[-1])  # other words under its id: not its reading
    # before: refused (the keywords only), the page trying it again for nothing
    assert opened(await send_auto(ws, "m1", SUICIDAL), "m1")
    waiting = [w for w in await client.app[STORE].waiting() if w.flag is not None and w.flag.source == "model"]
    assert [(w.priority, w.flag.risk if w.flag else None) for w in waiting] == [(Priority.URGENT, "suicide")]
    assert await metric(client, "gateway_refusal_overridden", reason="client_full", source="model") == 1


async def test_a_pages_automatic_tries_repeat_no_notice(
    make_client: AppFactory, settings: Settings, stack: AsyncExitStack, clock: Clock
) -> None:
    """An automatic try refused again gets its ``refused`` frame only, even past ``NOTICE_AGAIN`` (said at its first
    refusal: ``ChatSession._notice``'s ``quiet``); the same message sent by the young person ("Réessayer") is told
    again then. Since 2026-12-07 (before the ``quiet``, a held page retrying every minute had its notice again)."""
    client = await make_client(full_network(settings))
    ws = await held_chat(client, stack)
    assert refused((await send_message(ws, "m1", HARMLESS))[-1])
    clock.advance(seconds=NOTICE_AGAIN.total_seconds() + 1)  # a notice would be said again by now
    frames = await send_auto(ws, "m1", HARMLESS)
    frames += await frames_so_far(ws)
    assert frames == [{"type": "refused", "id": "m1", "reason": "client_full"}]
    assert any(is_notice(f) for f in await send_message(ws, "m1", HARMLESS) + await frames_so_far(ws))


async def test_a_pages_automatic_tries_ask_the_model_nothing(
    make_client: AppFactory, settings: Settings, stack: AsyncExitStack
) -> None:
    """An automatic try is not read by the model again (``Gate.new_chat``'s ``read=False``): a held page retrying
    a refused message spends none of ``refused_readings_per_network``, which a classmate's new words still find."""
    client = await make_client(full_network(settings).replace(limit_refused_readings_per_network="2/hour"))
    await model_is(client, "ok")
    ws = await held_chat(client, stack)
    assert refused((await send_message(ws, "m1", HARMLESS))[-1])  # read by the model: no risk (1 of 2)
    for _ in range(3):
        assert refused((await send_auto(ws, "m1", HARMLESS))[-1])  # the page's own tries: no reading
    assert await metric(client, "gateway_rate_limited", limit="refused_readings_per_network") == 0
    assert opened(await send_message(await held_chat(client, stack), "m2", SUICIDAL), "m2")  # read (2 of 2): opens


async def test_a_first_message_marked_automatic_is_read_by_the_model_and_told_the_notice(
    make_client: AppFactory, settings: Settings, stack: AsyncExitStack, clock: Clock
) -> None:
    """``"auto": true`` is the page's word only: a message this socket never refused (a page of another version, a
    client that forges it) is a first try, read by the model and told the notice (``ChatSession._message``). Until
    2026-12-07 (late) the flag alone skipped the model and the notice: words of danger only the model reads, sent
    first as "automatic", were refused quietly, the young person told neither where to turn nor let in."""
    client = await make_client(full_network(settings))
    assert client.app[FLOWS].engine().decide(SUICIDAL).flag is None  # the keywords alone read nothing in it
    await model_is(client, "ok")
    ws = await held_chat(client, stack)
    clock.advance(seconds=NOTICE_AGAIN.total_seconds() + 1)  # the hello's notice said long ago
    frames = await send_auto(ws, "m0", HARMLESS)
    frames += await frames_so_far(ws)
    assert refused(frames[0]) and any(is_notice(f) for f in frames), frames  # before: the refused frame alone
    assert opened(await send_auto(ws, "m1", SUICIDAL), "m1")  # before: refused, the model never asked
    [waiting] = [w for w in await client.app[STORE].waiting() if w.flag is not None]
    assert (waiting.priority, waiting.flag and waiting.flag.source) == (Priority.URGENT, "model")


async def test_a_message_left_unread_at_its_first_try_is_read_by_the_model_at_an_automatic_one(
    make_client: AppFactory, settings: Settings, stack: AsyncExitStack
) -> None:
    """Words of danger only the model reads, refused while it was still loading (kept ``"unread"``) past the unread
    chats' bound (a raid spent it): once the model reads, the page's automatic try is read by it (``Gate.new_chat``)
    and opens within the bound of the words it read. Until 2026-12-07 (late) the kept ``"unread"`` alone judged every
    automatic try: refused for good against the spent unread bound, weaker than a fresh reading."""
    loaded = threading.Event()

    def load() -> Model:
        assert loaded.wait(120)
        return load_model()

    client = await make_client(full_network(settings).replace(limit_risky_chats_per_network="1/hour"),
                               understanding=load)  # fmt: skip
    try:
        assert opened(await send_message(await held_chat(client, stack), "r1", HARMLESS), "r1")  # the unread bound
        ws = await held_chat(client, stack)
        assert refused((await send_message(ws, "m1", SUICIDAL))[-1])  # unread, its bound spent
    finally:
        loaded.set()
    await model_is(client, "ok")
    # before: refused, judged "unread" again against the spent bound
    assert opened(await send_auto(ws, "m1", SUICIDAL), "m1")
    assert await metric(client, "gateway_refusal_overridden", reason="client_full", source="model") == 1
