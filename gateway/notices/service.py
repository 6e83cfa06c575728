"""Takedown notices from a conversation: create, send (e-mail) or mark filed (web form), follow up, tell the
young person of a removal, remind when a platform is late, delete evidence once it is no longer needed.

Guarantees:

* no notice carries the young person's identity: a description or location containing their channel address
  (phone number, platform id) is refused, files are renamed ``evidence-N``, the notifier is the helpline;
* child sexual abuse material (a ``csam`` category) is never attached, only located, and a companion notice to
  ``notices.csam_also_to`` (Pharos) is always created with it;
* the young person hears of a removal in their language, on their channel, inside the channel's reply window:
  when it is closed, as soon as they write again (this conversation or their next one on that channel);
* evidence files are kept until the notice is closed plus ``notices.retention_days``, then deleted; also once
  flows.yaml has lost its ``notices:`` section (a reload, a restart): with the ``retention_days`` the notice holds
  (the section's as it closed, kept in step by the sweep), else the last one this process loaded, else the default
  (30 days) (reminders and removals told stop with the section);
* every action is in the audit log (who, what, which notice; never a text).
"""

from __future__ import annotations

import asyncio
import logging
import mimetypes
from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Protocol

from gateway.channels.base import MediaFetcher
from gateway.clock import Clock
from gateway.console.media import attachments_of
from gateway.conversation import Conversation
from gateway.dispatcher import Dispatcher
from gateway.errors import ActionRefused, DeliveryError, MailError
from gateway.events import Alert, NoticesChanged
from gateway.flows.casework import Notices as NoticesSection
from gateway.flows.model import Flow
from gateway.flowset import FlowSet
from gateway.ids import new_id
from gateway.language import language_of
from gateway.mailer import Mailer
from gateway.messages import ChannelName, Reply
from gateway.metrics import Metrics
from gateway.notices.compose import compose, not_in_flow, notice_email, reference
from gateway.notices.locations import MAX_LENGTH, MAX_LOCATIONS, LocationError, normalise_locations
from gateway.notices.record import CLOSED_NOTICE, NOTICE_MOVES, Evidence, Notice, NoticeStatus
from gateway.store import (
    AuditEntry,
    AuditStore,
    Author,
    CaseworkStore,
    ConversationStore,
    EventStore,
    LockStore,
    TranscriptStore,
)

log = logging.getLogger(__name__)

MAX_DESCRIPTION = 2000
MAX_ANSWER = 4000
MAX_EVIDENCE = 10
DEFAULT_RETENTION_DAYS: int = NoticesSection.model_fields["retention_days"].default  # flows.yaml's default: 30


class NoticesRoles(CaseworkStore, AuditStore, ConversationStore, TranscriptStore, EventStore, LockStore, Protocol):
    """What the notices need of the store (messages to the young person go through the dispatcher)."""


class Notices:
    def __init__(
        self, dispatcher: Dispatcher, store: NoticesRoles, flows: FlowSet, fetchers: Mapping[ChannelName, MediaFetcher],
        mailer: Mailer | None, *, clock: Clock, poll_seconds: float = 30.0, metrics: Metrics,
    ) -> None:  # fmt: skip
        self.dispatcher, self.store, self.flows = dispatcher, store, flows
        self.fetchers, self.mailer = fetchers, mailer
        self.clock = clock
        self.poll_seconds = poll_seconds
        # the server's: its store outages, where :meth:`run` tells a failed sweep (``/readyz``'s ``store_waiting``,
        # ``gateway_store_failures_total``); required: until 2026-12-07 one built without made a private one in run
        self.metrics = metrics
        # the evidence's retention: the current flow's, else the last one this process loaded (the section removed
        # by a reload must not switch it off), else the default
        self.retention_days = DEFAULT_RETENTION_DAYS

    def flow(self) -> Flow:
        flow = self.flows.engine().flow
        if flow.notices is None:
            raise ActionRefused("no_notices", "flows.yaml has no 'notices:' section")
        return flow

    # ----- creating -----------------------------------------------------------------------------------------

    async def create(
        self, conversation_id: str, by: str, platform: str, category: str, locations: list[str],
        description: str, evidence: list[int],
    ) -> list[Notice]:  # fmt: skip
        """A draft notice (and, for CSAM, its companion to ``csam_also_to``), with copies of its evidence."""
        flow, conversation = self.flow(), await self._conversation(conversation_id)
        if platform not in flow.platforms:
            raise ActionRefused("bad_request", f"no platform '{platform}' in the flow", field="platform")
        if category not in flow.notice_categories:
            raise ActionRefused("bad_request", f"no notice category '{category}' in the flow", field="category")
        try:
            places = normalise_locations(locations)
        except LocationError as exc:
            at = {"field": "location", "position": exc.position} if exc.position else {"field": "locations"}
            raise ActionRefused("bad_request", str(exc), **at, max=MAX_LOCATIONS, length=MAX_LENGTH) from None
        description = description.strip()
        if len(description) > MAX_DESCRIPTION:
            raise ActionRefused("bad_request", f"the description has at most {MAX_DESCRIPTION} characters",
                                field="description", max=MAX_DESCRIPTION)  # fmt: skip
        no_identity(conversation, [description, *places])
        csam = flow.notice_categories[category].csam
        if csam and evidence:
            raise ActionRefused("bad_request", "child sexual abuse material is never attached: give its location only",
                                field="csam_evidence")  # fmt: skip
        files = await self._evidence(conversation, sorted(set(evidence)))
        now = self.clock()
        notice = Notice(
            id=new_id(), conversation_id=conversation.id, pseudonym=conversation.pseudonym, platform=platform,
            category=category, locations=places, description=description,
            language=flow.platforms[platform].language, created_by=by, created_at=now, updated_at=now,
            evidence=tuple(sorted(set(evidence))), csam=csam,
        )  # fmt: skip
        notices = [notice]
        also = flow.notices.csam_also_to if flow.notices else None
        if csam and also and also != platform:
            copy = replace(notice, id=new_id(), platform=also, language=flow.platforms[also].language, linked=notice.id)
            notices = [replace(notice, linked=copy.id), copy]
        for made in notices:
            await self.store.put_notice(made)
            await self._audit(by, "notice_created", made, f"{made.platform}/{made.category}, {len(places)} location(s),"
                                                           f" {len(files)} file(s)")  # fmt: skip
        if files:
            await self.store.put_evidence(notice.id, files)
        await self._changed(conversation.id)
        return notices

    async def _conversation(self, conversation_id: str) -> Conversation:
        conversation = await self.store.get_conversation(conversation_id)
        if conversation is None:
            raise ActionRefused("not_found", "no such conversation")
        return conversation

    async def _evidence(self, conversation: Conversation, numbers: list[int]) -> list[Evidence]:
        if len(numbers) > MAX_EVIDENCE:
            raise ActionRefused("bad_request", f"at most {MAX_EVIDENCE} evidence files",
                                field="evidence", max=MAX_EVIDENCE)  # fmt: skip
        found = attachments_of(await self.store.transcript(conversation.id))
        fetcher, files = self.fetchers.get(conversation.channel), []
        for n, number in enumerate(numbers, start=1):
            if not 0 <= number < len(found):
                raise ActionRefused("bad_request", f"the conversation has no attachment {number}",
                                    field="attachment", position=number + 1)  # fmt: skip
            if fetcher is None or found[number].url is None:
                raise ActionRefused("not_fetchable", f"attachment {number} cannot be fetched from its channel",
                                    position=number + 1)  # fmt: skip
            try:
                data, content_type = await fetcher.fetch_media(found[number])
            except DeliveryError as exc:
                raise ActionRefused("media_unavailable", str(exc), position=number + 1) from None
            kind = (content_type or "application/octet-stream").split(";")[0].strip().lower()
            files.append(Evidence(f"evidence-{n}{mimetypes.guess_extension(kind) or '.bin'}", kind, data))
        return files

    # ----- sending and following up -------------------------------------------------------------------------

    async def get(self, notice_id: str) -> Notice:
        notice = await self.store.get_notice(notice_id)
        if notice is None:
            raise ActionRefused("not_found", "no such notice")
        return notice

    async def send(self, notice_id: str, by: str) -> Notice:
        """E-mail a draft notice to its platform, evidence attached (never for CSAM); once, even when two
        listeners press "send" together (the notice's lock)."""
        async with self.store.lock("notice:" + notice_id, timeout=60.0):
            return await self._send(notice_id, by)

    async def _send(self, notice_id: str, by: str) -> Notice:
        flow, notice = self.flow(), await self.get(notice_id)
        platform = flow.platforms.get(notice.platform)
        if notice.status != NoticeStatus.DRAFT:
            raise ActionRefused("not_draft", "this notice was sent already", current=notice.status.value)
        in_flow(notice, flow)
        if platform is None or platform.email is None:
            raise ActionRefused("web_form", "this platform has only a web form: paste the text, then mark it filed")
        if self.mailer is None:
            raise ActionRefused("smtp_not_configured", "no SMTP server is configured (GATEWAY_SMTP_URL)")
        files = [] if notice.csam else await self.store.get_evidence(notice.id)
        email = notice_email(compose(notice, flow, files), flow, platform.email, files)
        try:
            message_id = await self.mailer.send(email)
        except MailError as exc:
            log.warning("notices: notice %s not sent: %s", notice.id, exc)
            raise ActionRefused("mail_failed", str(exc)) from None
        sent = replace(notice.moved(NoticeStatus.SENT, self.clock()), message_id=message_id)
        return await self._save(sent, by, "notice_sent", f"e-mailed to {platform.name}")

    async def mark_filed(self, notice_id: str, by: str) -> Notice:
        """A listener filed the ready text on the platform's web form."""
        async with self.store.lock("notice:" + notice_id):
            return await self._mark_filed(notice_id, by)

    async def _mark_filed(self, notice_id: str, by: str) -> Notice:
        flow, notice = self.flow(), await self.get(notice_id)
        platform = flow.platforms.get(notice.platform)
        if notice.status != NoticeStatus.DRAFT:
            raise ActionRefused("not_draft", "this notice was sent already", current=notice.status.value)
        in_flow(notice, flow)
        if platform is None or platform.form is None:
            raise ActionRefused("not_web_form", "this platform takes notices by e-mail: send it")
        filed = notice.moved(NoticeStatus.SENT, self.clock())
        return await self._save(filed, by, "notice_filed", f"filed on the {platform.name} web form")

    async def update(self, notice_id: str, by: str, status: str, answer: str = "") -> Notice:
        """Record the platform's answer: acknowledged, removed, refused, or no answer."""
        async with self.store.lock("notice:" + notice_id):
            return await self._update(notice_id, by, status, answer)

    async def _update(self, notice_id: str, by: str, status: str, answer: str = "") -> Notice:
        notice = await self.get(notice_id)
        try:
            target = NoticeStatus(status)
        except ValueError:
            raise ActionRefused("bad_request", f"unknown status '{status}'") from None
        if target not in NOTICE_MOVES.get(notice.status, frozenset()):
            raise ActionRefused("bad_status", f"a notice goes from {notice.status.value} to"
                                              f" {', '.join(sorted(NOTICE_MOVES.get(notice.status, ())))}",
                                current=notice.status.value)  # fmt: skip
        if len(answer) > MAX_ANSWER:
            raise ActionRefused("bad_request", f"the answer has at most {MAX_ANSWER} characters",
                                field="answer", max=MAX_ANSWER)  # fmt: skip
        now, section = self.clock(), self.flows.engine().flow.notices
        moved = notice.moved(target, now, answer.strip())
        if section is not None and target in CLOSED_NOTICE:  # its retention kept with it (the section may go)
            moved = replace(moved, retention_days=section.retention_days)
        if target == NoticeStatus.REMOVED:
            moved = await self.tell(moved, now)
        return await self._save(moved, by, f"notice_{target.value}", "answer pasted" if answer.strip() else "")

    async def _save(self, notice: Notice, by: str, action: str, detail: str) -> Notice:
        await self.store.put_notice(notice)
        await self._audit(by, action, notice, detail)
        await self._changed(notice.conversation_id)
        return notice

    async def _audit(self, by: str, action: str, notice: Notice, detail: str) -> None:
        subject = f"{reference(notice)} ({notice.pseudonym})"
        await self.store.audit(AuditEntry(self.clock(), by, action, subject, detail))

    async def _changed(self, conversation_id: str) -> None:
        await self.store.publish(NoticesChanged(conversation_id))

    # ----- telling the young person -------------------------------------------------------------------------

    async def tell(self, notice: Notice, now: datetime) -> Notice:
        """Send the removal message if the channel lets the bot write now; else it waits (``told_at`` None)."""
        flow = self.flow()
        conversation = await self.store.get_conversation(notice.conversation_id)
        if conversation is None or notice.told_at is not None or flow.notices is None:
            return notice
        target = conversation
        if not conversation.active:  # they may have written again since: tell them in that conversation
            target = await self.store.find_active_conversation(conversation.channel, conversation.sender) or target
        if self.dispatcher.closed_window(target, Author.BOT, now) is not None:
            return notice
        engine = self.flows.for_version(target.flow_version)
        text = engine.text(flow.notices.removed_message, language_of(target, engine.flow))
        async with self.store.lock(target.id):
            await self.dispatcher.emit(target, [Reply(text)], Author.BOT, now)
        return replace(notice, told_at=now)

    # ----- the background round: late answers, pending removals, retention -----------------------------------

    async def run(self) -> None:
        """Sweep every ``poll_seconds``, for the app's lifetime (under the supervisor). A sweep the store failed is
        told once an outage (``gateway/outage_log.py``) and made again at the next poll, as the outbox and timers
        wait for the store; a bug stops the worker, which the supervisor logs, counts and restarts. Until 2026-12-06
        the store's failure stopped it too (restarted and counted at each Redis restart, ``down`` meanwhile). Every
        sweep reads the list of notices first, with or without a ``notices:`` section (the evidence's retention goes
        on without it), so its answer is the store's. Until 2026-12-07 a sweep without the section read nothing
        (the evidence kept forever) yet said the store answered, which took ``notices`` out of ``/readyz``'s
        ``store_waiting`` during an outage; for a few hours that day (75b69b5e) no sweep was made without it."""
        outages = self.metrics.outages
        while True:
            await outages.attempt("notices", self.sweep(self.clock()))
            await asyncio.sleep(self.poll_seconds)

    async def sweep(self, now: datetime) -> None:
        """Reminders and removals told while flows.yaml has a ``notices:`` section; the evidence's retention always
        (until 2026-12-07 nothing without the section: the evidence of closed notices kept forever)."""
        flow = self.flows.engine().flow
        if flow.notices is not None:
            self.retention_days = flow.notices.retention_days
        keep = timedelta(days=self.retention_days)
        for listed in await self.store.list_notices():
            if _due_work(listed, flow, keep, now):
                async with self.store.lock("notice:" + listed.id):  # never over a listener's concurrent update
                    notice = await self.store.get_notice(listed.id)
                    if notice is not None:
                        await self._sweep_one(notice, flow, keep, now)

    async def _sweep_one(self, notice: Notice, flow: Flow, keep: timedelta, now: datetime) -> None:
        if flow.notices is not None:
            platform = flow.platforms.get(notice.platform)
            due = notice.due_at(platform.response_hours) if platform else None
            if due is not None and due <= now and notice.reminded_at is None:
                notice = await self._remind(notice, now)
            if notice.status == NoticeStatus.REMOVED and notice.told_at is None:
                told = await self.tell(notice, now)
                if told.told_at is not None:
                    notice = await self._save(told, "gateway", "notice_removal_told", "the young person was told")
        if _restamp(notice, flow):  # the section's retention kept with the notice, for when the section is gone
            assert flow.notices is not None
            notice = replace(notice, retention_days=flow.notices.retention_days)
            await self.store.put_notice(notice)
        closed_at = notice.closed_at if notice.status in CLOSED_NOTICE else None
        keep = _kept(notice, flow, keep)
        if closed_at is not None and notice.evidence_deleted_at is None and closed_at + keep <= now:
            count = await self.store.drop_evidence(notice.id)
            await self._save(replace(notice, evidence_deleted_at=now), "gateway", "evidence_deleted",
                             f"{count} file(s), {keep.days} days after closing")  # fmt: skip

    async def _remind(self, notice: Notice, now: datetime) -> Notice:
        reminded = await self._save(replace(notice, reminded_at=now), "gateway", "notice_overdue",
                                    f"no answer from {notice.platform} in time")  # fmt: skip
        detail = f"{notice.platform}: no answer in time ({notice.pseudonym})"
        await self.store.publish(Alert("notice_overdue", reference(notice), detail))
        return reminded


def in_flow(notice: Notice, flow: Flow) -> None:
    """Refuse to send or file a notice whose platform or category a flows.yaml reload removed."""
    gone = not_in_flow(notice, flow)
    if gone:
        recorded = {"platform": notice.platform, "category": notice.category}
        names = " and ".join(f"its {part} '{recorded[part]}'" for part in gone)
        verb = "are" if len(gone) > 1 else "is"
        raise ActionRefused("not_in_flow", f"{names} {verb} no longer in flows.yaml: write a new notice")


def _restamp(notice: Notice, flow: Flow) -> bool:
    """Whether a closed notice whose evidence is kept does not yet hold the section's current retention (closed
    before 2026-12-07, or the section's ``retention_days`` changed since): written once, then not again."""
    return (flow.notices is not None and notice.status in CLOSED_NOTICE and notice.evidence_deleted_at is None
            and notice.retention_days != flow.notices.retention_days)  # fmt: skip


def _kept(notice: Notice, flow: Flow, keep: timedelta) -> timedelta:
    """How long after closing its evidence is kept: the section's retention while it is there (``keep``); without
    it, the one the notice holds (the section's as it closed or was last swept: never shorter because the section
    went and the process started again, as the default 30 days was for a section of 90 until 2026-12-07), else
    ``keep`` (the last one this process loaded, else the default)."""
    if flow.notices is None and notice.retention_days is not None:
        return timedelta(days=notice.retention_days)
    return keep


def _due_work(notice: Notice, flow: Flow, keep: timedelta, now: datetime) -> bool:
    """Whether the background round has something to do for this notice (checked again under its lock): without a
    ``notices:`` section, only the deletion of its evidence, its retention after closing."""
    if _restamp(notice, flow):
        return True
    if flow.notices is not None:
        platform = flow.platforms.get(notice.platform)
        due = notice.due_at(platform.response_hours) if platform else None
        if due is not None and due <= now and notice.reminded_at is None:
            return True
        if notice.status == NoticeStatus.REMOVED and notice.told_at is None:
            return True
    closed_at = notice.closed_at if notice.status in CLOSED_NOTICE else None
    return closed_at is not None and notice.evidence_deleted_at is None and closed_at + _kept(notice, flow, keep) <= now


PHONE_TAIL = 9  # a phone number's last digits compared: its national number whatever the prefix (+33 6…, 06…)


def identity_forms(sender: str) -> frozenset[str]:
    """What of the young person's channel address a text must not hold, in its letters and digits only: the address
    without its channel's prefix (``whatsapp:+33612345678`` → ``33612345678``; a platform id as it is) and, for a
    phone number, its last :data:`PHONE_TAIL` digits, which the national form (``06 12 34 56 78``) holds too."""
    address = sender.split(":", 1)[1] if sender[:1].isalpha() and ":" in sender else sender
    forms = {"".join(c for c in address if c.isalnum())}
    digits = "".join(c for c in address if c.isdigit())
    if address.lstrip().startswith("+") and len(digits) > PHONE_TAIL:
        forms.add(digits[-PHONE_TAIL:])
    return frozenset(form for form in forms if len(form) >= 6)


def no_identity(conversation: Conversation, texts: list[str]) -> None:
    """Refuse a notice or a referral that would carry the young person's channel address (phone number, platform
    id), in any spacing or punctuation: ``+33 6 12 34 56 78``, ``06.12.34.56.78``, the id as the provider sends it."""
    forms = identity_forms(conversation.sender)
    for text in texts:
        flat = "".join(c for c in text if c.isalnum())
        if any(form in flat for form in forms):
            raise ActionRefused("identity", "a notice never carries the young person's number or platform id")
