"""A second ``hello`` on one socket that is answered with an end (``ChatSession._show_end``: a conversation that
ended while the page was away; ``_show_gone``: one erased): the socket follows only what that hello named.

Until 2026-12-07 it stayed attached to the conversation it followed before: that conversation's entries kept
reaching the socket (a page showing an ended conversation got another's messages), and its ``end``, ``typing`` and
``language`` frames still acted on it (an ``end`` closed a conversation the socket no longer showed). Raw
websockets as a page's (chat.js sends one hello per socket; any client may send more)."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient

from gateway.app import STORE, WEBCHAT
from gateway.conversation import Status
from tests.test_webchat import hello, receive_until, say
from tests.test_webchat_erased import supervisor_erases

Client = TestClient  # type: ignore[type-arg]


async def ended_elsewhere(client: Client) -> tuple[str, str]:
    """A token and its conversation, ended by the young person ("Terminer") on a socket since closed."""
    async with client.ws_connect("/chat/ws") as ws:
        session = await hello(ws)
        await ws.send_json({"type": "end"})
        await receive_until(ws, lambda f: f["type"] == "status" and f["status"] == "closed")
    return session["token"], session["conversation"]


async def erased_elsewhere(client: Client) -> tuple[str, str]:
    """A token and its conversation, erased by a supervisor."""
    async with client.ws_connect("/chat/ws") as ws:
        session = await hello(ws)
    await supervisor_erases(client, session["conversation"])
    return session["token"], session["conversation"]


async def answered(ws: aiohttp.ClientWebSocketResponse) -> list[dict[str, Any]]:
    """What the socket got up to the answer to a malformed frame: every frame before it was handled (and every frame
    offered it before was sent: one writer, in order)."""
    await ws.send_str("{")
    return await receive_until(ws, lambda f: f["type"] == "error" and f["code"] == "bad_frame")


async def shown_an_end(client: Client, ws: aiohttp.ClientWebSocketResponse, shown: Any) -> dict[str, Any]:
    """The socket's first hello opens a conversation (followed); its second names ``shown``'s, answered ``closed``.
    The first session frame is returned."""
    token, named = await shown(client)
    first = await hello(ws)
    await ws.send_json({"type": "hello", "token": token, "conversation": named, "language": "fr"})
    again = (await receive_until(ws, lambda f: f["type"] == "session"))[-1]
    assert (again["status"], again["conversation"]) == ("closed", named)
    return first


SHOWN = pytest.mark.parametrize("shown", [ended_elsewhere, erased_elsewhere], ids=["ended", "erased"])


@SHOWN
async def test_an_end_frame_after_a_hello_shown_an_end_ends_nothing_it_no_longer_shows(
    client: Client, shown: Any
) -> None:
    async with client.ws_connect("/chat/ws") as ws:
        first = await shown_an_end(client, ws, shown)
        await ws.send_json({"type": "language", "language": "en"})
        await ws.send_json({"type": "typing"})
        await ws.send_json({"type": "end"})
        await answered(ws)
    kept = await client.app[STORE].get_conversation(first["conversation"])
    assert kept is not None and kept.status == Status.BOT  # before: closed by a socket showing another's end
    assert client.app[WEBCHAT].language(kept) == "fr"  # before: switched by it


@SHOWN
async def test_a_socket_shown_an_end_gets_nothing_of_the_conversation_it_followed_before(
    client: Client, shown: Any
) -> None:
    async with client.ws_connect("/chat/ws") as ws, client.ws_connect("/chat/ws") as other:
        first = await shown_an_end(client, ws, shown)
        await hello(other, first["token"])  # the first conversation goes on in another tab
        said = await say(other, "o1", "2")
        if not any(f["type"] == "entry" and f["entry"]["author"] == "bot" for f in said):  # forwarded after the ack
            await receive_until(other, lambda f: f["type"] == "entry" and f["entry"]["author"] == "bot")
        frames = await answered(ws)
    leaked = [f for f in frames if f["type"] in ("entry", "status", "typing", "language", "resync")]
    assert leaked == []  # before: the first conversation's entries reached the socket showing the end


async def test_a_socket_whose_later_hello_was_refused_gets_nothing_of_the_conversation_it_followed_before(
    client: Client,
) -> None:
    """The same for a hello refused (here its client at its cap of conversations opened): the socket speaks for
    the refused token (``held``) and no longer follows the conversation opened before."""
    async with client.ws_connect("/chat/ws") as ws, client.ws_connect("/chat/ws") as other:
        answers: list[dict[str, Any]] = []
        for _ in range(20):  # new conversations from one address, until its cap refuses one
            await ws.send_json({"type": "hello", "token": None, "language": "fr"})
            answers.append((await receive_until(ws, lambda f: f["type"] in ("session", "refused")))[-1])
            if answers[-1]["type"] == "refused":
                break
        assert answers[-1] == {"type": "refused", "id": None, "reason": "client_full"}
        await hello(other, answers[-2]["token"])  # the last one opened goes on in another tab
        said = await say(other, "o1", "2")
        if not any(f["type"] == "entry" and f["entry"]["author"] == "bot" for f in said):
            await receive_until(other, lambda f: f["type"] == "entry" and f["entry"]["author"] == "bot")
        frames = await answered(ws)
    leaked = [f for f in frames if f["type"] in ("entry", "status", "typing", "language", "resync")]
    assert [f["entry"]["author"] for f in leaked if f["type"] == "entry"] == ["bot"]  # the calm notice only
    assert all(f["entry"]["id"].startswith("notice-") for f in leaked)
