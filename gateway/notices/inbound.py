"""Partners' inbound referrals: a partner asks the helpline to contact a young person who agreed.

``POST /api/partners/{partner}/referrals`` with ``Authorization: Bearer KEY`` (the partner's key in
``GATEWAY_PARTNER_KEYS``; the partner needs a ``referral:`` block in flows.yaml) and ``{"summary": "…",
"language": "fr"}`` creates a web chat conversation already **waiting in the queue**, with the partner's summary
for the listeners (a private note and the first-contact summary), and answers 201 with a one-time ``link`` for
the partner to give the young person. The web chat is the one channel where the helpline can write first
(Messenger and Telegram only allow it once the young person wrote).

The link is ``PUBLIC_URL/chat/referral#CODE``: the code travels in the fragment (never sent in a GET, never in
an access log). The page asks the young person to press a button (a link previewer opens nothing), which
exchanges the code once (``POST /chat/referral``) for the conversation's web chat session, then opens ``/chat``.
A second exchange answers 410: the code is consumed atomically (the store's claim, then a done mark). The page
sends a random key of its own with the code (``referral.js``, kept for the tab): the same page asking again within
``ASKED_AGAIN`` (the answer lost: the connection dropped as the server answered) is answered the same session,
any other one 410; an exchange still in progress answers 503 (try again in a moment), not "already used". Until
2026-12-06 a young person whose first answer was lost was told "Ce lien a déjà servi" and lost the conversation
the partner had opened for them.

A partner may send an ``Idempotency-Key`` header (1 to 255 visible ASCII characters, the usual HTTP convention):
the same key of the same partner within ``IDEMPOTENCY_KEPT`` (24 h) is answered 200 with what the first request
made (the same link and pseudonym), never a second conversation; the same key with another summary 422
``idempotency_key_reused``; two at once: one makes it, the other waits for it and answers it. The link's code is
then derived from the partner and the key (``KeyedHash``, keyed with ``GATEWAY_SECRET_KEY``), so nothing more is
stored: the retry finds the referral the first request made under the code's id. Past 24 h the key is a new
request's (a code drawn at random). Until 2026-12-07 there was no such key: a referral sent again after a 503 (the
replicas behind, with ``GATEWAY_REDIS_REPLICA_ACKS``) or a lost answer queued a second conversation, the first one's
link never given. A first request cut between its queued conversation and its record (``InboundReferrals._queue``)
is completed by the retry, which finds that conversation by its session, derived from the code: since 2026-12-07
(later that day; until then the retry queued a second one). One cut between its record and its ``referral_received``
audit line has the line written by the retry, once (``InboundReferrals._audited``: ``audit_once`` under the
referral's id, two retries at once too): since 2026-12-07 (later still; until then the retry answered 200 from the
record and the line was never written).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime, timedelta
from importlib import resources
from typing import Protocol

from aiohttp import web

from gateway.clock import Clock
from gateway.console.api import json_object
from gateway.conversation import Conversation, Priority, Status
from gateway.dispatcher import Dispatcher
from gateway.flowset import FlowSet
from gateway.ids import derived_ids, new_id
from gateway.keyed import KeyedHash
from gateway.messages import ChannelName
from gateway.notices.record import REFERRAL_LOCK, Referral, ReferralStatus
from gateway.store import (
    AuditEntry,
    AuditStore,
    Author,
    CaseworkStore,
    ClaimState,
    ConversationStore,
    DedupeStore,
    DoneMark,
    LockStore,
    TranscriptEntry,
    TranscriptStore,
)

MAX_SUMMARY = 2000
CODE_KEPT = timedelta(days=30)
ASKED_AGAIN = timedelta(minutes=10)  # how long the page that exchanged a link is answered again (its answer lost)
PAGE_KEY = (16, 100)  # the page's key: this many characters, at least and at most
IDEMPOTENCY_KEPT = timedelta(hours=24)  # a partner's Idempotency-Key answers what its first request made this long
IDEMPOTENCY_MAX = 255  # characters of an Idempotency-Key, at most (visible ASCII)
IDEMPOTENCY_LOCK = "referral-idempotency:"  # held while a keyed request looks for its referral and makes it
PAGE = resources.files("gateway") / "webchat_static" / "referral.html"


class InboundRoles(CaseworkStore, AuditStore, ConversationStore, TranscriptStore, DedupeStore, LockStore, Protocol):
    """What partners' referrals to the helpline need of the store."""


class InboundReferrals:
    def __init__(
        self, dispatcher: Dispatcher, store: InboundRoles, flows: FlowSet, keys: Mapping[str, str], public_url: str, *,
        clock: Clock, keyed: KeyedHash,
    ) -> None:  # fmt: skip
        self.dispatcher, self.store, self.flows, self.keys, self.public_url = dispatcher, store, flows, keys, public_url
        self.clock, self.keyed = clock, keyed

    def routes(self) -> list[web.RouteDef]:
        return [
            web.post("/api/partners/{partner}/referrals", self.receive),
            web.get("/chat/referral", self.page),
            web.post("/chat/referral", self.claim),
        ]

    async def receive(self, request: web.Request) -> web.Response:
        partner = request.match_info["partner"]
        key = self.keys.get(partner)
        given = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        if key is None or not hmac.compare_digest(given.encode(), key.encode()):
            return _error(401, "unauthorised", "a partner key is required (Authorization: Bearer KEY)")
        engine = self.flows.engine()
        found = engine.flow.partners.get(partner)
        if found is None or found.referral is None:
            return _error(404, "unknown_partner", "this partner takes no referrals in the flow")
        idempotency = request.headers.get("Idempotency-Key")
        if idempotency is not None and not _idempotency_key(idempotency):
            return _error(400, "bad_request", f"'Idempotency-Key' is 1 to {IDEMPOTENCY_MAX} visible ASCII characters")
        body = await json_object(request)
        summary, language = body.get("summary"), body.get("language", engine.flow.default_language)
        if not isinstance(summary, str) or not 0 < len(summary.strip()) <= MAX_SUMMARY:
            return _error(400, "bad_request", f"'summary' is required, at most {MAX_SUMMARY} characters")
        if language not in engine.flow.languages:
            return _error(400, "bad_request", f"'language' is one of {', '.join(engine.flow.languages)}")
        if idempotency is None:
            code = secrets.token_urlsafe(24)
            return self._answer(code, await self._queue(partner, summary.strip(), str(language), code), 201)
        code = self.keyed("partner-referral-code", f"{partner}\n{idempotency}")  # the same for the same key
        async with self.store.lock(IDEMPOTENCY_LOCK + _code_id(code)):  # two at once: the second finds the first's
            earlier = await self.store.get_referral(_code_id(code))
            if earlier is not None and self.clock() - earlier.created_at <= IDEMPOTENCY_KEPT:
                if earlier.partner != partner or earlier.summary != summary.strip():
                    return _error(422, "idempotency_key_reused", "this Idempotency-Key was used for another referral")
                await self._audited(earlier)  # the first request cut before its line: written now, else nothing
                return self._answer(code, earlier.pseudonym, 200)  # what the first request made
            if earlier is not None:  # past 24 h: a new request, its code drawn at random
                code = secrets.token_urlsafe(24)
            return self._answer(code, await self._queue(partner, summary.strip(), str(language), code), 201)

    def _answer(self, code: str, pseudonym: str, status: int) -> web.Response:
        link = f"{self.public_url.rstrip('/')}/chat/referral#{code}"
        return web.json_response(
            {"link": link, "pseudonym": pseudonym, "expires_in_days": CODE_KEPT.days}, status=status
        )

    async def _queue(self, partner: str, summary: str, language: str, code: str) -> str:
        """The referral's conversation, queued, then its record (under the code's id), then its audit line. The
        conversation's web chat session (its ``sender``, the token the link is exchanged for) is derived from the code
        with the keyed hash, and its writes' ids from the code's id: a request cut between the queue and the record (a
        crash, a store error: answered 503) and sent again under its ``Idempotency-Key`` (the same code) finds the
        conversation the first one opened (``active_conversation``), completes what it lacks and writes the record for
        it: one conversation, the note and the place told once. Since 2026-12-07 (later that day): until then the
        session was drawn at random, and that retry, finding no record, queued a second conversation, the first one
        left waiting with no link (``tests/notices/test_inbound.py``). The token is as unguessable as before (128 bits
        of an HMAC keyed with ``GATEWAY_SECRET_KEY`` over a code nobody else has). Its queue step expects no holder
        (``holder=None``: the conversation is with the bot): an entry a listener holds is left to them, Conflict (503),
        nothing changed (since 2026-12-08: until then it replaced whoever held it, and a Redis step landing after its
        lock lapsed, the instance stalled while the retry queued on another and Bob took the young person, left Bob's
        entry waiting beside his record; the next alert check handed Bob's young person back;
        ``tests/notices/test_inbound_late_enqueue.py``)."""
        engine, now = self.flows.engine(), self.clock()
        lang = engine.flow.default_language
        name = engine.text(engine.flow.partners[partner].name, lang)
        session = self.keyed("partner-referral-session", code)
        conversation, _ = await self.store.active_conversation(ChannelName.WEBCHAT, session, now)
        async with self.store.lock(conversation.id):
            conversation = await self.store.get_conversation(conversation.id) or conversation
            if conversation.status != Status.BOT:  # queued (or taken) by a first request cut before its record
                return await self._recorded(partner, summary, code, conversation, now)
            conversation.flow_version, conversation.route = engine.version, "inbound_referral"
            conversation.engine = {"flow_version": engine.version, "channel": "webchat", "language": language,
                                   "finished": True}  # fmt: skip
            conversation.summary = [
                ("Orienté·e par" if lang == "fr" else "Referred by", name),
                ("Résumé du partenaire" if lang == "fr" else "Partner's summary", summary),
            ]
            with derived_ids("partner-referral:" + _code_id(code)):  # written again by a retry: ignored, told once
                await self.store.append_transcript(TranscriptEntry(
                    id=new_id(), conversation_id=conversation.id, at=now, author=Author.NOTE,
                    text=f"{name}: {summary}",
                ))  # fmt: skip
                await self.dispatcher.enqueue(conversation, engine, engine.flow.fallback.queue, Priority.HIGH, now,
                                              holder=None)  # fmt: skip
            await self.store.save_conversation(conversation)
        return await self._recorded(partner, summary, code, conversation, now)

    async def _recorded(self, partner: str, summary: str, code: str, conversation: Conversation, now: datetime) -> str:
        """The referral's record for its queued ``conversation``, then its audit line: its pseudonym."""
        referral = Referral(
            id=_code_id(code), conversation_id=conversation.id, pseudonym=conversation.pseudonym, partner=partner,
            consent=True, created_by=f"partner:{partner}", created_at=now, updated_at=now,
            status=ReferralStatus.SENT, summary=summary, inbound=True,
        )  # fmt: skip
        await self.store.put_referral(referral)
        await self._audited(referral)
        return conversation.pseudonym

    async def _audited(self, referral: Referral) -> None:
        """The referral's ``referral_received`` line, written once under its id (``audit_once``: the line and its
        key in one step), whoever asks: the request that made the record, or a retry under the same
        ``Idempotency-Key`` after a request cut between the record and the line (a crash, a store error: 503),
        which the record answers. Since 2026-12-07 (later that day): until then the retry answered 200 from the
        record and the line was never written (``tests/notices/test_inbound.py``)."""
        line = AuditEntry(self.clock(), referral.created_by, "referral_received", referral.pseudonym, "")
        await self.store.audit_once(line, "referral-received:" + referral.id, int(CODE_KEPT.total_seconds()))

    async def page(self, request: web.Request) -> web.Response:
        return web.Response(text=PAGE.read_text(encoding="utf-8"), content_type="text/html", headers=_PAGE_HEADERS)

    async def claim(self, request: web.Request) -> web.Response:
        """Exchange a code, once, for the web chat session of its conversation; the page that exchanged it answered
        again for a while (its answer lost)."""
        body = await json_object(request)
        code, page = body.get("code"), _page_key(body.get("key"))
        referral = await self.store.get_referral(_code_id(code)) if isinstance(code, str) and len(code) < 100 else None
        conversation = await self.store.get_conversation(referral.conversation_id) if referral else None
        if referral is None or conversation is None or not referral.inbound:
            return _error(404, "not_found", "this link is not known")
        key, now = "referral-link:" + referral.id, self.clock()
        state = await self.store.claim(key, new_id(), 30.0, now=now)
        if state == ClaimState.BUSY and conversation.active:  # an exchange in progress (a second press)
            return web.json_response({"error": "busy", "message": "this link is being opened: try again"},
                                     status=503, headers={"Retry-After": "1"})  # fmt: skip
        if state != ClaimState.CLAIMED or not conversation.active:
            if state == ClaimState.DONE and conversation.active and self._asked_again(referral, page, now):
                return web.json_response({"token": conversation.sender})  # the same page: its answer was lost
            return _error(410, "used", "this link was already used")
        if page:  # before the done mark: a crash between them leaves the claim to lapse and the link to work again
            async with self.store.lock(REFERRAL_LOCK + referral.id):  # a listener's status move kept (Referrals.update)
                current = await self.store.get_referral(referral.id) or referral
                await self.store.put_referral(replace(current, opened_by=page, opened_at=now))
        await self.store.save_conversation(conversation, done=DoneMark(key, int(CODE_KEPT.total_seconds())))
        await self.store.audit(AuditEntry(self.clock(), "gateway", "referral_link_used",
                                          conversation.pseudonym, referral.partner))  # fmt: skip
        return web.json_response({"token": conversation.sender})

    @staticmethod
    def _asked_again(referral: Referral, page: str, now: datetime) -> bool:
        """The page that exchanged the link asks again within ``ASKED_AGAIN``."""
        opened = referral.opened_at
        return bool(page) and hmac.compare_digest(page, referral.opened_by) and opened is not None and (
            now - opened <= ASKED_AGAIN
        )  # fmt: skip


def _page_key(key: object) -> str:
    """The hash of the page's own key (``referral.js``), "" when none or not one: never stored as it came."""
    if not isinstance(key, str) or not PAGE_KEY[0] <= len(key) <= PAGE_KEY[1]:
        return ""
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


def _idempotency_key(key: str) -> bool:
    """An ``Idempotency-Key`` the route takes: 1 to ``IDEMPOTENCY_MAX`` visible ASCII characters (no space, no
    control character); never stored nor logged as it came (the code is derived from it)."""
    return 0 < len(key) <= IDEMPOTENCY_MAX and all("!" <= c <= "~" for c in key)


def _code_id(code: str) -> str:
    return "in-" + hashlib.sha256(code.encode()).hexdigest()[:40]


def _error(status: int, code: str, message: str) -> web.Response:
    return web.json_response({"error": code, "message": message}, status=status)


_PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
}
