"""A page hears the server at least every GATEWAY_SOCKET_KEEPALIVE_SECONDS, idle or not (gateway/sockets.py,
``incoming``): so that a page whose connection died without a word can tell, and connect again (the pages' watch
is tested in the browser: tests/e2e/test_chat.py, tests/e2e/test_console_reply_once.py)."""

from __future__ import annotations

import pytest

from gateway.errors import ConfigError
from gateway.settings import Settings
from tests.conftest import AppFactory, add_listener, login
from tests.test_webchat import hello, receive_until


async def test_an_idle_web_chat_socket_gets_a_keepalive_frame_and_is_told_the_period(
    make_client: AppFactory, settings: Settings
) -> None:
    client = await make_client(settings.replace(socket_keepalive_seconds=1.0))
    async with client.ws_connect("/chat/ws") as ws:
        session = await hello(ws)
        assert session["keepalive"] == 1.0  # the page's watch is 2.5 times that
        # nothing sent by the young person: the server still speaks, more than once
        frames = await receive_until(ws, lambda f: f["type"] == "keepalive")
        frames = await receive_until(ws, lambda f: f["type"] == "keepalive", frames=frames)
    assert [f for f in frames if f["type"] == "keepalive"] == [{"type": "keepalive"}] * 2


async def test_an_idle_console_socket_gets_a_keepalive_frame_and_is_told_the_period(
    make_client: AppFactory, settings: Settings
) -> None:
    # the presence beats (every worker poll) would keep the socket busy: rare here, so that it idles
    client = await make_client(settings.replace(socket_keepalive_seconds=1.0), worker_poll_seconds=60)
    await add_listener(client, "anne")
    await login(client, "anne")
    async with client.ws_connect("/api/events") as ws:
        [*_, first] = await receive_until(ws, lambda f: f["type"] == "hello")
        assert first["keepalive"] == 1.0
        frames = await receive_until(ws, lambda f: f["type"] == "keepalive")
        await receive_until(ws, lambda f: f["type"] == "keepalive", frames=frames)


async def test_a_busy_socket_is_not_sent_keepalives_on_top(make_client: AppFactory, settings: Settings) -> None:
    """The keepalive counts from the last frame sent, not from the client's: a page that hears answers hears
    enough (a young person typing often does not make the server send keepalives between the answers)."""
    client = await make_client(settings.replace(socket_keepalive_seconds=1.0))
    async with client.ws_connect("/chat/ws") as ws:
        await hello(ws)
        frames = await receive_until(ws, lambda f: f["type"] == "keepalive")  # idle since the session: one came
        await ws.send_json({"type": "message", "id": "m1", "text": "2"})
        frames = await receive_until(ws, lambda f: f == {"type": "ack", "id": "m1"})
        assert all(f["type"] != "keepalive" for f in frames)  # the answer followed the message at once


@pytest.mark.parametrize("seconds", ["0", "0.5", "121"])
def test_the_keepalive_period_is_checked(seconds: str) -> None:
    with pytest.raises(ConfigError, match="GATEWAY_SOCKET_KEEPALIVE_SECONDS"):
        Settings.from_env({"GATEWAY_SOCKET_KEEPALIVE_SECONDS": seconds}, env_file=None)
