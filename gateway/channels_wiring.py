"""Which channels run, and their webhook routes: a channel is on when its secrets are set.

Each webhook verifies and parses the request through its adapter (size, then signature, then body), hands every
message of the batch to the dispatcher (de-duplication, lock, engine, persistence: milliseconds, so nothing is
acknowledged before it is safely stored), records the receipts, and answers as the provider expects. A refused
request gets its status (403 bad signature, 400 malformed, 413 too large) and changes nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta

import aiohttp
from aiohttp import web

from gateway.channels.base import Batch, Channel, Lifecycle, ReplyWindow
from gateway.dispatcher import Dispatcher
from gateway.errors import WebhookError
from gateway.messages import ChannelName
from gateway.outbox import Sender
from gateway.settings import Settings

log = logging.getLogger(__name__)

Start = Callable[[], Awaitable[None]]
Parse = Callable[[web.Request], Awaitable[Batch]]


@dataclass
class Channels:
    adapters: dict[ChannelName, Channel] = field(default_factory=dict)
    reply_windows: dict[ChannelName, Callable[[str], timedelta]] = field(default_factory=dict)
    lifecycles: list[tuple[Start, Start]] = field(default_factory=list)

    @property
    def senders(self) -> dict[ChannelName, Sender]:
        return dict(self.adapters)


def build_channels(settings: Settings, http: aiohttp.ClientSession) -> Channels:
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


def webhook_routes(channels: Channels, dispatcher: Dispatcher) -> list[web.RouteDef]:
    routes: list[web.RouteDef] = []
    for name, adapter in channels.adapters.items():
        path = f"/webhooks/{name.value}"
        routes.append(web.post(path, _webhook(adapter, adapter.parse, dispatcher)))
        verify = getattr(adapter, "verify", None)
        if verify is not None:  # Messenger's GET subscription handshake
            routes.append(web.get(path, verify))
        parse_status = getattr(adapter, "parse_status", None)
        if parse_status is not None:  # Twilio's delivery status callbacks
            routes.append(web.post(path + "/status", _webhook(adapter, parse_status, dispatcher)))
    return routes


def _webhook(
    adapter: Channel, parse: Parse, dispatcher: Dispatcher
) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def handle(request: web.Request) -> web.Response:
        try:
            batch = await parse(request)
        except WebhookError as exc:
            log.info("%s webhook refused: %s", adapter.name.value, exc.__class__.__name__)
            return web.json_response({"error": exc.__class__.__name__, "message": str(exc)}, status=exc.status)
        for inbound in batch.inbound:
            await dispatcher.handle_inbound(inbound)
        for receipt in batch.receipts:
            await dispatcher.handle_receipt(receipt)
        return adapter.acknowledge()

    return handle
