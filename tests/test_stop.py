"""``gateway serve`` stopped as a rolling deploy stops it (SIGTERM: systemd's stop, a Kubernetes pod's termination),
on a Redis of the test's own, with a second instance beside it.

A webhook in flight when the signal comes is answered, not cut: the stop closes the listening socket, lets the
requests in flight end (``connections.STOP_REQUESTS_SECONDS`` at most), then stops the workers and exits 0.
"""

from __future__ import annotations

import asyncio
import signal
import socket
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
import pytest
from redis.asyncio import Redis

from gateway.ids import inbound_key
from gateway.messages import ChannelName, Inbound
from gateway.store import Author, Delivery
from gateway.store import redis_keys as K
from gateway.testing import FakeGraphAPI, messenger_body, messenger_message, signed_messenger
from tests.test_faults import SECRET, instance, redis_server, store_at

pytestmark = pytest.mark.redis

SENDER = "7100000000000042"


async def _until(condition: Callable[[], Awaitable[bool]], what: str, seconds: float = 30) -> None:
    try:
        async with asyncio.timeout(seconds):
            while not await condition():
                await asyncio.sleep(0.02)
    except TimeoutError:
        pytest.fail(f"not within {seconds} s: {what}")


def _refused(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


async def test_a_webhook_in_flight_when_sigterm_comes_is_answered_and_processed(
    tmp_path: Path, graph: FakeGraphAPI
) -> None:
    def webhook(mid: str, text: str) -> tuple[bytes, dict[str, str]]:
        return signed_messenger(SECRET, messenger_body([messenger_message(SENDER, text, mid)]))

    with redis_server(tmp_path) as url:
        one = instance(tmp_path, "one", url, graph, "one")
        one.env["GATEWAY_LOG_LEVEL"] = "INFO"
        raw = Redis.from_url(url, decode_responses=True)
        try:
            async with aiohttp.ClientSession() as http, store_at(url) as store:
                one.start()
                await one.ready(http)
                first, headers = webhook("m_first", "Bonjour")
                async with http.post(one.url + "/webhooks/messenger", data=first, headers=headers) as response:
                    assert response.status == 200
                conversation = await store.find_active_conversation(ChannelName.MESSENGER, SENDER)
                assert conversation is not None
                claim = K.seen_claim(inbound_key(Inbound(ChannelName.MESSENGER, SENDER, "m_second", "")))

                async def waits_for_the_lock() -> bool:
                    value = await raw.get(claim)
                    return value is not None and f":{conversation.id}:" in value

                second, headers = webhook("m_second", "Non")
                async with store.lock(conversation.id):  # held here: the webhook waits for it, in flight
                    answer = asyncio.create_task(
                        http.post(one.url + "/webhooks/messenger", data=second, headers=headers)
                    )
                    await _until(waits_for_the_lock, "the webhook waits for the conversation's lock")
                    assert one.process is not None
                    process = one.process
                    process.send_signal(signal.SIGTERM)
                    await _until(lambda: asyncio.to_thread(_refused, one.port), "no new connection taken")
                response = await answer  # the lock let go: the webhook goes on
                assert response.status == 200  # was: the connection closed unanswered (ServerDisconnectedError)
                response.release()
                assert await asyncio.to_thread(process.wait, 60) == 0
                one.process = None
                entries = await store.transcript(conversation.id)
            assert [e.text for e in entries if e.author is Author.USER] == ["Bonjour", "Non"]
            log = one.log.read_text()
            assert "SIGTERM: stopping" in log and "stopped in" in log
        finally:
            await raw.aclose()
            one.stop()


async def test_a_send_in_flight_when_sigterm_comes_is_recorded_and_its_run_goes_on_elsewhere_once(
    tmp_path: Path, graph: FakeGraphAPI
) -> None:
    """The first of the welcome's replies is being sent (Graph holds it) when SIGTERM comes: the stop lets that send
    end and records it (``Outbox.drain``), gives the run's next replies back at once, and exits 0; a second instance
    sends those: every reply reaches Graph once. Until 2026-12-05 the stop cancelled the send in flight: Graph had
    accepted it, its record never came, and it went out again once its lease ended."""
    with redis_server(tmp_path) as url:
        one = instance(tmp_path, "one", url, graph, "one")
        two = instance(tmp_path, "two", url, graph, "two")
        try:
            async with aiohttp.ClientSession() as http, store_at(url) as store:
                one.start()
                await one.ready(http)
                graph.stall()
                body, headers = signed_messenger(SECRET, messenger_body([messenger_message(SENDER, "Bonjour", "m_1")]))
                async with http.post(one.url + "/webhooks/messenger", data=body, headers=headers) as response:
                    assert response.status == 200
                await graph.wait_held(1, timeout=30)  # the first reply's send in flight, held by Graph
                assert one.process is not None
                process = one.process
                process.send_signal(signal.SIGTERM)
                await _until(lambda: asyncio.to_thread(_refused, one.port), "no new connection taken")
                graph.resume()
                assert await asyncio.to_thread(process.wait, 60) == 0
                one.process = None
                two.start()
                await two.ready(http)
                conversation = await store.find_active_conversation(ChannelName.MESSENGER, SENDER)
                assert conversation is not None

                async def every_reply_sent() -> bool:
                    entries = await store.transcript(conversation.id)
                    bot = [e for e in entries if e.author is Author.BOT]
                    return bool(bot) and all(e.delivery is not Delivery.PENDING for e in bot)

                await _until(every_reply_sent, "every reply of the welcome sent")
                bot = [e.text for e in await store.transcript(conversation.id) if e.author is Author.BOT]
            sent = [r.body["message"]["text"] for r in graph.accepted() if "message" in r.body]
            assert len(bot) >= 2 and sorted(sent) == sorted(bot)  # each once: none sent again after the stop
        finally:
            one.stop()
            two.stop()
