"""Warm referrals to partners, with the young person's consent.

A partner with a ``referral:`` block in flows.yaml accepts them. The listener asks the consent question (sent to
the young person in their language) and records the answer. **Without a yes, nothing is sent**: the referral is
kept as ``declined`` and the young person hears that nothing was shared. With a yes, the partner receives by
e-mail a minimal summary the listener reviewed: only the partner's fields (values the listener may shorten or
blank), the listener's few words, and how to answer: through the helpline, quoting the reference. Never a name,
phone number or platform id. The young person is then told what happens next; the referral is followed
``sent`` → ``taken_up`` → ``closed``, every step in the audit log.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from dataclasses import replace
from email.message import EmailMessage
from typing import Protocol

from gateway.clock import Clock
from gateway.console.actions import ENDING
from gateway.conversation import Conversation, Status
from gateway.dispatcher import Dispatcher, unsubscribed
from gateway.errors import ActionRefused, MailError, StoreError
from gateway.events import NoticesChanged
from gateway.flows.model import Flow, Partner
from gateway.flowset import FlowSet
from gateway.ids import derived_ids, new_id
from gateway.language import language_of
from gateway.mailer import Mailer
from gateway.messages import Reply
from gateway.notices.compose import plain_email
from gateway.notices.record import REFERRAL_LOCK, REFERRAL_MOVES, Referral, ReferralStatus
from gateway.notices.service import no_identity
from gateway.store import (
    AuditEntry,
    AuditStore,
    Author,
    CaseworkStore,
    ConversationStore,
    EventStore,
    LockStore,
    QueueStore,
    TranscriptStore,
)

log = logging.getLogger(__name__)

MAX_VALUE = 500
MAX_SUMMARY = 2000
RECORD_SECONDS = 60.0  # how long a referral e-mailed already is tried to be recorded through a store outage

_MAIL = {
    "fr": ("[{helpline}] Orientation d'un·e jeune - réf. {ref}",
           "Bonjour,\n\n{helpline} vous oriente un·e jeune qui a donné son accord pour que nous vous transmettions"
           " ce qui suit.\n\n{fields}\n\nEn quelques mots (relu par l'écoutant·e) :\n{summary}\n\nPour lui répondre,"
           " écrivez-nous à {email} en rappelant la référence {ref} : nous lui transmettons votre message dans sa"
           " conversation avec nous. Son identité et ses coordonnées ne vous sont pas communiquées.\n\n{helpline}\n"),
    "en": ("[{helpline}] Referral of a young person - ref. {ref}",
           "Hello,\n\n{helpline} refers to you a young person who agreed that we pass on the following.\n\n{fields}"
           "\n\nIn a few words (reviewed by the listener):\n{summary}\n\nTo answer them, write to us at {email}"
           " quoting the reference {ref}: we pass your message on in their conversation with us. Their identity"
           " and contact details are not shared with you.\n\n{helpline}\n"),
}  # fmt: skip


def _derived(conversation_id: str, listener: str, key: str) -> str:
    """A referral's id from the console's id of it (:meth:`Referrals.refer`): the same at every resend."""
    return hashlib.sha256(f"referral:{conversation_id}:{listener}:{key}".encode()).hexdigest()[:16]


def reference(referral: Referral) -> str:
    return "R-" + referral.id[:10].upper()


class ReferralsRoles(
    CaseworkStore, AuditStore, ConversationStore, EventStore, LockStore, QueueStore, TranscriptStore, Protocol
):  # fmt: skip
    """What warm referrals need of the store (the queue's: the endings listed as begun; the transcript's: a consent
    question asked already)."""


class Referrals:
    def __init__(
        self, dispatcher: Dispatcher, store: ReferralsRoles, flows: FlowSet, mailer: Mailer | None, *, clock: Clock
    ) -> None:
        self.dispatcher, self.store, self.flows, self.mailer, self.clock = dispatcher, store, flows, mailer, clock

    def _partner(self, partner: str) -> tuple[Flow, Partner]:
        flow = self.flows.engine().flow
        found = flow.partners.get(partner)
        if found is None or found.referral is None or flow.referrals is None or flow.notices is None:
            raise ActionRefused("unknown_partner", f"partner '{partner}' takes no warm referrals")
        return flow, found

    async def _mine(self, conversation_id: str, listener: str) -> Conversation:
        conversation = await self.store.get_conversation(conversation_id)
        if conversation is None:
            raise ActionRefused("not_found", "no such conversation")
        if conversation.status != Status.WITH_LISTENER or conversation.listener != listener:
            raise ActionRefused("not_yours", "take the conversation first (it is not with you)")
        if conversation_id in await self.store.leavings_begun():  # told goodbye, its record not written yet (Redis)
            raise ActionRefused("not_active", ENDING)  # as a reply is (``Actions._not_ending``): nothing after it
        return conversation

    def preview(self, conversation: Conversation, partner: str) -> list[tuple[str, str]]:
        """What the partner would receive: its fields, as the young person answered them (to review)."""
        flow, found = self._partner(partner)
        assert found.referral is not None
        answers = conversation.engine.get("fields") or {}
        lang = flow.default_language
        return [(flow.fields[name].label.get(lang, name) if name in flow.fields else name, str(answers[name]))
                for name in found.referral.fields if name in answers]  # fmt: skip

    async def ask(self, conversation_id: str, listener: str, partner: str, key: str | None = None) -> None:
        """Send the consent question to the young person. Whose the conversation is, read under its lock: a close (a
        hand-back, a transfer) under way holds it, and the question would reach the young person after its goodbye.
        ``key``: the console's id of this question, the same when it sends it again (its answer lost): its entry's id
        derives from it, and one written already (read under the lock) is neither told nor audited again."""
        self._partner(partner)  # refused before the lock
        ids = (
            contextlib.nullcontext(None)
            if key is None
            else derived_ids(_derived(conversation_id, listener, f"ask:{key}"))
        )
        async with self.store.lock(conversation_id):
            with ids as asked:
                await self._question(conversation_id, listener, partner, asked)

    async def _question(self, conversation_id: str, listener: str, partner: str, asked: str | None) -> None:
        """:meth:`ask`'s, under the lock: ``asked``, the question's id when it has one (the console's)."""
        flow, found = self._partner(partner)
        assert flow.referrals is not None
        conversation = await self._mine(conversation_id, listener)
        if asked is not None and await self.store.entries_written(conversation_id, [asked]):
            return  # asked already: its answer was lost
        now = self.clock()
        if unsubscribed(conversation):  # Twilio would refuse it (21610): "not sent", yet the console said "asked"
            raise ActionRefused("unsubscribed", "they unsubscribed (STOP): nothing reaches them before START")
        if self.dispatcher.closed_window(conversation, Author.LISTENER, now) is not None:
            raise ActionRefused("window_closed", "the channel's reply window has closed")
        engine = self.flows.for_version(conversation.flow_version)
        lang = language_of(conversation, engine.flow)
        name = engine.text(found.name, lang)
        question = engine.text(flow.referrals.consent_question, lang).replace("{partner}", name)
        await self.dispatcher.emit(conversation, [Reply(question)], Author.LISTENER, now)
        await self.store.audit(AuditEntry(now, listener, "referral_consent_asked", conversation.pseudonym, partner))

    async def refer(
        self, conversation_id: str, listener: str, partner: str, consent: bool, shared: list[tuple[str, str]],
        summary: str, key: str | None = None,
    ) -> Referral:  # fmt: skip
        """Record the young person's answer; with a yes only, e-mail the reviewed summary to the partner. ``key``: the
        console's id of this referral, the same when it sends it again (its answer lost, or a 503): the referral's id
        (its reference) derives from it, and one recorded already is answered as it was, never e-mailed again."""
        flow, found = self._partner(partner)
        assert found.referral is not None and flow.referrals is not None and flow.notices is not None  # by _partner
        conversation = await self._mine(conversation_id, listener)
        referral_id = new_id() if key is None else _derived(conversation.id, listener, key)
        if key is not None and (recorded := await self.store.get_referral(referral_id)) is not None:
            return recorded
        now = self.clock()
        referral = Referral(
            id=referral_id, conversation_id=conversation.id, pseudonym=conversation.pseudonym, partner=partner,
            consent=consent, created_by=listener, created_at=now, updated_at=now, status=ReferralStatus.DECLINED,
        )  # fmt: skip
        engine = self.flows.for_version(conversation.flow_version)
        lang = language_of(conversation, engine.flow)
        if not consent:
            # The partner's own message follows: how to reach them, and when (never "whenever you like": most
            # partners keep hours).
            name = engine.text(found.name, lang)
            declined = engine.text(flow.referrals.declined_message, lang).replace("{partner}", name)
            await self._tell(conversation, listener, f"{declined}\n\n{engine.text(found.message, lang)}")
            return await self._save(referral, listener, "referral_declined", "no consent: nothing sent")
        shared, summary = self._reviewed(conversation, partner, shared, summary)
        if self.mailer is None:
            raise ActionRefused("smtp_not_configured", "no SMTP server is configured (GATEWAY_SMTP_URL)")
        referral = replace(referral, status=ReferralStatus.SENT, shared=tuple(shared), summary=summary, sent_at=now)
        email = self._email(flow, found, referral)
        try:
            message_id = await self.mailer.send(email)
        except MailError as exc:
            log.warning("referrals: referral %s not sent: %s", referral.id, exc)
            raise ActionRefused("mail_failed", str(exc)) from None
        sent = replace(referral, message_id=message_id)
        await self._recorded(sent)  # before anything else: the e-mail went, a resend must find it
        await self._tell(conversation, listener, engine.text(found.referral.next_steps, lang))
        return await self._save(sent, listener, "referral_sent", f"{len(shared)} field(s) shared with {partner}")

    async def _recorded(self, referral: Referral) -> None:
        """Record a referral the partner was e-mailed, through a store outage of up to :data:`RECORD_SECONDS` (a Redis
        restart): the e-mail cannot be taken back, and a referral left unrecorded is e-mailed again by the listener's
        resend. Before, the 503 of a restart there made the resend a second referral with another reference."""
        loop, delay = asyncio.get_running_loop(), 0.1
        deadline = loop.time() + RECORD_SECONDS
        while True:
            try:
                await self.store.put_referral(referral)
                return
            except StoreError:
                if loop.time() + delay > deadline:
                    raise
                log.warning("referrals: referral %s e-mailed, its record waits for the store", referral.id)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)

    def _reviewed(
        self, conversation: Conversation, partner: str, shared: list[tuple[str, str]], summary: str
    ) -> tuple[list[tuple[str, str]], str]:
        allowed = {label for label, _ in self.preview(conversation, partner)}
        kept = [(label, value.strip()) for label, value in shared if value.strip()]
        for label, value in kept:
            if label not in allowed:
                raise ActionRefused("bad_request", f"'{label}' is not a field this partner receives", field="shared")
            if len(value) > MAX_VALUE:
                raise ActionRefused("bad_request", f"a shared value has at most {MAX_VALUE} characters",
                                    field="shared_value", max=MAX_VALUE)  # fmt: skip
        summary = summary.strip()
        if len(summary) > MAX_SUMMARY:
            raise ActionRefused("bad_request", f"the summary has at most {MAX_SUMMARY} characters",
                                field="summary", max=MAX_SUMMARY)  # fmt: skip
        no_identity(conversation, [summary, *(v for _, v in kept)])
        return kept, summary

    def _email(self, flow: Flow, partner: Partner, referral: Referral) -> EmailMessage:
        assert flow.notices is not None and partner.referral is not None
        subject, body = _MAIL.get(flow.default_language, _MAIL["en"])
        notifier = flow.notices.notifier
        fields = "\n".join(f"- {label} : {value}" for label, value in referral.shared) or "-"
        values = {"helpline": notifier.name, "ref": reference(referral), "email": notifier.email, "fields": fields,
                  "summary": referral.summary or "-"}  # fmt: skip
        return plain_email(notifier.email, partner.referral.email, subject.format(**values), body.format(**values))

    async def _tell(self, conversation: Conversation, listener: str, text: str) -> None:
        """Tell the young person the answer's outcome, the conversation still the listener's (read under its lock): one
        closed, handed back or transferred since the answer was sent (its goodbye or its place told, during the
        e-mail, say) hears nothing more of it; the referral is recorded all the same."""
        async with self.store.lock(conversation.id):
            try:
                current = await self._mine(conversation.id, listener)
            except ActionRefused:
                log.info(
                    "referrals: conversation %s no longer with its listener: the young person not told", conversation.id
                )
                return
            await self.dispatcher.emit(current, [Reply(text)], Author.LISTENER, self.clock())

    async def update(self, referral_id: str, by: str, status: str) -> Referral:
        """A listener's status move, read and written under the referral's lock: an inbound link's exchange writes
        the page that opened it on the same record (``inbound.py``), and either read before the other's write lost
        it (until 2026-12-06: the move undone, the console showing the referral "sent" again)."""
        async with self.store.lock(REFERRAL_LOCK + referral_id):
            return await self._update(referral_id, by, status)

    async def _update(self, referral_id: str, by: str, status: str) -> Referral:
        referral = await self.store.get_referral(referral_id)
        if referral is None:
            raise ActionRefused("not_found", "no such referral")
        try:
            target = ReferralStatus(status)
        except ValueError:
            raise ActionRefused("bad_request", f"unknown status '{status}'") from None
        if target not in REFERRAL_MOVES.get(referral.status, frozenset()):
            raise ActionRefused("bad_status", f"a {referral.status.value} referral cannot become {target.value}",
                                current=referral.status.value)  # fmt: skip
        return await self._save(referral.moved(target, self.clock()), by, f"referral_{target.value}", "")

    async def _save(self, referral: Referral, by: str, action: str, detail: str) -> Referral:
        await self.store.put_referral(referral)
        subject = f"{reference(referral)} ({referral.pseudonym})"
        await self.store.audit(AuditEntry(self.clock(), by, action, subject, detail))
        await self.store.publish(NoticesChanged(referral.conversation_id))
        return referral
