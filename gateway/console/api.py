"""The listener API (HTTP + websocket) under ``/api``; documented in docs/api.md.

Every route but ``POST /api/session`` needs a console session (``console/sessions.py``); supervisor-only routes
say so. Every state-changing call and the live socket pass the cross-site checks first (``console/crosssite.py``:
the page's origin, JSON only). A route about one conversation passes its wall (``console/access.py``): a
listener sees the card of a waiting conversation and the whole of the ones they hold; supervisors see everything,
and their reads of conversations they do not hold are audited. Nobody sees the sender's address.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
import weakref
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from aiohttp import WSCloseCode, web

from gateway.clock import Clock
from gateway.coalesced import Coalesced
from gateway.console import stats
from gateway.console.access import Sight, audited, earlier_sight, sight
from gateway.console.actions import Actions
from gateway.console.auth import valid_name
from gateway.console.crosssite import CrossSite
from gateway.console.events import ConsoleEvents, Viewer
from gateway.console.logins import Busy, Lock, Logins
from gateway.console.media import console_transcript
from gateway.console.passwords import check_password
from gateway.console.presence import Presence
from gateway.console.sessions import SESSION_COOKIE, SESSION_HOURS, Sessions
from gateway.conversation import Conversation, RiskFlag, Status
from gateway.errors import ActionRefused, LockTimeout, StoreError, WeakPassword
from gateway.events import Alert, entry_json
from gateway.flowset import FlowSet
from gateway.language import language_of
from gateway.metrics import Metrics
from gateway.outage_log import HTTP, RETRY_AFTER_SECONDS
from gateway.proxies import ClientAddresses
from gateway.ratelimit import Limit, RateLimits, client_address
from gateway.sockets import KEEPALIVE, SocketWriter, incoming
from gateway.store import (
    INDEXED_DAYS,
    AuditEntry,
    AuditStore,
    ConsoleSession,
    ConversationStore,
    EventStore,
    Listener,
    ListenerStore,
    PresentStore,
    QueueEntry,
    QueueStore,
    SessionStore,
    TranscriptStore,
)
from gateway.untrusted import load_json

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
LISTENER = web.RequestKey("listener", Listener)
SESSION = web.RequestKey("session", ConsoleSession)
HISTORY_DAYS = 30  # how far back a listener's ended conversations are listed ("Mes conversations", history)
HISTORY_LIMIT = 50
EARLIER_LIMIT = 10  # a conversation's earlier ones shown
QUEUE_PAGE = 100  # waiting cards a console is sent (the first in the queue's order); the others counted only
OTHERS_PAGE = 100  # cards of conversations others hold a supervisor is sent (those whose listener left first)
OWN_MARGIN = 20  # held records read past OTHERS_PAGE, for a supervisor who holds some of the first ones
assert HISTORY_DAYS < INDEXED_DAYS, "the store's indexes keep what the history and the earlier conversations read"
REPLY_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")  # the console's id of a reply

log = logging.getLogger(__name__)


class ListenerAPIRoles(
    ConversationStore, TranscriptStore, QueueStore, ListenerStore, AuditStore, EventStore, PresentStore, SessionStore,
    Protocol,
):  # fmt: skip
    """What the listener API reads of the store itself (the actions, sessions and logins have roles of their own: a
    logout counts the listener's sessions that still serve the account through :meth:`Sessions.serving`)."""


@dataclass(frozen=True, slots=True)
class _HeldRead:
    """The held conversations as the consoles' shared read found them: how many each listener holds
    (``QueueStore.held_index``); who holds each (``QueueStore.holders``) only when the index does not account for
    every held record (``whole``; always, until 2026-12-07); the records of those whose entry names no holder."""

    counts: dict[str, int]
    whole: dict[str, str | None] | None
    loose: tuple[Conversation, ...]

    def others_total(self, name: str) -> int:
        """How many are held by someone other than ``name`` (or by no one, their step cut short)."""
        if self.whole is not None:
            return sum(1 for by in self.whole.values() if by != name)
        return sum(n for by, n in self.counts.items() if by != name)


class ListenerAPI:
    def __init__(
        self, store: ListenerAPIRoles, actions: Actions, flows: FlowSet, sessions: Sessions,
        *, secure_cookies: bool, presence: Presence, live: ConsoleEvents, metrics: Metrics, logins: Logins,
        limits: RateLimits, cross_site: CrossSite, clock: Clock, addresses: ClientAddresses | None = None,
        keepalive: float = KEEPALIVE,
    ) -> None:  # fmt: skip
        self.keepalive = keepalive  # seconds: a socket sent nothing this long gets a frame (sockets.incoming)
        self.store, self.actions, self.flows = store, actions, flows
        self.clock = clock
        self.sessions, self.secure_cookies, self.presence = sessions, secure_cookies, presence
        self.cross_site = cross_site
        self.live, self.metrics = live, metrics
        self.logins, self.limits, self.addresses = logins, limits, addresses or ClientAddresses()
        self.open: weakref.WeakSet[SocketWriter] = weakref.WeakSet()  # live sockets, closed at shutdown
        self._queue_read = Coalesced(self._read_queue)  # one read for the consoles' reloads of a moment
        self._others_read = Coalesced(self._read_others)  # supervisors': a page of the conversations others hold
        self._told_read = Coalesced(self._read_told)  # the supervision board's count: the told index
        self._held_read: _HeldRead | None = None  # the latest shared read's held ones (``_read_others`` uses them)
        # lines(): the flow version, from when until when it holds, the next change (None: none), the closed queues
        self._lines: tuple[str, datetime, datetime, datetime | None, list[dict[str, Any]]] | None = None

    def routes(self) -> list[web.RouteDef]:
        c, a, card = "/api/conversations/{id}", self.authed, Sight.CARD
        return [
            web.post("/api/session", self.login),
            web.delete("/api/session", self.logged_out(a(self.logout))),
            web.get("/api/me", a(self.me)),
            web.post("/api/me/password", a(self.change_password)),
            web.get("/api/listeners", a(self.listeners, supervisor=True)),
            web.post("/api/listeners/{name}/logout", a(self.logout_everywhere, supervisor=True)),
            web.get("/api/queue", a(self.queue)),
            web.get("/api/history", a(self.history)),
            web.get("/api/flow", a(self.flow_material)),
            web.get(c, a(self.conversation)),  # its own wall: the card of a waiting one, else the whole
            web.post(c + "/take", a(self.take)),  # a waiting one only: Actions.take refuses the others (409)
            # another listener's conversation: 403 here; a waiting one: Actions says "take it first" (409)
            web.post(c + "/messages", a(self.message, wall=card)),
            web.post(c + "/notes", a(self.note, wall=card)),
            web.post(c + "/refer", a(self.refer, wall=card)),
            web.post(c + "/transfer", a(self.transfer, wall=card)),
            web.post(c + "/hand-back", a(self.hand_back, wall=card)),
            web.post(c + "/close", a(self.close, wall=card)),
            web.post(c + "/typing", a(self.typing, wall=card)),
            web.get("/api/events", a(self.events)),
        ]

    # ----- sessions ---------------------------------------------------------------------------------------

    async def session_for(self, request: web.Request) -> tuple[Listener, ConsoleSession] | None:
        """The listener behind the request's session cookie and the session, or None (no live session, or the
        account was removed, or is not the one the session was opened on: :meth:`Sessions.serves`). The account is
        read as before, its fingerprint compared in memory: no store read more than the session's and the account's.
        Until 2026-12-07 a session lived on after its account's password change or removal when the sessions' end
        that follows the account's write failed (``tests/console/test_sessions_account.py``)."""
        session = await self.sessions.read(request.cookies.get(SESSION_COOKIE, ""))
        listener = await self.store.get_listener(session.name) if session else None
        return (listener, session) if listener and session and self.sessions.serves(session, listener) else None

    async def listener_for(self, request: web.Request) -> Listener | None:
        found = await self.session_for(request)
        return found[0] if found else None

    def authed(self, handler: Handler, *, supervisor: bool = False, wall: Sight | None = None) -> Handler:
        """``handler`` for a live session only (and a supervisor's, with ``supervisor``), after the cross-site
        checks; ``wall``: the route is about conversation ``{id}``, which the listener must see at least so."""

        async def wrapper(request: web.Request) -> web.StreamResponse:
            refused = self._cross_site(request)
            if refused is not None:
                return refused
            found = await self.session_for(request)
            if found is None:
                return _error(401, "login_required", "log in first")
            listener, request[SESSION] = found
            if supervisor and not listener.supervisor:
                return _error(403, "supervisors_only", "for supervisors only")
            request[LISTENER] = listener
            if request.method not in ("GET", "HEAD") and not await self._write_allowed(request, listener):
                return _error(429, "too_many_requests", "too many actions in a short time: wait a moment")
            try:
                if wall is not None:
                    await self.wall(request, wall, via=None)
                return await handler(request)
            except ActionRefused as exc:
                return _error(_STATUS.get(exc.code, 409), exc.code, str(exc), details=exc.details)

        return wrapper

    def _cross_site(self, request: web.Request) -> web.Response | None:
        refused = self.cross_site.refusal(request)
        if refused is not None:
            self.metrics.refused.labels("cross_site").inc()
        return refused

    async def wall(self, request: web.Request, needed: Sight, via: str | None) -> tuple[Conversation, Sight]:
        """The conversation ``{id}`` and what the listener sees of it, at least ``needed`` (else ActionRefused:
        404, or 403 ``forbidden``); ``via``: the id of a held conversation it was reached from (an earlier one of
        the same young person). A supervisor's read of one they do not hold goes to the audit log."""
        listener = request[LISTENER]
        conversation = await self.store.get_conversation(request.match_info["id"])
        if conversation is None:
            raise ActionRefused("not_found", "no such conversation")
        seen = sight(listener, conversation)
        if seen < needed and via:
            held = await self.store.get_conversation(via)
            seen = max(seen, earlier_sight(listener, conversation, held) if held else Sight.NONE)
        if seen < needed:
            raise ActionRefused("forbidden", "this conversation is not yours to see (another listener holds it)")
        if request.method == "GET" and audited(listener, conversation):
            parts = request.path.split("/")  # /api/conversations/{id}[/attachments/3]: what was read
            what = parts[4] if len(parts) > 4 else "conversation"
            await self.store.audit(AuditEntry(self.clock(), listener.name, "read", conversation.id,
                                              f"{conversation.pseudonym}: {what}"))  # fmt: skip
        return conversation, seen

    async def login(self, request: web.Request) -> web.Response:
        refused = self._cross_site(request)
        if refused is not None:
            return refused
        body = await json_body(request)
        name, password = body.get("name"), body.get("password")
        if not isinstance(name, str) or not isinstance(password, str):
            return _error(400, "bad_request", "name and password are required")
        if not valid_name(name):  # never an account: counted as one name, never stored or shown as it was sent
            name = ""
        address = client_address(request, self.addresses)
        try:
            async with self.logins.turns.of(name, address):  # the brake reads what the attempts before counted
                wait = await self.logins.brake.wait_seconds(name, address)
                if wait:
                    self.metrics.refused.labels("login_braked").inc()
                    return _error(429, "too_many_attempts", f"too many wrong passwords: try again in {wait} s",
                                  headers={"Retry-After": str(wait)})  # fmt: skip
                listener = await self.logins.authenticate(self.store, name, password, address)
        except (Busy, LockTimeout):  # too many hashings in flight, or this account's or address's turn not had
            self.metrics.refused.labels("login_busy").inc()
            return _error(429, "busy", "too many logins at once: try again", headers={"Retry-After": "1"})
        token = await self._open_session(listener) if listener is not None else None
        if listener is None or token is None:
            return _error(401, "bad_credentials", "wrong name or password")
        response = web.json_response(_me(listener))
        self._set_cookie(response, token)
        return response

    async def _open_session(self, listener: Listener) -> str | None:
        """A new session for ``listener``, checked by the password hash it was opened for: None (the session ended
        at once) when the account now has another password, or none. A password change (the console's, the CLI's)
        writes the new hash, then ends every session; a login that read the old hash before the change and opened
        its session after it would keep that session on the old password, its 12 hours: until 2026-12-07 it did
        (``tests/console/test_login_password_race.py``). Read after the session is stored, the hash is either the
        one checked (any change ends this session after) or not (ended here)."""
        token = await self.sessions.open(listener)
        now = await self.store.get_listener(listener.name)
        if now is None or now.password_hash != listener.password_hash:
            await self.sessions.end(token)
            return None
        return token

    def _set_cookie(self, response: web.Response, token: str) -> None:
        response.set_cookie(
            SESSION_COOKIE, token, max_age=SESSION_HOURS * 3600, httponly=True, samesite="Strict",
            secure=self.secure_cookies, path="/",
        )  # fmt: skip

    async def _write_allowed(self, request: web.Request, listener: Listener) -> bool:
        if request.path.endswith("/typing"):
            return await self.limits.allow(Limit.TYPING, "listener:" + listener.name)
        return await self.limits.allow(Limit.LISTENER_WRITES, listener.name)

    async def announce_lock(self, account: str, lock: Lock) -> None:
        """A login lock, told to the supervisors: an audit entry, and an alert on the live events."""
        # only an existing account is named: a name typed by whoever guesses is theirs to choose (a red-team review:
        # a 900,000-character "URGENT: supervisors call 06…" became the audit entry and the supervisors' alert)
        known = lock.subject == "account" and valid_name(account) and await self.store.get_listener(account)
        subject = account if known else "(an unknown account)" if lock.subject == "account" else "(an address)"
        detail = f"too many wrong passwords: locked for {lock.minutes} min"
        await self.store.audit(AuditEntry(self.clock(), "gateway", "login_locked", subject, detail))
        await self.store.publish(Alert("login_locked", subject, detail))

    async def logout(self, request: web.Request) -> web.Response:
        """This session ends, and its live sockets close (other browsers of the listener stay logged in); the
        conversations the listener holds go back to the queue (nobody else may answer them). The session ends even
        when a hand-back fails (a lock not had in time: 503): the page goes to the login page whatever the answer
        (``logout.js``), and a shared desk must not stay logged in; a conversation left held then goes back at the next
        alert check once its lock is free, its listener logged in nowhere (``gateway/alerts.py``,
        ``Watch._hand_back_left``; until 2026-12-07 by the automatic hand-back, 600 s later). A listener still logged in
        elsewhere (a second browser, another desk) keeps them: they answer them there (before, logging out of a phone
        gave back, mid-conversation, what the desk was answering; left with no console open, the automatic hand-back
        gives them back)."""
        listener = request[LISTENER]
        name = listener.name
        try:  # the sessions that serve the account only (Sessions.serving; until 2026-12-07 a stale one counted too)
            if await self.sessions.serving(listener) <= 1:  # this one is the last
                await self.actions.hand_back_all(name, self.presence.has)
        finally:
            await self.sessions.end(request.cookies.get(SESSION_COOKIE, ""))
        response = web.Response(status=204)
        response.del_cookie(SESSION_COOKIE, path="/")
        return response

    def logged_out(self, handler: Handler) -> Handler:
        """The logout's ``handler``, whose every answer but a cross-site refusal removes the session cookie: the page
        opens the login page whatever the answer (``logout.js``), a store outage's 503 too, and a desk may be shared.
        Before, a logout during a Redis restart kept the cookie of a session it could not end: once Redis answered,
        whoever opened the console next was that listener. The session itself then lasts its hours, its token held
        by nobody (its conversations go back by the automatic hand-back, ``gateway/alerts.py``)."""

        async def wrapper(request: web.Request) -> web.StreamResponse:
            refused = self._cross_site(request)
            if refused is not None:
                return refused
            try:
                response = await handler(request)
            except StoreError as exc:
                self.metrics.outages.failed(HTTP, exc)  # as the app's middleware would, a line per outage
                response = _error(
                    503, "unavailable", "try again shortly", headers={"Retry-After": str(RETRY_AFTER_SECONDS)}
                )  # as the app's middleware's
            response.del_cookie(SESSION_COOKIE, path="/")
            return response

        return wrapper

    async def change_password(self, request: web.Request) -> web.Response:
        """``{"current", "new"}``: the new password must pass the policy (400 ``weak_password``, with ``reason``).
        Every session of the listener ends, sockets included (a stolen cookie dies with the old password); this
        browser gets a new session.

        The account and its ``password_changed`` audit line are one write (``Store.update_listener``'s ``audit``):
        a store failure there changes nothing and answers 503 ``unavailable`` (try again). Once written the change
        is made, and every answer says so: the sessions' end failing (the store gone a moment) fails nothing
        (counted as an outage): the old sessions serve nothing anyway (:meth:`Sessions.serves`, their fingerprint)
        and the sweep closes their sockets. A new session that cannot be opened answers 503 ``password_changed``
        (log in with the new password), the cookie dropped. Until 2026-12-07 the sessions' end failing answered 503
        ``unavailable`` (try again: a change that went through) and the audit line, written after it, was never
        written; then, written apart right after the account, a failure between the two left the change with no
        line (``tests/console/test_sessions_account.py``)."""
        body = await json_body(request)
        current, new = body.get("current"), body.get("new")
        if not isinstance(current, str) or not isinstance(new, str):
            raise ActionRefused("bad_request", "current and new passwords are required")
        name, address = request[LISTENER].name, client_address(request, self.addresses)
        try:  # one check at a time per account and address, as a login's (until 2026-12-07 the change took no turn:
            # 16 guesses sent at once were all hashed and answered 403, where the brake allows ``free``)
            async with self.logins.turns.of(name, address):
                wait = await self.logins.brake.wait_seconds(name, address)
                if wait:  # the real wait, as the login's: the console's dialog says it
                    return _error(429, "too_many_attempts", f"too many wrong passwords: try again in {wait} s",
                                  headers={"Retry-After": str(wait)})  # fmt: skip
                checked = await self.logins.authenticate(self.store, name, current, address)
        except (Busy, LockTimeout):
            return _error(429, "busy", "too many logins at once: try again", headers={"Retry-After": "1"})
        if checked is None:
            return _error(403, "bad_credentials", "the current password is wrong")
        try:
            check_password(new)
            password_hash = await self.logins.workers.hash(new)
        except WeakPassword as exc:
            return web.json_response({"error": "weak_password", "reason": exc.reason, "message": str(exc)},
                                     status=400)  # fmt: skip
        except Busy:
            return _error(429, "busy", "too many logins at once: try again", headers={"Retry-After": "1"})
        listener = await self.store.get_listener(name)
        audit = AuditEntry(self.clock(), name, "password_changed", name)  # written with the account, or neither
        if listener is None or not await self.store.update_listener(
            replace(listener, password_hash=password_hash), audit=audit
        ):
            return _error(401, "login_required", "log in first")
        # the change is made, audited: what fails from here on is said with it, never as a change to try again
        await self._after_change(self.sessions.end_all(name))  # failed: the old sessions serve nothing anyway
        try:
            token = await self._open_session(replace(listener, password_hash=password_hash))
        except StoreError as exc:
            self.metrics.outages.failed(HTTP, exc)
            response = _error(503, "password_changed", "your password was changed: log in again with the new one",
                              headers={"Retry-After": str(RETRY_AFTER_SECONDS)})  # fmt: skip
            response.del_cookie(SESSION_COOKIE, path="/")
            return response
        if token is None:  # changed again (or removed) meanwhile: this browser logs in with the password of now
            return _error(401, "login_required", "log in first")
        response = web.json_response(_me(listener))
        self._set_cookie(response, token)
        return response

    async def _after_change(self, step: Awaitable[object]) -> None:
        """A step of the password change after the account's write: a store failure is counted as an outage, never
        the change's answer (the change is made)."""
        try:
            await step
        except StoreError as exc:
            self.metrics.outages.failed(HTTP, exc)

    async def listeners(self, request: web.Request) -> web.Response:
        """Supervisors: the accounts (names, roles), to log one out everywhere."""
        return web.json_response({"listeners": [_me(listener) for listener in await self.store.list_listeners()]})

    async def logout_everywhere(self, request: web.Request) -> web.Response:
        """Supervisors: every session of listener ``{name}`` ends and their sockets close, on every instance; the
        conversations they hold go back to the queue. A hand-back failed in the store (``Actions.hand_back_all`` tries
        every one, then raises the first error: the answer's 503) is left to the alert check, and the audit line is
        written all the same, saying so: the sessions ended. Until 2026-12-07 that error came before the audit, and the
        logout, made, had no ``logout_everywhere`` line. That line's write failing too, the hand-back's error is the
        one raised (answered, counted and told by its class; the audit's its context): until 2026-12-07 (a later
        change) the audit's StoreError replaced it, a lock held elsewhere counted as the store's failure."""
        name = request.match_info["name"]
        if not valid_name(name) or await self.store.get_listener(name) is None:
            raise ActionRefused("not_found", "no such listener")
        ended = await self.sessions.end_all(name)
        detail = f"{ended} session(s) ended"
        try:
            await self.actions.hand_back_all(name, self.presence.has)
        except StoreError as failed:
            try:
                await self.store.audit(AuditEntry(self.clock(), request[LISTENER].name, "logout_everywhere", name,
                                                  f"{detail}; a hand-back failed, left to the check"))  # fmt: skip
            except StoreError:  # not ``from`` it: ``error_class`` names a StoreError by its ``__cause__``
                raise failed  # noqa: B904  (the first error, the audit's its ``__context__``)
            raise
        await self.store.audit(AuditEntry(self.clock(), request[LISTENER].name, "logout_everywhere", name, detail))
        return web.json_response({"ended": ended})

    async def me(self, request: web.Request) -> web.Response:
        """The listener; ``elsewhere``: logged in in another browser too (another live session), so that a logout here
        keeps the conversations they hold (:meth:`logout`), which the logout dialog says only then."""
        listener = request[LISTENER]
        elsewhere = await self.sessions.serving(listener) > 1  # a stale session (another password) is no console
        return web.json_response({**_me(listener), "elsewhere": elsewhere})

    # ----- reading ----------------------------------------------------------------------------------------

    async def queue(self, request: web.Request) -> web.Response:
        """The first :data:`QUEUE_PAGE` waiting conversations in the queue's order (urgent first, then by arrival),
        ``waiting_total`` (how many wait in all), ``newest`` (the latest arrival, wherever it stands, and its arrival
        ``at``: the console's "new conversation" signal; each waiting card's ``waiting_from``, when its wait began, its
        arrival or its hand-back, since 2026-12-07 (evening): a card only moved onto the page is no arrival) and the
        held conversations, read once for every console that reloads at the same moment
        (:class:`~gateway.coalesced.Coalesced`: at a peak each arrival makes every console reload; until
        2026-12-05 each reload read the whole queue again), from a read begun after the request came. Until
        2026-12-07 every waiting card was sent to every console at each reload, each waiting record read: at 2,000
        waiting and 40 consoles, 1 MB a reload, 0.9 MB/s a console and 78 % of a core for 5.5 changes a second
        (``bench/console.py``, ``tests/console/test_queue_page.py``)."""
        page, total, newest, read = await self._queue_read.get()
        now = self.clock()
        waiting = []
        for entry, conversation in page:
            flag = card_flag(entry, conversation)
            waiting.append({**self.card(conversation, now), "priority": entry.priority.value,
                            "flag": flag.to_dict() if flag else None,
                            "waiting_seconds": stats.shown_wait(entry, conversation, now),
                            "waiting_from": (conversation.waiting_since or entry.at).isoformat()})  # fmt: skip
        listener = request[LISTENER]
        mine = [self.card(c, now) for c in await self._mine(listener.name, read)]
        answer = {"waiting": waiting, "waiting_total": total, "newest": newest, "mine": mine, **self.lines(now)}
        if listener.supervisor:  # who holds what, and whether they are at a console: one left can be given back
            read, others = await self._others_read.get()
            held = [c for c in others if c.listener != listener.name][:OTHERS_PAGE]
            answer["others"] = [{**self.card(c, now), "listener_away": not self.presence.has(c.listener or "")}
                                for c in held]  # fmt: skip
            answer["others_total"] = read.others_total(listener.name)
        return web.json_response(answer)

    async def _mine(self, name: str, read: _HeldRead) -> list[Conversation]:
        """The listener's held conversations: the records of every entry taken by them, and of those whose entry
        says no holder (a step cut short, which the alert check completes), read by the shared read. Nothing caps
        them here: a take is refused at their capacity (``Actions.take``, counting the entries they hold), but one
        whose record is theirs and its entry not yet comes on top, and each one they hold is theirs to see (until
        2026-12-07 (evening) this said "at most their capacity"). Until 2026-12-07 every held record was read at
        each shared read, to pick these out; until 2026-12-07 (late) every held entry, now the listener's own
        (``store.held_ids``: read even when the index counts none, an index an instance of before it left behind
        during a rolling deploy hiding none of theirs)."""
        if read.whole is not None:
            ids = sorted(i for i, by in read.whole.items() if by == name)
        else:
            ids = (await self.store.held_ids([name])).get(name, [])
        found = await asyncio.gather(*(self.store.get_conversation(i) for i in ids))
        held = [c for c in [*found, *read.loose] if c is not None and c.status == Status.WITH_LISTENER]
        return sorted((c for c in held if c.listener == name), key=lambda c: (c.created_at, c.id))

    def lines(self, now: datetime) -> dict[str, Any]:
        """The queues closed at ``now`` (``closed``: each with when it reopens, None past two weeks) and in how many
        seconds any queue next opens or closes (``changes_in``, None: never; the console reads the queue again then):
        until 2026-12-06 nothing in the console said the line was closed. The hours are read once per change (kept
        until it), not at every console's reload."""
        engine = self.flows.engine()
        kept = self._lines
        if kept is None or kept[0] != engine.version or not kept[1] <= now < kept[2]:
            closed, changes = [], []
            for queue in engine.flow.queues:
                change = engine.next_change(queue, now)
                if change is not None:
                    changes.append(change.astimezone(UTC))
                if not engine.is_open(queue, now):
                    closed.append({"queue": queue, "reopens_at": change.isoformat() if change else None})
            until = min(changes, default=None)  # none within two weeks: read again in an hour (a long closure)
            kept = self._lines = (engine.version, now, until or now + timedelta(hours=1), until, closed)
        until = kept[3]
        return {"closed": kept[4], "changes_in": (until - now).total_seconds() if until is not None else None}

    async def told_closed(self) -> int:
        """How many young people waiting were told, in this wait, that the line is closed and where to turn (the
        supervision board's count, shared by the boards asking at the same moment): still after the reopening, as
        their cards say it. From the store's index of them (``store.told_closed_waiting``, kept with each record's
        save), no record read; until 2026-12-07 every waiting record was read and decrypted on the event loop at
        each board reload (``GET /api/supervision`` 81 ms at 2,000 waiting, 328 ms at 5,000, bench/console.py)."""
        return await self._told_read.get()

    async def _read_told(self) -> int:
        return await self.store.told_closed_waiting()

    async def _read_queue(
        self,
    ) -> tuple[list[tuple[QueueEntry, Conversation]], int, dict[str, str] | None, _HeldRead]:
        """The first :data:`QUEUE_PAGE` waiting entries with their conversations (one whose record is gone left out,
        and not counted), how many wait, the latest arrival (its id, priority and arrival), and the held ones: the
        records of the page only (until 2026-12-07 every waiting one's, at each read), and of the entries the page's,
        the total and the latest arrival from the queue's order (``store.waiting_page``; until 2026-12-07 every
        waiting entry was read at each shared read: 27 -> 36 ms of CPU a change from 2,000 to 5,000 waiting,
        bench/console.py)."""
        self.metrics.console_queue_reads.inc()
        waiting = await self.store.waiting_page(QUEUE_PAGE)
        shown = waiting.first
        found = await asyncio.gather(*(self.store.get_conversation(e.conversation_id) for e in shown))
        page = [(entry, c) for entry, c in zip(shown, found, strict=True) if c is not None]
        latest = waiting.newest
        newest = (
            {"id": latest.conversation_id, "priority": latest.priority.value, "at": latest.at.isoformat()}
            if latest
            else None
        )
        return page, waiting.total - (len(shown) - len(page)), newest, await self._read_held()

    async def _read_held(self) -> _HeldRead:
        """How many each listener holds (``store.held_index``: a count per listener, no entry or record read), and,
        when the index does not account for every held record, who holds what from the queue's entries
        (``store.holders``) and the records of those whose entry names no holder (a step cut short, which the alert
        check completes). Until 2026-12-07 every held record (``conversations_by_status``): 2,000 held, 2,000
        records decrypted at each queue change; until 2026-12-07 (late) every held entry read and decoded at each
        change (``store.holders``: 8.6 ms of CPU at 2,000 held on Redis, bench/README.md)."""
        index = await self.store.held_index()
        whole = index.whole
        loose = sorted(i for i, by in whole.items() if by is None) if whole is not None else []
        found = await asyncio.gather(*(self.store.get_conversation(i) for i in loose))
        read = _HeldRead(
            index.counts, whole, tuple(c for c in found if c is not None and c.status == Status.WITH_LISTENER)
        )
        self._held_read = read
        return read

    async def _read_others(self) -> tuple[_HeldRead, tuple[Conversation, ...]]:
        """For supervisors (one read for those reloading at the same moment): who holds what, and the records of the
        first :data:`OTHERS_PAGE` (and :data:`OWN_MARGIN`) held, those whose listener is at no console first (the
        ones a supervisor may give back), then by listener. Until 2026-12-07 every held card went to every
        supervisor at each reload. Who holds what is the consoles' latest shared read's (each supervisor asking read
        the queue first, by a read begun after their request: the latest is as recent); until 2026-12-07 it was read
        again here, a second ``store.holders`` a change (8.6 ms of CPU at 2,000 held, bench/README.md). Until
        2026-12-07 (late) every holder was sorted here: now, the index telling each listener's count, the listeners
        are (away first, then by name) and the ids of the first ones only (``store.held_ids``), in the same order."""
        latest = self._held_read if self._held_read is not None else await self._read_held()
        wanted = OTHERS_PAGE + OWN_MARGIN
        if latest.whole is not None:
            holders = latest.whole
            order = sorted(holders, key=lambda i: (self.presence.has(holders[i] or ""), holders[i] or "", i))
            first = order[:wanted]
        else:
            chosen, counted = [], 0
            for by in sorted(latest.counts, key=lambda by: (self.presence.has(by), by)):
                if counted >= wanted:
                    break
                chosen.append(by)
                counted += latest.counts[by]
            ids = await self.store.held_ids(chosen)
            first = [i for by in chosen for i in ids.get(by, [])][:wanted]
        found = await asyncio.gather(*(self.store.get_conversation(i) for i in first))
        held = [c for c in found if c is not None and c.status == Status.WITH_LISTENER]
        return latest, tuple(sorted(held, key=lambda c: (self.presence.has(c.listener or ""), c.created_at, c.id)))

    async def history(self, request: web.Request) -> web.Response:
        """The listener's own ended conversations begun in the last HISTORY_DAYS days, the latest ended first: read
        from the store's index of their ended conversations (``ConversationStore.ended_with``), the page only. Until
        2026-12-05, every conversation of the month was read (0.1 s of the event loop at 5,000)."""
        now, name = self.clock(), request[LISTENER].name
        ended = await self.store.ended_with(name, now - timedelta(days=HISTORY_DAYS), now + timedelta(seconds=1),
                                            HISTORY_LIMIT)  # fmt: skip
        return web.json_response({"ended": [
            {**self.card(c, now), "outcome": c.outcome, "closed_at": c.closed_at.isoformat() if c.closed_at else None}
            for c in ended if not c.active and c.listener == name
        ]})  # fmt: skip

    def card(self, conversation: Conversation, now: datetime) -> dict[str, Any]:
        """What a listener may see of a conversation: never the sender's address."""
        engine = self.flows.for_version(conversation.flow_version)
        return {
            "id": conversation.id, "pseudonym": conversation.pseudonym, "channel": conversation.channel.value,
            "status": conversation.status.value, "queue": conversation.queue, "priority": conversation.priority.value,
            "listener": conversation.listener, "language": language_of(conversation, engine.flow),
            "summary": [list(pair) for pair in conversation.summary], "route": conversation.route,
            "flag": conversation.flag.to_dict() if conversation.flag else None,
            "created_at": conversation.created_at.isoformat(),
            "last_inbound_at": conversation.last_inbound_at.isoformat() if conversation.last_inbound_at else None,
            "left_how": conversation.left_how,
            "page_answered": conversation.page_answered_at is not None,  # a human of the line answered (Meta's inbox)
            "closed_told_at": _closed_told(conversation),  # told the line is closed and where to turn, this wait
        }  # fmt: skip

    async def conversation(self, request: web.Request) -> web.Response:
        """The whole conversation for its holder and supervisors; the card only (``restricted``, no transcript, no
        earlier conversations' dates and outcomes, to tell a returning young person) for a listener looking at a
        waiting one. ``?via=<id>``: opened from a held conversation (one of its earlier ones)."""
        conversation, seen = await self.wall(request, Sight.CARD, via=request.query.get("via"))
        now = self.clock()
        shown = {**self.card(conversation, now), "now": now.isoformat(), "window": self.actions.window(conversation),
                 "earlier": await self.earlier(conversation, now), "restricted": seen < Sight.FULL}  # fmt: skip
        if seen < Sight.FULL:
            return web.json_response({**shown, "transcript": []})
        transcript = console_transcript(await self.store.transcript(conversation.id))
        return web.json_response({**shown, "transcript": transcript})

    async def earlier(self, conversation: Conversation, now: datetime) -> list[dict[str, Any]]:
        """The same young person's earlier conversations (same channel identity, last HISTORY_DAYS days): their
        dates, statuses and outcomes, to open them; never the identity itself. Read from the store's index of that
        young person's conversations (``ConversationStore.conversations_of``, by the keyed hash of the identity);
        until 2026-12-05, every conversation of the month was read at each conversation opened."""
        started = await self.store.conversations_of(conversation.channel, conversation.sender,
                                                    now - timedelta(days=HISTORY_DAYS), conversation.created_at,
                                                    EARLIER_LIMIT + 1)  # fmt: skip
        return [
            {"id": c.id, "created_at": c.created_at.isoformat(), "status": c.status.value, "outcome": c.outcome}
            for c in started
            if c.channel == conversation.channel
            and c.sender == conversation.sender
            and c.id != conversation.id
            and c.sender  # a purged record has no identity left: it is nobody's earlier conversation
        ][:EARLIER_LIMIT]

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
        """``{text, id?}``: ``id``, the console's id of this reply (sent again with it when the answer was lost:
        recorded and sent once)."""
        body = await json_body(request)
        text, key = body.get("text"), body.get("id")
        if not isinstance(text, str) or not (key is None or (isinstance(key, str) and REPLY_ID.fullmatch(key))):
            raise ActionRefused("bad_request", "'text' is required; 'id', when given, is 1 to 64 of A-Z a-z 0-9 _ -")
        entry = await self.actions.reply(request.match_info["id"], request[LISTENER].name, text, key)
        return web.json_response(entry_json(entry), status=201)

    async def note(self, request: web.Request) -> web.Response:
        """``{text, id?}``: ``id``, the console's id of this note (sent again with it: recorded once)."""
        body = await json_body(request)
        text, key = body.get("text"), action_id(body)
        if not isinstance(text, str):
            raise ActionRefused("bad_request", "'text' is required")
        entry = await self.actions.note(request.match_info["id"], request[LISTENER].name, text, key)
        return web.json_response(entry_json(entry), status=201)

    async def refer(self, request: web.Request) -> web.Response:
        """``{partner, id?}``: ``id``, the console's id of this "Orienter" (sent again with it: told once)."""
        body = await json_body(request)
        partner, key = body.get("partner"), action_id(body)
        if not isinstance(partner, str):
            raise ActionRefused("bad_request", "'partner' is required")
        entry = await self.actions.refer(request.match_info["id"], request[LISTENER].name, partner, key)
        return web.json_response(entry_json(entry), status=201)

    async def transfer(self, request: web.Request) -> web.Response:
        """``{queue, id?}``: the holder's, a waiting one's, or a supervisor's for any listener (audited as
        :meth:`hand_back`, by the transfer itself, before its record: ``Actions.transfer``); ``id``, the console's id of
        this transfer (sent again with it: made once, answered with the conversation as it stands)."""
        body = await json_body(request)
        queue, key = body.get("queue"), action_id(body)
        if not isinstance(queue, str):
            raise ActionRefused("bad_request", "'queue' is required")
        listener, conversation_id = request[LISTENER], request.match_info["id"]
        conversation = await self.actions.transfer(conversation_id, listener.name, queue,
                                                   supervisor=listener.supervisor, key=key)  # fmt: skip
        return web.json_response(self.card(conversation, self.clock()))

    async def hand_back(self, request: web.Request) -> web.Response:
        """``{id?}``: the holder's, or a supervisor's for any listener (audited: who, which, from whom, by the hand-back
        itself: ``Actions.hand_back``); ``id``, the console's id of this hand-back (sent again with it: made once,
        answered with the conversation as it stands)."""
        key = action_id(await json_body(request))
        listener, conversation_id = request[LISTENER], request.match_info["id"]
        conversation = await self.actions.hand_back(conversation_id, listener.name, supervisor=listener.supervisor,
                                                    key=key)  # fmt: skip
        return web.json_response(self.card(conversation, self.clock()))

    async def close(self, request: web.Request) -> web.Response:
        """``{outcome, notes?, id?}``: the holder's, a waiting one's, or a supervisor's for any listener (audited as
        :meth:`hand_back`, by the close itself); ``id``, the console's id of this close (sent again with it: made once,
        answered with the conversation as it stands)."""
        body = await json_body(request)
        outcome, notes, key = body.get("outcome"), body.get("notes", ""), action_id(body)
        if not isinstance(outcome, str) or not isinstance(notes, str):
            raise ActionRefused("bad_request", "close needs an outcome (and optional notes)")
        listener, conversation_id = request[LISTENER], request.match_info["id"]
        conversation = await self.actions.close(conversation_id, listener.name, outcome, notes,
                                                supervisor=listener.supervisor, key=key)  # fmt: skip
        return web.json_response(self.card(conversation, self.clock()))

    async def typing(self, request: web.Request) -> web.Response:
        await self.actions.typing(request.match_info["id"], request[LISTENER].name)
        return web.Response(status=204)

    # ----- live events ------------------------------------------------------------------------------------

    async def events(self, request: web.Request) -> web.WebSocketResponse:
        """The store's events this listener may see (``console/access.py``), live: queue changes, new entries,
        statuses, deliveries, typing. Closed at once when the session ends (``console/events.py``).

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
        try:
            await self.live.add(writer, Viewer(request[LISTENER], request[SESSION].key))
            writer.offer({"type": "hello", "at": time.time(), "keepalive": self.keepalive})
            await self.presence.announce(self.store)  # the supervision board counts listeners online
            async for _ in incoming(ws, writer, self.keepalive):  # nothing to read: this ends when the listener goes
                pass  # away (presence is then right); meanwhile a keepalive frame when nothing else was sent
        except StoreError as exc:  # the events could not be followed: the page reconnects, and reloads then
            self.metrics.outages.failed("console", exc)  # told once an outage (gateway/outage_log.py)
            async with asyncio.timeout(1.0):
                await ws.close(code=WSCloseCode.TRY_AGAIN_LATER, message=b"try again later")
        finally:
            # aiohttp may cancel this handler once the peer has gone: count first, then clean up shielded.
            self.presence.connections[name] -= counted
            self.live.discard(writer)
            await asyncio.shield(self._after_events(writer, name if counted else None))
        return ws

    async def _after_events(self, writer: SocketWriter, present: str | None) -> None:
        """The socket closed: ``present``, its listener, was at a console until now, recorded for every instance (the
        automatic hand-back's grace counts from their last presence anywhere: ``gateway/alerts.py``)."""
        await writer.close()
        await self.presence.announce(self.store)
        if present is not None:
            with contextlib.suppress(StoreError):  # the alert checks record those still here every 10 s
                await self.store.mark_present({present: self.clock()})


async def json_body(request: web.Request) -> dict[str, Any]:
    if request.content_type != "application/json":
        raise web.HTTPUnsupportedMediaType(text='{"error": "bad_request", "message": "send JSON"}',
                                           content_type="application/json")  # fmt: skip
    return await json_object(request)


async def json_object(request: web.Request) -> dict[str, Any]:
    """The request's body as a JSON object, whatever its content type (the partners' inbound notices,
    ``notices/inbound.py``, one copy of this since 2026-12-07); 400 ``bad_request`` otherwise."""
    try:
        body = load_json(await request.read())
    except ValueError:
        raise web.HTTPBadRequest(text='{"error": "bad_request", "message": "malformed JSON"}',
                                 content_type="application/json") from None  # fmt: skip
    if not isinstance(body, dict):
        raise web.HTTPBadRequest(text='{"error": "bad_request", "message": "expected an object"}',
                                 content_type="application/json")  # fmt: skip
    return body


def action_id(body: dict[str, Any]) -> str | None:
    """The console's id of an action that tells the young person something (``id``, kept for its resends), or None."""
    key = body.get("id")
    if key is not None and not (isinstance(key, str) and REPLY_ID.fullmatch(key)):
        raise ActionRefused("bad_request", "'id', when given, is 1 to 64 of A-Z a-z 0-9 _ -")
    return key


_STATUS = {"not_found": 404, "forbidden": 403, "bad_request": 400, "empty": 400, "too_long": 400, "identity": 400,
           "mail_failed": 502, "media_unavailable": 502}  # fmt: skip


def card_flag(entry: QueueEntry, conversation: Conversation) -> RiskFlag | None:
    """The flag a waiting conversation's card shows: its record's (the strongest so far, with its words), or the
    queue entry's when stronger (written with the entry's priority, which the card shows: the record may not say it
    yet), so that the card never shows a priority raised for a risk without that risk."""
    kept, raised = conversation.flag, entry.flag
    return raised if raised is not None and (kept is None or raised.score > kept.score) else kept


def _closed_told(conversation: Conversation) -> str | None:
    """When the young person was told, in this wait (since ``waiting_since``), that the line is closed and where to
    turn meanwhile: kept through the reopening, for the listener arriving in the morning; None otherwise."""
    told, since = conversation.closed_told_at, conversation.waiting_since or conversation.queued_at
    if told is None or not conversation.active or (since is not None and told < since):
        return None
    return told.isoformat()


def _me(listener: Listener) -> dict[str, Any]:
    return {"name": listener.name, "supervisor": listener.supervisor, "capacity": listener.capacity}


def _error(
    status: int, code: str, message: str, headers: dict[str, str] | None = None, *,
    details: dict[str, str | int] | None = None,
) -> web.Response:  # fmt: skip
    return web.json_response({**(details or {}), "error": code, "message": message}, status=status, headers=headers)


__all__ = ["LISTENER", "ListenerAPI", "Presence", "json_body", "json_object"]
