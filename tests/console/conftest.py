"""Fixtures of the console tests: a young person waiting in the queue, listeners, a second session."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp.test_utils import TestClient

from tests.conftest import PASSWORD, add_listener, login
from tests.test_webchat import WALK_TO_QUEUE, hello, receive_until, say


@pytest.fixture
async def queued(client: TestClient) -> AsyncIterator[tuple[aiohttp.ClientWebSocketResponse, str]]:  # type: ignore[type-arg]
    """A young person in the web chat, waiting in the queue; yields their socket and conversation id."""
    await add_listener(client, "anne")
    await add_listener(client, "bruno")
    await add_listener(client, "sam", supervisor=True)
    async with client.ws_connect("/chat/ws") as ws:
        await hello(ws)
        frames = []
        for number, answer in enumerate(WALK_TO_QUEUE):
            frames += await say(ws, f"m{number}", answer)
        if not any(f["type"] == "status" for f in frames):  # its event's frame may come after the last ack
            frames += await receive_until(ws, lambda f: f["type"] == "status")
        assert {"type": "status", "status": "queued", "position": 1, "language": "fr"} in frames
        await login(client, "anne")
        queue = await (await client.get("/api/queue")).json()
        yield ws, queue["waiting"][0]["id"]


async def other_session(client: TestClient, name: str) -> aiohttp.ClientSession:  # type: ignore[type-arg]
    session = aiohttp.ClientSession(base_url=str(client.make_url("/")), cookie_jar=aiohttp.CookieJar(unsafe=True))
    response = await session.post("/api/session", json={"name": name, "password": PASSWORD})
    assert response.status == 200
    return session
