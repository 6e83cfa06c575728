"""The gate in front of the bot: blocked senders and message floods stop here, before any store write.

Every young person's message passes :meth:`Gate.check` before the dispatcher (web chat socket, provider
webhooks). A refused message is not recorded and reaches neither the bot nor the queue; its sender is never left
in silence: the web chat shows a calm notice at once (a socket frame, nothing stored), and a provider channel
gets it through the outbox at most once an hour per sender (so a flood costs one counter increment per message).
The notices come from flows.yaml (``rate_limited``, ``blocked``) and keep the emergency numbers.

Blocks are found by a keyed hash of the channel identity (:meth:`Gate.sender_key`), the only form in which the
store, the console and the audit log know a blocked sender.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Literal, Protocol

from gateway.errors import StoreError
from gateway.flows.reading import Reading, Source, Unread
from gateway.flows.risk import risk_source
from gateway.flowset import FlowSet
from gateway.ids import inbound_key
from gateway.keyed import KeyedHash
from gateway.language import language_of
from gateway.messages import ChannelName, Inbound, Outbound
from gateway.metrics import Metrics
from gateway.networks import ClientNetworks
from gateway.outage_log import error_class
from gateway.ratelimit import Limit, RateLimits
from gateway.store import BlockStore, ConversationStore, CountingBlockStore, OutboxItem, OutboxStore
from gateway.store.codec import encode_outbound

log = logging.getLogger(__name__)


class Refusal(StrEnum):
    BLOCKED = "blocked"
    RATE_LIMITED = "rate_limited"
    CLIENT_FULL = "client_full"  # this client network already has its cap of conversations open

    @property
    def message(self) -> str:
        """The flows.yaml message the sender gets."""
        return "blocked" if self is Refusal.BLOCKED else "rate_limited"


@dataclass(frozen=True)
class Refused:
    """Why :meth:`Gate.new_chat` refused a new chat; ``retry_after``: refused by a rate of new chats, the whole seconds
    until that rate's window ends (None for the cap or a block: no window to tell). Since 2026-12-07 (the web chat's
    ``refused`` frame says it, chat.js waits at least that long); until then only the reason was known.

    ``network``: refused by the client network's rate of new chats (``chats_per_address``,
    ``chats_per_shared_network``: a school's pupils opening chats), not by anything of this browser's own
    (``chats_per_browser``); the web chat's frame says it (``"limit": "network"``) so that the page tries a first
    message again by itself. Since 2026-12-07; until then a first message refused so looked like one refused for the
    page's own doing, and waited for "Réessayer" for good."""

    reason: Refusal
    retry_after: int | None = None
    network: bool = False


@dataclass(frozen=True)
class _Guarded:
    """Which guard of :meth:`Gate._guards` refused: the cap (``limit`` None), or a rate ``limit`` counted under
    ``subject`` (a keyed network or a browser token: never leaves the gate)."""

    reason: Refusal
    limit: Limit | None = None
    subject: str = ""


def risky_bound(source: Source | Literal["unread"], subject: str) -> str:
    """The subject a message let on for ``source`` is counted under in the risky bounds (``risky_messages_per_
    conversation``, ``risky_chats_per_network``): an unread one (the model busy, late or loading) apart, under the
    same amount, so that unread messages (a young person's burst, a raid while the model is busy) never spend the
    bound that words read as a risk need. Until 2026-12-06 (the day unread ones began to go on) they spent it: after
    them, "je veux mourir" was refused past the flood, or with the full network's notice."""
    return "unread\n" + subject if source == "unread" else subject


# How long a refused first message's reading is kept for the page's automatic tries of it (``Gate._keep_reading``):
# a held page tries again about once a minute while it stays open; past this, its tries read the keywords only.
READING_KEPT_SECONDS = 24 * 3600


class GateRoles(BlockStore, ConversationStore, OutboxStore, Protocol):
    """What the gate needs of the store: blocks, the open chats per client, the outbox for its notices."""


class Gate:
    def __init__(
        self, store: GateRoles, flows: FlowSet, limits: RateLimits, keyed: KeyedHash, metrics: Metrics,
        *, clock: Callable[[], datetime], on_outgoing: Callable[[], None], max_waiting_per_client: int = 10,
        max_waiting_per_shared_network: int = 60, networks: ClientNetworks | None = None,
        read: Callable[[Inbound], Awaitable[Reading | Unread | None]] | None = None,
        refusals_kept_seconds: int = 6 * 3600,
    ) -> None:  # fmt: skip
        self.store, self.flows, self.limits, self.keyed, self.metrics = store, flows, limits, keyed, metrics
        # told once: a runtime Protocol's isinstance reads the class's attributes each time (3.4 µs a message)
        self._counting = store if isinstance(store, CountingBlockStore) else None
        self.clock, self._on_outgoing = clock, on_outgoing
        self.max_waiting_per_client = max_waiting_per_client
        self.max_waiting_per_shared_network = max_waiting_per_shared_network
        self.networks = networks or ClientNetworks()
        self._read = read  # the embedded model's reading (Dispatcher.reading); None: keywords only
        self.refusals_kept_seconds = refusals_kept_seconds  # the WhatsApp catch-up's window

    async def note_refusal(self, inbound: Inbound) -> None:
        """A WhatsApp message the flood limit refused at its webhook (its notice sent, 200 answered), noted for the
        catch-up's window (a counter by a keyed hash of its de-duplication key: nothing naming the sender), so that
        the catch-up, which finds it in Twilio's list unprocessed, leaves it refused (:meth:`refused_at_webhook`).
        One counter write per refused WhatsApp message, none for a message let on. Until 2026-12-06 the next pass
        processed it, held to no flood limit: refused and recorded both, a WhatsApp flood let in whole."""
        await self.limits.mark(self.refusals_kept_seconds, "refused", inbound_key(inbound))

    async def refused_at_webhook(self, inbound: Inbound) -> bool:
        """Whether :meth:`note_refusal` noted this message (False when the counters cannot be reached: the catch-up
        then processes it, as it would any message it found)."""
        return await self.limits.marked(self.refusals_kept_seconds, "refused", inbound_key(inbound))

    def sender_key(self, channel: ChannelName, sender: str) -> str:
        return self.keyed.sender(channel.value, sender)

    async def blocked(self, channel: ChannelName, sender: str, key: str | None = None) -> bool:
        """Whether the sender is blocked now; ``key``: its :meth:`sender_key`, when made already."""
        if await self.store.get_block(key or self.sender_key(channel, sender), self.clock()) is None:
            return False
        self.metrics.refused.labels("blocked").inc()
        return True

    async def check(
        self, inbound: Inbound, key: str | None = None, *, flood: bool = True, once: bool = True
    ) -> Refusal | None:
        """Why this message may not go on, or None. When the store's Redis keeps the counters too, the block and
        the message limit's hit are one round trip (a blocked sender's hit is counted too: it changes nothing).
        ``key``: the sender's :meth:`sender_key`, when the webhook made it already (``Inbox.sender_keys``).
        Escalate, never silence: a message past the flood limit whose words the flow's keywords (or the embedded
        model, within a budget per sender: :meth:`_risky_past_the_flood`) read as a risk goes on all the same, at
        most ``risky_messages_per_conversation`` an hour per sender (a young person typing in bursts reaches the
        limit, and the words of danger come last). ``flood=False``: a message written long
        before it is processed (WhatsApp's catch-up reads an outage's messages within a second): only a block
        refuses it, its pace is not the young person's.

        A message is counted once (``once``, by its de-duplication key, :func:`~gateway.ids.inbound_key`): its
        redelivery (Meta and Telegram after a timeout, Twilio after a failed connection, any provider after a 503, the
        web chat's page after a reconnection) counts nothing more and gets the decision of its first attempt, so a
        burst redelivered is no flood and a message whose first attempt failed is not refused for its own earlier
        count (the same for the risky bound). Until 2026-12-05 every attempt counted. ``once=False``: every attempt
        counts (an upload, whose id the page chooses and whose image is cleaned after the gate)."""
        if not flood:
            return Refusal.BLOCKED if await self.blocked(inbound.channel, inbound.sender, key) else None
        subject = f"{inbound.channel.value}\n{inbound.sender}"
        counted = inbound_key(inbound) if once else None
        refusal = await self._refusal(inbound, subject, key, counted)
        if refusal is Refusal.RATE_LIMITED and await self._risky_past_the_flood(inbound, subject, counted):
            return None
        return refusal

    async def _refusal(self, inbound: Inbound, subject: str, key: str | None, once: str | None) -> Refusal | None:
        """The sender blocked, or the flood limit reached by this message (its hit counted), or None. Evidence (a
        message the platform marks forwarded: the harasser's messages passed on as proof; or a picture, a video or
        a file: their screenshots, often dozens at once, one message each on WhatsApp and Telegram) is counted under
        its own bound, ``forwarded_per_conversation``, never the typed messages': evidence is kept, and the young
        person's own words after it are not refused for it. Until 2026-12-05 screenshots counted as typed."""
        limit = Limit.FORWARDED if inbound.evidence else Limit.MESSAGES
        if self._counting is not None and (counter := self.limits.counter(limit, subject, once)):
            key = key or self.sender_key(inbound.channel, inbound.sender)
            block, count = await self._counting.get_block_and_hit(key, self.clock(), counter)
            if block is not None:
                self.metrics.refused.labels("blocked").inc()
                return Refusal.BLOCKED
            return None if self.limits.counted(limit, count) else Refusal.RATE_LIMITED
        if await self.blocked(inbound.channel, inbound.sender, key):
            return Refusal.BLOCKED
        return None if await self.limits.allow(limit, subject, once) else Refusal.RATE_LIMITED

    async def _risky_past_the_flood(self, inbound: Inbound, subject: str, once: str | None) -> bool:
        """Whether a message the flood limit refused reads a risk and is let through, within its own bound (counted
        once per message too). The keywords first (cheap); when they read nothing, the embedded model, at most
        ``flood_readings_per_sender`` times per sender (a troll's flood must not keep the model busy): a young person
        past the limit writes their danger in their own words too ("demain matin ils me trouveront plus"). Until
        2026-12-06 the keywords only: such a message was refused unread, and nobody at the line knew. A message the
        model could not read now (busy, late, loading: :meth:`_unread_or_risky`) goes on too, within the same amount
        counted apart (:func:`risky_bound`).

        A message sent again (``once``: a page after a reconnection, a provider's redelivery) keeps its first
        attempt's decision when the model is asked again: let on then (unread, or read risky), it is let on now
        whatever the new reading (:meth:`_let_on_before`). Until 2026-12-06 the new reading decided: a message let on
        unread, its ack lost with an instance killed, was refused when the page sent it again, recorded and shown
        refused both."""
        if not inbound.text.strip():
            return False
        asked = False

        async def may_read() -> bool:
            nonlocal asked
            asked = await self._allow(Limit.FLOOD_READINGS, subject, once)
            return asked

        source = await self._unread_or_risky(inbound, may_read)
        if source is None or not await self._allow(Limit.RISKY_MESSAGES, risky_bound(source, subject), once):
            return asked and once is not None and await self._let_on_before(subject, once)
        self.metrics.overridden.labels(Refusal.RATE_LIMITED.value, source).inc()
        return True

    async def _let_on_before(self, subject: str, once: str) -> bool:
        """Whether the message ``once`` was let on past the flood in this hour: its mark on the risky bound, read
        risky or unread (no hit). Asked only after the model was (at most ``flood_readings_per_sender`` times an
        hour per sender): a troll's flood, its readings spent, costs no more round trips."""
        for bound in (subject, risky_bound("unread", subject)):
            if self._counting is None or (counter := self.limits.counter(Limit.RISKY_MESSAGES, bound, once)) is None:
                if await self.limits.once_marked(Limit.RISKY_MESSAGES, bound, once):
                    return True
                continue
            try:
                if await self._counting.once_marked(counter):
                    return True
            except StoreError as exc:
                log.warning("gate: counters unavailable (%s): no mark read", error_class(exc))
        return False

    async def _unread_or_risky(
        self, inbound: Inbound, may_read: Callable[[], Awaitable[bool]]
    ) -> Source | Literal["unread"] | None:
        """What reads a risk class in ``inbound`` (the keywords first; else the embedded model, when ``may_read``
        allows one more reading), ``"unread"`` when the model was asked and could not read the words now (busy,
        late, still loading: the message, let on, is read after the fact as it is processed), or None (nothing
        read, or the readings' budget spent: the keywords' answer stands; a model that failed or is off: the
        same). Escalate, never silence: a message the gate would refuse is not refused for words nobody read.
        Until 2026-12-06 an unread message was refused: never recorded, never read."""
        engine = self.flows.engine()
        if (source := risk_source(engine.decide(inbound.text))) is not None:
            return source
        if self._read is None or not await may_read():
            return None
        reading = await self._read(inbound)
        if isinstance(reading, Unread):
            return "unread"
        return None if reading is None else risk_source(engine.decide(inbound.text, reading))

    async def _allow(self, limit: Limit, subject: str, once: str | None) -> bool:
        """One hit of ``limit`` (in the store's script when it keeps the counters: one round trip); allowed when the
        counters cannot be reached, as :meth:`RateLimits.allow`."""
        if self._counting is None or (counter := self.limits.counter(limit, subject, once)) is None:
            return await self.limits.allow(limit, subject, once)
        try:
            count = await self._counting.hit(counter)
        except StoreError as exc:
            log.warning("gate: counters unavailable (%s): allowing", error_class(exc))
            return True
        return self.limits.counted(limit, count)

    def client_key(self, address: str) -> str:
        """The keyed hash of ``address``'s client network: what marks a conversation and counts its open ones."""
        return self.keyed("client", self.networks.key(address))

    async def new_chat(
        self, token: str, address: str, inbound: Inbound | None = None, *, once: str | None = None, read: bool = True
    ) -> Refused | None:
        """Why this client may not open one more web chat conversation now, or None; refused by a rate of new chats
        (``chats_per_address``, ``chats_per_shared_network``, ``chats_per_browser``), with the seconds until its
        window ends (:class:`Refused`'s ``retry_after``: one more counter read, after a refusal only; since
        2026-12-07, so that a held page waits for it, not a minute at a time for up to an hour).

        Per client network (``gateway/networks.py``) and per browser token (rate limits), and at most
        ``max_waiting_per_client`` conversations of one client network in the bot or the queue at once
        (``max_waiting_per_shared_network`` inside a declared shared network), so one client cannot bury the
        queue. Escalate, never silence: when the first message ``inbound`` reads risky (:meth:`_reads_risky`:
        imminent danger, suicide…), a refused conversation opens anyway, at most ``risky_chats_per_network`` an
        hour per client network (beyond it, a troll typing "je veux mourir" in a loop would bury the queue again).

        ``once``: what names that message across its attempts (the page's, ``ChatSession._once``): sent again, it
        counts nothing more against ``risky_chats_per_network`` and gets its first attempt's answer. Until
        2026-12-07 every attempt counted: a risky first message whose attempt was cut after the count (a store
        reset, a failover, an instance killed) and that the page sent again on its next held socket was refused
        for its own earlier count once the hour's amount was reached (``tests/test_webchat_held_retry.py``).

        ``read=False``: the model is not asked (the keywords are): a message a held page tries again by itself
        (chat.js's ``"auto"``), its words read at its first refusal; since 2026-12-07, so that a school's held pages
        trying again do not spend ``refused_readings_per_network`` that a classmate's new words need. Such a try is
        judged with the reading its first try got when the model read a risk in it or could not read it (kept
        under ``once`` and its words, :data:`READING_KEPT_SECONDS`, by :meth:`_keep_reading` when it was refused):
        never a weaker reading. Until 2026-12-07 evening the keywords alone judged it: words only the model read
        as a danger, refused past ``risky_chats_per_network``, stayed refused once the hour's bound had freed, the
        network still full (only "Réessayer" asked the model again). One the model could not read (``"unread"``) is
        read by it now, within ``refused_readings_per_network`` (a risk read kept in its place): until 2026-12-07
        (late) the kept ``"unread"`` alone judged it, refused for good against a spent unread bound once the model
        could read its danger (``tests/test_full_network_understanding.py``). A reading of nothing then is kept as
        read (``"read"``): the try is judged as a fresh try of the same words (the keywords, read first, still
        apply), and the next ones ask the model nothing. Until 2026-12-07 (night) it stayed ``"unread"``: let in
        under the unread chats' bound (a fresh try of the same words waited at the cap), every automatic try asking
        the model again and spending ``refused_readings_per_network`` (``tests/test_gate_kept_reading.py``)."""
        network = self.networks.key(address)
        guarded = await self._guards(token, address, network)
        if guarded is None:
            return None
        refusal = guarded.reason
        source = None if inbound is None else await self._reads_risky(inbound, network, read)
        if source is None and not read and inbound is not None and once is not None:
            kept = await self._kept_reading(once, inbound.text)
            if kept == "unread":  # not read then: the model asked now (its budget), never weaker than a fresh try
                kept = await self._read_again(inbound, network)
                if kept != "unread":  # read now: a risk ("model") or nothing ("read"), kept for the next tries
                    await self._keep_reading(once, inbound.text, kept)
            source = None if kept == "read" else kept
        if source is not None and await self.limits.allow(Limit.RISKY_CHATS, risky_bound(source, network), once):
            self.metrics.overridden.labels(refusal.value, source).inc()
            return None
        if source in ("model", "unread") and read and inbound is not None and once is not None:
            await self._keep_reading(once, inbound.text, source)
        if refusal is Refusal.CLIENT_FULL:
            self.metrics.refused.labels(refusal.value).inc()
        if guarded.limit is None:
            return Refused(refusal)
        network_rate = guarded.limit in (Limit.CHATS_PER_ADDRESS, Limit.CHATS_PER_SHARED_NETWORK)
        return Refused(refusal, await self.limits.window_left(guarded.limit, guarded.subject), network_rate)

    async def _keep_reading(self, once: str, text: str, source: Source | Literal["unread", "read"]) -> None:
        """What the model made of a refused first message (``source``: ``"model"``, a risk read; ``"unread"``, it
        could not read it now; ``"read"``, since 2026-12-07 (night): read at an automatic try after an ``"unread"``,
        no risk in it), kept :data:`READING_KEPT_SECONDS` under a keyed hash of ``once`` and ``text`` (the
        same words only: another text under the same id is read as its own), for the page's automatic tries
        (:meth:`new_chat`'s ``read=False``). One counter write per refused message the model read as a risk;
        nothing when the counters cannot be reached (the automatic tries then read the keywords, as before)."""
        await self.limits.mark(READING_KEPT_SECONDS, "reading:" + source, f"{once}\n{text}")

    async def _kept_reading(self, once: str, text: str) -> Source | Literal["unread", "read"] | None:
        """The reading :meth:`_keep_reading` kept for ``once`` and ``text`` (a risk read first; an ``"unread"`` read
        since, no risk in it: ``"read"``), or None. Two counter reads when nothing is kept, as before ``"read"``."""
        subject = f"{once}\n{text}"
        if await self.limits.marked(READING_KEPT_SECONDS, "reading:model", subject):
            return "model"
        if not await self.limits.marked(READING_KEPT_SECONDS, "reading:unread", subject):
            return None
        return "read" if await self.limits.marked(READING_KEPT_SECONDS, "reading:read", subject) else "unread"

    async def _read_again(self, inbound: Inbound, network: str) -> Source | Literal["unread", "read"]:
        """An automatic try's words kept ``"unread"``, read by the model now, within ``refused_readings_per_network``
        (their keywords read nothing: :meth:`new_chat` asked them first): ``"model"`` (a risk), ``"read"`` (no risk:
        as a fresh try of the same words), or ``"unread"`` still (the model busy, late, loading, failed or off, or the
        readings' budget spent: never weaker than the reading kept). Since 2026-12-07 (night)."""
        if self._read is None or not inbound.text.strip():
            return "unread"
        if not await self.limits.allow(Limit.REFUSED_READINGS, network):
            return "unread"
        reading = await self._read(inbound)
        if reading is None or isinstance(reading, Unread):
            return "unread"
        return risk_source(self.flows.engine().decide(inbound.text, reading)) or "read"

    async def _guards(self, token: str, address: str, network: str) -> _Guarded | None:
        """The cap first, read only: a try it refuses uses up no rate (a pupil behind a full school network who
        keeps writing while the notice shows gets the next free place, not an hour's refusal); then the rates,
        each try they see counted. Says which refused (since 2026-12-07: the rate's window end is told). The cap is
        asked as ``store.client_at_cap`` since 2026-12-07 (on Redis the network's set alone while it lists fewer
        ids than the cap; later that day one script at the cap too, with the exact set of its open chats, the records
        read only when the two sets disagree or once every 30 s); until then every try read every open chat's record
        of the network (one ``GET`` each)."""
        shared = self.networks.is_shared(address)
        cap = self.max_waiting_per_shared_network if shared else self.max_waiting_per_client
        if await self.store.client_at_cap(self.keyed("client", network), cap):
            return _Guarded(Refusal.CLIENT_FULL)
        rate = Limit.CHATS_PER_SHARED_NETWORK if shared else Limit.CHATS_PER_ADDRESS
        if not await self.limits.allow(rate, network):
            return _Guarded(Refusal.RATE_LIMITED, rate, network)
        if not await self.limits.allow(Limit.CHATS_PER_BROWSER, token):
            return _Guarded(Refusal.RATE_LIMITED, Limit.CHATS_PER_BROWSER, token)
        return None

    async def _reads_risky(
        self, inbound: Inbound, network: str, read: bool = True
    ) -> Source | Literal["unread"] | None:
        """What reads a risk class (imminent danger, suicide, self-harm, abuse at home) in ``inbound``, or None: the
        flow's keywords first (cheap, the same on every instance), else the embedded model, read as the message's
        processing reads it and judged at flows.yaml's thresholds by the engine's own decision. The model can only
        add a risk; one that failed leaves the keywords' answer, one that is loading, late or busy answers
        ``"unread"`` (:meth:`_unread_or_risky`: the conversation opens, under the risky chats' amount counted apart,
        :func:`risky_bound`, its first message read after the fact; until 2026-12-06 refused unread). It is asked at
        most ``refused_readings_per_network`` times per client network (a troll's refused messages must not take the
        model from the conversations it reads)."""
        if not inbound.text.strip():
            return None

        async def may_read() -> bool:  # ``read=False``: the keywords only (``new_chat``)
            return read and await self.limits.allow(Limit.REFUSED_READINGS, network)

        return await self._unread_or_risky(inbound, may_read)

    def notice(self, refusal: Refusal, language: str | None) -> str:
        """The notice in ``language``, or in every language of the flow (French first) when it is unknown."""
        engine = self.flows.engine()
        if language in engine.flow.languages:
            return engine.message(refusal.message, language)
        return "\n\n".join(engine.message(refusal.message, lang) for lang in engine.flow.languages)

    async def tell_provider_sender(self, inbound: Inbound, refusal: Refusal) -> None:
        """A provider channel's sender gets the notice through the outbox, once an hour at most. Not on a thread
        another app owns (Messenger's ``standby``: a page admin in Meta's inbox): the message is refused all the same
        (a flood there would bury the listeners' transcript), but the gateway does not speak over the human who
        answers, and the hour's notice is kept for the young person's next refused message on the gateway's own
        thread. Until 2026-12-06 the notice went there too. A risk past the flood goes on (:meth:`check`)."""
        if inbound.standby:
            return
        subject = self.sender_key(inbound.channel, inbound.sender)
        if not await self.limits.first_refusal(Limit.MESSAGES, refusal.value + subject):
            return
        item_id = "n" + secrets.token_urlsafe(12)
        outbound = Outbound(
            id=item_id, conversation_id="notice-" + subject, channel=inbound.channel, recipient=inbound.sender,
            text=self.notice(refusal, await self._language(inbound)), author="bot",
        )  # fmt: skip
        payload = encode_outbound(outbound)
        await self.store.outbox_put(OutboxItem(item_id, outbound.conversation_id, payload, self.clock()))
        self._on_outgoing()

    async def _language(self, inbound: Inbound) -> str | None:
        """The language of the sender's conversation, the one they chose over their app's; else the
        channel's hint (None: unknown, the notice in every language)."""
        conversation = await self.store.find_active_conversation(inbound.channel, inbound.sender)
        if conversation is None or not conversation.engine or conversation.engine.get("unsure"):
            return inbound.language_hint
        return language_of(conversation, self.flows.for_version(conversation.flow_version).flow)
