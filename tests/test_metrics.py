"""``GET /metrics``: figures move with the traffic, and nothing in them identifies a young person."""

from __future__ import annotations

import asyncio
import re

from aiohttp.test_utils import TestClient

from gateway.app import STORE
from gateway.messages import ChannelName, Outbound
from gateway.settings import Settings
from gateway.store import OutboxItem
from gateway.store.codec import encode_outbound
from gateway.testing import BOT_TOKEN, FakeTelegramAPI
from tests.conftest import AppFactory, Clock
from tests.test_webchat import WALK_TO_QUEUE, hello, say

Client = TestClient  # type: ignore[type-arg]


def value(text: str, name: str, **labels: str) -> float:
    """The sample ``name{labels}`` of an exposition, 0 when absent."""
    for line in text.splitlines():
        match = re.match(r"^(\w+)(?:\{(.*)\})? (\S+)$", line)
        if not match or match.group(1) != name:
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', match.group(2) or ""))
        if all(found.get(k) == v for k, v in labels.items()):
            return float(match.group(3))
    return 0.0


async def scrape(client: Client) -> str:
    response = await client.get("/metrics")
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("text/plain")
    return await response.text()


async def test_metrics_follow_a_conversation_to_the_queue(client: Client) -> None:
    before = await scrape(client)
    assert value(before, "gateway_queue_waiting") == 0
    assert value(before, "gateway_flow_reloads_total", result="ok") == 1

    async with client.ws_connect("/chat/ws") as ws:
        token = (await hello(ws))["token"]
        for number, answer in enumerate(WALK_TO_QUEUE):
            await say(ws, f"m{number}", answer)
        await say(ws, "m0", WALK_TO_QUEUE[0])  # a redelivery

    text = await scrape(client)
    assert value(text, "gateway_inbound_messages_total", channel="webchat") == len(WALK_TO_QUEUE)
    assert value(text, "gateway_inbound_duplicates_total", channel="webchat") == 1
    assert value(text, "gateway_bot_outcomes_total", kind="handoff", queue="listeners", priority="normal") == 1
    assert value(text, "gateway_queue_waiting", queue="listeners", priority="normal") == 1
    for secret in (token, WALK_TO_QUEUE[-1], "moque"):
        assert secret not in text


async def test_the_apps_dispatcher_and_outbox_count_on_the_apps_metrics(
    make_client: AppFactory, settings: Settings, clock: Clock
) -> None:
    """The Dispatcher and the Outbox fall back on a Metrics of their own when given none (tests, the CLI's), which
    nobody scrapes: the app gives them its own, so what they count (a message processed, a send) is on /metrics."""
    async with FakeTelegramAPI() as telegram:
        client = await make_client(settings.replace(telegram_bot_token=BOT_TOKEN, telegram_api_url=telegram.url,
                                                    telegram_webhook_secret="webhook_secret-123"))  # fmt: skip
        async with client.ws_connect("/chat/ws") as ws:
            await hello(ws)
            await say(ws, "m0", WALK_TO_QUEUE[0])  # the Dispatcher's
        store = client.app[STORE]
        reply = Outbound("r-1", "c-1", ChannelName.TELEGRAM, "1001", "texte")
        await store.outbox_put(OutboxItem("r-1", "c-1", encode_outbound(reply), clock()))  # the Outbox's
        await telegram.wait_accepted(1, timeout=30)
        async with asyncio.timeout(30):
            while not value(text := await scrape(client), "gateway_outbox_deliveries_total", channel="telegram"):
                await asyncio.sleep(0.05)
    assert value(text, "gateway_inbound_messages_total", channel="webchat") == 1
    assert value(text, "gateway_outbox_deliveries_total", channel="telegram", result="sent") == 1


async def test_refused_webhooks_are_counted_by_status(make_client: AppFactory, settings: Settings) -> None:
    messenger = Settings(**{
        **settings.__dict__, "messenger_app_secret": "app-secret", "messenger_verify_token": "verify",
        "messenger_page_access_token": "page-token", "messenger_api_url": "http://127.0.0.1:9/v23.0",
    })  # fmt: skip
    client = await make_client(messenger)
    for _ in range(2):
        response = await client.post(
            "/webhooks/messenger", data=b'{"object": "page", "entry": []}',
            headers={"Content-Type": "application/json", "X-Hub-Signature-256": "sha256=" + "0" * 64},
        )  # fmt: skip
        assert response.status == 403
    assert value(await scrape(client), "gateway_webhook_refusals_total", status="403") == 2


async def test_only_this_machine_reads_the_metrics_without_a_token(make_client: AppFactory, settings: Settings) -> None:
    """The figures say when nobody is answering and how many risky messages came in: not for any visitor (a red-team
    review: an unauthenticated GET from anywhere answered 200 with ``gateway_listeners_online 0.0``). Behind the
    trusted proxy (the test client's loopback address), the client it names is the one asking."""
    client = await make_client(settings.replace(client_address_header="X-Forwarded-For"))
    outside = await client.get("/metrics", headers={"X-Forwarded-For": "203.0.113.9"})
    assert outside.status == 403 and "GATEWAY_METRICS_TOKEN" in (await outside.json())["message"]
    assert "gateway_" not in await outside.text()
    await scrape(client)  # this machine: no header, the loopback peer itself
    inside = await client.get("/metrics", headers={"X-Forwarded-For": "127.0.0.1"})
    assert inside.status == 200


async def test_with_a_token_only_its_bearer_reads_the_metrics(make_client: AppFactory, settings: Settings) -> None:
    client = await make_client(settings.replace(metrics_token="s3cret-scrape-token"))
    for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": "s3cret-scrape-token"}):
        refused = await client.get("/metrics", headers=headers)
        assert (refused.status, refused.headers.get("WWW-Authenticate")) == (401, "Bearer"), headers
    allowed = await client.get("/metrics", headers={"Authorization": "Bearer s3cret-scrape-token"})
    assert allowed.status == 200 and "gateway_queue_waiting" in await allowed.text()
