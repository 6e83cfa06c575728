"""Which channels run, and their webhook routes: a channel is on when its secrets are set.

Each webhook verifies and parses the request through its adapter (size, then signature, then body), passes every
message of the batch through the gate, hands the allowed ones to the dispatcher (de-duplication, lock, engine,
persistence: milliseconds, so nothing is acknowledged before it is safely stored) or, for a large batch, to the
durable inbox (stored in one commit, processed after: ``gateway/inbox.py``), records the receipts, and answers
as the provider expects. A refused
request gets its status (403 bad signature, 400 malformed, 413 too large) and changes nothing.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Protocol

import aiohttp
from aiohttp import web

from gateway.channels.base import Batch, Channel, Lifecycle, ReplyWindow, TypingIndicator
from gateway.conversation import Status
from gateway.dispatcher import Dispatcher
from gateway.errors import DeliveryError, InboundBusy, StoreError, WebhookError
from gateway.events import Typing
from gateway.gate import Gate, Refusal
from gateway.inbox import Inbox
from gateway.messages import ChannelName, Departure
from gateway.metrics import Metrics
from gateway.outage_log import HTTP
from gateway.outbox import Sender
from gateway.settings import Settings
from gateway.sockets import Forwarding
from gateway.store import ConversationStore, EventStore, Subscription
from gateway.supervisor import where

log = logging.getLogger(__name__)

Start = Callable[[], Awaitable[None]]
Parse = Callable[[web.Request], Awaitable[Batch]]
Departed = Callable[[Departure], Awaitable[None]]  # a provider says the young person (un)blocked the line


@dataclass
class Channels:
    adapters: dict[ChannelName, Channel] = field(default_factory=dict)
    reply_windows: dict[ChannelName, Callable[[str], timedelta]] = field(default_factory=dict)
    lifecycles: list[tuple[Start, Start]] = field(default_factory=list)

    @property
    def senders(self) -> dict[ChannelName, Sender]:
        return dict(self.adapters)


def build_channels(settings: Settings, http: aiohttp.ClientSession) -> Channels:
    on = settings.channels_on()
    log.info("channels: web chat on, %s", ", ".join(f"{name} {'on' if is_on else 'off'}" for name, is_on in on.items()))
    channels = Channels()
    if settings.messenger_enabled:
        from gateway.channels.messenger import MessengerChannel

        _add(channels, MessengerChannel(settings, http))
    if settings.whatsapp_enabled:
        from gateway.channels.whatsapp import WhatsAppChannel

        _add(channels, WhatsAppChannel(settings, http))
    if settings.telegram_enabled:
        from gateway.channels.telegram import TelegramChannel

        _add(channels, TelegramChannel(settings, http))
    return channels


def _add(channels: Channels, adapter: Channel) -> None:
    channels.adapters[adapter.name] = adapter
    if isinstance(adapter, ReplyWindow):
        channels.reply_windows[adapter.name] = adapter.reply_window
    if isinstance(adapter, Lifecycle):
        channels.lifecycles.append((adapter.start, adapter.stop))


class TypingRoles(ConversationStore, EventStore, Protocol):
    """What the typing relay needs of the store: the listeners' typing events, the conversation's channel."""


class Claims(Protocol):
    """A short claim shared by every instance (``RateLimits.once_per``: a counter in Redis, in memory alone)."""

    async def once_per(self, seconds: int, what: str, subject: str) -> bool: ...


class TypingRelay:
    """While a listener types in the console, show "typing…" in the young person's app (Messenger, Telegram).

    Reads the console's ``typing`` events, which reach every instance; at most one indicator per conversation every
    :attr:`every` seconds (Telegram's lasts 5 s, Messenger's until the next message or 20 s) across instances: each
    instance lets one event per conversation through every :attr:`every` seconds, then takes a short claim shared
    by all (``claims``), and only the instance that wins it calls the provider (without it, N instances made N
    identical calls). Sent in the background, so a slow provider never holds the events back; a failure is logged
    by class and forgotten (it is only a hint). Outcomes are counted in ``gateway_typing_indicators``. A channel
    whose provider rate-limits this instance (``paused``: the outbox's pause, ``Outbox.paused``) is not asked: the
    hint is dropped, counted ``paused`` (since 2026-12-08: until then it went, refused, during the limit).
    """

    every = 4

    def __init__(
        self, store: TypingRoles, adapters: Mapping[ChannelName, Channel], claims: Claims, metrics: Metrics,
        paused: Callable[[ChannelName], bool] = lambda channel: False,
    ) -> None:  # fmt: skip
        self._store, self._adapters, self._claims, self._metrics = store, adapters, claims, metrics
        self._paused = paused
        self._last: dict[str, float] = {}
        self._sending: set[asyncio.Task[None]] = set()

    async def run(self) -> None:
        """A supervised worker (a missed typing event needs no resync: the hint is gone by then). While the store
        fails it subscribes again by itself (part ``typing``): never left in the supervisor's backoff, ``down``
        after the store was back."""
        try:
            await Forwarding(self._store, self._metrics.outages, "typing").run(self._relay)
        finally:
            await asyncio.gather(*self._sending, return_exceptions=True)

    async def _relay(self, subscription: Subscription) -> None:
        async for event in subscription:  # typing: every instance's
            match event:
                case Typing(conversation_id=conversation_id, who="listener"):
                    self._maybe_send(conversation_id)

    def _maybe_send(self, conversation_id: str) -> None:
        now = time.monotonic()
        if now - self._last.get(conversation_id, -self.every) < self.every:
            return
        self._last = {cid: at for cid, at in self._last.items() if now - at < self.every}
        self._last[conversation_id] = now
        task = asyncio.create_task(self._send(conversation_id))
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)

    async def _send(self, conversation_id: str) -> None:
        try:
            if not await self._claims.once_per(self.every, "typing_indicator", conversation_id):
                self._metrics.typing_indicators.labels("elsewhere").inc()
                return
            await self._show(conversation_id)
        except Exception as exc:  # a hint only: one failure is logged (class, place) and never stops the relay
            self._metrics.typing_indicators.labels("failed").inc()
            log.warning("typing indicator: unexpected %s at %s", type(exc).__name__, where(exc))

    async def _show(self, conversation_id: str) -> None:
        conversation = await self._store.get_conversation(conversation_id)
        if conversation is None or conversation.status != Status.WITH_LISTENER:
            return
        adapter = self._adapters.get(conversation.channel)
        if isinstance(adapter, TypingIndicator) and self._paused(conversation.channel):
            self._metrics.typing_indicators.labels("paused").inc()  # its provider rate-limits us: not asked now
            return
        if isinstance(adapter, TypingIndicator):
            try:
                await adapter.typing(conversation.sender)
            except DeliveryError as exc:
                self._metrics.typing_indicators.labels("failed").inc()
                log.info("%s typing indicator not shown (%s)", conversation.channel.value, type(exc).__name__)
                return
            self._metrics.typing_indicators.labels("shown").inc()


def webhook_routes(
    channels: Channels, dispatcher: Dispatcher, gate: Gate, inbox: Inbox, metrics: Metrics, *, departed: Departed,
    replicated: Callable[[], Awaitable[None]] | None = None,
    missed: Mapping[ChannelName, Callable[[], None]] | None = None,
) -> list[web.RouteDef]:  # fmt: skip
    """The webhook routes of the channels that are on; ``departed`` is told of a provider's (un)block notice;
    ``replicated`` (``GATEWAY_REDIS_REPLICA_ACKS``) is awaited before each acknowledgement: ReplicasBehind, 503;
    ``missed`` is told when a channel's webhook answered 503 (WhatsApp's catch-up)."""
    routes: list[web.RouteDef] = []
    for name, adapter in channels.adapters.items():
        path = f"/webhooks/{name.value}"
        process = batch_processor(dispatcher, gate, inbox, departed, replicated)
        routes.append(web.post(path, _webhook(adapter, adapter.parse, process, metrics, (missed or {}).get(name))))
        verify = getattr(adapter, "verify", None)
        if verify is not None:  # Messenger's GET subscription handshake
            routes.append(web.get(path, verify))
        parse_status = getattr(adapter, "parse_status", None)
        if parse_status is not None:  # Twilio's delivery status callbacks
            routes.append(web.post(path + "/status", _webhook(adapter, parse_status, process, metrics, None)))
    return routes


def _webhook(
    adapter: Channel,
    parse: Parse,
    process: Callable[[Batch], Awaitable[int]],
    metrics: Metrics,
    missed: Callable[[], None] | None,
) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def handle(request: web.Request) -> web.Response:
        try:
            batch = await parse(request)
        except WebhookError as exc:
            log.info("%s webhook refused: %s", adapter.name.value, exc.__class__.__name__)
            return web.json_response({"error": exc.__class__.__name__, "message": str(exc)}, status=exc.status)
        if batch.too_old:
            metrics.old_events.labels(adapter.name.value).inc(batch.too_old)
        hold = getattr(adapter, "store_hold_seconds", 0.0)
        loop = asyncio.get_running_loop()
        deadline, pause = loop.time() + hold, 0.25
        while True:  # a provider that does not redeliver: the store tried again while it waits for its answer
            try:
                await process(batch)
                return adapter.acknowledge()
            except InboundBusy:  # being processed elsewhere: its answer is that instance's (503 here)
                raise
            except StoreError as exc:
                if loop.time() + pause >= deadline:
                    if missed is not None:  # Twilio sends it no more: the catch-up reads it from Twilio's list
                        missed()
                    raise  # 503 (the middleware tells the outage)
                metrics.outages.failed(HTTP, exc)
            await asyncio.sleep(pause)
            pause = min(pause * 2, 2.0)

    return handle


def batch_processor(
    dispatcher: Dispatcher, gate: Gate, inbox: Inbox, departed: Departed,
    replicated: Callable[[], Awaitable[None]] | None, *, flood: bool = True,
) -> Callable[[Batch], Awaitable[int]]:  # fmt: skip
    """How a webhook's batch is processed (and WhatsApp's catch-up's messages: ``whatsapp_catchup.py``, with
    ``flood=False``: written over an outage and read within a second, they are held to no flood limit, see
    :meth:`Gate.check`)."""

    async def process(batch: Batch) -> int:
        """The batch's messages, receipts and departures, each processed once however often this runs. Returns how
        many of its messages this run took (:meth:`Inbox.handle`): neither refused by the gate nor processed
        already (elsewhere, or by an earlier run)."""
        keys = inbox.sender_keys(batch.inbound)  # each sender's keyed hash, once for the turns, gate and inbox
        async with inbox.turns(batch.inbound, keys):  # one sender's webhooks in arrival order, from here on
            allowed, allowed_keys = [], []
            for inbound, key in zip(batch.inbound, keys, strict=True):
                if not flood and await gate.refused_at_webhook(inbound):
                    continue  # the catch-up's: refused past the flood at its webhook, notice sent (stays refused)
                refusal = await gate.check(inbound, key, flood=flood)
                if refusal is None:
                    allowed.append(inbound)
                    allowed_keys.append(key)
                else:  # acknowledged all the same: the provider must not redeliver a refused message
                    if refusal is Refusal.RATE_LIMITED and inbound.channel is ChannelName.WHATSAPP:
                        await gate.note_refusal(inbound)  # in Twilio's list: the catch-up must leave it
                    await gate.tell_provider_sender(inbound, refusal)
            # the page's answers from Meta's inbox (recorded for the listeners, never sent) before the young person's
            # messages: a human answered, the bot asks nothing over it (until 2026-12-05 it answered the batch's
            # message first); one to a conversation the batch's messages open, after them
            later = [echo for echo in batch.echoes if not await dispatcher.handle_echo(echo)]
            taken = await inbox.handle(allowed, allowed_keys)  # processed now, or into the inbox first (a large batch)
        for echo in later:
            await dispatcher.handle_echo(echo)
        for receipt in batch.receipts:
            await dispatcher.handle_receipt(receipt)
        for departure in batch.departures:  # after the messages: a WhatsApp "STOP" is a message, then a departure
            await departed(departure)
        if replicated is not None:  # what it wrote on the replicas first: a failover keeps it (ReplicasBehind: 503)
            await replicated()
        return taken

    return process
