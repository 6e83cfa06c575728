"""The web chat: the websocket behind ``/chat`` and the widget (protocol: docs/webchat-protocol.md).

The young person's session token (kept in their browser) is their address on this channel. Outgoing messages
reach the page through the store's events, so the chat works the same with several gateway instances: each
instance forwards the events of the conversations whose sockets it holds. Private notes never leave.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import weakref
from collections import defaultdict
from typing import Any

from aiohttp import WSMsgType, web

from gateway.conversation import Conversation, Status
from gateway.dispatcher import Dispatcher, entry_event
from gateway.flows import lifecycle
from gateway.gate import Gate, Refusal
from gateway.messages import ChannelName, Inbound, Reply
from gateway.ratelimit import Limit, client_address
from gateway.store import Author, Store

log = logging.getLogger(__name__)

MAX_FRAME = 16 * 1024
MAX_TEXT = 4000
HIDDEN = {Author.NOTE.value}


class WebChatHub:
    """Which sockets follow which conversation, and the forwarding of events to them."""

    def __init__(self, store: Store, dispatcher: Dispatcher, gate: Gate, *, address_header: str = "") -> None:
        self.store = store
        self.dispatcher = dispatcher
        self.gate = gate
        self.address_header = address_header
        self.sockets: dict[str, set[web.WebSocketResponse]] = defaultdict(set)
        self.open: weakref.WeakSet[web.WebSocketResponse] = weakref.WeakSet()  # every socket, for shutdown

    def attach(self, conversation_id: str, ws: web.WebSocketResponse) -> None:
        for followers in self.sockets.values():
            followers.discard(ws)
        self.sockets[conversation_id].add(ws)

    def detach(self, ws: web.WebSocketResponse) -> None:
        for conversation_id in [c for c, s in self.sockets.items() if ws in s]:
            self.sockets[conversation_id].discard(ws)
            if not self.sockets[conversation_id]:
                del self.sockets[conversation_id]

    async def forward_events(self) -> None:
        """Runs for the app's lifetime: store events → the sockets of their conversation."""
        subscription = await self.store.subscribe()
        try:
            async for event in subscription:
                conversation_id = event.get("conversation_id")
                if isinstance(conversation_id, str) and conversation_id in self.sockets:
                    frame = await self._frame(event)
                    if frame is not None:
                        await self._send_all(conversation_id, frame)
        finally:
            await subscription.aclose()

    async def _frame(self, event: dict[str, Any]) -> dict[str, Any] | None:
        kind = event.get("type")
        if kind == "entry" and event["entry"]["author"] not in HIDDEN:
            return {"type": "entry", "entry": _public(event["entry"])}
        if kind == "typing" and event.get("who") == "listener":
            return {"type": "typing", "on": True}
        if kind == "status":
            frame: dict[str, Any] = {"type": "status", "status": event["status"]}
            if event["status"] == Status.QUEUED.value:
                frame["position"] = await self.store.position(event["conversation_id"])
            return frame
        return None

    async def _send_all(self, conversation_id: str, frame: dict[str, Any]) -> None:
        for ws in list(self.sockets.get(conversation_id, ())):
            if not ws.closed:
                await ws.send_json(frame)


def _public(entry: dict[str, Any]) -> dict[str, Any]:
    return {k: entry[k] for k in ("id", "author", "text", "choices", "at")}


class ChatSession:
    """One websocket connection of one young person."""

    def __init__(self, hub: WebChatHub, ws: web.WebSocketResponse, address: str = "") -> None:
        self.hub, self.ws = hub, ws
        self.dispatcher = hub.dispatcher
        self.gate = hub.gate
        self.address = address  # only ever used through a keyed hash
        self.token: str | None = None
        self.conversation_id: str | None = None
        self.language: str | None = None

    async def run(self) -> None:
        try:
            async for message in self.ws:
                if message.type == WSMsgType.TEXT:
                    await self._handle_text(message.data)
        finally:
            self.hub.detach(self.ws)

    async def _handle_text(self, data: str) -> None:
        frame = _parse_frame(data)
        if frame is None:
            await self._error("bad_frame", "frame refused: JSON object with a known type, at most 16 KiB")
            return
        kind = frame["type"]
        if kind == "hello":
            await self._hello(frame)
        elif self.token is None:
            await self._error("no_session", "send hello first")
        elif kind == "message":
            await self._message(frame)
        elif kind == "typing" and self.conversation_id and await self.gate.limits.allow(Limit.TYPING, self.token):
            await self.hub.store.publish({"type": "typing", "conversation_id": self.conversation_id, "who": "user"})
        elif kind == "end":
            await self._end()

    async def _hello(self, frame: dict[str, Any]) -> None:
        token = frame.get("token")
        valid = isinstance(token, str) and 20 <= len(token) <= 100 and token.replace("-", "").replace("_", "").isalnum()
        token = token if valid and isinstance(token, str) else secrets.token_urlsafe(24)
        language = frame["language"] if frame.get("language") in ("fr", "en") else None
        self.language = language
        refusal = await self._refuse_hello(token)
        if refusal is not None:
            await self._notice(refusal)
            return
        self.token = token
        conversation = await self.dispatcher.start_conversation(ChannelName.WEBCHAT, self.token, language)
        if conversation.client is None:
            conversation = await self._mark_client(conversation)
        await self._follow(conversation)
        history = [
            _public(entry_event(e)) for e in await self.hub.store.transcript(conversation.id)
            if e.author.value not in HIDDEN
        ]  # fmt: skip
        status: dict[str, Any] = {"type": "session", "token": self.token, "status": conversation.status.value}
        status["language"] = self.dispatcher.language(conversation, self.dispatcher.flows.for_version(
            conversation.flow_version))
        self.language = str(status["language"])
        status["history"] = history
        if conversation.status == Status.QUEUED:
            status["position"] = await self.hub.store.position(conversation.id)
        await self.ws.send_json(status)

    async def _message(self, frame: dict[str, Any]) -> None:
        assert self.token is not None
        message_id, text, payload = frame.get("id"), frame.get("text", ""), frame.get("payload")
        if not (isinstance(message_id, str) and 0 < len(message_id) <= 64) or not isinstance(text, str):
            await self._error("bad_frame", "a message needs an id (at most 64 characters) and a text")
            return
        if len(text) > MAX_TEXT or (payload is not None and not (isinstance(payload, str) and len(payload) <= 200)):
            await self._error("too_long", f"a message has at most {MAX_TEXT} characters")
            return
        inbound = Inbound(ChannelName.WEBCHAT, self.token, message_id, text=text, payload=payload)
        refusal = await self.gate.check(inbound)
        if refusal is not None:  # not recorded, not acknowledged: the young person may send it again
            await self._notice(refusal)
            return
        await self.dispatcher.handle_inbound(inbound)
        conversation, _ = await self.hub.store.active_conversation(
            ChannelName.WEBCHAT, self.token, self.dispatcher.clock()
        )
        await self._follow(conversation)
        await self.ws.send_json({"type": "ack", "id": message_id})

    async def _refuse_hello(self, token: str) -> Refusal | None:
        """A blocked browser, or a new conversation beyond this client's limits (an existing one always resumes)."""
        if await self.gate.blocked(ChannelName.WEBCHAT, token):
            return Refusal.BLOCKED
        if await self.hub.store.find_active_conversation(ChannelName.WEBCHAT, token) is not None:
            return None
        return await self.gate.new_chat(token, self.address)

    async def _mark_client(self, conversation: Conversation) -> Conversation:
        """Remember (as a keyed hash) which client address opened the conversation: its waiting ones are capped."""
        async with self.hub.store.lock(conversation.id):
            current = await self.hub.store.get_conversation(conversation.id) or conversation
            current.client = self.gate.client_key(self.address)
            await self.hub.store.save_conversation(current)
        return current

    async def _notice(self, refusal: Refusal) -> None:
        """A calm notice with the emergency numbers, shown like a bot message; nothing is stored."""
        text, now = self.gate.notice(refusal, self.language), self.dispatcher.clock().isoformat()
        entry = {"id": "notice-" + secrets.token_urlsafe(8), "author": "bot", "choices": [], "text": text, "at": now}
        await self.ws.send_json({"type": "entry", "entry": entry})

    async def _follow(self, conversation: Conversation) -> None:
        self.conversation_id = conversation.id
        self.hub.attach(conversation.id, self.ws)

    async def _end(self) -> None:
        assert self.token is not None
        if self.conversation_id is not None:
            await end_by_young_person(self.dispatcher, self.conversation_id)

    async def _error(self, code: str, message: str) -> None:
        await self.ws.send_json({"type": "error", "code": code, "message": message})


async def end_by_young_person(dispatcher: Dispatcher, conversation_id: str) -> None:
    """The young person ends the conversation: goodbye message, then closed (or abandoned while waiting)."""
    store = dispatcher.store
    async with store.lock(conversation_id):
        conversation = await store.get_conversation(conversation_id)
        if conversation is None or not conversation.active:
            return
        now = dispatcher.clock()
        engine = dispatcher.flows.for_version(conversation.flow_version)
        ended = engine.message("ended", dispatcher.language(conversation, engine))
        await dispatcher.emit(conversation, [Reply(ended)], Author.BOT, now)
        action = {Status.BOT: "end", Status.QUEUED: "abandon"}.get(conversation.status, "close")
        if action == "close":
            conversation.outcome = conversation.outcome or "ended_by_young_person"
        await dispatcher.set_status(conversation, lifecycle.advance(conversation.status, action), now)
        await store.save_conversation(conversation)


def _parse_frame(data: str) -> dict[str, Any] | None:
    if len(data) > MAX_FRAME:
        return None
    try:
        frame = json.loads(data)
    except ValueError:
        return None
    if not isinstance(frame, dict) or frame.get("type") not in ("hello", "message", "typing", "end"):
        return None
    return frame


async def chat_socket(request: web.Request, hub: WebChatHub) -> web.WebSocketResponse:
    ws = web.WebSocketResponse(heartbeat=25, max_msg_size=MAX_FRAME * 4)  # larger: closed with 1009
    await ws.prepare(request)
    hub.open.add(ws)
    try:
        await ChatSession(hub, ws, client_address(request, hub.address_header)).run()
    except asyncio.CancelledError:
        raise
    return ws
