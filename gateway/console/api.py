"""The listener API (HTTP + websocket) under ``/api``; documented in docs/api.md.

Every route but ``POST /api/session`` needs a console session cookie; supervisor-only routes say so. Bodies are
JSON (a cross-site form cannot send JSON, which with SameSite=Strict cookies closes CSRF). A listener sees a
conversation's pseudonym and channel, never the sender's address.
"""

from __future__ import annotations

import asyncio
import json
import time
import weakref
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any

from aiohttp import web

from gateway.clock import Clock
from gateway.console.actions import ActionRefused, Actions
from gateway.console.auth import SESSION_COOKIE, SESSION_HOURS, SessionSigner
from gateway.console.events import ConsoleEvents
from gateway.console.logins import Busy, Lock, Logins
from gateway.console.media import console_transcript
from gateway.console.presence import Presence
from gateway.conversation import Conversation, Status
from gateway.dispatcher import Dispatcher
from gateway.events import Alert, Typing, entry_json
from gateway.flowset import FlowSet
from gateway.metrics import Metrics
from gateway.ratelimit import Limit, RateLimits, client_address
from gateway.sockets import SocketWriter
from gateway.store import AuditEntry, Listener, Store

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
LISTENER = web.RequestKey("listener", Listener)
HISTORY_DAYS = 30  # how far back a listener's ended conversations are listed ("Mes conversations", history)
HISTORY_LIMIT = 50


class ListenerAPI:
    def __init__(
        self, store: Store, dispatcher: Dispatcher, actions: Actions, flows: FlowSet, signer: SessionSigner,
        *, secure_cookies: bool, presence: Presence, live: ConsoleEvents, metrics: Metrics, logins: Logins,
        limits: RateLimits, clock: Clock, address_header: str = "",
    ) -> None:  # fmt: skip
        self.store, self.dispatcher, self.actions, self.flows = store, dispatcher, actions, flows
        self.clock = clock
        self.signer, self.secure_cookies, self.presence = signer, secure_cookies, presence
        self.live, self.metrics = live, metrics
        self.logins, self.limits, self.address_header = logins, limits, address_header
        self.open: weakref.WeakSet[SocketWriter] = weakref.WeakSet()  # live sockets, closed at shutdown

    def routes(self) -> list[web.RouteDef]:
        c = "/api/conversations/{id}"
        return [
            web.post("/api/session", self.login),
            web.delete("/api/session", self.authed(self.logout)),
            web.get("/api/me", self.authed(self.me)),
            web.get("/api/queue", self.authed(self.queue)),
            web.get("/api/history", self.authed(self.history)),
            web.get("/api/flow", self.authed(self.flow_material)),
            web.get(c, self.authed(self.conversation)),
            web.post(c + "/take", self.authed(self.take)),
            web.post(c + "/messages", self.authed(self.message)),
            web.post(c + "/notes", self.authed(self.note)),
            web.post(c + "/refer", self.authed(self.refer)),
            web.post(c + "/transfer", self.authed(self.transfer)),
            web.post(c + "/hand-back", self.authed(self.hand_back)),
            web.post(c + "/close", self.authed(self.close)),
            web.post(c + "/typing", self.authed(self.typing)),
            web.get("/api/events", self.authed(self.events)),
        ]

    # ----- sessions ---------------------------------------------------------------------------------------

    async def listener_for(self, request: web.Request) -> Listener | None:
        session = self.signer.read(request.cookies.get(SESSION_COOKIE, ""))
        return await self.store.get_listener(session.name) if session else None

    def authed(self, handler: Handler, *, supervisor: bool = False) -> Handler:
        async def wrapper(request: web.Request) -> web.StreamResponse:
            listener = await self.listener_for(request)
            if listener is None:
                return _error(401, "login_required", "log in first")
            if supervisor and not listener.supervisor:
                return _error(403, "supervisors_only", "for supervisors only")
            request[LISTENER] = listener
            if request.method not in ("GET", "HEAD") and not await self._write_allowed(request, listener):
                return _error(429, "too_many_requests", "too many actions in a short time: wait a moment")
            try:
                return await handler(request)
            except ActionRefused as exc:
                return _error(_STATUS.get(exc.code, 409), exc.code, str(exc))

        return wrapper

    async def login(self, request: web.Request) -> web.Response:
        body = await json_body(request)
        name, password = body.get("name"), body.get("password")
        if not isinstance(name, str) or not isinstance(password, str):
            return _error(400, "bad_request", "name and password are required")
        address = client_address(request, self.address_header)
        wait = await self.logins.brake.wait_seconds(name, address)
        if wait:
            self.metrics.refused.labels("login_braked").inc()
            return _error(429, "too_many_attempts", f"too many wrong passwords: try again in {wait} s",
                          headers={"Retry-After": str(wait)})  # fmt: skip
        try:
            listener = await self.logins.authenticate(self.store, name, password, address)
        except Busy:
            self.metrics.refused.labels("login_busy").inc()
            return _error(429, "busy", "too many logins at once: try again", headers={"Retry-After": "1"})
        if listener is None:
            return _error(401, "bad_credentials", "wrong name or password")
        response = web.json_response(_me(listener))
        response.set_cookie(
            SESSION_COOKIE, self.signer.issue(listener.name), max_age=SESSION_HOURS * 3600, httponly=True,
            samesite="Strict", secure=self.secure_cookies, path="/",
        )  # fmt: skip
        return response

    async def _write_allowed(self, request: web.Request, listener: Listener) -> bool:
        if request.path.endswith("/typing"):
            return await self.limits.allow(Limit.TYPING, "listener:" + listener.name)
        return await self.limits.allow(Limit.LISTENER_WRITES, listener.name)

    async def announce_lock(self, account: str, lock: Lock) -> None:
        """A login lock, told to the supervisors: an audit entry, and an alert on the live events."""
        subject = account if lock.subject == "account" else "(an address)"
        detail = f"too many wrong passwords: locked for {lock.minutes} min"
        await self.store.audit(AuditEntry(self.clock(), "gateway", "login_locked", subject, detail))
        await self.store.publish(Alert("login_locked", subject, detail))

    async def logout(self, request: web.Request) -> web.Response:
        response = web.Response(status=204)
        response.del_cookie(SESSION_COOKIE, path="/")
        return response

    async def me(self, request: web.Request) -> web.Response:
        return web.json_response(_me(request[LISTENER]))

    # ----- reading ----------------------------------------------------------------------------------------

    async def queue(self, request: web.Request) -> web.Response:
        now = self.clock()
        waiting = []
        for entry in await self.store.waiting():
            conversation = await self.store.get_conversation(entry.conversation_id)
            if conversation is not None:
                waiting.append({**self.card(conversation, now), "priority": entry.priority.value,
                                "waiting_seconds": int((now - entry.at).total_seconds())})  # fmt: skip
        mine = [
            self.card(c, now) for c in await self.store.conversations_by_status(Status.WITH_LISTENER)
            if c.listener == request[LISTENER].name
        ]  # fmt: skip
        return web.json_response({"waiting": waiting, "mine": mine})

    async def history(self, request: web.Request) -> web.Response:
        """The listener's own ended conversations of the last HISTORY_DAYS days, the latest ended first."""
        now, name = self.clock(), request[LISTENER].name
        started = await self.store.list_conversations(now - timedelta(days=HISTORY_DAYS), now + timedelta(seconds=1))
        ended = [c for c in started if not c.active and c.listener == name]
        ended.sort(key=lambda c: c.closed_at or c.updated_at, reverse=True)
        return web.json_response({"ended": [
            {**self.card(c, now), "outcome": c.outcome, "closed_at": c.closed_at.isoformat() if c.closed_at else None}
            for c in ended[:HISTORY_LIMIT]
        ]})  # fmt: skip

    def card(self, conversation: Conversation, now: datetime) -> dict[str, Any]:
        """What a listener may see of a conversation: never the sender's address."""
        engine = self.flows.for_version(conversation.flow_version)
        return {
            "id": conversation.id, "pseudonym": conversation.pseudonym, "channel": conversation.channel.value,
            "status": conversation.status.value, "queue": conversation.queue, "priority": conversation.priority.value,
            "listener": conversation.listener, "language": self.dispatcher.language(conversation, engine),
            "summary": [list(pair) for pair in conversation.summary], "route": conversation.route,
            "flag": conversation.flag.to_dict() if conversation.flag else None,
            "created_at": conversation.created_at.isoformat(),
            "last_inbound_at": conversation.last_inbound_at.isoformat() if conversation.last_inbound_at else None,
            "left_how": conversation.left_how,
        }  # fmt: skip

    async def conversation(self, request: web.Request) -> web.Response:
        conversation = await self.store.get_conversation(request.match_info["id"])
        if conversation is None:
            return _error(404, "not_found", "no such conversation")
        transcript = console_transcript(await self.store.transcript(conversation.id))
        now = self.clock()
        return web.json_response({**self.card(conversation, now), "now": now.isoformat(),
                                  "window": self.actions.window(conversation), "transcript": transcript,
                                  "earlier": await self.earlier(conversation, now)})  # fmt: skip

    async def earlier(self, conversation: Conversation, now: datetime) -> list[dict[str, Any]]:
        """The same young person's earlier conversations (same channel identity, last HISTORY_DAYS days): their
        dates, statuses and outcomes, to open them; never the identity itself."""
        started = await self.store.list_conversations(now - timedelta(days=HISTORY_DAYS), conversation.created_at)
        return [
            {"id": c.id, "created_at": c.created_at.isoformat(), "status": c.status.value, "outcome": c.outcome}
            for c in reversed(started)
            if c.channel == conversation.channel and c.sender == conversation.sender and c.id != conversation.id
        ][:10]

    async def flow_material(self, request: web.Request) -> web.Response:
        engine = self.flows.engine()
        flow, lang = engine.flow, engine.flow.default_language
        return web.json_response({
            "version": engine.version,
            "queues": [{"id": q, "name": engine.text(v.name, lang), "names": v.name} for q, v in flow.queues.items()],
            "partners": [{"id": p, "name": engine.text(v.name, lang), "names": v.name}
                         for p, v in flow.partners.items()],
            "canned_responses": [c.model_dump() for c in flow.canned_responses],
            "outcomes": [{"id": o.id, "label": engine.text(o.label, lang), "labels": o.label} for o in flow.outcomes],
        })  # fmt: skip

    # ----- actions ----------------------------------------------------------------------------------------

    async def take(self, request: web.Request) -> web.Response:
        listener = request[LISTENER]
        conversation = await self.actions.take(request.match_info["id"], listener.name, listener.capacity)
        return web.json_response(self.card(conversation, self.clock()))

    async def message(self, request: web.Request) -> web.Response:
        text = await _field(request, "text")
        entry = await self.actions.reply(request.match_info["id"], request[LISTENER].name, text)
        return web.json_response(entry_json(entry), status=201)

    async def note(self, request: web.Request) -> web.Response:
        entry = await self.actions.note(request.match_info["id"], request[LISTENER].name, await _field(request, "text"))
        return web.json_response(entry_json(entry), status=201)

    async def refer(self, request: web.Request) -> web.Response:
        partner = await _field(request, "partner")
        entry = await self.actions.refer(request.match_info["id"], request[LISTENER].name, partner)
        return web.json_response(entry_json(entry), status=201)

    async def transfer(self, request: web.Request) -> web.Response:
        queue = await _field(request, "queue")
        conversation = await self.actions.transfer(request.match_info["id"], request[LISTENER].name, queue)
        return web.json_response(self.card(conversation, self.clock()))

    async def hand_back(self, request: web.Request) -> web.Response:
        conversation = await self.actions.hand_back(request.match_info["id"], request[LISTENER].name)
        return web.json_response(self.card(conversation, self.clock()))

    async def close(self, request: web.Request) -> web.Response:
        body = await json_body(request)
        outcome, notes = body.get("outcome"), body.get("notes", "")
        if not isinstance(outcome, str) or not isinstance(notes, str):
            raise ActionRefused("bad_request", "close needs an outcome (and optional notes)")
        conversation = await self.actions.close(request.match_info["id"], request[LISTENER].name, outcome, notes)
        return web.json_response(self.card(conversation, self.clock()))

    async def typing(self, request: web.Request) -> web.Response:
        await self.store.publish(Typing(request.match_info["id"], "listener"))
        return web.Response(status=204)

    # ----- live events ------------------------------------------------------------------------------------

    async def events(self, request: web.Request) -> web.WebSocketResponse:
        """Every store event, live: queue changes, new entries, statuses, deliveries, typing.

        The listener is counted online (presence) while one of these sockets is open, except those of pages that
        only watch (``?watch=1``: the supervision board), since nobody there answers young people.
        """
        ws = web.WebSocketResponse(heartbeat=25)
        await ws.prepare(request)
        name = request[LISTENER].name
        writer = SocketWriter(ws, request, surface="console", metrics=self.metrics)
        self.open.add(writer)
        counted = request.query.get("watch") != "1"
        self.presence.connections[name] += counted
        self.live.sockets.add(writer)
        try:
            writer.offer({"type": "hello", "at": time.time()})
            await self.presence.announce(self.store)  # the supervision board counts listeners online
            async for _ in ws:  # nothing to read: this ends when the listener goes away (presence is then right)
                pass
        finally:
            # aiohttp may cancel this handler once the peer has gone: count first, then clean up shielded.
            self.presence.connections[name] -= counted
            self.live.sockets.discard(writer)
            await asyncio.shield(self._after_events(writer))
        return ws

    async def _after_events(self, writer: SocketWriter) -> None:
        await writer.close()
        await self.presence.announce(self.store)


async def json_body(request: web.Request) -> dict[str, Any]:
    if request.content_type != "application/json":
        raise web.HTTPUnsupportedMediaType(text='{"error": "bad_request", "message": "send JSON"}',
                                           content_type="application/json")  # fmt: skip
    try:
        body = json.loads(await request.text())
    except ValueError:
        raise web.HTTPBadRequest(text='{"error": "bad_request", "message": "malformed JSON"}',
                                 content_type="application/json") from None  # fmt: skip
    if not isinstance(body, dict):
        raise web.HTTPBadRequest(text='{"error": "bad_request", "message": "expected an object"}',
                                 content_type="application/json")  # fmt: skip
    return body


async def _field(request: web.Request, name: str) -> str:
    value = (await json_body(request)).get(name)
    if not isinstance(value, str):
        raise ActionRefused("bad_request", f"'{name}' is required")
    return value


_STATUS = {"not_found": 404, "bad_request": 400, "empty": 400, "too_long": 400, "identity": 400,
           "mail_failed": 502, "media_unavailable": 502}  # fmt: skip


def _me(listener: Listener) -> dict[str, Any]:
    return {"name": listener.name, "supervisor": listener.supervisor, "capacity": listener.capacity}


def _error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response({"error": code, "message": message}, status=status, headers=headers)


__all__ = ["LISTENER", "ListenerAPI", "Presence", "json_body"]
