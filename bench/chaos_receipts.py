"""The receipts of ``bench/chaos.py``: what the platforms post back about the replies they accepted, and its audit.

Real providers send more than young people's messages: Messenger posts ``delivery`` (with the message's ``mid``,
or a watermark alone) and ``read`` (a watermark: every message sent up to then) for the page's replies; Twilio
posts a status callback (``queued``, ``sent``, ``delivered``, ``read``, or ``failed`` / ``undelivered`` with an
``ErrorCode``) to the ``StatusCallback`` URL the gateway gave with each message, form-encoded and signed over that
URL. Telegram sends none. Here, once a fake accepted a reply (:meth:`Receipts.accepted`), each of its receipts is
posted on its own after a delay (the next state a little later than the one before), to an instance that is up
(round robin), signed, and **redelivered** one second after any answer that is not a 2xx until acknowledged (as
Meta does; Twilio until acknowledged for the audit). Some come late (20–60 s), some twice, some out of order (read
before delivered); faults hit them as they come.

The audit (:func:`audit_receipts`): for each reply a transcript records by its provider id, the furthest state
among its receipts acknowledged at least once (read beats delivered beats sent; failed when a failure was
acknowledged, a failure path having no delivered nor read) against the entry's delivery at the end: **behind**
(an acknowledged receipt not applied, or applied then gone backwards), **failed not shown**; the receipts for a
copy no transcript records (a reply received twice) change nothing the audit can see and are counted apart.
That receipts never count as a young person's message nor create a conversation is audited beside the messages
(``bench/chaos.py``: user entries and conversations per sender).
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urlencode, urlsplit

from aiohttp import ClientError, ClientSession

from bench.chaos_channels import TWILIO_TOKEN, Copy
from bench.load import SECRET
from gateway.messages import ChannelName
from gateway.testing import (
    WHATSAPP_FROM,
    messenger_body,
    messenger_delivery,
    messenger_read,
    sign_twilio,
    signed_messenger,
    twilio_status_form,
)

REDELIVER_AFTER = 1.0
RANK = {"sent": 1, "delivered": 2, "read": 3}  # the gateway's order; a failure is apart
TWILIO_FAILURES = ("failed", "undelivered")
FAILURE_CODES = ("30008", "63024", "30003")  # unknown error, recipient cannot receive, unreachable (never 21610: STOP)
GATEWAY_STATE = {"queued": "sent", "sent": "sent", "delivered": "delivered", "read": "read",
                 "failed": "failed", "undelivered": "failed"}  # fmt: skip


@dataclass(frozen=True, slots=True)
class Plan:
    """One receipt to post: the provider's status word, after ``delay`` s, ``copies`` times."""

    status: str
    delay: float
    copies: int = 1
    by_id: bool = True  # Messenger's delivery: with the message's mid (else a watermark alone)


@dataclass
class Tally:
    posted: int = 0  # receipts planned (each posted until acknowledged)
    acknowledged: int = 0
    given_up: int = 0
    redelivered: int = 0
    answers: Counter[str] = field(default_factory=Counter)  # HTTP status or error class, every attempt
    late: int = 0
    twice: int = 0
    out_of_order: int = 0
    failures: int = 0  # copies given a failure path (Twilio)


@dataclass
class Receipts:
    """The platforms' receipts for the replies their fakes accepted; ``pick`` gives an instance that is up."""

    session: ClientSession
    pick: Callable[[], str]
    rng: random.Random
    deadline: float  # monotonic: a receipt still refused then is given up (counted)
    tallies: dict[ChannelName, Tally] = field(default_factory=dict)
    # (channel, provider id) → the furthest state acknowledged, "failed" once a failure was
    furthest: dict[tuple[ChannelName, str], str] = field(default_factory=dict)
    running: set[asyncio.Task[None]] = field(default_factory=set)
    # (channel, provider id) → each acknowledged receipt: "status@first post–acknowledgement" (s after the reply's
    # acceptance), "+w" for a watermark alone: what the audit shows of a reply left behind
    history: dict[tuple[ChannelName, str], list[str]] = field(default_factory=dict)
    copies: dict[tuple[ChannelName, str], Copy] = field(default_factory=dict)  # the reply each receipt is about

    def accepted(self, channel: ChannelName, copy: Copy, callback: str) -> None:
        """A fake accepted ``copy``: its receipts are planned and posted, each on its own."""
        if channel not in (ChannelName.MESSENGER, ChannelName.WHATSAPP) or time.monotonic() >= self.deadline:
            return
        tally = self.tallies.setdefault(channel, Tally())
        self.copies[channel, copy.provider_id] = copy
        for plan in self.plan(channel, tally):
            tally.posted += 1
            task = asyncio.create_task(self._post(channel, copy, callback, plan, tally))
            self.running.add(task)
            task.add_done_callback(self.running.discard)

    def plan(self, channel: ChannelName, tally: Tally) -> list[Plan]:
        rng = self.rng
        if channel is ChannelName.WHATSAPP:
            if rng.random() < 0.06:
                tally.failures += 1
                statuses = ["queued", "sent", rng.choice(TWILIO_FAILURES)]
            else:
                statuses = ["queued", "sent", "delivered"] + (["read"] if rng.random() < 0.7 else [])
        else:
            statuses = ["delivered"] + (["read"] if rng.random() < 0.7 else [])
        delays, at = [], 0.0
        for _ in statuses:
            at += rng.uniform(0.05, 1.5)
            delays.append(at)
        if len(statuses) >= 2 and rng.random() < 0.15:  # the last two swapped: read before delivered
            tally.out_of_order += 1
            delays[-1], delays[-2] = delays[-2], delays[-1]
        plans = []
        for status, delay in zip(statuses, delays, strict=True):
            late = rng.random() < 0.05
            twice = rng.random() < 0.05
            tally.late += late
            tally.twice += twice
            by_id = channel is ChannelName.WHATSAPP or status != "delivered" or rng.random() < 0.9
            plans.append(Plan(status, delay + (rng.uniform(20, 60) if late else 0.0), 2 if twice else 1, by_id))
        return plans

    async def _post(self, channel: ChannelName, copy: Copy, callback: str, plan: Plan, tally: Tally) -> None:
        await asyncio.sleep(plan.delay)
        acknowledged, first = False, time.monotonic()
        for _ in range(plan.copies):  # a duplicate: posted again once acknowledged (or concurrently, by chance)
            path, raw, headers = self._request(channel, copy, callback, plan)
            acknowledged |= await self._deliver(path, raw, headers, tally)
            await asyncio.sleep(self.rng.uniform(0.0, 0.5))
        if not acknowledged:
            tally.given_up += 1
            return
        tally.acknowledged += 1
        key = (channel, copy.provider_id)
        how = "" if plan.by_id else "+w"
        when = f"{first - copy.at:.2f}–{time.monotonic() - copy.at:.2f}"
        self.history.setdefault(key, []).append(f"{plan.status}{how}@{when}")
        state = GATEWAY_STATE[plan.status]
        known = self.furthest.get(key)
        if state == "failed" or known == "failed":
            self.furthest[key] = "failed"
        elif known is None or RANK[state] > RANK[known]:
            self.furthest[key] = state

    def _request(
        self, channel: ChannelName, copy: Copy, callback: str, plan: Plan
    ) -> tuple[str, bytes, dict[str, str]]:
        """The signed request, made at posting time (Meta's watermark and timestamp are the moment it is sent)."""
        if channel is ChannelName.WHATSAPP:
            error = self.rng.choice(FAILURE_CODES) if plan.status in TWILIO_FAILURES else None
            form = twilio_status_form(copy.provider_id, plan.status, copy.recipient, error, WHATSAPP_FROM)
            form.update(SmsSid=copy.provider_id, SmsStatus=plan.status, ApiVersion="2010-04-01",
                        ChannelPrefix="whatsapp")  # fmt: skip
            headers = {"Content-Type": "application/x-www-form-urlencoded",
                       "X-Twilio-Signature": sign_twilio(TWILIO_TOKEN, callback, form)}  # fmt: skip
            return urlsplit(callback).path, urlencode(form).encode(), headers
        now = int(time.time() * 1000)
        if plan.status == "read":
            event = messenger_read(copy.recipient, now)
        else:
            event = messenger_delivery(copy.recipient, [copy.provider_id] if plan.by_id else None, now)
        raw, headers = signed_messenger(SECRET, messenger_body([event]))
        return "/webhooks/messenger", raw, headers

    async def _deliver(self, path: str, raw: bytes, headers: dict[str, str], tally: Tally) -> bool:
        while time.monotonic() < self.deadline:
            try:
                async with self.session.post(self.pick() + path, data=raw, headers=headers) as response:
                    await response.read()
                    tally.answers[str(response.status)] += 1
                    if 200 <= response.status < 300:
                        return True
            except (ClientError, TimeoutError) as error:
                tally.answers[type(error).__name__] += 1
            tally.redelivered += 1
            await asyncio.sleep(REDELIVER_AFTER)
        return False

    async def settled(self, limit: float) -> int:
        """Wait (up to ``limit`` s) until every receipt was acknowledged or given up: how many are left."""
        deadline = time.monotonic() + limit
        while self.running and time.monotonic() < deadline:
            await asyncio.sleep(0.5)
        return len(self.running)

    async def stop(self) -> None:
        for task in list(self.running):
            task.cancel()
        if self.running:
            await asyncio.wait(list(self.running))


@dataclass
class ReceiptAudit:
    """One channel's receipts against its transcripts."""

    replies: int = 0  # recorded replies with an acknowledged receipt
    applied: int = 0  # at the furthest state acknowledged (or further)
    behind: list[str] = field(default_factory=list)  # "expected → found": not applied, or gone backwards
    failed_shown: int = 0
    failed_not_shown: int = 0
    unrecorded: int = 0  # copies with acknowledged receipts whose provider id no transcript records (sent twice)
    details: list[str] = field(default_factory=list)  # each reply behind: its receipts as acknowledged


def audit_receipts(receipts: Receipts, found: dict[str, str], began: float) -> dict[ChannelName, ReceiptAudit]:
    """``found``: provider id → the delivery of the transcript entry recording it (``Delivery`` values); ``began``:
    the run's start (monotonic), for the times shown."""
    results: dict[ChannelName, ReceiptAudit] = {}
    for (channel, provider_id), expected in receipts.furthest.items():
        result = results.setdefault(channel, ReceiptAudit())
        state = found.get(provider_id)
        if state is None:
            result.unrecorded += 1
            continue
        result.replies += 1
        if expected == "failed":
            result.failed_shown += state == "failed"
            result.failed_not_shown += state != "failed"
            if state != "failed":
                result.behind.append(f"{expected} → {state}")
                result.details.append(_detail(receipts, channel, provider_id, began, f"{expected} → {state}"))
            continue
        if state == "failed" or RANK.get(state, 0) < RANK[expected]:
            result.behind.append(f"{expected} → {state}")
            result.details.append(_detail(receipts, channel, provider_id, began, f"{expected} → {state}"))
        else:
            result.applied += 1
    return results


def _detail(receipts: Receipts, channel: ChannelName, provider_id: str, began: float, what: str) -> str:
    copy = receipts.copies[channel, provider_id]
    history = ", ".join(receipts.history[channel, provider_id])
    return f"{what}: accepted from {copy.sender} at {copy.at - began:.1f} s; {history}"


def show_receipts(receipts: Receipts, results: dict[ChannelName, ReceiptAudit], left: int) -> None:
    for channel, tally in sorted(receipts.tallies.items()):
        result = results.get(channel, ReceiptAudit())
        print(
            f"{channel} receipts: {tally.posted:,} posted ({tally.late} late, {tally.twice} twice,"
            f" {tally.out_of_order} copies out of order, {tally.failures} failure paths), {tally.acknowledged:,}"
            f" acknowledged, {tally.redelivered:,} redeliveries, given up {tally.given_up}; answers"
            f" {dict(sorted(tally.answers.items()))}"
        )
        print(
            f"  replies with an acknowledged receipt {result.replies:,}: applied {result.applied:,}, failed shown"
            f" {result.failed_shown}, behind {len(result.behind)} {dict(Counter(result.behind))}; receipts for a copy"
            f" no transcript records {result.unrecorded}"
        )
        for line in result.details[:10]:
            print(f"    behind: {line}")
    print(f"receipts still unacknowledged at the audit: {left}")
