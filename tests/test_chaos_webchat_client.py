"""bench/chaos_webchat.py's page client against the real app (SQLite): as chat.js, its ``hello`` names the
conversation it follows, so a page away while a listener writes her last words and closes is shown them and the end
at its next hello; having seen the end, it does what a young person pressing "Nouvelle conversation" does: a new
socket, a hello naming no conversation, a new conversation greeted. Until 2026-12-07 its hello named none (after such
a close it opened a new conversation, the listener's last words never received) and an ``ended`` error stopped it."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable

from aiohttp import ClientSession, web
from aiohttp.test_utils import TestClient, TestServer

from bench.chaos_webchat import Tally, WebChatClient, held_with_open
from bench.load import Step
from gateway.app import STORE
from gateway.messages import ChannelName
from gateway.store import Author
from tests.test_webchat import WALK_TO_QUEUE
from tests.test_webchat_away_close import LAST_WORDS, take, write_and_close

Client = TestClient  # type: ignore[type-arg]


async def until(condition: Callable[[], bool], limit: float = 20.0) -> None:
    async with asyncio.timeout(limit):
        while not condition():
            await asyncio.sleep(0.05)


async def opened_anew(client: Client, page: WebChatClient, first: str, limit: float = 20.0) -> None:
    """Until the page is in session and its token's open conversation is another than ``first``."""
    async with asyncio.timeout(limit):
        while True:
            found = await client.app[STORE].find_active_conversation(ChannelName.WEBCHAT, str(page.token))
            if page.in_session and found is not None and found.id != first:
                return
            await asyncio.sleep(0.05)


async def test_the_page_client_is_shown_the_end_it_missed_then_starts_a_new_conversation(client: Client) -> None:
    up, down = str(client.make_url("")).rstrip("/"), "http://127.0.0.1:1"
    target = [up]
    async with ClientSession() as session:
        page = WebChatClient(session, lambda: target[0], "10.9.0.1", 1, Tally())
        page.start()
        try:
            await until(lambda: page.in_session)
            found = await client.app[STORE].find_active_conversation(ChannelName.WEBCHAT, str(page.token))
            assert found is not None
            first = found.id
            for number, answer in enumerate(WALK_TO_QUEUE):
                page.pending[f"w{number}"] = Step(answer, None, 0)
                assert page.ws is not None
                await page._send(page.ws, f"w{number}")
                await until(lambda n=number: f"w{n}" not in page.pending)  # type: ignore[misc]
            target[0] = down  # the page away (its phone asleep): its reconnections fail meanwhile
            assert page.ws is not None
            await page.ws.close()
            await take(client, first)
            await write_and_close(client, first)
            target[0] = up
            await opened_anew(client, page, first)
        finally:
            await page.stop()
    [words] = [e for e in await client.app[STORE].transcript(first) if e.author is Author.LISTENER
               and e.text == LAST_WORDS]  # fmt: skip
    assert page.received[words.id] == 1, "the listener's last words never reached the page"
    assert page.conversation != first and page.status == "bot"
    assert page.tally.closes["new conversation"] == 1


async def test_the_page_client_follows_a_frame_by_its_own_status_as_chat_js() -> None:
    """chat.js's followConversation since 2026-12-07: a frame's conversation is followed unless that frame's own
    status is final (the next one a crossing message or image opened, named after an end shown, is followed; an
    ended one a frame names is not). Until then the client mirrored the old rule, the page's status."""
    async with ClientSession() as session:
        page = WebChatClient(session, lambda: "http://127.0.0.1:1", "10.9.0.1", 1, Tally())
        page.conversation, page.status = None, "closed"  # an end shown
        page._follow("next", "bot")
        assert (page.conversation, page.status) == ("next", "bot")
        page._follow("ended", "closed")
        assert (page.conversation, page.status) == ("next", "closed")


class CrossingGateway:
    """A gateway's web chat socket as it answers a message crossing a listener's close (``ChatSession._deliver``,
    ``EndedMeanwhile``): the ended conversation's end (a ``resync`` naming it, ``closed``), then the next one the
    message was taken in (a ``resync`` naming it, ``bot``), then the ack. Every hello: a session of the token's open
    conversation (``first`` until a message opened ``next``)."""

    def __init__(self) -> None:
        self.hellos: list[dict[str, object]] = []
        self.open = "first"

    async def socket(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        async for message in ws:
            frame = json.loads(message.data)
            if frame["type"] == "hello":
                self.hellos.append(frame)
                await ws.send_json({"type": "session", "token": "t", "conversation": self.open, "status": "bot",
                                    "history": []})  # fmt: skip
            elif frame["type"] == "message" and self.open == "next":  # sent again: recorded once, acknowledged
                await ws.send_json({"type": "ack", "id": frame["id"]})
            elif frame["type"] == "message":
                self.open = "next"
                await ws.send_json({"type": "resync", "conversation": "first", "status": "closed", "entries": []})
                await ws.send_json({"type": "resync", "conversation": "next", "status": "bot", "entries": []})
                await ws.send_json({"type": "ack", "id": frame["id"]})
        return ws


async def test_the_page_client_goes_on_in_the_next_conversation_a_crossing_message_opened_as_chat_js() -> None:
    """chat.js's goOnInNext (2026-12-07): an end shown, then a frame naming the next conversation (a message that
    crossed the listener's close taken in it): the page goes on in it on the same socket; "Nouvelle conversation" is
    a young person's press after reading the end (``END_READING`` s), made only if nothing followed the end. Until
    2026-12-07 (night) the client pressed it at the end frame itself: its socket closed, a hello more, an extra
    conversation counted (``new_conversations``) where the page went on."""
    gateway = CrossingGateway()
    app = web.Application()
    app.router.add_get("/chat/ws", gateway.socket)
    async with TestServer(app) as server, ClientSession() as session:
        page = WebChatClient(session, lambda: str(server.make_url("")).rstrip("/"), "10.9.0.1", 1, Tally())
        page.start()
        try:
            await until(lambda: page.in_session)
            page.pending["m1"] = Step("encore là ?", None, 0)
            assert page.ws is not None
            await page._send(page.ws, "m1")
            await until(lambda: "m1" not in page.pending and page.in_session)
            await until(lambda: page.reading is None or page.reading.done())  # the end read: no press due
        finally:
            await page.stop()
    assert (page.conversation, page.status) == ("next", "bot")
    assert (page.new_conversations, page.socket, len(gateway.hellos)) == (0, 1, 1)


class FullNetwork:
    """A gateway's web chat socket for a network at its cap (``ChatSession._greet``, ``_notice``): every hello refused
    (``refused`` with no id, then the calm notice), every message refused (``refused`` naming it): the socket held."""

    async def socket(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        async for message in ws:
            frame = json.loads(message.data)
            if frame["type"] == "hello":
                await ws.send_json({"type": "refused", "id": None, "reason": "client_full"})
                await ws.send_json({"type": "entry", "entry": {"id": "notice-x", "author": "bot", "text": "…"}})
            elif frame["type"] == "message":
                await ws.send_json({"type": "refused", "id": frame["id"], "reason": "client_full"})
        return ws


async def test_a_held_page_with_nothing_to_send_is_settled_as_chat_js_shows_it() -> None:
    """A page whose hello a network at its cap refused (held: chat.js shows the notice and waits for the young person
    to write) is settled once nothing is pending but what its socket refused. Until 2026-12-07 (night) ``settled``
    asked for a session: seed 101 ``--floods --console 2`` counted 2-4 crowd pages "not settled", each held with
    nothing to send after a listener closed its conversation and "Nouvelle conversation" was refused at the cap."""
    app = web.Application()
    app.router.add_get("/chat/ws", FullNetwork().socket)
    async with TestServer(app) as server, ClientSession() as session:
        page = WebChatClient(session, lambda: str(server.make_url("")).rstrip("/"), "10.252.0.1", 1, Tally())
        page.start()
        try:
            await until(lambda: page.hello_refusals > 0)
            assert not page.in_session
            assert await page.settled(5.0), "a held page with nothing pending is what chat.js shows: settled"
            page.pending["k1"] = Step("bonjour", None, 0)  # typed, not yet sent on this socket: not settled
            assert not await page.settled(0.2)
            assert page.ws is not None
            await page._send(page.ws, "k1")
            assert await page.settled(5.0)  # refused on this socket ("Pas encore envoyé"): settled
            page.tokens = ["t1"]  # a session frame gave it a token once (its conversation since ended)
            assert held_with_open([page], {"t2"}) == 0
            assert held_with_open([page], {"t1"}) == 1  # its own conversation open, yet held: the audit says so
        finally:
            await page.stop()
