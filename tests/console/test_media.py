"""Attachments a young person sent, fetched by the console through the channel's media ability, and the reply
window shown in the conversation API (Messenger through a fake Graph API on 127.0.0.1)."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from gateway.app import STORE
from gateway.settings import Settings
from gateway.testing import FakeGraphAPI, messenger_body, messenger_message, signed_messenger
from tests.conftest import AppFactory, Clock, add_listener, login

SECRET = "messenger-app-secret"
PSID = "2400000000000001"


@pytest.fixture
async def messenger(make_client: AppFactory, settings: Settings, graph: FakeGraphAPI) -> TestClient:  # type: ignore[type-arg]
    client = await make_client(settings.replace(
        messenger_app_secret=SECRET, messenger_verify_token="verify", messenger_page_access_token="token",
        messenger_api_url=graph.url,
    ))  # fmt: skip
    await add_listener(client, "anne", supervisor=True)  # the conversations stay in the bot: supervisors see them
    await login(client, "anne")
    return client


async def send(client: TestClient, attachments: list[tuple[str, str]]) -> str:  # type: ignore[type-arg]
    raw, headers = signed_messenger(SECRET, messenger_body([messenger_message(PSID, "", attachments=attachments)]))
    assert (await client.post("/webhooks/messenger", data=raw, headers=headers)).status == 200
    conversations = await client.app[STORE].list_conversations(*_always())
    return conversations[0].id


def _always() -> tuple[Any, Any]:
    from datetime import UTC, datetime

    return datetime(2000, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC)


async def test_an_image_is_streamed_without_its_provider_url(messenger: TestClient, graph: FakeGraphAPI) -> None:  # type: ignore[type-arg]
    url = graph.serve_media("cdn/photo.jpg", b"\xff\xd8jpeg-bytes", "image/jpeg")
    conversation = await send(messenger, [("image", url), ("file", "https://evil.example/x.pdf")])
    detail = await (await messenger.get(f"/api/conversations/{conversation}")).json()
    assert url not in str(detail) and "evil.example" not in str(detail)
    first = next(e for e in detail["transcript"] if e["attachments"])
    assert [(a["kind"], a["number"]) for a in first["attachments"]] == [("image", 0), ("file", 1)]

    image = await messenger.get(f"/api/conversations/{conversation}/attachments/0")
    assert image.status == 200 and image.content_type == "image/jpeg"
    assert await image.read() == b"\xff\xd8jpeg-bytes"
    assert image.headers["X-Content-Type-Options"] == "nosniff"
    assert "sandbox" in image.headers["Content-Security-Policy"]

    refused = await messenger.get(f"/api/conversations/{conversation}/attachments/1")  # not a Meta host
    assert refused.status == 502 and (await refused.json())["error"] == "media_unavailable"


@pytest.mark.parametrize("n", ["5", "-1", "x", "99999999999999999999"])
async def test_a_missing_attachment_is_404(messenger: TestClient, graph: FakeGraphAPI, n: str) -> None:  # type: ignore[type-arg]
    conversation = await send(messenger, [("image", graph.serve_media("a.jpg", b"x", "image/jpeg"))])
    assert (await messenger.get(f"/api/conversations/{conversation}/attachments/{n}")).status == 404
    assert (await messenger.get("/api/conversations/nope/attachments/0")).status == 404


async def test_a_file_that_is_not_an_image_is_a_download(messenger: TestClient, graph: FakeGraphAPI) -> None:  # type: ignore[type-arg]
    url = graph.serve_media("cdn/page.html", b"<script>alert(1)</script>", "text/html")
    conversation = await send(messenger, [("file", url)])
    response = await messenger.get(f"/api/conversations/{conversation}/attachments/0")
    assert response.status == 200 and response.content_type == "application/octet-stream"
    assert response.headers["Content-Disposition"].startswith("attachment")


async def test_the_reply_window_is_open_then_closing_then_closed(
    messenger: TestClient,
    graph: FakeGraphAPI,
    clock: Clock,  # type: ignore[type-arg]
) -> None:
    conversation = await send(messenger, [("image", graph.serve_media("b.jpg", b"x", "image/jpeg"))])

    async def window() -> dict[str, Any]:
        return (await (await messenger.get(f"/api/conversations/{conversation}")).json())["window"]  # type: ignore[no-any-return]

    assert (await window())["state"] == "open" and (await window())["hours"] == 7 * 24
    clock.advance(days=7, minutes=-30)
    assert (await window())["state"] == "closing"
    clock.advance(hours=1)
    assert (await window())["state"] == "closed"


async def test_the_web_chat_has_no_window(client: TestClient, queued: Any) -> None:  # type: ignore[type-arg]
    _, conversation_id = queued
    detail = await (await client.get(f"/api/conversations/{conversation_id}")).json()
    assert detail["window"] == {"state": "none", "closes_at": None, "hours": None}
