"""The web chat of ``bench/chaos.py``: each conversation a real websocket client behaving as the widget's page
(``gateway/webchat_static/chat.js``) does, and its part of the audit.

A :class:`WebChatClient` connects to ``/chat/ws`` of an instance that is up (round robin, as a load balancer
would: after a drop, another instance when its own is down), its own client address in ``X-Forwarded-For`` (the
gateway is configured behind a proxy: each young person is a client network of their own, as they would be).
As chat.js does: ``hello`` with the token it was given (none at first: the gateway starts a conversation and
greets; with it, until a ``session`` frame gives the token, an opening key drawn once, so a drop before that frame
resumes the conversation the first ``hello`` opened; with the token, the conversation it follows, until it has
seen its end: one that ended while the page was away is shown ended, its last words and goodbye, since 2026-12-07),
every message kept in a pending list under its client id
until its ``ack``, sent at once when the socket is open and sent again, same id, after every ``session`` frame;
after any close, a reconnection 0.5 s later, doubling to 5 s at most, reset when a socket opens; entries shown
once per id whatever frame carried them (``session``'s history, ``entry``, ``resync``), and a ``delivered``
receipt for the bot's and listeners' ones. An end seen (a final status) is read for ``END_READING`` s, the socket
kept (chat.js closes nothing at an end), then followed by what a young person pressing "Nouvelle conversation" does:
a new socket, a hello naming no conversation (until 2026-12-07 an ``ended`` error stopped the client for good);
unless a frame named the next conversation meanwhile (chat.js's goOnInNext: a message that crossed a listener's close
taken in a new one), which the page goes on in on the same socket (until 2026-12-07 (night) it pressed "Nouvelle
conversation" at the end frame itself: its socket closed, an extra hello and a new conversation counted). The
messages the walk types wait while an end is shown (chat.js hides the message box) and are sent after the next
session.
The young person answers ``gap`` s after the bot's reply to their previous message (after its ``ack`` when the
bot no longer has the conversation: a hand-off sooner than the walk's); the walk's first step, "bonjour", is the
``hello`` (the web chat greets without a message). Once the walk is done they stay on the page
(waiting in the queue) until the audit.

What the audit calls **received**: a bot or listener entry of the conversation's transcript whose id came to the
client in any frame it read, on any of its sockets; **shown twice**: the page shows one bubble per distinct id, so
an entry id that came again (a ``resync`` or a ``session`` repeating what a socket already had) is counted as
repeated and shown once, and what the young person would see twice is a distinct id the transcript does not
record (a phantom: a reply written, shown, then lost or written again under another id), ``notice-`` ids aside
(the gate's notices are never stored). **Stuck**: a message still unacknowledged when the clients stop, a reply
recorded and never received, a **deaf socket**: a socket with its session that left a message unacknowledged
for ``ACK_PATIENCE`` s, and a **silent** one: acknowledged, the bot still on the conversation, and no reply for
``REPLY_PATIENCE`` s (either way the client then reconnects, as a young person reloading the page would). A reply
never received is printed with its conversation, author and that conversation's status, and (since 2026-12-07, the
first three such pages) what the page was told, by socket and time: its hellos and the conversation they named,
its session, resync, status and error frames (conversation, status, entry counts), the bot's and listeners' entry
frames and its closes, never a text (until then the audit said only the page's number and its socket count).
A ``refused`` frame (a flood, a network at its cap) is handled as chat.js's onRefused: the message stays pending,
sent again after the next session; a refused hello (no id) holds the socket and what is pending is sent on it. The
``--floods`` pages (:meth:`WebChats.flood`, :meth:`WebChats.crowd_at_cap`) are audited apart (:func:`audit_flood`,
:func:`audit_crowd`).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import secrets
import time
from collections import Counter, deque
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import ClientError, ClientSession, ClientWebSocketResponse, WSMsgType

from bench.load import Step
from gateway.ids import inbound_entry_id
from gateway.messages import ChannelName, Inbound
from gateway.testing import store_keys

RECONNECT_FIRST, RECONNECT_MOST = 0.5, 5.0  # chat.js's state.delay: doubled after each close, reset on open
ACK_PATIENCE = 60.0  # s: a message unacknowledged this long on a socket with its session: a deaf socket
REPLY_PATIENCE = 30.0  # s: an acknowledged message without a reply this long on a socket with its session: silent
END_READING = 2.0  # s: an end shown, read before "Nouvelle conversation" is pressed (chat.js: a young person's press)
FINAL = frozenset({"closed", "referred", "abandoned"})  # chat.js FINAL: the statuses that end a conversation
SHOWN = frozenset({"bot", "listener"})  # the entries the audit follows (chat.js also shows the young person's own)


@dataclass
class Tally:
    """What the clients saw, over all of them."""

    connections: int = 0
    closes: Counter[str] = field(default_factory=Counter)  # how sockets ended: close code or error
    sends: int = 0  # message frames sent, resends included
    resent: int = 0  # message frames sent again (a session frame after a drop, or before it on the same socket)
    deaf: int = 0
    silent: int = 0
    notices: int = 0  # the gate's notices (a refused hello or message): not stored, the message stays pending
    errors: Counter[str] = field(default_factory=Counter)
    silences: list[tuple[float, str, str]] = field(default_factory=list)  # (monotonic, instance, "status; /readyz")


class WebChatClient:
    """One young person's page: the socket, reconnected as chat.js does, and the walk's messages."""

    def __init__(self, session: ClientSession, pick: Callable[[], str], address: str, number: int,
                 tally: Tally) -> None:  # fmt: skip
        self.session, self.pick, self.address, self.number, self.tally = session, pick, address, number, tally
        self.token: str | None = None
        self.opening: str | None = secrets.token_urlsafe(18)  # chat.js's opening key, until the first session
        self.tokens: list[str] = []  # every token a session frame gave (one, unless a drop came before the first)
        self.received: Counter[str] = Counter()  # entry id → frames that carried it
        self.live: set[str] = set()  # ids first received live: an ``entry`` frame, or the first session's greeting
        self.replies = 0  # distinct bot and listener entries received
        self.session_at = 0.0  # when the current socket's session frame came
        self.pending: dict[str, Step] = {}  # client message id → its step, until its ack (chat.js's pending list)
        self.acknowledged: dict[str, str] = {}  # client message id → the token it was acknowledged under
        self.sent: Counter[str] = Counter()
        self.last_sent: dict[str, float] = {}  # client message id → when it was last sent
        self.ws: ClientWebSocketResponse | None = None
        self.url = ""  # the instance of the current (or last) socket
        self.status = "bot"  # the conversation's, as the page knows it (session, status and resync frames)
        self.conversation: str | None = None  # chat.js's followConversation: named by its hello until its end is seen
        self.new_conversations = 0  # ends seen, each followed by "Nouvelle conversation" (:meth:`_end_seen`)
        self.in_session = False  # a session frame came on the current socket
        self.changed = asyncio.Event()  # an ack, a session
        self.renewing = False  # the socket closed for "Nouvelle conversation": reconnected at once, not a drop
        self.reading: asyncio.Task[None] | None = None  # an end shown, read until "Nouvelle conversation" (_end_seen)
        self.pressed = asyncio.Event()  # "Nouvelle conversation" pressed while no socket was open
        self.stopping = False
        self.task: asyncio.Task[None] | None = None
        self.socket = 0  # the current (or last) socket's number, from 1
        self.refused: Counter[str] = Counter()  # client message id → ``refused`` frames that named it
        self.refused_on: dict[str, int] = {}  # client message id → the socket that last refused it
        self.refused_why: dict[str, str] = {}  # client message id → the reason of the last ``refused`` frame naming it
        self.acked_unknown: set[str] = set()  # client message ids whose ack came before any session frame (no token)
        self.acked_at: dict[str, float] = {}  # client message id → when its ack came (monotonic)
        self.notices = 0  # the gate's notices (a ``notice-`` entry) this page showed
        self.flooded: list[str] = []  # a flood page's messages (``flood``), in the order typed
        self.hello_refusals = 0  # hellos refused (a network at its cap): the socket held, nothing opened
        self.held_on = 0  # the socket whose hello was last refused (:attr:`held` while it is open, with no session)
        self.burst_began = 0.0
        self.trace: list[str] = []  # what the page was told and did, by socket (no text): printed when it missed one
        self.tail: deque[str] = deque(maxlen=40)  # the trace's last lines, past its 400 too (a page not settled)

    def start(self) -> None:
        self.task = asyncio.create_task(self._connection(), name=f"webchat-client-{self.number}")

    async def stop(self) -> None:
        self.stopping = True
        if self.ws is not None:
            await self.ws.close()
        for task in (self.task, self.reading):
            if task is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)

    async def _connection(self) -> None:
        delay = RECONNECT_FIRST
        while not self.stopping:
            try:
                self.url = self.pick()
                async with self.session.ws_connect(self.url + "/chat/ws",
                                                   headers={"X-Forwarded-For": self.address}) as ws:  # fmt: skip
                    self.ws, delay = ws, RECONNECT_FIRST
                    self.tally.connections += 1
                    self.socket += 1
                    hello = {"type": "hello", "token": self.token, "opening": self.opening, "language": "fr",
                             "conversation": self.conversation if self.token else None}  # fmt: skip
                    self._note(f"hello :{self.url.rsplit(':', 1)[-1]} naming {hello['conversation']}")
                    await ws.send_json(hello)
                    async for message in ws:
                        if message.type is WSMsgType.TEXT:
                            await self._handle(ws, json.loads(message.data))
                    if not self.stopping:
                        self.tally.closes["new conversation" if self.renewing else str(ws.close_code)] += 1
                        self._note(f"closed {'new conversation' if self.renewing else ws.close_code}")
            except (ClientError, TimeoutError, ConnectionError) as error:
                self.tally.closes[type(error).__name__] += 1
                self._note(type(error).__name__)
            finally:
                self.ws, self.in_session = None, False
            if self.stopping:
                return
            if self.status in FINAL and not self.renewing:  # chat.js's onclose: an end shown reconnects nothing
                self.pressed.clear()
                await self.pressed.wait()  # until "Nouvelle conversation" (_press)
            if self.renewing:  # "Nouvelle conversation": connect() at once, as chat.js does
                self.renewing = False
                continue
            await asyncio.sleep(delay)
            delay = min(delay * 2, RECONNECT_MOST)

    def _note(self, what: str) -> None:
        line = f"{time.monotonic():.1f}|socket {self.socket}: {what}"
        if len(self.trace) < 400:  # a walk of ~20 replies and its reconnections fit
            self.trace.append(line)
        self.tail.append(line)

    async def _handle(self, ws: ClientWebSocketResponse, frame: dict[str, Any]) -> None:
        kind = frame.get("type")
        if kind in ("session", "resync", "status", "error"):
            shown = frame.get("history", frame.get("entries"))
            self._note(f"{kind} {frame.get('conversation', '')} {frame.get('status', frame.get('code', ''))}"
                       f"{'' if shown is None else f' {len(shown)} entries'}")  # fmt: skip
        elif kind == "entry" and frame["entry"].get("author") in SHOWN:
            self._note(f"entry {frame['entry'].get('author')}")
        if kind in ("session", "resync") and self.status in FINAL and str(frame.get("status")) not in FINAL:
            self._note("goes on in the next")  # chat.js's goOnInNext: "Nouvelle conversation" no longer due
        if kind == "session":
            self.token, self.opening = str(frame["token"]), None
            if self.token not in self.tokens:
                self.tokens.append(self.token)
            await self._show(ws, frame["history"], live=not self.session_at)  # the first: its greeting
            self.in_session, self.session_at = True, time.monotonic()
            self._follow(frame.get("conversation"), str(frame["status"]))
            self.changed.set()
            await self._end_seen(ws)  # an end shown: what was never acknowledged is sent all the same (chat.js)
            for message_id in list(self.pending):  # chat.js: re-send what was never acknowledged, same id
                await self._send(ws, message_id)
        elif kind == "entry":
            if str(frame["entry"]["id"]).startswith("notice-"):
                self.tally.notices += 1
                self.notices += 1
            else:
                await self._show(ws, [frame["entry"]], live=True)
        elif kind == "resync":
            await self._show(ws, frame["entries"], live=False)
            self._follow(frame.get("conversation"), str(frame["status"]))
            await self._end_seen(ws)
        elif kind == "status":
            self.status = str(frame["status"])
            self.changed.set()
            await self._end_seen(ws)
        elif kind == "ack":
            if self.pending.pop(str(frame["id"]), None) is not None and self.token is not None:
                self.acknowledged[str(frame["id"])] = self.token
                self.acked_at[str(frame["id"])] = time.monotonic()
            elif self.token is None:  # no session frame yet: under which token it was recorded, the page cannot say
                self.acked_unknown.add(str(frame["id"]))
            self.changed.set()
        elif kind == "refused":
            await self._refused(ws, frame)
        elif kind == "error":
            self.tally.errors[str(frame.get("code"))] += 1
            if frame.get("code") == "ended":  # chat.js's onEnded: the end shown, the words kept for the next one
                self.status = "closed" if self.status not in FINAL else self.status
                await self._end_seen(ws)

    def _follow(self, conversation: object, status: str) -> None:
        """chat.js's followConversation (a session or resync frame's conversation, unless that frame's own status is
        final), then the frame's status. Until 2026-12-07 the page's status decided (chat.js's old rule): a resync
        naming the next conversation after an end shown was not followed."""
        if isinstance(conversation, str) and status not in FINAL:
            self.conversation = conversation
        self.status = status

    async def _end_seen(self, ws: ClientWebSocketResponse) -> bool:
        """The conversation's end shown (a final status): read for ``END_READING`` s on the socket it came on, kept
        open (chat.js), then "Nouvelle conversation" pressed (:meth:`_press`) unless a frame named the next
        conversation meanwhile (goOnInNext). True when an end is shown. Until 2026-12-07 the client named no
        conversation in its hello (a drop after a close opened a new one, the end never shown) and stopped at an
        ``ended`` error; until 2026-12-07 (night) it pressed at once, closing the socket the next conversation's
        frames were coming on."""
        if self.status not in FINAL:
            return False
        if self.reading is None or self.reading.done():
            self.reading = asyncio.create_task(self._press(), name=f"webchat-client-{self.number}-end")
        self.changed.set()
        return True

    async def _press(self) -> None:
        """The young person, having read the end, presses "Nouvelle conversation" (chat.js ``newConversation``), if
        the page still shows an end (a frame naming the next conversation moved it on: nothing to press): the
        conversation forgotten, the socket closed, the next hello with the token and no conversation (a new one,
        greeted); the messages not acknowledged stay pending and are sent again after its session, same ids (chat.js
        puts their words back in the message box, sent again from there)."""
        await asyncio.sleep(END_READING)
        if self.status not in FINAL or self.stopping:
            return
        self._note("new conversation pressed")
        self.conversation, self.status, self.in_session = None, "bot", False
        self.new_conversations += 1
        self.renewing = True
        self.changed.set()
        ws = self.ws
        if ws is None or ws.closed:
            self.pressed.set()  # the connection loop waits for it (no socket: connect() at once)
            return
        with contextlib.suppress(ClientError, ConnectionError, RuntimeError):
            await ws.close()

    async def _refused(self, ws: ClientWebSocketResponse, frame: dict[str, Any]) -> None:
        """chat.js's onRefused: a refused message stays pending (sent again, same id, after the next session); a
        refused hello (no id) leaves the socket held, and what is pending is sent on it now."""
        if frame.get("id") is None:
            self.hello_refusals += 1
            self.held_on = self.socket
            self.changed.set()
            if frame.get("reason") != "blocked":
                for message_id in list(self.pending):
                    await self._send(ws, message_id)
            return
        message_id = str(frame["id"])
        self.refused[message_id] += 1
        self.refused_on[message_id] = self.socket
        self.refused_why[message_id] = str(frame.get("reason"))
        self.changed.set()

    async def _show(self, ws: ClientWebSocketResponse, entries: list[dict[str, Any]], *, live: bool) -> None:
        """chat.js's showEntry for each (once per id), then a ``delivered`` receipt for the new bot and listener
        entries."""
        new = []
        for entry in entries:
            entry_id = str(entry["id"])
            self.received[entry_id] += 1
            if self.received[entry_id] == 1:
                if live:
                    self.live.add(entry_id)
                if entry["author"] in SHOWN:
                    new.append(entry_id)
        if new:
            self.replies += len(new)
            self.changed.set()
            with contextlib.suppress(ClientError, ConnectionError, RuntimeError):
                await ws.send_json({"type": "receipt", "status": "delivered", "ids": new[:100]})

    async def _send(self, ws: ClientWebSocketResponse, message_id: str) -> None:
        step = self.pending[message_id]
        frame = {"type": "message", "id": message_id, "text": step.text, "payload": step.payload}
        with contextlib.suppress(ClientError, ConnectionError, RuntimeError):  # closing: sent again after the next
            await ws.send_json(frame)
            self.last_sent[message_id] = time.monotonic()
            self.sent[message_id] += 1
            self.tally.sends += 1
            self.tally.resent += self.sent[message_id] > 1

    async def walk(self, steps: list[Step], gap: float, stop: float, deadline: float) -> None:
        """The walk's messages after its greeting, each ``gap`` s after the previous one was acknowledged, until
        ``stop``; a message is waited for until ``deadline`` (then it stays pending: stuck)."""
        if not await self._until(lambda: self.in_session, deadline):  # the young person reads the greeting first
            return
        for index, step in enumerate(steps[1:], start=1):
            await asyncio.sleep(gap)
            if time.monotonic() >= stop:
                return
            message_id = f"c{self.number}-{index}"  # the page's uuid: unique for its token is all the gateway needs
            self.pending[message_id] = step
            replies = self.replies
            if self.ws is not None and not self.ws.closed and self.status not in FINAL:  # chat.js: open, no end shown
                await self._send(self.ws, message_id)
            if not await self._patiently(functools.partial(self._acknowledged, message_id), message_id, deadline):
                return
            if step.replies and not await self._patiently(functools.partial(self._answered, replies), None, deadline):
                return

    async def _readyz(self) -> str:
        """The instance's ``/readyz`` (which workers are down), for the record of a silent socket."""
        try:
            async with self.session.get(self.url + "/readyz") as response:
                return (await response.text())[:300]
        except (ClientError, TimeoutError) as error:
            return type(error).__name__

    def _acknowledged(self, message_id: str) -> bool:
        return message_id not in self.pending

    def _answered(self, replies: int) -> bool:
        """A reply came, or the bot handed off (a reading of the model may hand off sooner than the walk)."""
        return self.replies > replies or self.status != "bot"

    async def _patiently(self, condition: Callable[[], bool], message_id: str | None, deadline: float) -> bool:
        """Wait until ``condition`` (True) or ``deadline`` (False). ``message_id``'s ack awaited: a socket with its
        session that has not given it ``ACK_PATIENCE`` s after the message was last sent is deaf; else a reply
        awaited: a socket that has not shown one ``REPLY_PATIENCE`` s after its session came and the wait began is
        silent. Either is counted and closed, as a young person reloading the page would do."""
        began = time.monotonic()
        while not condition():
            if time.monotonic() >= deadline or self.stopping:
                return False
            await self._until(condition, time.monotonic() + 1.0)
            if self.ws is None or not self.in_session or condition():
                continue
            if message_id is None and time.monotonic() - max(began, self.session_at) > REPLY_PATIENCE:
                self.tally.silent += 1
                self.tally.silences.append((time.monotonic(), self.url, f"{self.status}; {await self._readyz()}"))
            elif (
                message_id is not None
                and time.monotonic() - max(self.session_at, self.last_sent.get(message_id, 0.0)) > ACK_PATIENCE
            ):
                self.tally.deaf += 1
            else:
                continue
            await self.ws.close()
        return True

    async def flood(self, texts: list[str], pause: float, deadline: float) -> None:
        """A young person typing ``texts`` fast once the greeting is shown: each sent ``pause`` s after the previous
        one, as chat.js's send does (kept pending under its id, sent at once when the socket is open, without
        waiting for the previous one's answer); the page then stays open (a refused one is sent again after each
        session, as chat.js does)."""
        if not await self._until(lambda: self.in_session, deadline):
            return
        self.burst_began = time.monotonic()
        for index, text in enumerate(texts):
            message_id = f"f{self.number}-{index}"
            self.pending[message_id] = Step(text, None, 0)
            self.flooded.append(message_id)
            if self.ws is not None and not self.ws.closed:
                await self._send(self.ws, message_id)
            await asyncio.sleep(pause)

    def answered(self) -> bool:
        """In session, or held (this socket's hello refused: a network at its cap; chat.js shows the notice and waits
        for the young person to write), and every pending message refused on this socket (what chat.js shows "Pas
        encore envoyé"). Until 2026-12-07 (night) a held page was never settled: seed 101 ``--floods --console 2``
        counted 2-4 crowd pages "not settled", each held with nothing to send after "Nouvelle conversation" (a
        listener had closed the conversation its words of danger opened; the network still at its cap)."""
        return (self.in_session or self.held) and all(self.refused_on.get(m) == self.socket for m in self.pending)

    @property
    def held(self) -> bool:
        """The open socket's hello was refused and no session came on it since (chat.js: the notice shown)."""
        return self.ws is not None and not self.in_session and self.held_on == self.socket

    async def settled(self, limit: float) -> bool:
        """Wait (up to ``limit`` s) until the client is in session on a socket with nothing pending but messages
        this socket refused."""
        return await self._until(self.answered, time.monotonic() + limit)

    async def _until(self, condition: Callable[[], bool], deadline: float) -> bool:
        while not condition():
            if time.monotonic() >= deadline or self.stopping:
                return condition()
            self.changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.changed.wait(), timeout=min(1.0, max(0.0, deadline - time.monotonic())))
        return True


@dataclass
class WebChats:
    """The run's web chat clients, each on its own address."""

    session: ClientSession
    pick: Callable[[], str]  # the URL of an instance that is up
    tally: Tally = field(default_factory=Tally)
    clients: list[WebChatClient] = field(default_factory=list)
    floods: list[WebChatClient] = field(default_factory=list)  # ``--floods``' pages, audited apart
    crowd: list[WebChatClient] = field(default_factory=list)  # ``--floods``' pages of one network at its cap
    newcomer: WebChatClient | None = None  # a page of another address, opened once the network is at its cap
    newcomer_wait: float | None = None  # s from its start to its session; None: none within a minute
    crowd_began: float | None = None  # when (monotonic) ``crowd_at_cap`` opened its first page
    danger_sent: float | None = None  # when (monotonic) its refused pages were given their words of danger
    unsettled: list[tuple[int, str, list[str]]] = field(default_factory=list)  # :meth:`settled`'s: number, line, trace
    held_pages: int = 0  # :meth:`settled`'s pages held (their hello refused: a network at its cap), settled or not

    def others(self) -> list[WebChatClient]:
        """The pages audited apart from the walks: floods, the crowd, the newcomer."""
        return [*self.floods, *self.crowd, *([self.newcomer] if self.newcomer is not None else [])]

    def received(self, entry_id: str) -> int:
        """The frames that carried ``entry_id`` to any page, the walks' and the others' (``--console``'s audit: a
        listener's message to a flood's or the crowd's page, whose words of danger put it in the queue). Until
        2026-12-07 (night) the walks' alone: seed 101 ``--floods --console 2`` counted 28 listener messages never
        received."""
        return sum(c.received[entry_id] for c in [*self.clients, *self.others()])

    async def conversation(self, slot: int, number: int, steps: list[Step], gap: float, stop: float,
                           deadline: float) -> None:  # fmt: skip
        address = f"10.{slot % 250}.{number // 250 % 250}.{number % 250 + 1}"
        client = WebChatClient(self.session, self.pick, address, number, self.tally)
        self.clients.append(client)
        client.start()
        await client.walk(steps, gap, stop, deadline)

    async def flood(self, number: int, texts: list[str], pause: float, deadline: float) -> None:
        """One young person's page on an address of its own (``10.251.x.y``: apart from the walks'), bursting."""
        client = WebChatClient(self.session, self.pick, f"10.251.{number // 250}.{number % 250 + 1}", number,
                               self.tally)  # fmt: skip
        self.floods.append(client)
        client.start()
        await client.flood(texts, pause, deadline)

    async def settled(self, limit: float) -> int:
        """Wait (up to ``limit`` s) until every client is in session with nothing pending but what its socket
        refused; those that are not (each described in :attr:`unsettled`, since 2026-12-07: seed 101 ``--floods
        --console 2`` counted 4, which pages unknown)."""
        pages = [*self.clients, *self.others()]
        done = await asyncio.gather(*(c.settled(limit) for c in pages))
        self.unsettled = [
            (c.number, self.unsettled_line(c), list(c.tail)) for c, d in zip(pages, done, strict=True) if not d
        ]
        self.held_pages = sum(c.held for c in pages)
        return sum(not d for d in done)

    def unsettled_line(self, client: WebChatClient) -> str:
        """Which page ``client`` is (a walk's, a flood's, the crowd's, the newcomer) and where it stands, no text."""
        kind = ("walk" if client in self.clients else "flood" if client in self.floods
                else "crowd" if client in self.crowd else "newcomer")  # fmt: skip
        open_ = "no socket" if client.ws is None or client.ws.closed else f"socket {client.socket} open"
        open_ += ", held" if client.held else ""
        pending = ", ".join(f"{m} ({'refused here' if client.refused_on.get(m) == client.socket else 'waiting'})"
                            for m in client.pending)  # fmt: skip
        return (
            f"{kind} page {client.number}: {open_}, in session {client.in_session}, {client.hello_refusals}"
            f" hellos refused, status {client.status}, naming {client.conversation}, pending [{pending}]"
        )

    async def crowd_at_cap(self, pages: int, number: int, danger: str, deadline: float) -> None:
        """``pages`` pages of one client network (``10.252.0.1``: a school's address behind one NAT), opened one
        after the other, each once its session or its refused hello came (beyond the cap, ``max_waiting_per_client``,
        the hello is refused and the socket held); each refused page then sends ``danger`` (chat.js sends what it
        keeps on the held socket: a risky first message opens the conversation, within ``risky_chats_per_network``);
        then a page of another address (``10.253.0.1``), whose session is timed."""
        self.crowd_began = time.monotonic()
        for n in range(pages):
            client = WebChatClient(self.session, self.pick, "10.252.0.1", number + n, self.tally)
            self.crowd.append(client)
            client.start()
            await client._until(lambda c=client: c.in_session or c.hello_refusals > 0, deadline)  # type: ignore[misc]
        self.danger_sent = time.monotonic()
        for client in self.crowd:
            if not client.in_session and client.hello_refusals:
                message_id = f"k{client.number}"
                client.pending[message_id] = Step(danger, None, 0)
                client.flooded.append(message_id)
                if client.ws is not None and not client.ws.closed:
                    await client._send(client.ws, message_id)
        began = time.monotonic()
        self.newcomer = WebChatClient(self.session, self.pick, "10.253.0.1", number + pages, self.tally)
        self.newcomer.start()
        if await self.newcomer._until(lambda: self.newcomer is not None and self.newcomer.in_session, began + 60):
            self.newcomer_wait = time.monotonic() - began

    async def stop(self) -> None:
        await asyncio.gather(*(c.stop() for c in [*self.clients, *self.others()]))


@dataclass
class WebChatAudit:
    """The web chat's figures, from the clients and the store."""

    conversations: int = 0  # clients
    unsettled: int = 0  # neither in session nor held, or something pending, at the audit
    held: int = 0  # held at the audit (a hello refused at a network's cap; settled when nothing is pending)
    held_open: int = 0  # … of them with a conversation of their own open (:func:`held_with_open`: never)
    acknowledged: int = 0
    processed_once: int = 0
    never_processed: int = 0
    never_at_failover: int = 0  # … of them acknowledged within 2 s of a failover (``lost_at``; since 2026-12-07)
    recorded_twice: int = 0
    still_pending: int = 0  # messages never acknowledged (given up): stuck
    replies_recorded: int = 0  # bot and listener entries of the clients' conversations
    received: int = 0
    never_received: int = 0  # stuck: recorded, never reached the page
    caught_up: int = 0  # received first through a session's history or a resync, not an entry frame
    repeated: int = 0  # frames carrying an entry id the client had already (shown once, as chat.js does)
    phantoms: int = 0  # distinct ids received that no transcript records: shown twice, or a reply lost after
    orphans: int = 0  # web chat conversations no client holds the token of (a drop before the first session)
    orphans_empty: int = 0  # … of which without an engine state (the hello failed before the greeting)
    empty_engine: int = 0
    gone_armed: int = 0  # gone timers armed on a conversation whose page is open (in session) at the audit
    marked_gone: int = 0  # conversations marked as left "gone" while their page is open
    missing: list[str] = field(default_factory=list)  # a few examples, without any text
    traces: dict[int, list[str]] = field(default_factory=dict)  # the pages that missed one: what they were told
    unsettled_lines: list[str] = field(default_factory=list)  # the pages not settled: which, and their last frames
    flood: WebFlood = field(default_factory=lambda: WebFlood())
    crowd: Crowd = field(default_factory=lambda: Crowd())


@dataclass
class Crowd:
    """One client network's pages beyond its cap, and a page of another address opened then."""

    pages: int = 0
    opened: int = 0  # pages whose first hello opened a session (at most the cap)
    refused: int = 0  # pages whose hello was refused (the network at its cap)
    told: int = 0  # … of which shown the notice
    danger_acked: int = 0  # refused pages whose words of danger were acknowledged and recorded once
    danger_not: int = 0  # … refused, or never answered, or recorded other than once: silenced
    why_not: Counter[str] = field(default_factory=Counter)  # ``danger_not``'s pages by :func:`crowd_miss` (no text)
    newcomer: str = "none"  # another address's page: its session's wait, or "no session"
    began: float | None = None  # when (monotonic) its first page opened, and its words of danger were sent
    danger_sent: float | None = None


def crowd_miss(client: WebChatClient, message_id: str, times: int, anywhere: int, at_failover: bool) -> str | None:
    """Why a refused page's words of danger are not "acknowledged and recorded once" (None: they are), in words
    that name no one and quote nothing (since 2026-12-07; until then the line gave only the count): ``times``, how
    often the store records the message under the page's tokens; ``anywhere``, under any web chat token (more:
    recorded under a token no session frame gave the page, the audit's blind spot); ``at_failover``, its ack came
    within 2 s of a failover (never recorded then: the documented replication loss without
    ``GATEWAY_REDIS_REPLICA_ACKS``)."""
    acked = message_id in client.acknowledged
    if acked and times == 1:
        return None
    where = f"{client.socket} sockets, {client.hello_refusals} hellos refused"
    if acked and times == 0:
        if anywhere:
            return f"acknowledged, recorded {anywhere} under a token the page never got (the audit's); {where}"
        return f"acknowledged, never recorded{' (within a failover window)' if at_failover else ''}; {where}"
    if acked:
        return f"acknowledged, recorded {times} times; {where}"
    if message_id in client.acked_unknown:
        return f"acknowledged before any session frame (no token), recorded {anywhere}; {where}"
    if client.refused[message_id]:
        why = client.refused_why.get(message_id, "?")
        return f"refused {why} ({client.refused[message_id]} frames), recorded {anywhere}; {where}"
    if not client.sent[message_id]:
        return f"never sent (no socket held it), recorded {anywhere}; {where}"
    return f"sent {client.sent[message_id]} times, never acknowledged nor refused, recorded {anywhere}; {where}"


def audit_crowd(chats: WebChats, users: Counter[str], crowd: Crowd, tokens: Collection[str] = (),
                lost_at: Callable[[float], bool] | None = None) -> None:  # fmt: skip
    """The crowd's pages against the store (``users``: user entry id → times recorded; ``tokens``: every web chat
    conversation's token in the store, to find a message recorded under one the page never got)."""
    crowd.pages = len(chats.crowd)
    for client in chats.crowd:
        crowd.opened += not client.hello_refusals
        crowd.refused += client.hello_refusals > 0
        crowd.told += client.hello_refusals > 0 and client.notices > 0
        for message_id in client.flooded:
            times = sum(users[inbound_entry_id(Inbound(ChannelName.WEBCHAT, t, message_id))] for t in client.tokens)
            anywhere = sum(users[inbound_entry_id(Inbound(ChannelName.WEBCHAT, t, message_id))] for t in tokens)
            at = client.acked_at.get(message_id)
            miss = crowd_miss(
                client, message_id, times, anywhere, lost_at is not None and at is not None and lost_at(at)
            )
            crowd.danger_acked += miss is None
            crowd.danger_not += miss is not None
            if miss is not None:
                crowd.why_not[miss] += 1
    crowd.began, crowd.danger_sent = chats.crowd_began, chats.danger_sent
    if chats.newcomer is not None:
        crowd.newcomer = "no session" if chats.newcomer_wait is None else f"{chats.newcomer_wait:.1f} s"


@dataclass(frozen=True)
class FloodRules:
    """The gate's rules a flood page is audited against (bench/chaos.py's, from the settings' defaults)."""

    limit: int  # limit_messages_per_conversation, a minute's window from the first message
    risky: int  # limit_risky_messages_per_conversation: words of danger past the limit let on
    unread: int  # plain words past the limit let on unread (the model busy, late, loading), counted apart
    danger_at: frozenset[int]  # the burst's indexes of words of danger


@dataclass
class WebFlood:
    """The web chat's flood pages, each message against the gate's rules and chat.js's: recorded once and
    acknowledged, or refused (a ``refused`` frame; the notice once a minute per socket) and not recorded; never both,
    never neither."""

    senders: int = 0
    sent: int = 0
    once: int = 0  # acknowledged, recorded once
    twice: int = 0  # recorded more than once
    lost: int = 0  # acknowledged, never recorded
    lost_at_failover: int = 0  # … of them acknowledged within 2 s of a failover (``lost_at``; since 2026-12-07)
    refused: int = 0  # refused (the page shows "Pas encore envoyé"), never recorded
    both: int = 0  # recorded, and the page still shows it refused
    neither: int = 0  # never recorded, never acknowledged, never refused: silently dropped
    unanswered: int = 0  # recorded, neither acknowledged nor refused: the page still shows it waiting
    later: int = 0  # refused, then let on when sent again after a session (a new window, or unread): recorded
    within_refused: int = 0  # among the first ``limit``: not recorded
    danger: int = 0
    danger_recorded: int = 0
    silenced: int = 0  # words of danger not recorded that the risky bound does not explain
    past_bound: int = 0  # recorded in the burst's first minute beyond limit + risky + unread: a flood let in
    refusals: int = 0  # refused frames
    notices: int = 0  # the notices shown (after a refused frame, once a minute per socket)
    sockets: Counter[int] = field(default_factory=Counter)  # sockets a page opened → pages


def audit_flood(client: WebChatClient, users: Counter[str], rules: FloodRules, flood: WebFlood,
                lost_at: Callable[[float], bool] | None = None) -> None:  # fmt: skip
    """One flood page's messages against the store (``users``: user entry id → times recorded); ``lost_at``: whether
    an ack came within 2 s of a failover (an acknowledged message lost then is replication's documented loss; until
    2026-12-07 the line did not tell them apart)."""
    flood.senders += 1
    flood.sockets[client.socket] += 1
    flood.refusals += sum(client.refused.values())
    flood.notices += client.notices
    recorded: list[tuple[int, int, bool]] = []  # (index, times, in the burst's first minute)
    for index, message_id in enumerate(client.flooded):
        times = sum(users[inbound_entry_id(Inbound(ChannelName.WEBCHAT, t, message_id))] for t in client.tokens)
        acked, refused = message_id in client.acknowledged, client.refused[message_id] > 0
        flood.sent += 1
        flood.twice += times > 1
        flood.once += acked and times == 1
        flood.lost += acked and times == 0
        at = client.acked_at.get(message_id)
        flood.lost_at_failover += acked and times == 0 and lost_at is not None and at is not None and lost_at(at)
        flood.refused += not acked and refused and times == 0
        flood.both += not acked and refused and times > 0
        flood.neither += not acked and not refused and times == 0
        flood.unanswered += not acked and not refused and times > 0
        flood.later += acked and refused
        flood.within_refused += index < rules.limit and times == 0
        danger = index in rules.danger_at
        flood.danger += danger
        flood.danger_recorded += danger and times > 0
        first_minute = client.acked_at.get(message_id, client.burst_began) - client.burst_began < 60
        recorded.append((index, times, first_minute))
    past = [(i, t) for i, t, first in recorded if i >= rules.limit and first]
    danger_past = [t for i, t in past if i in rules.danger_at]
    filler_past = [t for i, t in past if i not in rules.danger_at]
    flood.silenced += sum(i < rules.limit and i in rules.danger_at and t == 0 for i, t, _ in recorded)
    flood.silenced += max(0, min(len(danger_past), rules.risky) - sum(t > 0 for t in danger_past))
    bound = rules.limit + min(len(danger_past), rules.risky) + min(len(filler_past), rules.unread)
    flood.past_bound += max(0, sum(t > 0 for _, t, first in recorded if first) - bound)


def held_with_open(pages: Iterable[WebChatClient], active: Collection[str]) -> int:
    """The pages held at the audit (their hello refused) while a token of theirs has an open conversation
    (``active``): the gateway's rule is that a page's own open conversation resumes whatever its network's cap
    (``ChatSession._refuse_hello``), so this is 0. Since 2026-12-07 (night)."""
    return sum(page.held and any(token in active for token in page.tokens) for page in pages)


async def audit_webchat(store_url: str, chats: WebChats, rules: FloodRules | None = None,
                        lost_at: Callable[[float], bool] | None = None) -> WebChatAudit:  # fmt: skip
    """The audit of the clients against the store (every acknowledged message recorded once, every reply received,
    none shown twice), and of the flood pages against ``rules`` (:func:`audit_flood`). ``lost_at``: whether an ack
    at that time (monotonic) came within a failover's loss (``bench/chaos.py --sentinel``: those never recorded are
    counted apart; since 2026-12-07)."""
    from gateway.store import Author, TimerKind, open_store

    result = WebChatAudit(conversations=len(chats.clients))
    store = await open_store(store_url, keys=store_keys(store_url))
    try:
        users: Counter[str] = Counter()
        replies: dict[str, list[str]] = {}  # token → its conversations' bot and listener entry ids
        where: dict[str, str] = {}  # entry id → its conversation and author, for a page that never received it
        recorded: set[str] = set()
        senders: list[tuple[str, bool]] = []  # each web chat conversation's token, and whether it has an engine state
        open_pages = {c.token for c in chats.clients if c.in_session}
        active: set[str] = set()  # the tokens with an open conversation
        page_of: dict[str, str] = {}  # conversation id → token, for the conversations whose page is open
        for conversation in await store.list_conversations(datetime(2000, 1, 1, tzinfo=UTC),
                                                           datetime.now(UTC) + timedelta(days=1)):  # fmt: skip
            if conversation.channel is not ChannelName.WEBCHAT:
                continue
            result.empty_engine += not conversation.engine
            if conversation.active:
                active.add(conversation.sender)
            senders.append((conversation.sender, bool(conversation.engine)))
            if conversation.sender in open_pages and conversation.active:
                page_of[conversation.id] = conversation.sender
                result.marked_gone += conversation.left_how == "gone"
            for entry in await store.transcript(conversation.id):
                recorded.add(entry.id)
                if entry.author is Author.USER:
                    users[entry.id] += 1
                elif entry.author in (Author.BOT, Author.LISTENER):
                    replies.setdefault(conversation.sender, []).append(entry.id)
                    where[entry.id] = f"{conversation.id} {entry.author.value} {conversation.status.value}"
        timers = await store.due_timers(datetime.now(UTC) + timedelta(days=1), limit=1_000_000)
        result.gone_armed = sum(t.kind is TimerKind.WEBCHAT_GONE and t.conversation_id in page_of for t in timers)
        known = {token for client in [*chats.clients, *chats.others()] for token in client.tokens}
        result.orphans = sum(token not in known for token, _ in senders)
        result.orphans_empty = sum(token not in known and not engine for token, engine in senders)
        for client in [*chats.clients, *chats.others()]:
            for message_id, token in client.acknowledged.items() if client in chats.clients else ():
                times = users[inbound_entry_id(Inbound(ChannelName.WEBCHAT, token, message_id))]
                result.acknowledged += 1
                result.processed_once += times == 1
                result.never_processed += times == 0
                at = client.acked_at.get(message_id)
                result.never_at_failover += times == 0 and lost_at is not None and at is not None and lost_at(at)
                result.recorded_twice += times > 1
            result.still_pending += len(client.pending) if client in chats.clients else 0
            for token in client.tokens:
                for entry_id in replies.get(token, []):
                    result.replies_recorded += 1
                    if client.received[entry_id]:
                        result.received += 1
                        result.caught_up += entry_id not in client.live
                    else:
                        result.never_received += 1
                        if len(result.missing) < 10:
                            result.missing.append(f"client {client.number} ({len(client.tokens)} tokens), "
                                                  f"{client.socket} sockets: {where[entry_id]}")  # fmt: skip
                        result.traces.setdefault(client.number, client.trace)
            result.repeated += sum(n - 1 for n in client.received.values())
            result.phantoms += sum(entry_id not in recorded for entry_id in client.received)
        result.held_open = held_with_open([*chats.clients, *chats.others()], active)
        if rules is not None:
            for client in chats.floods:
                audit_flood(client, users, rules, result.flood, lost_at)
        audit_crowd(chats, users, result.crowd, {token for token, _ in senders}, lost_at)
    finally:
        await store.close()
    return result


def since(line: str, began: float) -> str:
    at, rest = line.split("|", 1)
    return f"{float(at) - began:.1f} s {rest}"


def show_webchat(result: WebChatAudit, tally: Tally, began: float) -> None:
    closes = ", ".join(f"{k} {n}" for k, n in tally.closes.most_common(6))
    print(
        f"webchat: {result.conversations:,} conversations (sockets), {result.acknowledged:,} messages acknowledged;"
        f" inbound processed once {result.processed_once:,}, never {result.never_processed}"
        f" ({result.never_at_failover} acknowledged within a failover's window), twice or more"
        f" {result.recorded_twice}; never acknowledged {result.still_pending}; empty engine states"
        f" {result.empty_engine}; orphan conversations {result.orphans}"
        f" ({result.orphans_empty} without an engine state); with their page open: gone timers armed"
        f" {result.gone_armed}, marked gone {result.marked_gone}"
    )
    print(
        f"  sockets: {tally.connections:,} connections, ended by {closes or 'nothing'}; message frames"
        f" {tally.sends:,} ({tally.resent:,} resent); deaf sockets {tally.deaf}, silent {tally.silent};"
        f" notices {tally.notices}; error frames {dict(tally.errors) or 'none'}; not settled at the audit"
        f" {result.unsettled} (held {result.held}, of them with a conversation of their own open {result.held_open})"
    )
    print(
        f"  replies: {result.replies_recorded:,} recorded, {result.received:,} received ({result.caught_up:,} by a"
        f" catch-up), never {result.never_received}; repeated frames {result.repeated:,} (shown once);"
        f" shown twice (phantoms) {result.phantoms}"
    )
    for line in result.unsettled_lines:
        print(f"    not settled: {line}")
    for line in result.missing:
        print(f"    never received: {line}")
    for number, trace in list(result.traces.items())[:3]:  # since 2026-12-07: what the page followed, and when
        print(f"    client {number}'s frames (no text): " + "; ".join(since(line, began) for line in trace))
    flood = result.flood
    if flood.senders:
        print(
            f"  floods: {flood.senders} pages, {flood.sent} messages; acknowledged and recorded once {flood.once},"
            f" twice or more {flood.twice}, acknowledged and lost {flood.lost} ({flood.lost_at_failover}"
            f" within a failover's window); refused {flood.refused} (never recorded of the first minute's limit:"
            f" {flood.within_refused}), refused then let on when sent again {flood.later};"
            f" refused and recorded (both) {flood.both}, neither {flood.neither}, recorded and unanswered"
            f" {flood.unanswered}; words of danger {flood.danger_recorded}/{flood.danger} recorded, silenced beyond"
            f" the bound {flood.silenced}; recorded past the bound {flood.past_bound}; refused frames"
            f" {flood.refusals}, notices {flood.notices}; sockets per page {dict(sorted(flood.sockets.items()))}"
        )
    crowd = result.crowd
    if crowd.pages:
        print(
            f"  one network at its cap: {crowd.pages} pages, {crowd.opened} opened at once, {crowd.refused} refused"
            f" ({crowd.told} told); their words of danger acknowledged and recorded once {crowd.danger_acked},"
            f" otherwise {crowd.danger_not}; another address's page in session after {crowd.newcomer}"
        )
        if crowd.began is not None and crowd.danger_sent is not None:
            print(
                f"    pages opened from {crowd.began - began:.1f} s, words of danger sent at"
                f" {crowd.danger_sent - began:.1f} s"
            )
        for why, pages in crowd.why_not.most_common():
            print(f"    words of danger otherwise ({pages} pages): {why}")
    for at, url, readyz in tally.silences[:10]:
        print(f"    silent at {at - began:.1f} s on :{url.rsplit(':', 1)[-1]}: status and /readyz {readyz}")
