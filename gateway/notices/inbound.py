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
A second exchange answers 410: the code is consumed atomically (the store's claim, then a done mark).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Mapping
from datetime import timedelta
from importlib import resources
from typing import Protocol

from aiohttp import web

from gateway.clock import Clock
from gateway.conversation import Priority
from gateway.dispatcher import Dispatcher
from gateway.flowset import FlowSet
from gateway.ids import new_id
from gateway.messages import ChannelName
from gateway.notices.record import Referral, ReferralStatus
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
from gateway.untrusted import load_json

MAX_SUMMARY = 2000
CODE_KEPT = timedelta(days=30)
PAGE = resources.files("gateway") / "webchat_static" / "referral.html"


class InboundRoles(CaseworkStore, AuditStore, ConversationStore, TranscriptStore, DedupeStore, LockStore, Protocol):
    """What partners' referrals to the helpline need of the store."""


class InboundReferrals:
    def __init__(
        self, dispatcher: Dispatcher, store: InboundRoles, flows: FlowSet, keys: Mapping[str, str], public_url: str, *,
        clock: Clock,
    ) -> None:  # fmt: skip
        self.dispatcher, self.store, self.flows, self.keys, self.public_url = dispatcher, store, flows, keys, public_url
        self.clock = clock

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
        body = await _json(request)
        summary, language = body.get("summary"), body.get("language", engine.flow.default_language)
        if not isinstance(summary, str) or not 0 < len(summary.strip()) <= MAX_SUMMARY:
            return _error(400, "bad_request", f"'summary' is required, at most {MAX_SUMMARY} characters")
        if language not in engine.flow.languages:
            return _error(400, "bad_request", f"'language' is one of {', '.join(engine.flow.languages)}")
        code = secrets.token_urlsafe(24)
        pseudonym = await self._queue(partner, summary.strip(), str(language), code)
        return web.json_response({"link": f"{self.public_url.rstrip('/')}/chat/referral#{code}",
                                  "pseudonym": pseudonym, "expires_in_days": CODE_KEPT.days}, status=201)  # fmt: skip

    async def _queue(self, partner: str, summary: str, language: str, code: str) -> str:
        engine, now = self.flows.engine(), self.clock()
        lang = engine.flow.default_language
        name = engine.text(engine.flow.partners[partner].name, lang)
        conversation, _ = await self.store.active_conversation(ChannelName.WEBCHAT, secrets.token_urlsafe(24), now)
        async with self.store.lock(conversation.id):
            conversation.flow_version, conversation.route = engine.version, "inbound_referral"
            conversation.engine = {"flow_version": engine.version, "channel": "webchat", "language": language,
                                   "finished": True}  # fmt: skip
            conversation.summary = [
                ("Orienté·e par" if lang == "fr" else "Referred by", name),
                ("Résumé du partenaire" if lang == "fr" else "Partner's summary", summary),
            ]
            await self.store.append_transcript(TranscriptEntry(
                id=new_id(), conversation_id=conversation.id, at=now, author=Author.NOTE, text=f"{name}: {summary}",
            ))  # fmt: skip
            await self.dispatcher.enqueue(conversation, engine, engine.flow.fallback.queue, Priority.HIGH, now)
            await self.store.save_conversation(conversation)
        referral = Referral(
            id=_code_id(code), conversation_id=conversation.id, pseudonym=conversation.pseudonym, partner=partner,
            consent=True, created_by=f"partner:{partner}", created_at=now, updated_at=now,
            status=ReferralStatus.SENT, summary=summary, inbound=True,
        )  # fmt: skip
        await self.store.put_referral(referral)
        await self.store.audit(AuditEntry(now, f"partner:{partner}", "referral_received", conversation.pseudonym, ""))
        return conversation.pseudonym

    async def page(self, request: web.Request) -> web.Response:
        return web.Response(text=PAGE.read_text(encoding="utf-8"), content_type="text/html", headers=_PAGE_HEADERS)

    async def claim(self, request: web.Request) -> web.Response:
        """Exchange a code, once, for the web chat session of its conversation."""
        code = (await _json(request)).get("code")
        referral = await self.store.get_referral(_code_id(code)) if isinstance(code, str) and len(code) < 100 else None
        conversation = await self.store.get_conversation(referral.conversation_id) if referral else None
        if referral is None or conversation is None or not referral.inbound:
            return _error(404, "not_found", "this link is not known")
        key = "referral-link:" + referral.id
        state = await self.store.claim(key, new_id(), 30.0, now=self.clock())
        if state != ClaimState.CLAIMED or not conversation.active:
            return _error(410, "used", "this link was already used")
        await self.store.save_conversation(conversation, done=DoneMark(key, int(CODE_KEPT.total_seconds())))
        await self.store.audit(AuditEntry(self.clock(), "gateway", "referral_link_used",
                                          conversation.pseudonym, referral.partner))  # fmt: skip
        return web.json_response({"token": conversation.sender})


def _code_id(code: str) -> str:
    return "in-" + hashlib.sha256(code.encode()).hexdigest()[:40]


async def _json(request: web.Request) -> dict[str, object]:
    try:
        body = load_json(await request.read())
    except ValueError:
        raise web.HTTPBadRequest(text='{"error": "bad_request", "message": "malformed JSON"}',
                                 content_type="application/json") from None  # fmt: skip
    if not isinstance(body, dict):
        raise web.HTTPBadRequest(text='{"error": "bad_request", "message": "expected an object"}',
                                 content_type="application/json")  # fmt: skip
    return body


def _error(status: int, code: str, message: str) -> web.Response:
    return web.json_response({"error": code, "message": message}, status=status)


_PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
}
