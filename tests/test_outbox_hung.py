"""A provider that hangs keeps only its share of the outbox's sends in flight (docs/architecture.md, "A provider that
hangs"): the real outbox worker (`Outbox.run`), the SQLite store, the real Messenger and Telegram adapters against
their fake APIs on 127.0.0.1, Graph's holding every request unanswered (accepted, never answered, as a provider that
hangs does) while Telegram answers.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

import aiohttp
import pytest

from gateway.channels.messenger import MessengerChannel
from gateway.channels.telegram import TelegramChannel
from gateway.messages import ChannelName, Outbound
from gateway.outbox import Outbox
from gateway.settings import Settings
from gateway.store import OutboxItem, Store
from gateway.store.codec import encode_outbound
from gateway.testing import BOT_TOKEN, FakeGraphAPI, FakeTelegramAPI

WINDOW = 10  # the worker's sends in flight at most: Messenger's share is 5
HUNG = 20  # Messenger's replies, written before Telegram's: each would take a slot and hold it
OTHERS = 3


@pytest.fixture
def store(sqlite_store: Store) -> Store:
    return sqlite_store


async def test_a_hung_provider_keeps_its_share_of_the_window_and_the_other_channels_flow(store: Store) -> None:
    """Twenty Messenger replies written first, then three Telegram ones, Graph holding every request unanswered. The
    first ten Messenger sends take the window (Graph slow is not known yet: a healthy channel is never capped) and
    end at the send timeout (15 s): Messenger is slow now. From then on it holds half the window at most: the next
    Messenger replies go five at a time, the others given back without a try, and the Telegram replies go while
    Graph holds those five. Until 2026-12-05 the next claims took Messenger's older replies first again, ten more
    hung sends, and the Telegram replies waited for a second round of send timeouts (⌈backlog / window⌉ rounds)."""
    async with FakeTelegramAPI() as telegram, FakeGraphAPI() as graph, aiohttp.ClientSession() as session:
        settings = Settings(telegram_api_url=telegram.url, telegram_bot_token=BOT_TOKEN, messenger_api_url=graph.url,
                            messenger_page_access_token="page-token")  # fmt: skip
        channels = {ChannelName.TELEGRAM: TelegramChannel(settings, session),
                    ChannelName.MESSENGER: MessengerChannel(settings, session)}  # fmt: skip
        sending = Outbox(store, channels, window=WINDOW, poll_seconds=60)  # kicks, ends and retries only

        async def reply(item_id: str, channel: ChannelName, recipient: str) -> None:
            message = Outbound(item_id, f"c-{item_id}", channel, recipient, f"texte {item_id}")
            await store.outbox_put(OutboxItem(item_id, f"c-{item_id}", encode_outbound(message), sending.clock()))

        graph.stall()
        for n in range(HUNG):
            await reply(f"hung-{n}", ChannelName.MESSENGER, f"psid-{n}")
        for n in range(OTHERS):
            await reply(f"other-{n}", ChannelName.TELEGRAM, f"10{n:03d}")
        worker = asyncio.create_task(sending.run())
        try:
            await graph.wait_held(WINDOW, timeout=30)  # the first round: the whole window, Graph not known slow yet
            await telegram.wait_accepted(OTHERS, timeout=60)
            held_then = graph.held
            graph.resume()
            await graph.wait_accepted(HUNG, timeout=60)
            texts = {f"texte hung-{n}" for n in range(HUNG)}
            await _until(lambda: {r.body["message"]["text"] for r in graph.accepted()} == texts)
        finally:
            worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await worker
        assert WINDOW < held_then <= WINDOW + WINDOW // 2  # then Messenger's share at most: the rest was Telegram's
        sent = [r.body["message"]["text"] for r in graph.accepted()]
        assert len(sent) <= HUNG + WINDOW  # twice only a send that timed out (Graph got it: the ambiguous send)
        tries = 0
        for n in range(HUNG):
            item = await store.outbox_get(f"c-hung-{n}", f"hung-{n}")
            assert item is not None
            tries += item.attempts
        assert tries == WINDOW  # the first round's timeouts only: the replies held back spent no try

        busy = sending.metrics.registry.get_sample_value(
            "gateway_outbox_deliveries_total", {"channel": "messenger", "result": "busy"}
        )
        assert busy is not None and busy >= 1  # held back, told apart


async def _until(condition: Callable[[], bool], timeout: float = 60) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.05)
