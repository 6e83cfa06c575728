"""Property test: whatever frames a client sends on /chat/ws, the socket answers or closes cleanly, the server
stays up, and a well-behaved chat still works afterwards."""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import WSMsgType
from aiohttp.test_utils import TestClient, TestServer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.app import create_app
from gateway.settings import Settings
from tests.conftest import ROOT
from tests.e2e.channel_support import RunningClock

SCALARS = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=40)
VALUES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8),
                      inner, max_size=3), max_leaves=8)  # fmt: skip
FIELDS = {
    "type": st.sampled_from(["hello", "message", "typing", "end", "receipt", "nope"]) | VALUES,
    "token": VALUES, "language": VALUES, "id": VALUES, "text": VALUES, "payload": VALUES, "status": VALUES,
    "ids": VALUES,
}  # fmt: skip
FRAMES = st.fixed_dictionaries({}, optional=FIELDS).map(json.dumps) | VALUES.map(json.dumps) | st.text(max_size=200)


def _settings(directory: Path) -> Settings:
    return Settings(
        store=f"sqlite:///{directory}/gateway.sqlite3", flows=str(ROOT / "flows.yaml"),
        secret_key="hostile-test-secret-0123456789",
        # The hostile frames may say "hello" several times: the per-client cap and the new-chat rates (tested in
        # test_security.py) would then rightly refuse the final, normal chat this test checks is still served.
        max_waiting_per_client=1000, limit_chats_per_address="1000/hour", limit_chats_per_browser="1000/hour",
        understanding="off",  # frames, not words: no model loaded 30 times over on a busy machine
    )  # fmt: skip


async def _exercise(directory: Path, frames: list[str]) -> None:
    app = await create_app(_settings(directory), clock=RunningClock(), worker_poll_seconds=0.05)
    async with TestClient(TestServer(app)) as client:
        async with client.ws_connect("/chat/ws") as ws:
            for frame in frames:
                await ws.send_str(frame)
            await ws.send_json({"type": "typing"})
            await ws.close()
        async with client.ws_connect("/chat/ws") as ws:  # the server still serves a normal chat
            await ws.send_json({"type": "hello", "token": None, "language": "fr"})
            while True:
                message = await ws.receive(timeout=60)
                assert message.type == WSMsgType.TEXT, message
                data: dict[str, Any] = json.loads(message.data)
                if data["type"] == "session":
                    break
        health = await client.get("/healthz")
        assert health.status == 200


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(frames=st.lists(FRAMES, min_size=1, max_size=6))
def test_any_frames_leave_the_server_serving(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, frames: list[str]
) -> None:
    caplog.clear()
    directory = tmp_path / str(abs(hash(tuple(frames))))
    directory.mkdir(exist_ok=True)
    try:
        asyncio.run(_exercise(directory, frames))
    except aiohttp.ClientError as exc:  # a refused frame may close the socket: never the server
        raise AssertionError(f"client error {exc!r}") from exc
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert not errors, [f"{r.name}: {r.getMessage()[:200]}" for r in errors]


DEEP = '{"type": "typing", "x": ' + "[" * 3000 + "]" * 3000 + "}"
LONE_TEXT = '{"type": "message", "id": "m1", "text": "salut \\ud83d"}'  # a lone surrogate, escaped as JSON allows
LONE_ID = '{"type": "message", "id": "a\\udcffb", "text": "salut"}'


@pytest.mark.parametrize("frame", [DEEP, LONE_TEXT, LONE_ID], ids=["nested_3000_deep", "lone_surrogate_text",
                                                                   "lone_surrogate_id"])  # fmt: skip
async def test_a_frame_no_store_can_encode_is_refused_and_the_socket_goes_on(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, frame: str
) -> None:
    """A red-team review: such a frame failed deep in the processing (a seal, a hash: RecursionError and
    UnicodeEncodeError are not the ValueError the parser caught): the socket was killed with a 503 written onto it,
    an ERROR line each time, the message never acknowledged (a page would resend it at every reconnect). Now it is
    a refused frame like any malformed one, and the next message is processed."""
    app = await create_app(_settings(tmp_path), clock=RunningClock(), worker_poll_seconds=0.05)
    async with TestClient(TestServer(app)) as client, client.ws_connect("/chat/ws") as ws:
        await ws.send_json({"type": "hello", "token": None, "language": "fr"})
        await _until(ws, lambda f: f["type"] == "session")
        await ws.send_str(frame)
        refused = await _until(ws, lambda f: f["type"] == "error")
        assert refused["code"] == "bad_frame"
        await ws.send_json({"type": "message", "id": "m2", "text": "salut"})
        await _until(ws, lambda f: f == {"type": "ack", "id": "m2"})
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


@pytest.mark.parametrize(
    ("path", "body", "headers"),
    [
        ("/chat/leave", "[" * 1000, {}),
        ("/chat/leave", '{"token": "\\udcff' + "a" * 30 + '"}', {}),
        (
            "/api/session",
            '{"name": ' + "[" * 3000 + "]" * 3000 + ', "password": "x"}',
            {"Content-Type": "application/json"},
        ),
        ("/api/session", '{"name": "anne\\ud83d", "password": "x"}', {"Content-Type": "application/json"}),
        ("/chat/upload", "x", {"X-Chat-Token": "\xff" * 24, "X-Upload-Id": "u1"}),
    ],
)
async def test_a_body_no_store_can_encode_is_a_400_never_a_503(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, path: str, body: str, headers: dict[str, str]
) -> None:
    app = await create_app(_settings(tmp_path), clock=RunningClock(), worker_poll_seconds=0.05)
    async with TestClient(TestServer(app)) as client:
        response = await client.post(path, data=body.encode("latin-1"), headers=headers)
        assert response.status == 400, (path, response.status, await response.text())
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def _until(ws: aiohttp.ClientWebSocketResponse, wanted: Any) -> dict[str, Any]:
    while True:
        message = await ws.receive(timeout=30)
        assert message.type == WSMsgType.TEXT, message
        data: dict[str, Any] = json.loads(message.data)
        if wanted(data):
            return data
